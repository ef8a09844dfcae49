"""The bench's I/O floor reads what a warm query reads: the same keys and fields of the
rollup cache, in as many replies (on fakeredis, no servers)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import fakeredis
import pytest

from bench.floor_plan import packed_reads
from service.adapters.redis.rollup_cache import RedisRollupCache
from service.domain.figures import DayUsage, Scope
from service.domain.reports import Figures, cells_for
from service.domain.time_buckets import plan

TODAY = date(2024, 3, 10)
ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
KEYS = [uuid.UUID(f"00000000-0000-4000-8000-0000000000a{n}") for n in range(3)]


@pytest.mark.parametrize(
    ("days", "zone", "scopes"),
    [
        (31, "UTC", [Scope(ORG)]),
        (366, "UTC", [Scope(ORG)]),
        (366, "Asia/Kolkata", [Scope(ORG)]),
        (31, "UTC", [Scope(ORG, key) for key in KEYS]),
    ],
)
def test_the_floor_reads_every_field_a_warm_query_reads(days, zone, scopes):
    client = fakeredis.FakeRedis()
    cache = RedisRollupCache(
        client, namespace="db", ttl_seconds=3600, today_ttl_seconds=60, lease_ms=10_000
    )
    cells = cells_for(plan(TODAY - timedelta(days=days - 1), TODAY, zone, "day"))
    wanted = [(scope, cells.days, cells.points) for scope in scopes]
    figures = {s: {d: DayUsage(d, 5, 1, 2) for d in cells.days} for s in scopes}
    points = {s: {p: Figures(3, 1, 1) for p in cells.points} for s in scopes}
    assert cache.fill(cache.lease(wanted, TODAY), figures, TODAY, points)
    reads = cache.read_many(scopes, cells.days, cells.points, TODAY)
    assert not any(read.missing or read.missing_points for read in reads)  # warm

    packed, replies, fields = packed_reads("db", scopes, cells.days, cells.points, TODAY)
    conn = client.connection_pool.get_connection()
    conn.send_packed_command([packed])
    values = [value for _ in range(replies) for value in conn.read_response()]
    client.connection_pool.release(conn)
    assert len(values) == fields == len(scopes) * (len(cells.days) + len(cells.points))
    assert None not in values
