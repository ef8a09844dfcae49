"""Reading the JSON body of a request strictly (check 5 of the API, before the schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from flask import Request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from service.domain import json_numbers
from service.domain.errors import InvalidRequest

MAX_BODY_BYTES = 16 * 1024
BODY = "_body"
MAX_REPORTED_FIELDS = 10
MAX_REPORTED_NAME = 64


class _Rejected(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not valid JSON")


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Rejected("a field appears twice in one object")
    return obj


def _body_error(message: str) -> InvalidRequest:
    return InvalidRequest({BODY: [message]}, f"The request body is invalid: {message}")


# Content-Type values sent by nearly every client, accepted without parsing them.
PLAIN_JSON_TYPES = frozenset(
    ["application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"]
)


TOO_LARGE = f"the body is larger than {MAX_BODY_BYTES} bytes."
UNREADABLE = "the body could not be read."
MAX_LENGTH_DIGITS = 9  # a Content-Length with more is over the limit whatever it says


def read_body(request: Request) -> bytes:
    """The body's bytes, or InvalidRequest when it is not UTF-8 JSON of a bounded size."""
    environ = request.environ
    if environ.get("CONTENT_TYPE", "").lower() not in PLAIN_JSON_TYPES:
        if request.mimetype != "application/json":
            raise _body_error("Content-Type must be application/json.")
        charset = request.mimetype_params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise _body_error("the body must be UTF-8 JSON.")
    length = environ.get("CONTENT_LENGTH", "")
    if 0 < len(length) <= MAX_LENGTH_DIGITS and length.isascii() and length.isdigit():
        return _body_of_length(environ["wsgi.input"], int(length))
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _body_error(TOO_LARGE)
    try:
        raw = request.stream.read(MAX_BODY_BYTES + 1)
    except HTTPException:
        raise _body_error(UNREADABLE) from None
    if len(raw) > MAX_BODY_BYTES:
        raise _body_error(TOO_LARGE)
    return raw


def _body_of_length(stream: BinaryIO, length: int) -> bytes:
    """A body of a declared length, as nearly every client sends it, read straight from the
    server's stream (never past the length, as WSGI asks): what werkzeug's stream would
    read, without the wrappers it builds for a request."""
    if length > MAX_BODY_BYTES:
        raise _body_error(TOO_LARGE)
    raw = stream.read(length) if length else b""
    if len(raw) < length:  # the client went away before sending it all
        raise _body_error(UNREADABLE)
    return raw


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a dict, or InvalidRequest for anything that is not one JSON object."""
    try:
        text = raw.decode("utf-8")
        data = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=json_numbers.integer,
            object_pairs_hook=_object_without_repeats,
        )
    except UnicodeDecodeError:
        raise _body_error("the body is not valid UTF-8.") from None
    except (ValueError, RecursionError) as problem:
        reason = str(problem) if isinstance(problem, _Rejected) else "the body is not valid JSON"
        raise _body_error(f"{reason}.") from None
    if not isinstance(data, dict):
        raise _body_error("the body must be a JSON object.")
    return data


def load_with(schema: Schema, data: dict[str, Any]) -> Any:
    try:
        return schema.load(data)
    except ValidationError as error:
        raise invalid_fields(error.normalized_messages()) from None


def invalid_fields(messages: dict[str, Any]) -> InvalidRequest:
    """Field -> messages, with client-chosen field names kept short and few."""
    errors: dict[str, list[str]] = {}
    for name, found in list(messages.items())[:MAX_REPORTED_FIELDS]:
        shown = name if len(name) <= MAX_REPORTED_NAME else name[:MAX_REPORTED_NAME] + "…"
        errors[shown] = list(_messages(found))
    detail = " ".join(f"{name}: {' '.join(found)}" for name, found in errors.items())
    return InvalidRequest(errors, detail)


def _messages(found: Any) -> Iterator[str]:
    """A field's messages as sentences: a list item's are prefixed with its index (marshmallow
    gives {index: [messages]} for them), never a Python repr."""
    if isinstance(found, dict):
        for index, inner in found.items():
            for message in _messages(inner):
                yield f"item {index}: {message}"
    elif isinstance(found, list | tuple):
        for inner in found:
            yield from _messages(inner)
    else:
        yield str(found)
