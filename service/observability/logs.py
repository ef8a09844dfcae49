"""Structured logs: one JSON object per line on stderr, for requests, commands and errors.

A record carries only what is passed to it in `extra` (request id, route, status...):
never a header, a body or a secret, which the code never hands to a logger.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

# The attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            kind, error, trace = record.exc_info
            entry["error"] = kind.__name__ if kind else None
            entry["trace"] = "".join(traceback.format_exception(kind, error, trace))
        return orjson.dumps(entry, default=str).decode()


class NoRequestText(logging.Filter):
    """gunicorn logs the text of a request it cannot parse (`Invalid request from ip=…:
    Invalid HTTP Header: '…'`), and a malformed header line may carry a key's secret: the
    event is kept, the text is not."""

    INVALID_REQUEST = re.compile(r"(Invalid request from ip=[^:]*):")

    def filter(self, record: logging.LogRecord) -> bool:
        found = self.INVALID_REQUEST.match(record.getMessage())
        if found:
            record.msg = f"{found[1]}: the request line or a header could not be parsed"
            record.args = ()
        return True


def json_handler(stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def configure_logging(level: str) -> None:
    """The service's loggers write JSON lines to stderr at `level` (idempotent)."""
    logger = logging.getLogger("scrubs")
    logger.setLevel(level)
    logger.propagate = False
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        logger.addHandler(json_handler())
