"""Schemathesis against the live service: thousands of generated requests, valid and
invalid (negative generation on), with a real root key and provider; no 5xx, and every
response as the OpenAPI document says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.metrics import requests_answered

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("schemathesis.toml")
TIME_BUDGET_SECONDS = 40
MIN_REQUESTS = 1000


def test_generated_requests_find_no_server_error_and_no_undocumented_response(
    server, org, tmp_path
):
    base = server["base_url"]
    before_all = requests_answered(base)
    before_5xx = requests_answered(base, status="5xx")
    report = tmp_path / "schemathesis.json"
    schemathesis = Path(sys.executable).with_name("schemathesis")
    ran = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"X-Scrubs-Clinic-Api-Key: {org.root.secret}",
            "--header",
            f"X-Scrubs-Clinic-Provider: {org.provider_id}",
            "--checks",
            "all",
            "--mode",
            "all",
            "--max-examples",
            "500",
            "--max-time",
            str(TIME_BUDGET_SECONDS),
            "--seed",
            "20261124",
            "--workers",
            "2",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        timeout=TIME_BUDGET_SECONDS + 120,
        cwd=tmp_path,
    )
    output = ran.stdout.decode(errors="replace")
    assert ran.returncode == 0, output[-6000:]
    sent = requests_answered(base) - before_all
    assert sent >= MIN_REQUESTS, f"only {sent} requests reached the service"
    assert requests_answered(base, status="5xx") == before_5xx
    assert requests_answered(base, route="/api/v1/usage-analytics", status="200") > 0
    assert requests_answered(base, route="/api/v1/usage-analytics", status="400") > 0
    summary = json.loads(report.read_text())
    print(f"\nschemathesis: {sent} requests answered, {summary['test_cases']['generated']} cases")
    assert summary["failures"] == [] and summary["errors"] == []
    assert summary["test_cases"]["generated"] >= MIN_REQUESTS
