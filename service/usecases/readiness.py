"""Readiness: can this process answer the API right now, and how fast do its stores answer."""

from __future__ import annotations

from typing import Any

from service.usecases.ports import CacheUnavailable, Services

CHECK_TIMEOUT = 0.5


def readiness(services: Services) -> dict[str, Any]:
    """`ok`, `degraded` (Postgres answers, Redis does not: requests go to SQL) or `unavailable`."""
    postgres = _check_postgres(services)
    cache = _check_redis(services)
    if not postgres["ok"]:
        status = "unavailable"
    elif cache["configured"] and not cache["ok"]:
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "postgres": postgres, "redis": cache}


def _check_postgres(services: Services) -> dict[str, Any]:
    try:
        latency = services.database.ping(CHECK_TIMEOUT)
    except Exception:  # any failure means "not ready"; the reason is not the client's business
        return {"ok": False, "latency_ms": None}
    return {"ok": True, "latency_ms": round(latency, 2)}


def _check_redis(services: Services) -> dict[str, Any]:
    """On a Redis Cluster, `cluster` adds its state; `ok` then needs the cluster ok and
    every primary answering, since a silent one sends its organisations to SQL."""
    cache = services.cache
    if cache is None:
        return {"ok": False, "configured": False, "latency_ms": None}
    cluster = cache.cluster_state()
    if cluster is not None:
        latency = cluster.pop("latency_ms")
        ok = cluster["state"] == "ok" and cluster["reachable"] == cluster["primaries"] > 0
        return {
            "ok": ok,
            "configured": True,
            "latency_ms": None if latency is None else round(latency, 2),
            "cluster": cluster,
        }
    try:
        latency = cache.ping()
    except CacheUnavailable:
        return {"ok": False, "configured": True, "latency_ms": None}
    return {"ok": True, "configured": True, "latency_ms": round(latency, 2)}
