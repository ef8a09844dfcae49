"""Load, faults and consistency on the suite's own stack (tests/reliability/conftest.py).

Every scenario: 64 connections of valid requests from a separate process, imports of late
events (for days the readers have cached) running throughout, a fault at a fixed moment
and its repair, then the checks: no valid request failed (but 500/503 problems while
Postgres was down), the service recovered by itself within seconds, and every tenant's
figures equal the independent sum of every event whose import returned.

RELIABILITY_SECONDS (default 6) sets the length of each run; `make soak` runs them long.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.e2e.metrics import requests_answered
from tests.reliability.conftest import INSTANCES, WORKERS, Stack, plan_for, rss_kib
from tests.support.commands import wait_for_a_killed_import
from tests.support.events import Event, expected_deltas, make_events, write_jsonl
from tests.support.http import http_request

pytestmark = pytest.mark.reliability

SECONDS = float(os.environ.get("RELIABILITY_SECONDS", "6"))
CONNECTIONS = 64
RECOVERY_SECONDS = 5.0
TODAY = datetime.now(UTC).date()
DAYS = [TODAY - timedelta(days=n) for n in range(20, -1, -1)]
REPORT = []  # one line per scenario, printed at the end of the module


@dataclass
class Outcome:
    requests: list[dict]
    imported: list[Event]
    fault_at: float | None = None
    healed_at: float | None = None
    notes: dict = field(default_factory=dict)

    def failures(self) -> list[dict]:
        return [r for r in self.requests if r.get("status") != 200]


class Importer(threading.Thread):
    """Imports small files of late events for the cached days until told to stop; an
    import that fails (Postgres down) is run again until it returns."""

    def __init__(self, stack: Stack, workdir: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.stack, self.workdir, self.rng = stack, workdir, random.Random(seed)
        self.stopping = threading.Event()
        self.returned: list[Event] = []
        self.attempts = 0

    def run(self) -> None:
        n = 0
        keys = [key for tenant in self.stack.tenants for key in tenant.key_ids]
        while not self.stopping.is_set():
            n += 1
            events = make_events(self.rng, keys, DAYS, self.rng.randrange(50, 200))
            path = write_jsonl(self.workdir / f"late-{self.rng.random():.12f}.jsonl", events)
            while True:
                self.attempts += 1
                ran = self.stack.cli("usage", "import", str(path), "--batch-size", "40")
                if ran.returncode == 0:
                    self.returned.extend(events)
                    break
                time.sleep(0.3)
            time.sleep(0.2)


def seed_figures(stack: Stack, workdir: Path) -> list[Event]:
    keys = [key for tenant in stack.tenants for key in tenant.key_ids]
    events = make_events(random.Random(1), keys, DAYS, 2000)
    ran = stack.cli("usage", "import", str(write_jsonl(workdir / "seed.jsonl", events)))
    assert ran.returncode == 0, ran.stderr
    return events


def figures(stack: Stack, tenant, api_key_id: str | None = None) -> dict:
    """The tenant's deltas. Right after a Postgres outage a worker may still answer its
    documented 500 for up to its breaker's reset time (1 s here): such answers are asked
    again for RECOVERY_SECONDS at most, and anything else fails at once."""
    body = {"start_date": str(DAYS[0]), "end_date": str(DAYS[-1])}
    if api_key_id:
        body["api_key_id"] = api_key_id
    headers = {
        "X-Scrubs-Clinic-Api-Key": tenant.root_secret,
        "X-Scrubs-Clinic-Provider": tenant.provider_id,
        "Content-Type": "application/json",
    }
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        status, answer = http_request(stack.base_url, body=body, headers=headers)
        if status == 200:
            return answer["deltas"]
        assert status in (500, 503) and time.monotonic() <= deadline, (status, answer)
        time.sleep(0.2)


def divergences(stack: Stack, events: list[Event]) -> list[str]:
    found = []
    for tenant in stack.tenants:
        mine = [e for e in events if e.api_key_id in tenant.key_ids]
        for key in [None, *tenant.key_ids]:
            for _ in range(2):  # from SQL (or a fill), then from the cache
                if figures(stack, tenant, key) != expected_deltas(mine, DAYS[0], DAYS[-1], key):
                    found.append(f"{tenant.organisation_id}/{key or 'all'}")
    return found


def run_under_load(stack: Stack, workdir: Path, fault=None, heal=None) -> Outcome:
    plan = workdir / "plan.json"
    plan.write_text(json.dumps(plan_for(stack, str(DAYS[0]), str(DAYS[-1]))))
    out = workdir / f"requests-{time.time_ns()}.jsonl"
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.load",
            "--url",
            stack.base_url,
            "--plan",
            str(plan),
            "--connections",
            str(CONNECTIONS),
            "--seconds",
            str(SECONDS),
            "--out",
            str(out),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    importer = Importer(stack, workdir, seed=time.time_ns())
    importer.start()
    outcome = Outcome([], [])
    began = time.time()
    try:
        if fault is not None:
            time.sleep(SECONDS * 0.3)
            outcome.fault_at = time.time()
            fault()
            time.sleep(min(3.0, SECONDS * 0.3))
            outcome.healed_at = time.time()
            if heal is not None:
                heal()
        load.wait(timeout=SECONDS + 60)
    finally:
        if load.poll() is None:
            load.kill()
        importer.stopping.set()
        importer.join(timeout=120)
    assert not importer.is_alive(), "the importer finished its last import"
    outcome.requests = [json.loads(line) for line in out.read_text().splitlines()]
    outcome.imported = importer.returned
    outcome.notes["imports"] = importer.attempts
    outcome.notes["seconds"] = round(time.time() - began, 1)
    return outcome


def recovery_seconds(outcome: Outcome) -> float:
    """From the repair to the last failed request (0 when nothing failed after it)."""
    failed = [r["end"] for r in outcome.failures()]
    if not failed or outcome.healed_at is None:
        return 0.0
    return max(0.0, max(failed) - outcome.healed_at)


def report(name: str, outcome: Outcome, diverged: list[str]) -> None:
    REPORT.append(
        {
            "scenario": name,
            "requests": len(outcome.requests),
            "failed": len(outcome.failures()),
            "retried_on_a_new_connection": sum(1 for r in outcome.requests if r.get("retried")),
            "recovery_s": round(recovery_seconds(outcome), 2),
            "imports": outcome.notes["imports"],
            "divergences": len(diverged),
            **{k: v for k, v in outcome.notes.items() if k not in ("imports",)},
        }
    )


@pytest.fixture(scope="module")
def seeded(stack, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("scenarios")
    events = seed_figures(stack, workdir)
    assert not divergences(stack, events)  # and now the readers' days are cached
    yield workdir, events
    print("\nreliability:", json.dumps(REPORT, indent=1))
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        Path(target).write_text(json.dumps(REPORT, indent=1) + "\n")


def check(stack, seeded, outcome: Outcome, name: str, allowed_during_fault=()) -> None:
    _, events = seeded
    events.extend(outcome.imported)
    diverged = divergences(stack, events)
    report(name, outcome, diverged)
    bad = []
    for r in outcome.failures():
        during = (
            outcome.fault_at is not None
            and outcome.fault_at <= r["end"]
            and r["start"] <= (outcome.healed_at or 0) + RECOVERY_SECONDS
        )
        if not (during and r.get("status") in allowed_during_fault and r.get("problem")):
            bad.append(r)
    assert len(outcome.requests) > 100, "the load ran"
    assert not bad, f"{len(bad)} valid requests failed: {bad[:3]}"
    assert recovery_seconds(outcome) <= RECOVERY_SECONDS
    assert not diverged, f"figures diverged from the independent sum: {diverged}"


class MemorySampler(threading.Thread):
    """The resident size of every gunicorn worker, four times a second: workers recycled by
    max_requests come and go during a long run, so each is judged over its own life."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.stopping = threading.Event()
        self.samples: dict[int, list[tuple[float, int]]] = {}

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            for pid in self.stack.worker_pids():
                # A worker may go away between the listing and the reading.
                with contextlib.suppress(FileNotFoundError):
                    self.samples.setdefault(pid, []).append((time.monotonic(), rss_kib(pid)))

    def growth(self) -> dict[int, tuple[float, int, int]]:
        """pid -> (seconds observed, KiB a third into its life, KiB at its last sample)."""
        found = {}
        for pid, seen in self.samples.items():
            if len(seen) >= 3:
                found[pid] = (seen[-1][0] - seen[0][0], seen[len(seen) // 3][1], seen[-1][1])
        return found


def test_steady_load_with_imports_fails_nothing_and_keeps_memory_flat(stack, seeded):
    sampler = MemorySampler(stack)
    sampler.start()
    try:
        outcome = run_under_load(stack, seeded[0])
    finally:
        sampler.stopping.set()
        sampler.join()
    growth = sampler.growth()
    outcome.notes["rss_kib"] = {str(pid): [early, last] for pid, (_, early, last) in growth.items()}
    check(stack, seeded, outcome, "steady load, imports throughout")
    assert any(seconds >= SECONDS / 2 for seconds, _, _ in growth.values()), (
        "no worker was watched for half the run"
    )
    for pid, (_, early, last) in growth.items():
        assert last <= early * 1.25 + 10_000, f"worker {pid} grew from {early} to {last} KiB"


def test_redis_killed_and_restarted_under_load(stack, seeded):
    outcome = run_under_load(stack, seeded[0], fault=stack.redis.stop, heal=stack.redis.start)
    check(stack, seeded, outcome, "Redis killed, then restarted (empty)")


def test_redis_paused_and_resumed_under_load(stack, seeded):
    outcome = run_under_load(stack, seeded[0], fault=stack.redis.pause, heal=stack.redis.resume)
    check(stack, seeded, outcome, "Redis paused (SIGSTOP), then resumed with its stale days")


def test_postgres_restarted_under_load(stack, seeded):
    outcome = run_under_load(stack, seeded[0], fault=stack.postgres.stop, heal=stack.postgres.start)
    check(stack, seeded, outcome, "Postgres stopped, then started", allowed_during_fault=(500, 503))


def test_a_worker_killed_under_load(stack, seeded):
    def kill_a_worker() -> None:
        os.kill(stack.worker_pids()[0], signal.SIGKILL)

    outcome = run_under_load(stack, seeded[0], fault=kill_a_worker)
    check(stack, seeded, outcome, "a gunicorn worker killed (SIGKILL)")
    deadline = time.monotonic() + 10
    while len(stack.worker_pids()) < INSTANCES * WORKERS and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(stack.worker_pids()) == INSTANCES * WORKERS, "gunicorn replaced the worker"


def test_an_instance_stopped_and_started_under_load(stack, seeded):
    """One of the two instances behind the load balancer goes away (a deploy, a crash of its
    machine) and comes back: nginx sends its requests to the other meanwhile."""
    stopped = stack.instances[0]
    api = "/api/v1/usage-analytics"
    answered = [requests_answered(instance.url, route=api) for instance in stack.instances]
    outcome = run_under_load(stack, seeded[0], fault=stopped.stop, heal=stopped.start)
    check(stack, seeded, outcome, "one of two instances stopped, then started")
    during = [requests_answered(instance.url, route=api) for instance in stack.instances]
    # The restarted instance counts afresh (a new metrics directory at each start).
    REPORT[-1]["answered_per_instance"] = [during[0], during[1] - answered[1]]
    assert during[1] - answered[1] > 0
    # nginx rests an upstream that failed for fail_timeout (2 s), which a short run may not
    # outlast: the same requests, sent through nginx after the run, reach the restarted one.
    request = plan_for(stack, str(DAYS[0]), str(DAYS[-1]))[0]
    deadline = time.monotonic() + 15
    while requests_answered(stopped.url, route=api) == 0 and time.monotonic() < deadline:
        status, _ = http_request(
            stack.base_url, body=json.loads(request["body"]), headers=request["headers"]
        )
        assert status == 200
    assert requests_answered(stopped.url, route=api) > 0, "the restarted instance serves again"


def committed_events(stack: Stack, prefix: str) -> int:
    with psycopg.connect(stack.postgres.url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM usage_events WHERE event_id LIKE %s", (f"{prefix}-%",)
        ).fetchone()
    return row[0]


def test_an_import_killed_mid_batch_and_run_again(stack, seeded):
    workdir = seeded[0]
    keys = [key for tenant in stack.tenants for key in tenant.key_ids]
    prefix, batch_size = f"killed{time.time_ns()}", 500
    big = make_events(random.Random(77), keys, DAYS, 100_000, prefix=prefix)
    path = write_jsonl(workdir / "killed.jsonl", big)
    args = [
        str(Path(sys.executable).with_name("scrubs-analytics")),
        "usage",
        "import",
        str(path),
        "--batch-size",
        str(batch_size),
    ]
    process = subprocess.Popen(args, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while committed_events(stack, prefix) < 4 * batch_size and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    wait_for_a_killed_import(stack.postgres.url)
    committed = committed_events(stack, prefix)
    assert 0 < committed < len(big), "the import was killed part way"
    outcome = run_under_load(stack, workdir)  # readers and other imports meanwhile
    rerun = stack.cli("usage", "import", str(path))
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["duplicates"] == committed
    assert summary["inserted"] == len(big) - committed
    outcome.imported.extend(big)
    outcome.notes["killed_import_committed_before_the_kill"] = committed
    check(stack, seeded, outcome, "an import killed mid-batch, then run again")


def test_no_secret_reaches_a_log_or_an_error_body_through_the_faults(stack, seeded):
    tenant = stack.tenants[0]
    bodies = []

    def ask_while_down() -> None:
        stack.postgres.stop()
        stack.redis.pause()
        request = urllib.request.Request(
            f"{stack.base_url}/api/v1/usage-analytics",
            data=json.dumps({"start_date": tenant.root_secret, "end_date": "2024-01-01"}).encode(),
            headers={
                "X-Scrubs-Clinic-Api-Key": tenant.root_secret,
                "X-Scrubs-Clinic-Provider": tenant.provider_id,
                "Content-Type": "application/json",
            },
            method="POST",
        )
        try:
            urllib.request.urlopen(request, timeout=15)
        except urllib.error.HTTPError as error:
            bodies.append((error.code, error.read().decode()))

    def recover() -> None:
        stack.redis.resume()
        stack.postgres.start()

    outcome = run_under_load(stack, seeded[0], fault=ask_while_down, heal=recover)
    check(
        stack, seeded, outcome, "Postgres and Redis down at once", allowed_during_fault=(500, 503)
    )
    assert bodies and bodies[0][0] == 500
    assert json.loads(bodies[0][1])["code"] == "internal_error"
    log = stack.log.read_text()
    for secret in [t.root_secret for t in stack.tenants]:
        assert secret not in bodies[0][1]
        assert secret not in log
    assert "Traceback" in log or "unexpected failure" in log, "the failure itself was logged"
