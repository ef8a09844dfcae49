"""schemas/usage_event.py: what a usage event line may hold (CONTRACT §3 "Usage events")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.usage_event import InvalidEvent, check_csv_header, event_from_csv, event_from_json

KEY = "5b0c7a5e-1d2f-4c3b-9a8e-7f6d5c4b3a21"
GOOD = {
    "event_id": "evt-1",
    "api_key_id": KEY,
    "occurred_at": "2024-01-15T23:59:30-05:00",
    "tokens": 1200,
    "stt_duration": 45,
    "usage": 2,
}


def test_a_valid_event_gives_its_utc_instant():
    event = event_from_json(GOOD)
    assert event.occurred_at == datetime(2024, 1, 16, 4, 59, 30, tzinfo=UTC)
    assert (event.tokens, event.stt_duration, event.usage) == (1200, 45, 2)


def test_usage_defaults_to_one_when_absent_or_null():
    without = {k: v for k, v in GOOD.items() if k != "usage"}
    assert event_from_json(without).usage == 1
    assert event_from_json(GOOD | {"usage": None}).usage == 1


def test_a_csv_record_reads_the_same_as_its_json_twin():
    row = {k: str(v) for k, v in GOOD.items()}
    assert event_from_csv(row) == event_from_json(GOOD)
    assert event_from_csv(row | {"usage": ""}).usage == 1


def test_the_key_id_is_matched_case_insensitively():
    assert event_from_json(GOOD | {"api_key_id": KEY.upper()}).api_key_id == KEY


def test_a_leap_second_counts_within_its_own_day():
    event = event_from_json(GOOD | {"occurred_at": "2016-12-31T23:59:60Z"})
    assert event.occurred_at.date().isoformat() == "2016-12-31"


@pytest.mark.parametrize(
    "changes",
    [
        {"tokens": True},
        {"tokens": 1.0},
        {"tokens": -1},
        {"tokens": 2**53},
        {"stt_duration": 2**53},
        {"stt_duration": "5"},
        {"usage": 2**31},
        {"usage": -2},
        {"usage": False},
        {"event_id": ""},
        {"event_id": "e" * 201},
        {"event_id": "nul\x00byte"},
        {"event_id": 7},
        {"api_key_id": "not-a-uuid"},
        {"api_key_id": KEY.replace("-", "")},
        {"api_key_id": None},
        {"occurred_at": "2024-01-15T10:00:00"},
        {"occurred_at": "2024-01-15"},
        {"occurred_at": "2024-01-15T10:00:00+24:00"},
        {"occurred_at": "2024-01-15T10:00:00+05:60"},
        {"occurred_at": "2024-01-15T24:00:00Z"},
        {"occurred_at": "2024-02-30T10:00:00Z"},
        {"occurred_at": "0001-01-01T00:30:00+01:00"},
        {"occurred_at": "2024-01-15T10:00Z"},
        {"occurred_at": "2024-01-15T10:00:00+0500"},
        {"occurred_at": 1705312800},
        {"unknown": 1},
    ],
    ids=repr,
)
def test_every_rule_break_is_rejected_with_a_reason(changes):
    with pytest.raises(InvalidEvent) as rejected:
        event_from_json(GOOD | changes)
    assert str(rejected.value)


@pytest.mark.parametrize(
    "missing", ["event_id", "api_key_id", "occurred_at", "tokens", "stt_duration"]
)
def test_each_required_field_is_required(missing):
    with pytest.raises(InvalidEvent, match=missing):
        event_from_json({k: v for k, v in GOOD.items() if k != missing})


@pytest.mark.parametrize("value", ["1.5", "-1", "+1", " 1", "1e3", "", "٣", "9007199254740992"])
def test_csv_integers_are_plain_digits_in_range(value):
    with pytest.raises(InvalidEvent):
        event_from_csv({k: str(v) for k, v in GOOD.items()} | {"tokens": value})


@pytest.mark.parametrize(
    "header",
    [None, [], ["event_id", "api_key_id"], [*GOOD, "extra"], ["event_id", *GOOD]],
    ids=["none", "empty", "missing", "unknown", "twice"],
)
def test_a_bad_csv_header_is_refused(header):
    with pytest.raises(InvalidEvent):
        check_csv_header(header)


@settings(max_examples=200, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_any_instant_written_in_any_offset_reads_back_as_itself(instant, offset_minutes):
    zone = timezone(timedelta(minutes=offset_minutes))
    text = instant.astimezone(zone).isoformat()
    event = event_from_json(GOOD | {"occurred_at": text})
    assert event.occurred_at == instant
