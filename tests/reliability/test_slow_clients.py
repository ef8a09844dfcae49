"""Slow clients cannot take the service down in the topology documented for production
(docs/operations.md, "What may face the internet"): the shipped nginx front proxy in front
of gunicorn with the shipped config. Hundreds of connections trickle header lines or body
bytes while a probe asks for /healthz and a 31-day query: every probe is answered within a
second.

RELIABILITY_SECONDS (default 6) sets the length of the run; `make soak` runs it long."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from config.front_proxy import FrontProxy
from tests.support.http import http_request
from tests.support.servers import Gunicorn, free_port
from tests.support.slow_clients import SlowClients

pytestmark = pytest.mark.reliability

SECONDS = float(os.environ.get("RELIABILITY_SECONDS", "6"))
HEADS = BODIES = 120  # 240 slow connections
PROBE_EVERY = 0.5
PROBE_LIMIT = 1.0  # seconds


@pytest.fixture()
def front_door(settings, tmp_path):
    gunicorn = Gunicorn(
        tmp_path, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url
    ).start()
    proxy = FrontProxy(listen=f"127.0.0.1:{free_port()}", upstream=f"127.0.0.1:{gunicorn.port}")
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()
        gunicorn.stop()


def test_slow_clients_do_not_keep_probes_from_being_answered(front_door, org):
    host, _, port = front_door.listen.rpartition(":")
    base_url = f"http://{front_door.listen}"
    today = datetime.now(UTC).date()
    query = {"start_date": str(today - timedelta(days=30)), "end_date": str(today)}
    probes: list[tuple[str, int, float]] = []
    with SlowClients(host, int(port), heads=HEADS, bodies=BODIES) as attack:
        time.sleep(2)  # every slow connection is open and trickling
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            for path, body, headers in (
                ("/healthz", None, None),
                ("/api/v1/usage-analytics", query, org.headers()),
            ):
                began = time.monotonic()
                try:
                    status = http_request(base_url, path, body, headers, timeout=PROBE_LIMIT)[0]
                except OSError:
                    status = 0  # no answer in time
                probes.append((path, status, time.monotonic() - began))
            time.sleep(PROBE_EVERY)
        assert attack.opened >= HEADS + BODIES
    slowest = max(seconds for _, _, seconds in probes)
    print(
        f"\nslow clients: {attack.opened} connections opened ({attack.closed_by_server} closed by"
        f" the proxy and opened again); {len(probes)} probes, slowest {slowest * 1000:.0f} ms"
    )
    assert len(probes) >= 2 * int(SECONDS / (PROBE_EVERY + 0.1))
    failed = [(path, status, seconds) for path, status, seconds in probes if status != 200]
    assert failed == []
    assert slowest < PROBE_LIMIT
