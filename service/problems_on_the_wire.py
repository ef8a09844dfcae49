"""gunicorn answers HTTP it cannot parse (a bad request line, headers too large or too
many, a broken chunk) itself, before any app sees it, with an HTML page. This makes those
answers RFC 9457 problem details too, so that every response of the service is one."""

from __future__ import annotations

import uuid

import orjson
from gunicorn import util


def _write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    # `mesg` may quote what the client sent: it is not repeated back.
    request_id = uuid.uuid4().hex
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": f"{reason}.",
            "status": status_int,
            "detail": "The HTTP request could not be read: check the request line and headers.",
            "code": "bad_request"
            if status_int == 400
            else "client_error"
            if status_int < 500
            else "internal_error",
            "request_id": request_id,
        }
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        "Cache-Control: no-store\r\n"
        f"X-Request-ID: {request_id}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def answer_malformed_http_with_problems() -> None:
    """In a gunicorn worker: route gunicorn's own error pages through `_write_problem`."""
    util.write_error = _write_problem
