"""A real gunicorn, started with the shipped config on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from config.settings import Settings
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@pytest.fixture(scope="session")
def server(settings, tmp_path_factory):
    """{"base_url", "env", ...} of a gunicorn serving the test database with two workers,
    started as a user would: PROMETHEUS_MULTIPROC_DIR is not set, so its metrics live in
    the default directory (named after the test database)."""
    port = free_port()
    env = {
        **{name: value for name, value in os.environ.items() if name != METRICS_VARIABLE},
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(gunicorn), "-c", "config/gunicorn.conf.py", "app:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                log.close()
                output = log_path.read_text(errors="replace")
                pytest.fail(f"gunicorn did not start on {base_url}:\n{output}")
            time.sleep(0.1)
    yield {
        "base_url": base_url,
        "env": env,
        "process": process,
        "log": log_path,
        "metrics_dir": Path(Settings.from_env(env).metrics_directory),
    }
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()
