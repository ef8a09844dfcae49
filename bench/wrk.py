"""Load runs with wrk (Debian package `wrk`) on loopback, several requests in rotation."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

API = "/api/v1/usage-analytics"

DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d,'
    .. ' "write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "mean_us": %f}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict
    body: str | None = None


def get(path: str) -> Request:
    return Request("GET", path, {})


def analytics(provider: str, secret: str, start, end, api_key_id=None, **options) -> Request:
    body = {"start_date": str(start), "end_date": str(end)}
    if api_key_id is not None:
        body["api_key_id"] = str(api_key_id)
    body |= options
    headers = {
        "X-Scrubs-Clinic-Api-Key": secret,
        "X-Scrubs-Clinic-Provider": provider,
        "Content-Type": "application/json",
    }
    return Request("POST", API, headers, json.dumps(body))


def find_or_install(say: Callable[[str], None]) -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk is missing: installing the Debian package")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed and could not be installed: apt-get install wrk")
    return found


def _lua(requests: list[Request]) -> str:
    def quote(text: str) -> str:
        return "[==[" + text + "]==]"

    lines = ["local requests = {}"]
    for n, r in enumerate(requests, start=1):
        headers = ", ".join(f"[ {quote(k)} ] = {quote(v)}" for k, v in r.headers.items())
        body = quote(r.body) if r.body is not None else "nil"
        lines.append(
            f"requests[{n}] = wrk.format({quote(r.method)}, {quote(r.path)}, {{{headers}}}, {body})"
        )
    lines += [
        "local counter = 0",
        "request = function()",
        "  counter = counter + 1",
        "  return requests[(counter % #requests) + 1]",
        "end",
    ]
    return "\n".join(lines) + DONE


def run(wrk: str, base_url: str, requests: list[Request], args, seconds: int | None = None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(requests))
    try:
        ran = subprocess.run(
            [
                wrk,
                "-t2",
                f"-c{args.connections}",
                f"-d{seconds or args.duration}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                base_url,
            ],
            capture_output=True,
            text=True,
            timeout=(seconds or args.duration) + 60,
        )
    finally:
        Path(script.name).unlink()
    line = next((x for x in ran.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no summary:\n{ran.stdout}\n{ran.stderr}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "requests_per_second": round(raw["requests"] / seconds_run, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "non_2xx": raw["non2xx"],
        "errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    }


def alternating(wrk: str, first: str, second: str, requests: list[Request], args):
    """Runs of two servers in the order first, second, second, first, each figure the two
    runs of its server together: a machine shared with others changes pace within a run,
    and this order lays the change on both alike."""
    legs = [run(wrk, base, requests, args) for base in (first, second, second, first)]
    return _together(legs[0], legs[3]), _together(legs[1], legs[2])


def _together(one: dict, other: dict) -> dict:
    requests = one["requests"] + other["requests"]
    seconds = one["requests"] / one["requests_per_second"] + (
        other["requests"] / other["requests_per_second"]
    )
    return {
        "requests": requests,
        "requests_per_second": round(requests / seconds, 1),
        # Percentiles cannot be merged: the worse of the two runs'.
        "p50_ms": max(one["p50_ms"], other["p50_ms"]),
        "p99_ms": max(one["p99_ms"], other["p99_ms"]),
        "mean_ms": round(
            (one["mean_ms"] * one["requests"] + other["mean_ms"] * other["requests"]) / requests, 3
        ),
        "non_2xx": one["non_2xx"] + other["non_2xx"],
        "errors": one["errors"] + other["errors"],
        "runs": [one["requests_per_second"], other["requests_per_second"]],
    }
