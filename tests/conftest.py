"""Fixtures shared by every test: a throwaway Postgres database per run (created through
`db upgrade`, dropped at the end), the app on it, and fresh organisations per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app import create_app
from config.local_stores import TEST_POSTGRES_DEFAULT, TEST_REDIS_DEFAULT
from config.settings import Settings
from service.adapters.postgres.migrate import upgrade_database
from service.entrypoints.http.conventions import services_of
from service.usecases.cache_upkeep import start_serving
from service.usecases.ports import Services
from tests.support.commands import run_command
from tests.support.orgs import Org, create_org
from tests.support.servers import PrivateRedis

# `make test` sets these to private servers (config/local_stores.py) when the defaults don't answer.
SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "").strip() or TEST_POSTGRES_DEFAULT
REDIS_URL = os.environ.get("TEST_REDIS_URL", "").strip() or TEST_REDIS_DEFAULT


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
    start_serving(services_of(application))  # as gunicorn's post_worker_init does
    yield application
    services_of(application).close()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def services(app) -> Services:
    return services_of(app)


@pytest.fixture()
def make_org(services):
    """make_org(clinic_keys=2) -> Org, each call a new organisation."""

    def make(clinic_keys: int = 2, name: str = "Test Org") -> Org:
        return create_org(services.directory, clinic_keys, name)

    return make


@pytest.fixture()
def org(make_org) -> Org:
    return make_org()


@pytest.fixture()
def cli(settings):
    """cli("usage", "import", path) -> click Result (stdout, stderr, exit_code), in-process,
    on the test database."""

    def run(*args: str, input: str | bytes | None = None):
        return run_command(settings, *args, input=input)

    return run


@pytest.fixture()
def console(settings):
    """console("org", "create", ...) -> CompletedProcess: the installed script, as users run it."""
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


@pytest.fixture()
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
