"""A rejected line's reason names its fault, in JSONL as in CSV: a line that is valid JSON
is never called "not valid JSON"."""

from __future__ import annotations

import csv
import io
import json

import pytest

from service.domain.usage_events import InvalidEvent
from service.usecases.event_files import read_csv, read_jsonl

GOOD = {
    "event_id": "evt-1",
    "api_key_id": "905e4d6c-7ed8-507b-b543-f36697e440d2",
    "occurred_at": "2024-03-04T08:00:00Z",
    "tokens": 1,
    "stt_duration": 2,
}
FIELDS = ["event_id", "api_key_id", "occurred_at", "tokens", "stt_duration", "usage"]

# (what is wrong, the record, words its reason must hold), each expressible in both formats
FAULTS = [
    ("tokens negative", GOOD | {"tokens": -1}, ["tokens"]),
    ("tokens 2^53", GOOD | {"tokens": 2**53}, ["tokens"]),
    ("stt_duration negative", GOOD | {"stt_duration": -5}, ["stt_duration"]),
    ("usage 2^31", GOOD | {"usage": 2**31}, ["usage"]),
    ("event_id empty", GOOD | {"event_id": ""}, ["event_id"]),
    ("api_key_id not a uuid", GOOD | {"api_key_id": "key-1"}, ["api_key_id"]),
    ("no offset", GOOD | {"occurred_at": "2024-03-04T08:00:00"}, ["occurred_at"]),
    ("impossible date", GOOD | {"occurred_at": "2024-02-30T08:00:00Z"}, ["occurred_at"]),
]


def reason_of(items: list) -> str:
    [(_, item)] = items
    assert isinstance(item, InvalidEvent), item
    return str(item)


def jsonl_reason(line: str) -> str:
    return reason_of(list(read_jsonl(io.BytesIO(line.encode() + b"\n"))))


def csv_reason(record: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerow(record)
    return reason_of(list(read_csv(io.BytesIO(out.getvalue().encode()))))


@pytest.mark.parametrize(("fault", "record", "words"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_json_line_with_a_bad_field_is_rejected_for_that_field(fault, record, words):
    reason = jsonl_reason(json.dumps(record))
    assert "not valid JSON" not in reason
    assert all(word in reason for word in words), reason
    assert reason == csv_reason(record), "the same fault has the same reason in both formats"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (json.dumps(GOOD | {"usage": None}), ["usage"]),
        (json.dumps({k: v for k, v in GOOD.items() if k != "tokens"}), ["missing", "tokens"]),
        (json.dumps(GOOD | {"usgae": 3}), ["usgae"]),
        (json.dumps(GOOD)[:-1] + ', "tokens": 9}', ["tokens", "twice"]),
        (json.dumps(GOOD | {"tokens": 1.5}), ["tokens"]),
        (json.dumps(GOOD | {"tokens": True}), ["tokens"]),
        (json.dumps(GOOD | {"occurred_at": 1709539200}), ["occurred_at"]),
    ],
)
def test_json_only_faults_are_named(line, words):
    reason = jsonl_reason(line)
    assert "not valid JSON" not in reason
    assert all(word in reason for word in words), reason


@pytest.mark.parametrize("line", ["{oops", '{"event_id": "e1",', "[1, 2]"])
def test_a_line_that_is_not_a_json_object_says_so(line):
    reason = jsonl_reason(line)
    assert "JSON" in reason, reason


HUGE = "9" * 5000  # more digits than Python turns into an int by default


@pytest.mark.parametrize(
    ("field", "number"),
    [
        ("tokens", HUGE),
        ("tokens", "-" + HUGE),
        ("stt_duration", "18446744073709551616"),  # 2^64: past what orjson reads
        ("usage", "-18446744073709551617"),
    ],
)
def test_an_integer_too_large_for_any_reader_is_rejected_for_its_field(field, number):
    line = json.dumps(GOOD | {field: 0}).replace(f'"{field}": 0', f'"{field}": {number}')
    reason = jsonl_reason(line)
    assert "not valid JSON" not in reason
    assert field in reason and "integer" in reason, reason
