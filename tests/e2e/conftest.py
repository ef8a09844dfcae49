"""A real gunicorn, started with the shipped config on a free loopback port."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from service.observability import metrics_directories
from tests.support.servers import Gunicorn

METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def instance_metrics_directory(env: dict) -> Path:
    """Where the gunicorn started with `env` keeps its metric samples."""
    settings = Settings.from_env(env)
    found = metrics_directories.live_instance_directory(
        Path(settings.metrics_base_directory), settings.database_name
    )
    assert found is not None, "the server made a metrics directory of its own"
    return found


@pytest.fixture(scope="session")
def server(settings, tmp_path_factory):
    """{"base_url", "env", ...} of a gunicorn serving the test database with two workers,
    started as a user would: PROMETHEUS_MULTIPROC_DIR is not set, so its metrics live in
    a directory of its own under the default METRICS_DIR."""
    gunicorn = Gunicorn(
        tmp_path_factory.mktemp("gunicorn"),
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
    ).start()
    yield {
        "base_url": gunicorn.base_url,
        "env": gunicorn.env,
        "process": gunicorn.process,
        "log": gunicorn.log,
        "metrics_dir": instance_metrics_directory(gunicorn.env),
    }
    gunicorn.stop()
