"""The application factory. `app`, what gunicorn serves (config/gunicorn.conf.py), is built
from the environment on first access, so importing this module builds nothing."""

from __future__ import annotations

from typing import Any

from flask import Flask

from config.settings import Settings
from service.bootstrap import server_services
from service.entrypoints.cli.root import register_commands
from service.entrypoints.http import register_http
from service.entrypoints.http.body import MAX_BODY_BYTES
from service.entrypoints.http.conventions import attach_services
from service.observability.logs import configure_logging


def create_app(settings: Settings | None = None) -> Flask:
    """Wire the service; nothing connects here: pools open in each worker after fork."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__, static_folder=None)
    # One byte over the limit, so that a chunked body of exactly the limit reads whole and
    # a longer one shows as longer (the body reader answers it as invalid_request).
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    # Each route answers its documented methods only; OPTIONS is a 405 problem like any other.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    attach_services(app, server_services(settings))
    register_http(app)
    register_commands(app)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        globals()["app"] = built = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
