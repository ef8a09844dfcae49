"""The usage-event validator (docs/operations.md, "Usage import, in full"): what `usage
import` accepts, what it rejects, and the UTC instant each accepted event counts at. No
servers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.usage_events import (
    InvalidEvent,
    UsageEvent,
    check_csv_header,
    event_from_csv,
    event_from_json,
)

KEY_ID = "0b7e8d6c-3f5a-4c1e-9d2b-7a6f5e4d3c2b"
VALID = {
    "event_id": "evt-1",
    "api_key_id": KEY_ID,
    "occurred_at": "2024-01-15T23:30:00-02:00",
    "tokens": 1500,
    "stt_duration": 42,
    "usage": 3,
}
VALID_INSTANT = datetime(2024, 1, 16, 1, 30, tzinfo=UTC)
REQUIRED = ("event_id", "api_key_id", "occurred_at", "tokens", "stt_duration")


def changed(**fields) -> dict:
    return {**VALID, **fields}


def without(name: str) -> dict:
    return {key: value for key, value in VALID.items() if key != name}


def as_csv_row(record: dict) -> dict[str, str]:
    return {name: str(value) for name, value in record.items()}


def test_a_valid_json_event_loads_with_its_utc_instant():
    event = event_from_json(VALID)
    assert event == UsageEvent("evt-1", KEY_ID, VALID_INSTANT, 1500, 42, 3)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at.date() == date(2024, 1, 16)


def test_a_valid_csv_record_loads_with_its_utc_instant():
    event = event_from_csv(as_csv_row(VALID))
    assert event == UsageEvent("evt-1", KEY_ID, VALID_INSTANT, 1500, 42, 3)
    assert type(event.tokens) is int and type(event.usage) is int


def test_usage_defaults_to_one_when_absent_or_an_empty_csv_cell():
    assert event_from_json(without("usage")).usage == 1
    assert event_from_csv(as_csv_row(changed(usage=""))).usage == 1


def test_a_null_usage_is_invalid_not_billed_as_one():
    with pytest.raises(InvalidEvent, match="usage must be an integer"):
        event_from_json(changed(usage=None))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tokens", 0),
        ("tokens", 2**53 - 1),
        ("stt_duration", 0),
        ("stt_duration", 2**53 - 1),
        ("usage", 0),
        ("usage", 2**31 - 1),
        ("event_id", "x" * 200),
        ("event_id", "é"),
        ("api_key_id", KEY_ID.upper()),
    ],
)
def test_values_at_the_edges_of_the_rules_are_accepted(name, value):
    for event in (
        event_from_json(changed(**{name: value})),
        event_from_csv(as_csv_row(changed(**{name: value}))),
    ):
        expected = value.lower() if name == "api_key_id" else value
        assert getattr(event, name) == expected


@pytest.mark.parametrize(
    ("occurred_at", "instant"),
    [
        ("2024-01-15T09:30:00Z", datetime(2024, 1, 15, 9, 30, tzinfo=UTC)),
        ("2024-01-15t09:30:00z", datetime(2024, 1, 15, 9, 30, tzinfo=UTC)),
        ("2024-01-15 09:30:00+00:00", datetime(2024, 1, 15, 9, 30, tzinfo=UTC)),
        ("2024-01-15T09:30:00-00:00", datetime(2024, 1, 15, 9, 30, tzinfo=UTC)),
        ("2024-01-16T13:59:59+14:00", datetime(2024, 1, 15, 23, 59, 59, tzinfo=UTC)),
        ("2024-01-15T12:00:00-12:00", datetime(2024, 1, 16, tzinfo=UTC)),
        ("2024-01-16T05:29:59.999999999+05:30", datetime(2024, 1, 15, 23, 59, 59, 999999, UTC)),
        ("2024-01-15T20:30:00-03:30", datetime(2024, 1, 16, tzinfo=UTC)),
        ("2024-01-16T09:44:59.5+09:45", datetime(2024, 1, 15, 23, 59, 59, 500000, UTC)),
        ("2024-02-29T00:00:00.1Z", datetime(2024, 2, 29, 0, 0, 0, 100000, UTC)),
        ("2023-12-31T23:59:59.123456789-00:00", datetime(2023, 12, 31, 23, 59, 59, 123456, UTC)),
    ],
)
def test_occurred_at_in_any_offset_gives_the_utc_instant(occurred_at, instant):
    assert event_from_json(changed(occurred_at=occurred_at)).occurred_at == instant
    assert event_from_csv(as_csv_row(changed(occurred_at=occurred_at))).occurred_at == instant


@pytest.mark.parametrize(
    ("occurred_at", "day"),
    [
        ("2016-12-31T23:59:60Z", date(2016, 12, 31)),
        ("2016-12-31T23:59:60.999Z", date(2016, 12, 31)),
        ("2017-01-01T05:29:60+05:30", date(2016, 12, 31)),
        ("2016-12-31T11:59:60-12:00", date(2016, 12, 31)),
    ],
)
def test_a_leap_second_counts_within_its_own_utc_day(occurred_at, day):
    assert event_from_json(changed(occurred_at=occurred_at)).occurred_at.date() == day


JSON_RULE_BREAKS = [
    pytest.param(changed(tokens=True), id="tokens-bool"),
    pytest.param(changed(stt_duration=False), id="stt_duration-bool"),
    pytest.param(changed(usage=True), id="usage-bool"),
    pytest.param(changed(tokens=1.0), id="tokens-float-whole"),
    pytest.param(changed(stt_duration=1.5), id="stt_duration-float"),
    pytest.param(changed(usage=2.0), id="usage-float"),
    pytest.param(changed(tokens="5"), id="tokens-string"),
    pytest.param(changed(tokens=-1), id="tokens-negative"),
    pytest.param(changed(stt_duration=-1), id="stt_duration-negative"),
    pytest.param(changed(usage=-1), id="usage-negative"),
    pytest.param(changed(tokens=2**53), id="tokens-2^53"),
    pytest.param(changed(stt_duration=2**53), id="stt_duration-2^53"),
    pytest.param(changed(usage=2**31), id="usage-2^31"),
    pytest.param(changed(tokens=None), id="tokens-null"),
    *(pytest.param(without(name), id=f"missing-{name}") for name in REQUIRED),
    pytest.param(changed(extra=1), id="unknown-field"),
    pytest.param(changed(event_id=""), id="event_id-empty"),
    pytest.param(changed(event_id="x" * 201), id="event_id-201-chars"),
    pytest.param(changed(event_id="a\x00b"), id="event_id-NUL"),
    pytest.param(changed(event_id=7), id="event_id-number"),
    pytest.param(changed(api_key_id="not-a-uuid"), id="api_key_id-not-uuid"),
    pytest.param(changed(api_key_id=KEY_ID + "0"), id="api_key_id-too-long"),
    pytest.param(changed(api_key_id=""), id="api_key_id-empty"),
    pytest.param(changed(occurred_at="2024-01-15T09:30:00"), id="no-offset"),
    pytest.param(changed(occurred_at="2024-01-15"), id="date-only"),
    pytest.param(changed(occurred_at="2024-01-15T09:30:00+24:00"), id="offset-24h"),
    pytest.param(changed(occurred_at="2024-01-15T09:30:00+05:60"), id="offset-60min"),
    pytest.param(changed(occurred_at="2024-01-15T09:30:00+0530"), id="offset-no-colon"),
    pytest.param(changed(occurred_at="2024-01-15T24:00:00Z"), id="hour-24"),
    pytest.param(changed(occurred_at="2024-01-15T09:60:00Z"), id="minute-60"),
    pytest.param(changed(occurred_at="2024-01-15T09:30:61Z"), id="second-61"),
    pytest.param(changed(occurred_at="2024-02-30T09:30:00Z"), id="feb-30"),
    pytest.param(changed(occurred_at="2023-02-29T09:30:00Z"), id="feb-29-common-year"),
    pytest.param(changed(occurred_at="2024-13-01T09:30:00Z"), id="month-13"),
    pytest.param(changed(occurred_at="0001-01-01T00:30:00+01:00"), id="underflows-utc"),
    pytest.param(changed(occurred_at="9999-12-31T23:30:00-01:00"), id="overflows-utc"),
    pytest.param(changed(occurred_at="2024-01-15T09:30Z"), id="no-seconds"),
    pytest.param(changed(occurred_at="2024-01-15T09:30:00.Z"), id="empty-fraction"),
    pytest.param(changed(occurred_at=1705311000), id="epoch-number"),
    pytest.param(changed(occurred_at=" 2024-01-15T09:30:00Z"), id="leading-space"),
]


@pytest.mark.parametrize("record", JSON_RULE_BREAKS)
def test_a_json_event_breaking_a_rule_raises_invalid_event(record):
    with pytest.raises(InvalidEvent):
        event_from_json(record)


@pytest.mark.parametrize("line", [[], "event", None, 5])
def test_a_json_line_that_is_not_an_object_raises_invalid_event(line):
    with pytest.raises(InvalidEvent):
        event_from_json(line)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (name, text)
        for name in ("tokens", "stt_duration", "usage")
        for text in ("1.5", "1.0", "-1", "1e3", "+1", " 1", "one", "true", "0x10")
    ]
    + [
        ("tokens", str(2**53)),
        ("stt_duration", str(2**53)),
        ("usage", str(2**31)),
        ("tokens", ""),
        ("stt_duration", ""),
        ("event_id", ""),
        ("event_id", "x" * 201),
        ("event_id", "a\x00b"),
        ("api_key_id", "not-a-uuid"),
        ("occurred_at", "2024-01-15T09:30:00"),
        ("occurred_at", "2024-01-15"),
        ("occurred_at", "2024-01-15T09:30:00+24:00"),
        ("occurred_at", "2024-01-15T09:30:00+05:60"),
        ("occurred_at", "2024-01-15T24:00:00Z"),
        ("occurred_at", "2024-02-30T09:30:00Z"),
        ("occurred_at", "0001-01-01T00:30:00+01:00"),
    ],
)
def test_a_csv_record_breaking_a_rule_raises_invalid_event(name, text):
    with pytest.raises(InvalidEvent):
        event_from_csv(as_csv_row(changed(**{name: text})))


@pytest.mark.parametrize(
    "header",
    [
        None,
        [],
        [name for name in VALID if name != "tokens"],
        [name for name in VALID if name != "occurred_at"],
        [*VALID, "extra"],
        [*VALID, "tokens"],
    ],
    ids=["no-header", "empty", "missing-tokens", "missing-occurred_at", "unknown", "twice"],
)
def test_a_csv_header_breaking_a_rule_raises_invalid_event(header):
    with pytest.raises(InvalidEvent):
        check_csv_header(header)


def test_a_csv_header_without_usage_is_accepted():
    check_csv_header([name for name in VALID if name != "usage"])
    check_csv_header(list(reversed(VALID)))


def offset_text(offset_minutes: int, negative_zero: bool) -> str:
    sign = "-" if offset_minutes < 0 or (offset_minutes == 0 and negative_zero) else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


@settings(max_examples=200, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31, 23, 59, 59, 999999)
    ).map(lambda naive: naive.replace(tzinfo=UTC)),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    separator=st.sampled_from("Tt "),
    negative_zero=st.booleans(),
)
def test_any_instant_written_in_any_whole_minute_offset_validates_to_that_instant(
    instant, offset_minutes, separator, negative_zero
):
    local = instant.replace(tzinfo=None) + timedelta(minutes=offset_minutes)
    text = local.isoformat(sep=separator) + offset_text(offset_minutes, negative_zero)
    event = event_from_json(changed(occurred_at=text))
    assert event.occurred_at == instant
    assert event.occurred_at.date() == instant.date()
    assert event_from_csv(as_csv_row(changed(occurred_at=text))).occurred_at == instant
