"""Prometheus metrics. Under gunicorn every worker (and every command run on the same host)
writes its samples to the multiprocess directory the gunicorn config sets up, and
`GET /metrics` adds them up; elsewhere they live in this process alone.

prometheus_client chooses its storage when first imported, from PROMETHEUS_MULTIPROC_DIR:
this module must not be imported before that is settled (config/gunicorn.conf.py, and
service/entrypoints/cli/main.py for commands).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

REQUESTS = Counter("scrubs_http_requests", "HTTP requests answered", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "scrubs_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "status"],
    buckets=LATENCY_BUCKETS,
)
CACHE_DAYS = Counter(
    "scrubs_cache_days", "Days of a range looked up in the rollup cache", ["result"]
)
CACHE_HIT_DAYS, CACHE_MISSED_DAYS = CACHE_DAYS.labels("hit"), CACHE_DAYS.labels("miss")
CACHE_FILLED_DAYS = Counter("scrubs_cache_filled_days", "Days written to the rollup cache")
CACHE_INVALIDATED_DAYS = Counter(
    "scrubs_cache_invalidated_days", "(scope, day) pairs the rollup cache was told to forget"
)
CACHE_UNAVAILABLE = Counter(
    "scrubs_cache_unavailable", "Redis calls that failed, or were skipped by the open breaker"
)
CACHE_BREAKER_OPEN = Gauge(
    "scrubs_cache_breaker_open",
    "Processes whose Redis circuit breaker is open",
    multiprocess_mode="livesum",
)
SQL_FIGURES_SECONDS = Histogram(
    "scrubs_sql_figures_duration_seconds",
    "Time of one SQL read of daily figures (the cache's misses, or every read without it)",
    ["scope"],
    buckets=LATENCY_BUCKETS,
)
IMPORTED_EVENTS = Counter(
    "scrubs_import_events", "Usage event lines imported, by outcome", ["outcome"]
)


def exposition(multiprocess_dir: str) -> tuple[bytes, str]:
    """The text format of every metric, summed over all processes when there are several."""
    if multiprocess_dir:
        os.makedirs(multiprocess_dir, mode=0o700, exist_ok=True)  # removed from under us
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
