"""Redis: the client the service talks to the cache with."""

from __future__ import annotations

import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# A cache must never hold a request up: redis-py's defaults (seconds of timeout, many
# retries) would make one command against a hung Redis block for most of a minute.
SOCKET_TIMEOUT = 0.2
CONNECT_TIMEOUT = 0.2


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
        max_connections=32,
    )


def ping(client: redis.Redis) -> float:
    """Milliseconds for a PING, or a redis exception (bounded by the socket timeouts)."""
    started = time.perf_counter()
    client.ping()
    return (time.perf_counter() - started) * 1000
