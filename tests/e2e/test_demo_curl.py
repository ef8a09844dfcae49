"""`make run`'s promise: demo seed prints a curl line that works as printed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_printed_curl_line_returns_the_demo_figures(server, services):
    script = Path(sys.executable).with_name("scrubs-analytics")
    seeded = subprocess.run(
        [str(script), "demo", "seed"], env=server["env"], capture_output=True, timeout=120
    )
    assert seeded.returncode == 0, seeded.stderr.decode()
    printed = json.loads(seeded.stdout)
    curl = printed["curl"]
    assert curl in seeded.stderr.decode(), "the human message on stderr shows the same line"
    assert server["base_url"] in curl

    answer = subprocess.run(
        ["bash", "-c", curl + " -w '\\n%{http_code}'"], capture_output=True, timeout=30
    )
    body, _, status = answer.stdout.decode().rpartition("\n")
    assert status == "200", answer.stdout.decode() + answer.stderr.decode()
    figures = json.loads(body)

    # The same figures, summed straight from the raw events (not from the rollups).
    request = json.loads(curl.rsplit("-d ", 1)[1].strip("'"))
    start, end = date.fromisoformat(request["start_date"]), date.fromisoformat(request["end_date"])
    with services.database.connection() as conn:
        rows = conn.execute(
            """
            SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
                   sum(e.tokens), sum(e.usage), sum(e.stt_duration)
            FROM usage_events e JOIN api_keys k ON k.id = e.api_key_id
            WHERE k.organisation_id = %s
              AND (e.occurred_at AT TIME ZONE 'UTC')::date BETWEEN %s AND %s
            GROUP BY day ORDER BY day
            """,
            (printed["organisation_id"], start, end),
        ).fetchall()
    expected = {
        day.isoformat(): {"tokens": int(t), "usage": int(u), "stt_duration": int(s)}
        for day, t, u, s in rows
    }
    assert expected, "the demo has usage in the printed range"
    assert figures["deltas"] == expected
    assert figures["total"] == {
        metric: sum(day[metric] for day in expected.values())
        for metric in ("stt_duration", "tokens", "usage")
    }
