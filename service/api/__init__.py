"""HTTP: blueprints, request ids, and problem responses for every failure."""

from flask import Flask

from service.api.analytics import blueprint as analytics_blueprint
from service.api.http import install_http_conventions
from service.api.operations import blueprint as operations_blueprint


def register_api(app: Flask) -> None:
    install_http_conventions(app)
    app.register_blueprint(analytics_blueprint)
    app.register_blueprint(operations_blueprint)
