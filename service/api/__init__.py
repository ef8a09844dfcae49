"""HTTP: blueprints, request ids, and problem responses for every failure."""

from flask import Flask

from service.api.analytics import blueprint as analytics_blueprint
from service.api.health import blueprint as health_blueprint
from service.api.http import install_http_conventions


def register_api(app: Flask) -> None:
    install_http_conventions(app)
    app.register_blueprint(analytics_blueprint)
    app.register_blueprint(health_blueprint)
