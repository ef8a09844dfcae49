"""HTTP: blueprints, request ids, and problem responses for every failure."""

from flask import Flask

from service.entrypoints.http.conventions import install_http_conventions
from service.entrypoints.http.docs_page import blueprint as docs_page_blueprint
from service.entrypoints.http.operations import blueprint as operations_blueprint
from service.entrypoints.http.usage_endpoint import blueprint as usage_blueprint


def register_http(app: Flask) -> None:
    install_http_conventions(app)
    app.register_blueprint(usage_blueprint)
    app.register_blueprint(operations_blueprint)
    app.register_blueprint(docs_page_blueprint)
