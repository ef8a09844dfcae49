"""Redis stopped, paused (SIGSTOP) and restarted under the service, on a private
redis-server: requests keep being answered from SQL, exactly, imports during the outage
are never hidden by the cache, and the cache comes back by itself."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from service.entrypoints.http.conventions import services_of
from tests.support.api import deltas
from tests.support.commands import run_command
from tests.support.events import expected_deltas, make_events, write_jsonl

TODAY = datetime.now(UTC).date()
PAST = [TODAY - timedelta(days=n) for n in range(60, 20, -1)]
TIMEOUT_MS = 500
RESET_SECONDS = 1
FAILURES = 3


@pytest.fixture()
def faulty(settings, private_redis):
    """The app on the private Redis, with a timeout long enough to see who waits on it."""
    app = create_app(
        replace(
            settings,
            redis_url=private_redis.url,
            redis_timeout_ms=TIMEOUT_MS,
            cache_breaker_failures=FAILURES,
            cache_breaker_reset_seconds=RESET_SECONDS,
        )
    )
    yield app
    services_of(app).close()


def run_import(app, path):
    result = run_command(services_of(app).settings, "usage", "import", str(path))
    assert result.exit_code == 0, result.output
    return result


def pending(app, org) -> int:
    with services_of(app).database.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM cache_outbox WHERE organisation_id = %s", (org.id,)
        ).fetchone()
    return row[0]


def cached_keys(private_redis) -> int:
    import redis

    client = redis.Redis.from_url(private_redis.url)
    try:
        return sum(1 for _ in client.scan_iter(match="ua1:*"))
    finally:
        client.close()


def test_a_stopped_redis_fails_no_request_and_loses_no_import(faulty, private_redis, org, tmp_path):
    client = faulty.test_client()
    keys = [k.id for k in org.clinic_keys]
    rng = random.Random(11)
    before = make_events(rng, keys, PAST, 200)
    during = make_events(rng, keys, PAST, 100)
    after = make_events(rng, keys, PAST, 50)
    start, end = PAST[0], PAST[-1]
    run_import(faulty, write_jsonl(tmp_path / "before.jsonl", before))
    assert deltas(client, org, start, end) == expected_deltas(before, start, end)
    assert cached_keys(private_redis) > 0

    private_redis.stop()
    assert client.get("/readyz").get_json()["status"] == "degraded"
    run_import(faulty, write_jsonl(tmp_path / "during.jsonl", during))
    assert pending(faulty, org) > 0
    for _ in range(FAILURES + 2):
        assert deltas(client, org, start, end) == expected_deltas(before + during, start, end)

    private_redis.start()  # empty: it kept nothing on disk
    time.sleep(RESET_SECONDS + 0.1)
    run_import(faulty, write_jsonl(tmp_path / "after.jsonl", after))
    everything = before + during + after
    assert deltas(client, org, start, end) == expected_deltas(everything, start, end)
    assert deltas(client, org, start, end) == expected_deltas(everything, start, end)
    assert pending(faulty, org) == 0
    assert cached_keys(private_redis) > 0, "the cache is in use again"
    assert client.get("/readyz").get_json()["status"] == "ok"


def test_an_import_while_redis_is_paused_is_not_hidden_by_its_stale_days(
    faulty, private_redis, org, tmp_path
):
    """The dangerous case: Redis still holds the old figures when it comes back."""
    client = faulty.test_client()
    keys = [k.id for k in org.clinic_keys]
    rng = random.Random(12)
    before = make_events(rng, keys, PAST, 200)
    late = make_events(rng, keys, PAST[3:9], 60)
    start, end = PAST[0], PAST[-1]
    run_import(faulty, write_jsonl(tmp_path / "before.jsonl", before))
    assert deltas(client, org, start, end) == expected_deltas(before, start, end)
    assert deltas(client, org, start, end, keys[0]) == expected_deltas(before, start, end, keys[0])

    private_redis.pause()
    try:
        run_import(faulty, write_jsonl(tmp_path / "late.jsonl", late))
        assert pending(faulty, org) > 0, "the invalidation could not be delivered and is kept"
    finally:
        private_redis.resume()
    time.sleep(RESET_SECONDS + 0.1)

    everything = before + late
    assert deltas(client, org, start, end) == expected_deltas(everything, start, end)
    assert deltas(client, org, start, end, keys[0]) == expected_deltas(
        everything, start, end, keys[0]
    )
    assert pending(faulty, org) == 0
    for _ in range(2):  # and now from the cache again
        assert deltas(client, org, start, end) == expected_deltas(everything, start, end)


def test_the_breaker_keeps_requests_off_a_hung_redis(faulty, private_redis, org, tmp_path):
    client = faulty.test_client()
    keys = [k.id for k in org.clinic_keys]
    events = make_events(random.Random(13), keys, PAST, 100)
    start, end = PAST[0], PAST[-1]
    run_import(faulty, write_jsonl(tmp_path / "e.jsonl", events))
    expected = expected_deltas(events, start, end)
    assert deltas(client, org, start, end) == expected

    private_redis.pause()
    try:
        durations = []
        for _ in range(FAILURES + 12):
            began = time.perf_counter()
            assert deltas(client, org, start, end) == expected
            durations.append(time.perf_counter() - began)
    finally:
        private_redis.resume()

    timeout = TIMEOUT_MS / 1000
    waited = [d for d in durations if d >= timeout / 2]
    # Only the calls that open the breaker wait on Redis; every later request skips it.
    assert len(waited) <= FAILURES, durations
    assert all(d < timeout / 2 for d in durations[FAILURES:]), durations

    time.sleep(RESET_SECONDS + 0.1)  # the breaker lets a trial through and closes again
    assert deltas(client, org, start, end) == expected
    assert services_of(faulty).cache.breaker.current_state == "closed"


def test_readiness_is_bounded_while_redis_hangs(faulty, private_redis):
    client = faulty.test_client()
    private_redis.pause()
    try:
        began = time.perf_counter()
        ready = client.get("/readyz")
        took = time.perf_counter() - began
    finally:
        private_redis.resume()
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "degraded"
    assert took < 2 * TIMEOUT_MS / 1000
