"""The servers a bench run starts (gunicorn with the shipped config, serving the service or
the I/O floor) and the one-client measurements taken against them."""

from __future__ import annotations

import http.client
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from bench import wrk

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICE = "app:app"
FLOOR = "bench.floor:create_app()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env: dict, log: Path, app: str = SERVICE) -> Iterator[str]:
    """`app` under config/gunicorn.conf.py on a free port; yields its base URL once
    /healthz answers."""
    port = free_port()
    run_env = env | {"BIND": f"127.0.0.1:{port}"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", app],
            cwd=ROOT,
            env=run_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"gunicorn did not start; see {log}") from None
                    time.sleep(0.1)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def _stats(samples: list[float]) -> dict:
    samples = sorted(samples)
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(len(samples) * 0.95)], 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "requests": len(samples),
    }


def _connection(base: str) -> http.client.HTTPConnection:
    address = urlsplit(base)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=30)


def _timed(conn: http.client.HTTPConnection, request: wrk.Request) -> tuple[float, bytes]:
    began = time.perf_counter()
    conn.request(request.method, request.path, body=request.body, headers=request.headers)
    response = conn.getresponse()
    body = response.read()
    took = (time.perf_counter() - began) * 1000
    if response.status != 200:
        raise SystemExit(f"{request.path} answered {response.status}: {body[:300]!r}")
    if response.getheader("Connection", "").lower() == "close":
        conn.close()  # the server's keep-alive limit: the next request connects afresh
    return took, body


def sequential_latency(base: str, request: wrk.Request, count: int, before=None) -> dict:
    """Milliseconds of `count` requests one after another from one client."""
    conn = _connection(base)
    samples = []
    try:
        for n in range(count):
            if before is not None:
                before(n)
            samples.append(_timed(conn, request)[0])
    finally:
        conn.close()
    return _stats(samples)


def interleaved_latency(base: str, requests: dict[str, wrk.Request], count: int) -> dict:
    """Milliseconds of each request, `count` times each, taken in turn from one client, so
    that the machine's moods fall on all of them alike."""
    conn = _connection(base)
    samples: dict[str, list[float]] = {name: [] for name in requests}
    try:
        for _ in range(count):
            for name, request in requests.items():
                samples[name].append(_timed(conn, request)[0])
    finally:
        conn.close()
    return {name: _stats(found) for name, found in samples.items()}


def answer(base: str, request: wrk.Request) -> bytes:
    conn = _connection(base)
    try:
        return _timed(conn, request)[1]
    finally:
        conn.close()
