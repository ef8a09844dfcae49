"""The storage handles the use cases work with, built once per app by the factory."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from service.db import Database
from service.rollup_cache import RollupCache, redis_client


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    cache: RollupCache | None  # None when REDIS_URL is empty

    @classmethod
    def from_settings(cls, settings: Settings, *, pooled: bool = True) -> Services:
        """Pooled for the server; a command makes its own, unpooled, from the same settings."""
        db = Database(
            settings.database_url,
            pooled=pooled,
            max_size=settings.db_pool_max_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        return cls(settings=settings, db=db, cache=_cache(settings))

    def close(self) -> None:
        self.db.close()
        if self.cache is not None:
            self.cache.client.close()


def _cache(settings: Settings) -> RollupCache | None:
    if not settings.cache_enabled:
        return None
    return RollupCache(
        redis_client(settings.redis_url, settings.redis_timeout_ms),
        namespace=settings.cache_key_namespace,
        ttl_seconds=settings.cache_ttl_seconds,
        today_ttl_seconds=settings.cache_today_ttl_seconds,
        lease_ms=settings.cache_lease_ms,
        breaker_failures=settings.cache_breaker_failures,
        breaker_reset_seconds=settings.cache_breaker_reset_seconds,
    )
