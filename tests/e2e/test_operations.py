"""Metrics that add up across gunicorn workers (and the commands run beside them), and
request logs with their request id and never a secret."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import METRICS_VARIABLE
from tests.e2e.metrics import requests_answered, samples
from tests.support.http import http_request

pytestmark = pytest.mark.e2e


def call(base_url: str, path: str, org=None, body: dict | None = None, **headers: str) -> int:
    """The status of one request; `headers` (X_Request_ID=...) are added to the org's."""
    sent = dict(org.headers()) if org else {}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return http_request(base_url, path, body, sent)[0]


def test_request_metrics_add_up_across_both_workers(server, org):
    base = server["base_url"]
    before = requests_answered(base, route="/healthz", status="200")
    before_api = requests_answered(base, route="/api/v1/usage-analytics", status="200")
    body = {"start_date": "2024-01-01", "end_date": "2024-01-31"}
    with ThreadPoolExecutor(max_workers=16) as pool:
        health = list(pool.map(lambda _: call(base, "/healthz"), range(300)))
        api = list(pool.map(lambda _: call(base, "/api/v1/usage-analytics", org, body), range(100)))
    assert health == [200] * 300 and api == [200] * 100
    assert requests_answered(base, route="/healthz", status="200") - before == 300
    assert (
        requests_answered(base, route="/api/v1/usage-analytics", status="200") - before_api == 100
    )
    pids = {p.name.split("_")[-1] for p in server["metrics_dir"].glob("counter_*.db")}
    assert len(pids) >= 2, "both workers answered and were counted"
    latency = samples(base, "scrubs_http_request_duration_seconds_count")
    assert sum(v for labels, v in latency if labels["route"] == "/healthz") >= 300


def test_cache_metrics_count_hits_and_misses(server, org):
    base = server["base_url"]

    def days(result: str) -> float:
        return sum(
            v
            for labels, v in samples(base, "scrubs_cache_days_total")
            if labels["result"] == result
        )

    hits, misses = days("hit"), days("miss")
    body = {
        "start_date": "2023-03-01",
        "end_date": "2023-03-31",
    }  # 31 past days no one has asked for
    assert call(base, "/api/v1/usage-analytics", org, body) == 200
    assert days("miss") - misses == 31
    assert call(base, "/api/v1/usage-analytics", org, body) == 200
    assert days("hit") - hits == 31


def test_imports_run_beside_the_server_are_counted_by_it(server, org, tmp_path):
    """As a user runs it: `usage import` in a shell without PROMETHEUS_MULTIPROC_DIR, of late
    events for a day the server has cached. /metrics counts the import's lines and the
    cached days it made the cache forget."""
    base = server["base_url"]

    def total(name: str, **labels: str) -> float:
        return sum(
            value
            for found, value in samples(base, name)
            if all(found.get(label) == wanted for label, wanted in labels.items())
        )

    day = {"start_date": "2023-05-01", "end_date": "2023-05-01"}
    assert call(base, "/api/v1/usage-analytics", org, day) == 200  # the day is cached now
    assert call(base, "/api/v1/usage-analytics", org, day) == 200
    before = {
        outcome: total("scrubs_import_events_total", outcome=outcome)
        for outcome in ("inserted", "duplicate", "rejected")
    }
    invalidated = total("scrubs_cache_invalidated_days_total")
    prefix = uuid.uuid4().hex
    lines = [
        json.dumps(
            {
                "event_id": f"{prefix}-{n % 40}",
                "api_key_id": org.clinic_keys[0].id,
                "occurred_at": "2023-05-01T10:00:00Z",
                "tokens": 1,
                "stt_duration": 1,
            }
        )
        for n in range(50)
    ] + ["not json"]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert METRICS_VARIABLE not in server["env"]
    script = Path(sys.executable).with_name("scrubs-analytics")
    ran = subprocess.run(
        [str(script), "usage", "import", str(path)],
        env=server["env"],
        capture_output=True,
        timeout=60,
    )
    assert ran.returncode == 1 and json.loads(ran.stdout) == {
        "read": 51,
        "inserted": 40,
        "duplicates": 10,
        "rejected": 1,
    }
    assert total("scrubs_import_events_total", outcome="inserted") - before["inserted"] == 40
    assert total("scrubs_import_events_total", outcome="duplicate") - before["duplicate"] == 10
    assert total("scrubs_import_events_total", outcome="rejected") - before["rejected"] == 1
    # The day was cached org-wide and is forgotten for the organisation and for the key.
    assert total("scrubs_cache_invalidated_days_total") - invalidated == 2


def test_each_request_leaves_one_json_log_line_with_its_id_and_no_secret(server, org):
    base = server["base_url"]
    marker = f"log-{uuid.uuid4().hex}"
    body = {"start_date": "2024-01-01", "end_date": "2024-01-31"}
    api = "/api/v1/usage-analytics"
    assert call(base, api, org, body, X_Request_ID=marker) == 200
    secret_as_body = {"start_date": org.root.secret}
    assert call(base, api, org, secret_as_body, X_Request_ID=marker + "-bad") == 400
    wrong_key = {"X_Scrubs_Clinic_Api_Key": org.root.secret + "x"}
    assert call(base, api, org, body, X_Request_ID=marker + "-401", **wrong_key) == 401
    assert call(base, "/nowhere", X_Request_ID=marker + "-404") == 404

    lines = [
        json.loads(line) for line in server["log"].read_text().splitlines() if line.startswith("{")
    ]
    by_id = {
        line.get("request_id"): line for line in lines if line.get("logger") == "scrubs.request"
    }
    ok = by_id[marker]
    assert (
        ok["method"] == "POST" and ok["route"] == "/api/v1/usage-analytics" and ok["status"] == 200
    )
    assert ok["organisation_id"] == org.id and ok["duration_ms"] > 0
    assert by_id[marker + "-bad"]["status"] == 400
    assert (
        by_id[marker + "-401"]["status"] == 401
        and by_id[marker + "-401"]["organisation_id"] is None
    )
    assert by_id[marker + "-404"]["route"] == "unmatched"
    text = server["log"].read_text()
    assert org.root.secret not in text
    assert "start_date" not in text, "no body reaches the log"


def test_readiness_checks_that_overlap_all_answer_200(server):
    """Two load balancers (or anyone) probing at once must not pull a healthy instance
    out of rotation: 200 checks, 8 at a time."""
    base = server["base_url"]

    def ready(_: int) -> tuple[int, object]:
        return http_request(base, "/readyz")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ready, range(200)))
    assert [status for status, _ in answers] == [200] * 200, [
        body for status, body in answers if status != 200
    ][:3]
    assert all(body["postgres"]["ok"] for _, body in answers)


def test_gunicorn_with_a_setting_it_cannot_use_stops_in_one_line():
    """As the commands do (README, "Configuration"): a line naming the variable, no trace."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    ran = subprocess.run(
        [str(gunicorn), "-c", "config/gunicorn.conf.py", "app:app"],
        cwd=Path(__file__).resolve().parents[2],
        env={"PATH": "/usr/bin:/bin", "MAX_RANGE_DAYS": "abc", "BIND": "127.0.0.1:1"},
        capture_output=True,
        timeout=30,
    )
    assert ran.returncode == 1
    assert ran.stderr.decode().splitlines() == [
        "Error: MAX_RANGE_DAYS must be a positive whole number, got 'abc'"
    ]
