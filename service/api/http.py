"""What every response of the service shares: a request id, no caching, JSON bodies, and
RFC 9457 problem details for every failure, including routing and the unexpected."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import orjson
from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from service.context import Services
from service.errors import (
    PROBLEM_CONTENT_TYPE,
    ApiError,
    HttpClientError,
    InternalError,
    MethodNotAllowed,
    RouteNotFound,
)

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128

log = logging.getLogger("service.api")


def services() -> Services:
    return current_app.extensions["scrubs"]


def request_id() -> str:
    """The client's X-Request-ID when it is 1-128 printable ASCII characters, else a new one."""
    if "request_id" not in g:
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        usable = 0 < len(sent) <= MAX_REQUEST_ID_LENGTH and sent.isascii() and sent.isprintable()
        g.request_id = sent if usable else uuid.uuid4().hex
    return g.request_id


def json_response(body: Any, status: int = 200, content_type: str = "application/json") -> Response:
    try:
        payload = orjson.dumps(body)
    except TypeError:  # an integer beyond 64 bits: the standard encoder writes it exactly
        payload = json.dumps(body, separators=(",", ":")).encode()
    return Response(payload, status=status, content_type=content_type)


def problem_response(error: ApiError) -> Response:
    response = json_response(error.problem(request_id()), error.status, PROBLEM_CONTENT_TYPE)
    response.headers.update(error.headers)
    return response


def _handle_api_error(error: ApiError) -> Response:
    return problem_response(error)


def _handle_http_exception(error: HTTPException) -> Response:
    if isinstance(error, WerkzeugMethodNotAllowed):
        allowed = ", ".join(error.valid_methods or [])
        return problem_response(MethodNotAllowed(headers={"Allow": allowed} if allowed else None))
    if error.code == 404:
        return problem_response(RouteNotFound())
    if error.code is not None and 400 <= error.code < 500:
        title = f"{error.name}."
        return problem_response(HttpClientError(error.code, title, error.description or title))
    return _handle_unexpected(error)


def _handle_unexpected(error: Exception) -> Response:
    log.error(
        "unexpected failure",
        exc_info=error,
        extra={"request_id": request_id(), "route": request.url_rule and request.url_rule.rule},
    )
    return problem_response(InternalError())


def _set_common_headers(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    response.headers["Cache-Control"] = "no-store"
    return response


def install_http_conventions(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
    app.after_request(_set_common_headers)
