"""gunicorn answers HTTP it cannot parse (a bad request line, headers too large or too
many, a broken chunk) itself, before any app sees it, with an HTML page. This makes those
answers RFC 9457 problem details too, so that every response of the service is one."""

from __future__ import annotations

import uuid
from dataclasses import replace

import orjson
from gunicorn import util

from service.entrypoints.http.problems import INTERNAL_ERROR, PROBLEM_CONTENT_TYPE, client_error

UNREADABLE = "The HTTP request could not be read: check the request line and headers."


def _write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    # `mesg` may quote what the client sent: it is not repeated back.
    request_id = uuid.uuid4().hex
    if status_int < 500:
        problem = client_error(status_int, f"{reason}.", UNREADABLE)
    else:
        problem = replace(INTERNAL_ERROR, status=status_int)
    body = orjson.dumps(problem.body(request_id))
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        "Cache-Control: no-store\r\n"
        f"X-Request-ID: {request_id}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def answer_malformed_http_with_problems() -> None:
    """In a gunicorn worker: route gunicorn's own error pages through `_write_problem`."""
    util.write_error = _write_problem
