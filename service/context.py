"""The storage handles the use cases work with, built once per app by the factory."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from config.settings import Settings
from service.db import Database
from service.rollup_cache import redis_client


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    redis: redis.Redis | None  # None when REDIS_URL is empty: no cache

    @classmethod
    def from_settings(cls, settings: Settings, *, pooled: bool = True) -> Services:
        """Pooled for the server; a command makes its own, unpooled, from the same settings."""
        db = Database(
            settings.database_url,
            pooled=pooled,
            max_size=settings.db_pool_max_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        cache = redis_client(settings.redis_url) if settings.cache_enabled else None
        return cls(settings=settings, db=db, redis=cache)

    def close(self) -> None:
        self.db.close()
        if self.redis is not None:
            self.redis.close()
