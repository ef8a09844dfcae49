"""A usage event and its rules, as `usage import` reads it (docs/operations.md,
"Usage import, in full").

Imports run to millions of lines, so this is a plain validator rather than a marshmallow
schema: it costs a few microseconds a line where a schema load costs tens.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from service.domain.keys import UUID_TEXT

FIELDS = ("event_id", "api_key_id", "occurred_at", "tokens", "stt_duration", "usage")
ALL_FIELDS = frozenset(FIELDS)
REQUIRED_FIELDS = ALL_FIELDS - {"usage"}
MAX_EVENT_ID_LENGTH = 200
MAX_LINE_BYTES = 64 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks of producers and importer may differ
TOKENS_LIMIT = 2**53
USAGE_LIMIT = 2**31
DEFAULT_USAGE = 1

RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?P<second>[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


class InvalidEvent(ValueError):
    """One line is not a valid usage event; the message says why."""


class UsageEvent(NamedTuple):
    event_id: str
    api_key_id: str
    occurred_at: datetime  # in UTC; its date is the day the event counts on
    tokens: int
    stt_duration: int
    usage: int


# A line of a file with its number: an event, or the reason it is not one.
NumberedLine = tuple[int, UsageEvent | InvalidEvent]


def event_from_json(obj: Any) -> UsageEvent:
    """Validate one decoded JSONL line: integers must be JSON integers."""
    if not isinstance(obj, dict):
        raise InvalidEvent("a line must be a JSON object")
    _check_field_names(obj.keys())
    return _event(
        obj["event_id"],
        obj["api_key_id"],
        obj["occurred_at"],
        _json_integer(obj["tokens"], "tokens", TOKENS_LIMIT),
        _json_integer(obj["stt_duration"], "stt_duration", TOKENS_LIMIT),
        _json_integer(obj["usage"], "usage", USAGE_LIMIT) if "usage" in obj else DEFAULT_USAGE,
    )


IN_THE_FUTURE = "occurred_at is in the future (more than 5 minutes after the import's clock)"


def latest_acceptable(now: datetime) -> datetime:
    """Events dated after this, by the import's clock `now`, have not happened yet: they
    would be billed ahead of time."""
    return now + FUTURE_TOLERANCE


TOO_OLD = (
    "occurred_at is before the retention window (EVENT_RETENTION_DAYS={days}, so not before"
    " {cutoff}): raw events that old are no longer kept, so it could not be told from a resend"
)


FORGOTTEN = (
    "occurred_at is before {day}: the ids of events before then were forgotten when a"
    " retention window (EVENT_RETENTION_DAYS) dropped them, so it could not be told from a"
    " resend"
)


def retention_cutoff(now: datetime, retention_days: int | None) -> datetime | None:
    """The first moment the retention window keeps, by the import's clock `now`: midnight
    UTC `retention_days` days before today. None when every event is kept."""
    if retention_days is None:
        return None
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=retention_days)


def event_from_csv(row: dict[str, str]) -> UsageEvent:
    """Validate one CSV record (header names already checked): every value is text."""
    usage = row.get("usage") or ""
    return _event(
        row["event_id"],
        row["api_key_id"],
        row["occurred_at"],
        _text_integer(row["tokens"], "tokens", TOKENS_LIMIT),
        _text_integer(row["stt_duration"], "stt_duration", TOKENS_LIMIT),
        DEFAULT_USAGE if usage == "" else _text_integer(usage, "usage", USAGE_LIMIT),
    )


# A CSV record in the usual shape, judged in one match: an event_id of plain characters,
# an upper-case timestamp without a leap second, integers far inside their limits. These
# rules only narrow event_from_csv's, so a record they take is one it takes alike (as the
# tests check); any other record is left to it.
USUAL_CSV_VALUES = {
    "event_id": f"[^\\x00\\ud800-\\udfff]{{1,{MAX_EVENT_ID_LENGTH}}}",
    "api_key_id": UUID_TEXT.pattern,
    "occurred_at": (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
        r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
    ),
    "tokens": "[0-9]{1,15}",  # < 10^15 < 2^53
    "stt_duration": "[0-9]{1,15}",
    "usage": "[0-9]{0,9}",  # < 10^9 < 2^31; empty means the default
}
USUAL_CSV_SEPARATOR = "\x00"  # in no usual value: of as many values as columns, a value
# holding it makes the match fail


def usual_csv_events(header: list[str]) -> Callable[[list[str]], UsageEvent | None]:
    """For a checked header: a reader of records in the usual shape, each an event at a
    fraction of event_from_csv's cost (an import reads millions); None for any other
    record, which event_from_csv then judges."""
    pattern = re.compile(USUAL_CSV_SEPARATOR.join(f"({USUAL_CSV_VALUES[name]})" for name in header))
    fullmatch = pattern.fullmatch
    join = USUAL_CSV_SEPARATOR.join
    event_at, key_at, moment_at, tokens_at, stt_at = (
        header.index(name) for name in FIELDS if name != "usage"
    )
    usage_at = header.index("usage") if "usage" in header else None
    columns = len(header)
    make_event = UsageEvent._make

    def read(values: list[str]) -> UsageEvent | None:
        # As many values as columns, each free of the separator (no usual value holds it):
        # then the match is the values' own, one group each, and they are read directly.
        if len(values) != columns or fullmatch(join(values)) is None:
            return None
        try:
            moment = datetime.fromisoformat(values[moment_at]).astimezone(UTC)
        except (ValueError, OverflowError):  # not a real moment: event_from_csv says so
            return None
        used = values[usage_at] if usage_at is not None else ""
        return make_event(
            (
                values[event_at],
                values[key_at].lower(),
                moment,
                int(values[tokens_at]),
                int(values[stt_at]),
                int(used) if used else DEFAULT_USAGE,
            )
        )

    return read


def check_csv_header(names: list[str] | None) -> None:
    if not names:
        raise InvalidEvent("the CSV file has no header row")
    _check_field_names(set(names))
    if len(set(names)) != len(names):
        raise InvalidEvent("the CSV header names a column twice")


def _check_field_names(names: Any) -> None:
    """`names`: a set or a dict's keys."""
    if REQUIRED_FIELDS <= names <= ALL_FIELDS:  # the usual case, without building sets
        return
    unknown = sorted(set(names) - ALL_FIELDS)
    if unknown:
        raise InvalidEvent(f"unknown field {unknown[0]!r}")
    missing = [name for name in FIELDS if name in REQUIRED_FIELDS and name not in names]
    if missing:
        raise InvalidEvent(f"missing required field {missing[0]!r}")


def _event(
    event_id: Any, api_key_id: Any, occurred_at: Any, tokens: int, stt_duration: int, usage: int
) -> UsageEvent:
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_EVENT_ID_LENGTH:
        raise InvalidEvent(f"event_id must be a string of 1-{MAX_EVENT_ID_LENGTH} characters")
    if "\x00" in event_id:
        raise InvalidEvent("event_id must not contain a NUL character")
    if not isinstance(api_key_id, str) or not UUID_TEXT.fullmatch(api_key_id):
        raise InvalidEvent("api_key_id must be the id of an API key (a UUID)")
    return UsageEvent(
        event_id, api_key_id.lower(), _timestamp(occurred_at), tokens, stt_duration, usage
    )


def _timestamp(value: Any) -> datetime:
    """RFC 3339 with an offset, as an aware UTC datetime."""
    match = RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidEvent(
            "occurred_at must be an RFC 3339 timestamp with an offset, "
            "such as 2024-01-15T09:30:00Z or 2024-01-15T09:30:00+02:00"
        )
    text = value.upper()
    if match["second"] == "60":  # a leap second counts within its minute
        start, end = match.span("second")
        text = f"{text[:start]}59{text[end:]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidEvent("occurred_at is not a real moment in time") from None


def _json_integer(value: Any, name: str, limit: int) -> int:
    if type(value) is not int or not 0 <= value < limit:
        raise InvalidEvent(_integer_rule(name, limit))
    return value


def _text_integer(value: str, name: str, limit: int) -> int:
    if not (len(value) <= 20 and value.isascii() and value.isdigit()) or int(value) >= limit:
        raise InvalidEvent(_integer_rule(name, limit))
    return int(value)


def _integer_rule(name: str, limit: int) -> str:
    power = limit.bit_length() - 1
    return f"{name} must be an integer 0 <= n < 2^{power}"
