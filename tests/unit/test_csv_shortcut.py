"""The CSV shortcut of `usage import` (a plain line in the usual shape split and judged in
one go) reads every file exactly as the csv module and event_from_csv do: the same events,
the same rejections with the same reasons, on the same line numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.usage_events import (
    FIELDS,
    InvalidEvent,
    UsageEvent,
    event_from_csv,
    usual_csv_events,
)
from service.usecases.event_files import read_csv

KEY = "905e4d6c-7ed8-507b-b543-f36697e440d2"
USUAL = {
    "event_id": "evt-1",
    "api_key_id": KEY,
    "occurred_at": "2024-03-04T08:00:00Z",
    "tokens": "1200",
    "stt_duration": "35",
    "usage": "1",
}

# Values near the edges of the usual shape, field by field, valid or not.
EDGES = {
    "event_id": ["e", "x" * 200, "x" * 201, "", "a\x00b", "a\udcffb", "é-ü", "a\tb", " pad "],
    "api_key_id": [KEY, KEY.upper(), "{" + KEY + "}", KEY[:-1], "key-1", ""],
    "occurred_at": [
        "2024-03-04T08:00:00Z",
        "2024-03-04t08:00:00z",
        "2024-03-04 08:00:00Z",
        "2024-03-04T08:00:00.123456Z",
        "2024-03-04T08:00:00.1234567Z",
        "2024-03-04T08:00:00+05:30",
        "2024-03-04T08:00:00-00:00",
        "2024-03-04T23:59:60Z",
        "2024-02-30T08:00:00Z",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "2024-03-04T08:00:00",
        "2024-03-04T24:00:00Z",
    ],
    "tokens": ["0", "007", "9" * 15, "9" * 16, str(2**53 - 1), str(2**53), "-1", "1.0", ""],
    "stt_duration": ["0", "9" * 15, "9" * 16, "٣", "+1", " 1"],
    "usage": ["", "0", "9" * 9, "9" * 10, str(2**31 - 1), str(2**31), "x"],
}

LONG = "<a line over the limit>\n"

# Half the values usual, so that many records are valid but for one or two of their values.
values_of = {
    name: st.one_of(
        st.just(USUAL[name]), st.just(USUAL[name]), st.sampled_from(edges), st.text(max_size=12)
    )
    for name, edges in EDGES.items()
}


def outcome(items: list) -> list[tuple]:
    return [
        (number, "rejected", str(item)) if isinstance(item, InvalidEvent) else (number, item)
        for number, item in items
    ]


def both_ways(data: bytes) -> tuple[list, list]:
    return (
        outcome(list(read_csv(io.BytesIO(data)))),
        outcome(list(read_csv(io.BytesIO(data), shortcut=False))),
    )


@st.composite
def csv_files(draw) -> list[str]:
    """A file's lines; LONG stands for a line over the limit (kept short in reports)."""
    names = draw(st.permutations(FIELDS))
    if draw(st.booleans()):
        names = [name for name in names if name != "usage"]
    lines = [",".join(names) + "\n"]
    for _ in range(draw(st.integers(0, 8))):
        record = {name: draw(values_of[name]) for name in names}
        kind = draw(st.sampled_from(["written", "joined", "blank", "long", "extra"]))
        if kind == "written":  # as csv.writer quotes it
            out = io.StringIO()
            csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerow(
                [record[name] for name in names]
            )
            lines.append(out.getvalue())
        elif kind == "joined":  # joined by hand: stray quotes and breaks left as they are
            separators = [draw(st.sampled_from([",", ",", ",", "\x00"])) for _ in names[1:]]
            values = [record[name] for name in names]
            joined = values[0] + "".join(s + v for s, v in zip(separators, values[1:], strict=True))
            lines.append(joined + "\n")
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["\n", "\r\n", ",,,\n"])))
        elif kind == "long":
            lines.append(LONG)
        else:
            lines.append(",".join([*(record[name] for name in names), "1"]) + "\n")
    if draw(st.booleans()) and len(lines) > 1:
        lines[-1] = lines[-1].rstrip("\r\n")  # no line end at the end of the file
    return lines


def file_of(lines: list[str]) -> bytes:
    text = "".join(lines).replace(LONG, "x" * (64 * 1024 + 1) + "\n")
    return text.encode("utf-8", "surrogateescape")


@settings(max_examples=400, deadline=None)
@given(csv_files())
def test_the_shortcut_reads_any_file_as_the_csv_module_and_full_rules_do(lines):
    fast, full = both_ways(file_of(lines))
    assert fast == full


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("index", range(6))
def test_each_edge_value_is_judged_alike_both_ways(name, index):
    edges = EDGES[name]
    record = USUAL | {name: edges[index % len(edges)]}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerow(record)
    fast, full = both_ways(out.getvalue().encode("utf-8", "surrogateescape"))
    assert fast == full


def test_records_in_the_usual_shape_take_the_shortcut_and_mean_the_same():
    header = ["occurred_at", "tokens", "api_key_id", "event_id", "stt_duration"]
    read = usual_csv_events(header)
    values = ["2024-03-04T08:00:00.5+05:30", "42", KEY.upper(), "evt-7", "9"]
    event = read(values)
    assert event == UsageEvent(
        "evt-7", KEY, datetime(2024, 3, 4, 2, 30, 0, 500000, tzinfo=UTC), 42, 9, 1
    )
    assert event == event_from_csv(dict(zip(header, values, strict=True)))
    assert read([*values[:-1], "9" * 16]) is None  # past the shortcut's bound: full rules


@pytest.mark.parametrize(
    "data",
    [
        b"event_id,api_key_id,occurred_at,tokens,stt_duration\n"
        b"e-1\x00" + KEY.encode() + b"\x002024-01-15T09:30:00Z\x005\x007\n",
        b"event_id,api_key_id,occurred_at,tokens,stt_duration,usage\n"
        b"e-2," + KEY.encode() + b",2024-01-15T09:30:00Z,5,7\x003\n",
    ],
    ids=["every comma a NUL", "the last comma a NUL"],
)
def test_a_nul_in_place_of_a_comma_is_one_value_too_few_either_way(data):
    fast, full = both_ways(data)
    assert fast == full
    [(number, verdict, reason)] = fast
    assert (number, verdict) == (2, "rejected") and "header columns" in reason
