"""Randomized: several import processes add late events to cached past days while readers
query gunicorn. Every answer includes every import that had returned before it was asked
(and nothing that was never imported); the final figures equal the independent sum."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.events import METRICS, expected_deltas, make_events, write_jsonl
from tests.support.http import figures_over_http

pytestmark = pytest.mark.e2e

TODAY = datetime.now(UTC).date()
DAYS = [TODAY - timedelta(days=n) for n in range(12, 0, -1)] + [TODAY]
IMPORTERS = 4
FILES_PER_IMPORTER = 3
READERS = 4


def within(answer: dict, floor: dict, ceiling: dict) -> bool:
    """floor <= answer <= ceiling, day by day and metric by metric."""
    for day in set(answer) | set(floor) | set(ceiling):
        for metric in METRICS:
            got = answer.get(day, {}).get(metric, 0)
            if not floor.get(day, {}).get(metric, 0) <= got <= ceiling.get(day, {}).get(metric, 0):
                return False
    return True


def test_concurrent_late_imports_and_readers_agree_with_the_independent_sum(
    server, make_org, tmp_path
):
    org = make_org(clinic_keys=3)
    keys = [k.id for k in org.clinic_keys]
    rng = random.Random(2024)
    start, end = DAYS[0], DAYS[-1]
    script = Path(sys.executable).with_name("scrubs-analytics")

    def run_import(path: Path) -> None:
        ran = subprocess.run(
            [str(script), "usage", "import", str(path), "--batch-size", "50"],
            env=server["env"],
            capture_output=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr.decode()

    seed = make_events(rng, keys, DAYS, 300)
    run_import(write_jsonl(tmp_path / "seed.jsonl", seed))
    # The readers cache every past day before the late events arrive.
    figures_over_http(
        server["base_url"], org.headers(), {"start_date": str(start), "end_date": str(end)}
    )

    files = [
        [make_events(rng, keys, DAYS, rng.randrange(50, 200)) for _ in range(FILES_PER_IMPORTER)]
        for _ in range(IMPORTERS)
    ]
    lock = threading.Lock()
    returned: set[tuple[int, int]] = set()
    started: set[tuple[int, int]] = set()
    observations: list[tuple[set, set, str | None, dict]] = []
    failures: list[BaseException] = []
    importing = threading.Event()
    importing.set()

    def importer(i: int) -> None:
        try:
            for j, events in enumerate(files[i]):
                path = write_jsonl(tmp_path / f"late-{i}-{j}.jsonl", events)
                with lock:
                    started.add((i, j))
                run_import(path)
                with lock:
                    returned.add((i, j))
        except BaseException as failure:  # reported by the main thread
            failures.append(failure)

    def reader(n: int) -> None:
        local = random.Random(n)
        try:
            while importing.is_set():
                key = local.choice([None, *keys])
                body = {"start_date": str(start), "end_date": str(end)}
                if key:
                    body["api_key_id"] = key
                with lock:
                    done, begun = set(returned), set(started)
                answer = figures_over_http(server["base_url"], org.headers(), body)["deltas"]
                observations.append((done, begun, key, answer))
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=importer, args=(i,)) for i in range(IMPORTERS)]
    readers = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    importing.clear()
    for thread in readers:
        thread.join(timeout=60)
    assert not failures, failures

    def events_of(files_done: set) -> list:
        return seed + [event for i, j in sorted(files_done) for event in files[i][j]]

    assert len(observations) > 20, "the readers ran alongside the imports"
    stale = [
        (key, sorted(done))
        for done, begun, key, answer in observations
        if not within(
            answer,
            expected_deltas(events_of(done), start, end, key),
            expected_deltas(events_of(begun), start, end, key),
        )
    ]
    assert not stale, f"{len(stale)} answers missed a returned import: {stale[:3]}"

    everything = events_of(returned)
    for key in [None, *keys]:
        body = {"start_date": str(start), "end_date": str(end)}
        if key:
            body["api_key_id"] = key
        for _ in range(2):  # the first may fill the cache, the second reads it
            assert figures_over_http(server["base_url"], org.headers(), body)[
                "deltas"
            ] == expected_deltas(everything, start, end, key)
