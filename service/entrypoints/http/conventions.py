"""What every response of the service shares: a request id, no caching, JSON bodies, and
RFC 9457 problem details for every failure, including routing and the unexpected."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from flask import Flask, Request, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from service.domain.errors import QueryRefused
from service.entrypoints.http.problems import (
    INTERNAL_ERROR,
    PROBLEM_CONTENT_TYPE,
    ROUTE_NOT_FOUND,
    Problem,
    client_error,
    method_not_allowed,
    problem_for,
)
from service.observability import metrics
from service.usecases.ports import Services

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
EXTENSION = "scrubs"  # where the app keeps its Services
STANDARD_METHODS = frozenset(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

request_log = logging.getLogger("scrubs.request")
error_log = logging.getLogger("scrubs.error")


def environ_key(header: str) -> str:
    """Where WSGI passes a request header: reading it there makes no lookup object."""
    return "HTTP_" + header.upper().replace("-", "_")


REQUEST_ID_ENVIRON = environ_key(REQUEST_ID_HEADER)
# What a request carries in its environ, under names of the service's own (as WSGI asks).
REQUEST_ID_KEY, STARTED_KEY = "scrubs.request_id", "scrubs.started"


def attach_services(app: Flask, services: Services) -> None:
    app.extensions[EXTENSION] = services


def services_of(app: Flask) -> Services:
    return app.extensions[EXTENSION]


def current_services() -> Services:
    """The Services of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def request_id() -> str:
    """The client's X-Request-ID when it is 1-128 printable ASCII characters, else a new one."""
    return _request_id_of(request.environ)


def _request_id_of(environ: dict) -> str:
    found = environ.get(REQUEST_ID_KEY)
    if found is None:
        sent = environ.get(REQUEST_ID_ENVIRON, "")
        usable = 0 < len(sent) <= MAX_REQUEST_ID_LENGTH and sent.isascii() and sent.isprintable()
        # From the system's generator: one seeded per worker could be rebuilt from the ids
        # it gave out, and the ids it gives other clients foretold.
        found = environ[REQUEST_ID_KEY] = sent if usable else os.urandom(16).hex()
    return found


def json_response(body: Any, status: int = 200, content_type: str = "application/json") -> Response:
    try:
        payload = orjson.dumps(body)
    except TypeError:  # an integer beyond 64 bits: the standard encoder writes it exactly
        payload = json.dumps(body, separators=(",", ":")).encode()
    return Response(payload, status=status, content_type=content_type)


def problem_response(problem: Problem) -> Response:
    response = json_response(problem.body(request_id()), problem.status, PROBLEM_CONTENT_TYPE)
    response.headers.update(problem.headers)
    return response


def _handle_refusal(refusal: QueryRefused) -> Response:
    return problem_response(problem_for(refusal))


def _handle_http_exception(error: HTTPException) -> Response:
    if isinstance(error, WerkzeugMethodNotAllowed):
        return problem_response(method_not_allowed(list(error.valid_methods or [])))
    if error.code == 404:
        return problem_response(ROUTE_NOT_FOUND)
    if error.code is not None and 400 <= error.code < 500:
        title = f"{error.name}."
        return problem_response(client_error(error.code, title, error.description or title))
    return _handle_unexpected(error)


def _handle_unexpected(error: Exception) -> Response:
    error_log.error(
        "unexpected failure",
        exc_info=error,
        extra={"request_id": request_id(), "route": _route()},
    )
    return problem_response(INTERNAL_ERROR)


def _route(req: Request = request) -> str:
    """The matched rule, never the raw path: a bounded set of labels. A wrong method on a
    route still names the route."""
    if req.url_rule is not None:
        return req.url_rule.rule
    if isinstance(req.routing_exception, WerkzeugMethodNotAllowed):
        rules = {rule.rule for rule in current_app.url_map.iter_rules()}
        if req.path in rules:
            return req.path
    return "unmatched"


def _method(req: Request = request) -> str:
    """The request's method when it is a standard one, else `other`: a bounded set."""
    method = req.method
    return method if method in STANDARD_METHODS else "other"


def _begin() -> None:
    """Start the request's clock; then only the path exactly as routed may answer: not
    `//api/...`, not `/api%2Fv1/...`, which a path rule in front of the service would not
    recognise as the same resource."""
    req = request._get_current_object()  # once: each use of the proxy looks it up
    environ = req.environ
    environ[STARTED_KEY] = time.perf_counter()
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:
        return
    path = raw.split("?", 1)[0]
    if not path.startswith("/"):  # absolute form: http://host/path
        path = urlsplit(path).path
    if path != req.path:
        raise NotFound()


def note_organisation(organisation_id: object) -> None:
    """Who the request turned out to be for, for its log line."""
    g.organisation_id = organisation_id  # written as text by the log line, when there is one


# Every (route, method, status) and (route, status) seen, with its metric child: the
# sets are bounded (routes are the rules, methods and statuses a few).
_request_counts: dict[tuple[str, str, str], Any] = {}
_request_seconds: dict[tuple[str, str], Any] = {}


def _finish(response: Response) -> Response:
    req = request._get_current_object()
    environ = req.environ
    headers = response.headers
    headers[REQUEST_ID_HEADER] = _request_id_of(environ)
    headers["Cache-Control"] = "no-store"
    now = time.perf_counter()
    seconds = now - environ.get(STARTED_KEY, now)
    route, method, status = _route(req), _method(req), response.status_code
    counted = _request_counts.get((route, method, status))
    if counted is None:
        labels = (route, method, str(status))
        counted = _request_counts[(route, method, status)] = metrics.REQUESTS.labels(*labels)
    counted.inc()
    timed = _request_seconds.get((route, status))
    if timed is None:
        timed = metrics.REQUEST_SECONDS.labels(route, str(status))
        _request_seconds[(route, status)] = timed
    timed.observe(seconds)
    if request_log.isEnabledFor(logging.INFO):
        request_log.info(
            "request",
            extra={
                "request_id": _request_id_of(environ),
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "organisation_id": g.get("organisation_id"),
            },
        )
    return response


def install_http_conventions(app: Flask) -> None:
    app.register_error_handler(QueryRefused, _handle_refusal)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
    app.url_map.merge_slashes = False
    app.before_request(_begin)
    app.after_request(_finish)
