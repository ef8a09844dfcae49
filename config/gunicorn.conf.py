"""gunicorn settings: `gunicorn -c config/gunicorn.conf.py app:app` from the project root.

Every worker loads the app itself (no preload) and opens its own connection pools after
fork; metric samples of all workers meet in a directory of this instance's own, made here
at start and removed at exit (service/observability/metrics_directories.py).
"""

import os
import sys
from pathlib import Path

from config.gunicorn_logger import AccessLinesOnlyWhenLogged
from config.settings import Settings, SettingsError
from service.observability import metrics_directories

try:
    _settings = Settings.from_env()
except SettingsError as problem:  # one line naming the variable, as the commands print it
    sys.exit(f"Error: {problem}")
METRICS_DIR = metrics_directories.new_instance_directory(
    Path(_settings.metrics_base_directory), _settings.database_name
)
# Before any worker imports prometheus_client, which reads it once.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)

bind = _settings.bind
workers = _settings.web_concurrency
# Measured against sync workers with wrk at 64 connections (docs/operations.md, "Worker class"):
# threads overlap the Postgres and Redis round trips and keep connections alive.
worker_class = "gthread"
threads = _settings.web_threads
timeout = 30  # a request's worst case (pool wait 2 s + statement timeout 5 s) stays well under
graceful_timeout = 20
keepalive = 5
# Like nginx's keepalive_requests: a client connection is answered with "Connection: close"
# after this many requests (pre_request below). Clients that keep connections open for
# good (load balancers, wrk) would otherwise stay piled on whichever workers were up when
# they connected, a worker restarted by max_requests getting none of them; reconnecting
# now and then spreads them over the workers again, for one TCP handshake per 100 requests.
KEEPALIVE_REQUESTS = 100
max_requests = 20_000  # recycle workers now and then; jitter keeps them from all going at once
max_requests_jitter = 2_000
preload_app = False  # a pool opened before fork would share its sockets between workers
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
control_socket_disable = True  # several instances may share a machine (tests, benchmarks)
accesslog = None  # the app writes one JSON line per request
logger_class = AccessLinesOnlyWhenLogged
loglevel = _settings.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.observability.logs.JsonFormatter"}},
    "filters": {"no_request_text": {"()": "service.observability.logs.NoRequestText"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {
            "level": _settings.log_level,
            "handlers": ["stderr"],
            "filters": ["no_request_text"],
            "propagate": False,
        },
        # The app logs each request itself, with its id and organisation.
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
    },
}


def post_fork(server, worker):
    from service.entrypoints.http.malformed_http import answer_malformed_http_with_problems

    answer_malformed_http_with_problems()
    # Should anything have removed it, a worker makes it again rather than fail to boot.
    METRICS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)


def pre_request(worker, req):
    if req.req_number >= KEEPALIVE_REQUESTS:
        req.must_close = True


def post_worker_init(worker):
    """The app is loaded in this worker: open its pool now rather than on the first request,
    mark the Redis it reads as a server's, and deliver any backlog of invalidations."""
    from service.entrypoints.http.conventions import services_of
    from service.usecases.cache_upkeep import start_serving
    from service.usecases.invalidations import drain_in_background

    services = services_of(worker.wsgi)
    services.database.open()
    if services.cache is not None:
        start_serving(services)
        drain_in_background(services)


def worker_exit(server, worker):
    from service.entrypoints.http.conventions import services_of

    app = getattr(worker, "wsgi", None)
    if app is not None:
        services_of(app).close()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, METRICS_DIR)


def on_exit(server):
    metrics_directories.remove_instance_directory(METRICS_DIR)
