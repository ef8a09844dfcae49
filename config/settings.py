"""Settings: the one place that reads the environment (README, "Configuration")."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

DEFAULT_DATABASE_URL = "postgresql:///scrubs_analytics"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    redis_cluster: bool = False  # REDIS_URL names a node of a Redis Cluster
    max_range_days: int = 366
    bind: str = "127.0.0.1:8000"
    web_concurrency: int = field(default_factory=lambda: default_workers())
    web_threads: int = 4
    log_level: str = "INFO"
    db_pool_max_size: int = 4
    db_statement_timeout_ms: int = 5000
    redis_timeout_ms: int = 200
    metrics_dir: str = ""  # PROMETHEUS_MULTIPROC_DIR: this instance's samples (set by the config)
    metrics_base: str = ""  # METRICS_DIR: where instances make their directories
    cache_ttl_seconds: int = 7 * 24 * 3600
    cache_today_ttl_seconds: int = 60
    cache_lease_ms: int = 10_000
    cache_breaker_failures: int = 3
    cache_breaker_reset_seconds: int = 5
    event_retention_days: int | None = None  # raw events kept this long; None: forever

    def __post_init__(self) -> None:
        _check_database_url(self.database_url)
        if self.redis_url:
            _check_redis_url(self.redis_url)
        if self.max_range_days > MAX_RANGE_DAYS:
            raise SettingsError(
                f"MAX_RANGE_DAYS must be at most {MAX_RANGE_DAYS:,} (100 years), got"
                f" {self.max_range_days}"
            )
        if self.redis_cluster and self.redis_url:
            if self.redis_url.startswith("unix://"):
                raise SettingsError("REDIS_CLUSTER=true needs a redis:// or rediss:// REDIS_URL")
            if urlsplit(self.redis_url).path.strip("/") not in ("", "0"):
                # A Redis Cluster has one database, 0.
                raise SettingsError("REDIS_CLUSTER=true needs database 0 (or none) in REDIS_URL")
        if self.cache_lease_ms <= self.db_statement_timeout_ms:
            # A fill's SQL read must end before its lease can lapse.
            raise SettingsError("CACHE_LEASE_MS must be longer than DB_STATEMENT_TIMEOUT_MS")

    @property
    def cache_enabled(self) -> bool:
        return bool(self.redis_url)

    @property
    def database_name(self) -> str:
        """The database's name, made safe for file and key names ("default" if none)."""
        name = str(conninfo_to_dict(self.database_url).get("dbname") or "")
        return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "default"

    @property
    def metrics_base_directory(self) -> str:
        """METRICS_DIR, else scrubs-analytics-metrics-<uid> in the temporary directory."""
        return self.metrics_base or os.path.join(
            tempfile.gettempdir(), f"scrubs-analytics-metrics-{os.getuid()}"
        )

    @property
    def base_url(self) -> str:
        """The URL a client on this machine reaches the service at."""
        host, _, port = self.bind.rpartition(":")
        if self.bind.startswith("unix:"):
            return "http://localhost"
        if host in ("", "0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or defaults.database_url,
            redis_url=env.get("REDIS_URL", defaults.redis_url).strip(),
            redis_cluster=_boolean(env, "REDIS_CLUSTER", defaults.redis_cluster),
            max_range_days=_positive_int(env, "MAX_RANGE_DAYS", defaults.max_range_days),
            bind=env.get("BIND", "").strip() or defaults.bind,
            web_concurrency=_positive_int(env, "WEB_CONCURRENCY", defaults.web_concurrency),
            web_threads=_positive_int(env, "WEB_THREADS", defaults.web_threads),
            log_level=_log_level(env, defaults.log_level),
            db_pool_max_size=_positive_int(env, "DB_POOL_MAX_SIZE", defaults.db_pool_max_size),
            db_statement_timeout_ms=_positive_int(
                env, "DB_STATEMENT_TIMEOUT_MS", defaults.db_statement_timeout_ms
            ),
            redis_timeout_ms=_positive_int(env, "REDIS_TIMEOUT_MS", defaults.redis_timeout_ms),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR", "").strip(),
            metrics_base=env.get("METRICS_DIR", "").strip(),
            cache_ttl_seconds=_positive_int(env, "CACHE_TTL_SECONDS", defaults.cache_ttl_seconds),
            cache_today_ttl_seconds=_positive_int(
                env, "CACHE_TODAY_TTL_SECONDS", defaults.cache_today_ttl_seconds
            ),
            cache_lease_ms=_positive_int(env, "CACHE_LEASE_MS", defaults.cache_lease_ms),
            cache_breaker_failures=_positive_int(
                env, "CACHE_BREAKER_FAILURES", defaults.cache_breaker_failures
            ),
            cache_breaker_reset_seconds=_positive_int(
                env, "CACHE_BREAKER_RESET_SECONDS", defaults.cache_breaker_reset_seconds
            ),
            event_retention_days=_retention_days(env),
        )


MAX_RANGE_DAYS = 36_500  # a century: a longer range is no question a dashboard asks


def _check_database_url(url: str) -> None:
    """A URL (postgresql://…) or key=value pairs, as libpq reads them. The message never
    repeats the value: it may hold a password."""
    try:
        options = conninfo_to_dict(url)
    except psycopg.Error:
        raise SettingsError(
            "DATABASE_URL is not a Postgres connection string: use a URL such as"
            " postgresql://user@host:5432/name, or key=value pairs"
        ) from None
    ports = str(options.get("port") or "")
    if ports and not all(_is_port(port) for port in ports.split(",")):
        raise SettingsError("DATABASE_URL has a port that is not a number 1-65535")
    timeout = str(options.get("connect_timeout") or "")
    if timeout and not (timeout.isascii() and timeout.isdigit()):
        raise SettingsError("DATABASE_URL has a connect_timeout that is not a whole number")
    if str(options.get("sslmode") or "prefer") not in SSL_MODES:
        raise SettingsError(f"DATABASE_URL's sslmode must be one of {', '.join(SSL_MODES)}")


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536


def _check_redis_url(url: str) -> None:
    """What redis-py would otherwise take quietly: a port that is no number fails only
    when a connection is made, and a database that is no number means database 0."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
    parts = urlsplit(url)
    if parts.scheme == "unix":
        database = dict(parse_qsl(parts.query)).get("db", "")
    else:
        try:
            parts.port  # noqa: B018 (read for its check)
        except ValueError:
            raise SettingsError("REDIS_URL has a port that is not a number 0-65535") from None
        database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise SettingsError("REDIS_URL names a database that is not a number (such as /0)")


def default_workers() -> int:
    """One gthread worker per core and one more (docs/operations.md, "Worker class")."""
    return (os.cpu_count() or 1) + 1


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


MAX_RETENTION_DAYS = 36_500  # a century: any longer window keeps every event there is


def _retention_days(env: Mapping[str, str]) -> int | None:
    """EVENT_RETENTION_DAYS: a whole number of days 1-36,500, or None when unset or empty."""
    if not env.get("EVENT_RETENTION_DAYS", "").strip():
        return None
    days = _positive_int(env, "EVENT_RETENTION_DAYS", 0)
    if days > MAX_RETENTION_DAYS:
        raise SettingsError(
            f"EVENT_RETENTION_DAYS must be at most {MAX_RETENTION_DAYS:,} (100 years), got"
            f" {days}; leave it unset to keep every event"
        )
    return days


TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be true or false, got {env[name].strip()!r}")


def _log_level(env: Mapping[str, str], default: str) -> str:
    raw = env.get("LOG_LEVEL", "").strip().upper()
    if not raw:
        return default
    if raw not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw
