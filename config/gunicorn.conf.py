"""gunicorn settings: `gunicorn -c config/gunicorn.conf.py app:app` from the project root.

Connection pools are per worker: each opens its own after fork and closes it on exit.
"""

from config.settings import Settings

_settings = Settings.from_env()

bind = _settings.bind
workers = _settings.web_concurrency
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
preload_app = False  # a pool opened before fork would share sockets between workers
loglevel = _settings.log_level.lower()
accesslog = None
control_socket_disable = True  # several instances may share a machine (tests, benchmarks)


def post_worker_init(worker):
    """The app is loaded in this worker: open its pools now rather than on the first request."""
    worker.wsgi.extensions["scrubs"].db.pool  # noqa: B018 (opens the pool)


def worker_exit(server, worker):
    services = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("scrubs")
    if services is not None:
        services.close()
