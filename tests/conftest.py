"""Fixtures shared by every test: a throwaway Postgres database per run (created through
`db upgrade`, dropped at the end), the app on it, and fresh organisations per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app import create_app
from config.settings import Settings
from service import admin
from service.db import upgrade_database

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _require_postgres() -> None:
    try:
        psycopg.connect(SERVER_URL, connect_timeout=3).close()
    except psycopg.OperationalError as problem:
        pytest.exit(
            f"PostgreSQL is not reachable at {SERVER_URL} ({problem}). The tests need a real "
            "server: start it with `pg_ctlcluster --skip-systemctl-redirect "
            "$(ls /etc/postgresql) main start`, or point TEST_POSTGRES_URL at one.",
            returncode=3,
        )


def _require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as problem:
        pytest.exit(
            f"Redis is not reachable at {REDIS_URL} ({problem}). The tests need a real server: "
            'start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""`, '
            "or point TEST_REDIS_URL at one.",
            returncode=3,
        )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    _require_postgres()
    _require_redis()
    name = f"scrubs_test_{uuid.uuid4().hex[:12]}"
    url = make_conninfo(SERVER_URL, dbname=name)
    upgrade_database(url)
    yield url
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, redis_url=REDIS_URL, web_concurrency=1)


@pytest.fixture(scope="session")
def app(settings: Settings):
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["scrubs"].close()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def services(app):
    return app.extensions["scrubs"]


@dataclass
class Key:
    id: str
    secret: str
    clinic_id: str | None
    is_root: bool


@dataclass
class Org:
    """A fresh organisation: a provider, a root key and clinic keys, with their secrets."""

    id: str
    provider_id: str
    root: Key
    clinic_keys: list[Key] = field(default_factory=list)
    clinics: dict[str, str] = field(default_factory=dict)  # clinic id -> name

    def headers(self, key: Key | None = None) -> dict[str, str]:
        return {
            "X-Scrubs-Clinic-Api-Key": (key or self.root).secret,
            "X-Scrubs-Clinic-Provider": self.provider_id,
            "Content-Type": "application/json",
        }


@pytest.fixture()
def make_org(services):
    """make_org(clinic_keys=2) -> Org, each call a new organisation."""

    def make(clinic_keys: int = 2, name: str = "Test Org") -> Org:
        db = services.db
        organisation = admin.create_organisation(db, name)
        org_id = uuid.UUID(organisation["id"])
        provider = admin.create_provider(db, org_id, f"prv-{uuid.uuid4().hex[:10]}")
        root, root_secret = admin.create_api_key(db, org_id, "root", is_root=True)
        org = Org(
            id=organisation["id"],
            provider_id=provider["id"],
            root=Key(str(root.id), root_secret, None, True),
        )
        for n in range(clinic_keys):
            clinic = admin.create_clinic(db, org_id, f"Clinic {n}")
            key, secret = admin.create_api_key(
                db, org_id, f"clinic key {n}", clinic_id=uuid.UUID(clinic["id"])
            )
            org.clinics[clinic["id"]] = clinic["name"]
            org.clinic_keys.append(Key(str(key.id), secret, clinic["id"], False))
        return org

    return make


@pytest.fixture()
def org(make_org) -> Org:
    return make_org()


@pytest.fixture()
def cli(app):
    """cli("usage", "import", path) -> click Result (stdout, stderr, exit_code), in-process."""
    runner = app.test_cli_runner()

    def run(*args: str, input: str | bytes | None = None):
        return runner.invoke(args=list(args), input=input)

    return run


@pytest.fixture()
def console(settings):
    """console("org", "create", ...) -> CompletedProcess: the installed script, as users run it."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("scrubs-analytics")
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}

    def run(*args: str, input: bytes | None = None, extra_env: dict | None = None):
        return subprocess.run(
            [str(script), *args],
            input=input,
            capture_output=True,
            env={**env, **(extra_env or {})},
            timeout=120,
        )

    return run


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop, pause and restart at will."""

    def __init__(self, workdir) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        import subprocess
        import time

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.resume()
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        import signal

        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


@pytest.fixture()
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
