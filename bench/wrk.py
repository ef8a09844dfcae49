"""Load runs with wrk (Debian package `wrk`) on loopback, several requests in rotation."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import cpu

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
    before = cpu.seconds_by_name()
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
    spent = cpu.spent_since(before)
    return {
        "requests": raw["requests"],
        "requests_per_second": round(raw["requests"] / seconds_run, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "non_2xx": raw["non2xx"],
        "errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        # Where the run's CPU went, per request answered: every process of each name on
        # this machine, so the server not under load adds its idle ticks.
        "cpu_ms_per_request": {
            name: round(seconds * 1000 / max(raw["requests"], 1), 4)
            for name, seconds in spent.items()
        },
    }


ROUNDS = 3  # of first, second, second, first


def alternating(wrk: str, first: str, second: str, requests: list[Request], args):
    """Runs of two servers in rounds of first, second, second, first, each leg half of
    `args.duration`, each figure its server's legs together: a machine shared with others
    changes pace within a run, and short legs in this order lay the change on both alike."""
    seconds = max(2, args.duration // 2)
    order = (first, second, second, first) * ROUNDS
    legs = [(base, run(wrk, base, requests, args, seconds)) for base in order]
    return (
        _together([leg for base, leg in legs if base == first]),
        _together([leg for base, leg in legs if base == second]),
    )


def _together(legs: list[dict]) -> dict:
    requests = sum(leg["requests"] for leg in legs)
    seconds = sum(leg["requests"] / leg["requests_per_second"] for leg in legs)
    return {
        "requests": requests,
        "requests_per_second": round(requests / seconds, 1),
        # Percentiles cannot be merged: the worst of the legs'.
        "p50_ms": max(leg["p50_ms"] for leg in legs),
        "p99_ms": max(leg["p99_ms"] for leg in legs),
        "mean_ms": round(sum(leg["mean_ms"] * leg["requests"] for leg in legs) / requests, 3),
        "non_2xx": sum(leg["non_2xx"] for leg in legs),
        "errors": sum(leg["errors"] for leg in legs),
        "cpu_ms_per_request": {
            name: round(
                sum(leg["cpu_ms_per_request"][name] * leg["requests"] for leg in legs) / requests, 4
            )
            for name in legs[0]["cpu_ms_per_request"]
        },
        "runs": [leg["requests_per_second"] for leg in legs],
    }
