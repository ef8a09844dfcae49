"""The one place that wires the adapters to the ports: `Services` for the server (a pool
per worker, opened after fork) and for a command (connections of its own)."""

from __future__ import annotations

import psycopg
import redis

from config.settings import Settings
from service.adapters.postgres.administration import PostgresDirectory
from service.adapters.postgres.identity import cache_identity
from service.adapters.postgres.imports import PostgresLedger
from service.adapters.postgres.pool import CommandDatabase, Database, PooledDatabase
from service.adapters.postgres.rollups import PostgresRollups
from service.adapters.redis.nodes import ClusterNodes
from service.adapters.redis.rollup_cache import RedisRollupCache, redis_client
from service.usecases.ports import CacheUnavailable, Services


def server_services(settings: Settings) -> Services:
    """For a server process: nothing connects until a worker first needs it."""
    db = PooledDatabase(
        settings.database_url,
        max_size=settings.db_pool_max_size,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    return _services(settings, db, read_by_servers=True)


def command_services(settings: Settings) -> Services:
    """For one command: no pool, no background threads; close it at the command's end."""
    return _services(settings, CommandDatabase(settings.database_url), read_by_servers=False)


def _services(settings: Settings, db: Database, *, read_by_servers: bool) -> Services:
    return Services(
        settings=settings,
        database=db,
        directory=PostgresDirectory(db),
        rollups=PostgresRollups(db),
        ledger=PostgresLedger(db),
        cache=_cache(settings, db, read_by_servers),
    )


def _cache(settings: Settings, db: Database, read_by_servers: bool) -> RedisRollupCache | None:
    if not settings.cache_enabled:
        return None
    if settings.redis_cluster:  # the other nodes are found when first needed, after fork
        target = ClusterNodes(settings.redis_url, settings.redis_timeout_ms)
    else:
        target = redis_client(settings.redis_url, settings.redis_timeout_ms)
    return RedisRollupCache(
        target,
        namespace=lambda: cache_identity(db),
        read_by_servers=read_by_servers,
        ttl_seconds=settings.cache_ttl_seconds,
        today_ttl_seconds=settings.cache_today_ttl_seconds,
        lease_ms=settings.cache_lease_ms,
        breaker_failures=settings.cache_breaker_failures,
        breaker_reset_seconds=settings.cache_breaker_reset_seconds,
    )


def storage_failure(error: BaseException) -> str | None:
    """`Postgres: …` or `Redis: …` in one line for an error of a store; None for any other."""
    if isinstance(error, psycopg.Error):
        store = "Postgres"
    elif isinstance(error, redis.RedisError | CacheUnavailable):
        store = "Redis"
    else:
        return None
    return f"{store}: {' '.join(str(error).split()) or type(error).__name__}"
