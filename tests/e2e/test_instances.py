"""Several instances on one host: each keeps its metrics in a directory of its own, so that
one stopping never breaks another, and nothing placed in the shared temporary directory
stops one from starting or a worker from booting."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.http import http_request
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.e2e


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture()
def instance(settings, tmp_path):
    """instance(**env) -> a started Gunicorn on the test database, stopped after the test."""
    started = []

    def start(**environment: str) -> Gunicorn:
        gunicorn = Gunicorn(
            tmp_path,
            DATABASE_URL=settings.database_url,
            REDIS_URL=settings.redis_url,
            **environment,
        ).start()
        started.append(gunicorn)
        return gunicorn

    yield start
    for gunicorn in started:
        gunicorn.stop()


def test_stopping_a_second_instance_of_the_database_leaves_the_first_whole(instance):
    first, second = instance(), instance()
    for gunicorn in (first, second):
        assert http_request(gunicorn.base_url, "/metrics")[0] == 200
    second.stop()
    assert http_request(first.base_url, "/healthz")[0] == 200
    assert http_request(first.base_url, "/metrics")[0] == 200
    # A worker the master starts again after this boots, writes its samples, and serves.
    old = first.worker_pids()
    os.kill(min(old), signal.SIGKILL)
    wait_for(lambda: len(first.worker_pids() - old) == 1 and len(first.worker_pids()) == 2)
    [new] = first.worker_pids() - old
    wait_for(lambda: any(True for _ in first.metrics_dir.glob(f"*_{new}.db")))
    time.sleep(0.5)  # its boot ends (a SIGTERM before that would wait out graceful_timeout)
    assert first.process.poll() is None, "the master is still up"
    for _ in range(20):  # both workers answer
        assert http_request(first.base_url, "/metrics")[0] == 200
        assert http_request(first.base_url, "/healthz")[0] == 200


def test_a_file_at_the_metrics_directorys_predictable_path_stops_nothing(instance, tmp_path):
    """Someone else made the shared directory's path a file: the instance uses a private
    directory of its own instead, and says so."""
    temporary = tmp_path / "shared-tmp"
    temporary.mkdir()
    (temporary / f"scrubs-analytics-metrics-{os.getuid()}").write_text("not a directory")
    gunicorn = instance(TMPDIR=str(temporary))
    assert http_request(gunicorn.base_url, "/healthz")[0] == 200
    assert http_request(gunicorn.base_url, "/metrics")[0] == 200
    assert "is not usable; using a private one" in gunicorn.log.read_text()


def test_a_directory_others_can_write_to_is_not_used(instance, tmp_path):
    shared = tmp_path / "open-to-all"
    shared.mkdir()
    shared.chmod(0o777)
    gunicorn = instance(METRICS_DIR=str(shared))
    assert http_request(gunicorn.base_url, "/metrics")[0] == 200
    assert list(shared.iterdir()) == [], "nothing was made in it"
