"""The application factory; `app` is what gunicorn serves (config/gunicorn.conf.py)."""

from __future__ import annotations

from flask import Flask

from config.settings import Settings
from service.api import register_api
from service.api.body import MAX_BODY_BYTES
from service.cli import register_commands
from service.context import Services
from service.logs import configure_logging


def create_app(settings: Settings | None = None) -> Flask:
    """Wire the service; nothing connects here: pools open in each worker on first use."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    # One byte over the limit, so that a chunked body of exactly the limit reads whole and
    # a longer one shows as longer (service/api/body.py answers it as invalid_request).
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    # Each route answers its documented methods only; OPTIONS is a 405 problem like any other.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions["scrubs"] = Services.from_settings(settings)
    register_api(app)
    register_commands(app)
    return app


app = create_app()
