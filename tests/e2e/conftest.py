"""A real gunicorn, started with the shipped config on a free loopback port."""

from __future__ import annotations

import pytest

from tests.support.servers import Gunicorn

METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


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
        "metrics_dir": gunicorn.metrics_dir,
    }
    gunicorn.stop()
