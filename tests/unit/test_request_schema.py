"""The request body of POST /api/v1/usage-analytics (README, "The API": the body's rules, check 5):
what loads, and which field each rule break is reported under."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas.usage_analytics import UsageAnalyticsRequest
from service.domain.errors import InvalidRequest
from service.entrypoints.http.usage_endpoint import REMEMBERED_BODY_BYTES, read_question

RANGE = {"start_date": "2024-01-01", "end_date": "2024-01-31"}
RANGE_FIELDS = ("start_date", "end_date")
EITHER_END = "either end"  # an ordering or length break may be reported under either date
NO_OPTIONS = {
    "time_zone": "UTC",
    "granularity": "day",
    "group_by": None,
    "api_key_ids": None,
    "limit": None,
    "cursor": None,
}


def body(**fields) -> dict:
    merged = {**RANGE, **fields}
    return {name: value for name, value in merged.items() if value is not ...}


@pytest.mark.parametrize(
    ("given_body", "loaded"),
    [
        (
            RANGE,
            {"start_date": date(2024, 1, 1), "end_date": date(2024, 1, 31), "api_key_id": None},
        ),
        (
            body(api_key_id=None),
            {"start_date": date(2024, 1, 1), "end_date": date(2024, 1, 31), "api_key_id": None},
        ),
        (
            body(api_key_id="k"),
            {"start_date": date(2024, 1, 1), "end_date": date(2024, 1, 31), "api_key_id": "k"},
        ),
        (
            body(api_key_id="x" * 128),
            {
                "start_date": date(2024, 1, 1),
                "end_date": date(2024, 1, 31),
                "api_key_id": "x" * 128,
            },
        ),
        (
            body(start_date="2024-02-29", end_date="2024-02-29"),
            {"start_date": date(2024, 2, 29), "end_date": date(2024, 2, 29), "api_key_id": None},
        ),
        (
            body(start_date="2099-12-31", end_date="2100-01-01"),
            {"start_date": date(2099, 12, 31), "end_date": date(2100, 1, 1), "api_key_id": None},
        ),
    ],
    ids=["key-absent", "key-null", "key-1-char", "key-128-chars", "one-leap-day", "future"],
)
def test_a_valid_body_loads(given_body, loaded):
    assert UsageAnalyticsRequest().load(given_body) == loaded | NO_OPTIONS


@pytest.mark.parametrize(
    ("given_body", "fields"),
    [
        pytest.param(body(start_date=...), ("start_date",), id="start-missing"),
        pytest.param(body(end_date=...), ("end_date",), id="end-missing"),
        pytest.param({}, ("start_date", "end_date"), id="both-missing"),
        pytest.param(body(start_date=None), ("start_date",), id="start-null"),
        pytest.param(body(end_date=None), ("end_date",), id="end-null"),
        pytest.param(body(start_date=20240101), ("start_date",), id="start-number"),
        pytest.param(body(start_date="2024-1-01"), ("start_date",), id="start-not-padded"),
        pytest.param(body(start_date="20240101"), ("start_date",), id="start-basic-format"),
        pytest.param(body(start_date="2024-W01-1"), ("start_date",), id="start-week-date"),
        pytest.param(body(start_date="2024-001"), ("start_date",), id="start-ordinal-date"),
        pytest.param(body(start_date="2024-01-01T00:00:00"), ("start_date",), id="start-datetime"),
        pytest.param(body(start_date=" 2024-01-01"), ("start_date",), id="start-leading-space"),
        pytest.param(body(start_date="2024-01-01\n"), ("start_date",), id="start-newline"),
        pytest.param(
            body(start_date="\uff12\uff10\uff12\uff14-01-01"),
            ("start_date",),
            id="start-wide-digits",
        ),
        pytest.param(body(end_date="2023-02-29"), ("end_date",), id="end-feb-29-common-year"),
        pytest.param(body(end_date="2024-02-30"), ("end_date",), id="end-feb-30"),
        pytest.param(body(end_date="2024-13-01"), ("end_date",), id="end-month-13"),
        pytest.param(body(end_date="2024-00-10"), ("end_date",), id="end-month-0"),
        pytest.param(body(end_date="2024-01-32"), ("end_date",), id="end-day-32"),
        pytest.param(body(start_date="0000-01-01"), ("start_date",), id="start-year-0"),
        pytest.param(body(end_date=["2024-01-31"]), ("end_date",), id="end-list"),
        pytest.param(body(start_date="2024-02-01"), EITHER_END, id="start-after-end"),
        pytest.param(
            body(start_date="2023-01-01", end_date="2024-01-02"), EITHER_END, id="367-days"
        ),
        pytest.param(body(api_key_id=""), ("api_key_id",), id="key-empty"),
        pytest.param(body(api_key_id="x" * 129), ("api_key_id",), id="key-129-chars"),
        pytest.param(body(api_key_id=5), ("api_key_id",), id="key-number"),
        pytest.param(body(api_key_id=True), ("api_key_id",), id="key-bool"),
        pytest.param(body(api_key_id=["k"]), ("api_key_id",), id="key-list"),
        pytest.param(body(api_key_id={"id": "k"}), ("api_key_id",), id="key-object"),
        pytest.param(body(group_by=None), ("group_by",), id="group-by-null"),
        pytest.param(body(api_key_ids=None), ("api_key_ids",), id="key-ids-null"),
        pytest.param(body(group_by="clinic", limit=None), ("limit",), id="limit-null"),
        pytest.param(body(group_by="clinic", cursor=None), ("cursor",), id="cursor-null"),
        pytest.param(body(extra=1), ("extra",), id="unknown-field"),
        pytest.param(body(START_DATE="2024-01-01"), ("START_DATE",), id="unknown-case"),
    ],
)
def test_a_body_breaking_a_rule_raises_messages_keyed_by_field(given_body, fields):
    with pytest.raises(ValidationError) as raised:
        UsageAnalyticsRequest().load(given_body)
    errors = raised.value.messages
    assert isinstance(errors, dict)
    assert errors, "no field named"
    if fields == EITHER_END:
        assert set(errors) <= set(RANGE_FIELDS), errors
    else:
        assert set(errors) == set(fields), errors
    for messages in errors.values():
        assert isinstance(messages, list) and messages
        assert all(isinstance(message, str) and message.strip() for message in messages)


@pytest.mark.parametrize("given_body", [[], "2024-01-01", None, 5])
def test_a_body_that_is_not_an_object_raises_validation_error(given_body):
    with pytest.raises(ValidationError):
        UsageAnalyticsRequest().load(given_body)


@pytest.mark.parametrize(
    ("start", "end", "max_range_days"),
    [
        (date(2024, 1, 1), date(2024, 1, 7), 7),
        (date(2024, 1, 1), date(2024, 1, 1), 1),
        (date(2024, 1, 1), date(2024, 12, 31), 366),
        (date(2023, 1, 1), date(2024, 1, 1), 366),
    ],
)
def test_a_range_of_exactly_max_range_days_loads(start, end, max_range_days):
    assert (end - start).days + 1 == max_range_days
    loaded = UsageAnalyticsRequest(max_range_days=max_range_days).load(
        {"start_date": start.isoformat(), "end_date": end.isoformat()}
    )
    assert (loaded["start_date"], loaded["end_date"]) == (start, end)


@pytest.mark.parametrize(
    ("start", "end", "max_range_days"),
    [
        (date(2024, 1, 1), date(2024, 1, 8), 7),
        (date(2024, 1, 1), date(2024, 1, 2), 1),
        (date(2024, 1, 1), date(2025, 1, 1), 366),
    ],
)
def test_a_range_one_day_longer_than_max_range_days_is_invalid(start, end, max_range_days):
    assert (end - start).days + 1 == max_range_days + 1
    with pytest.raises(ValidationError) as raised:
        UsageAnalyticsRequest(max_range_days=max_range_days).load(
            {"start_date": start.isoformat(), "end_date": end.isoformat()}
        )
    assert raised.value.messages
    assert set(raised.value.messages) <= set(RANGE_FIELDS)


def test_the_default_limit_is_366_days():
    schema = UsageAnalyticsRequest()
    schema.load({"start_date": "2024-01-01", "end_date": "2024-12-31"})
    with pytest.raises(ValidationError):
        schema.load({"start_date": "2023-12-31", "end_date": "2024-12-31"})


@settings(max_examples=200, deadline=None)
@given(
    start=st.dates(min_value=date(1, 1, 1), max_value=date.max - timedelta(days=365)),
    span=st.integers(min_value=0, max_value=365),
)
def test_any_ordered_pair_of_dates_within_366_days_loads_back_equal(start, span):
    end = start + timedelta(days=span)
    loaded = UsageAnalyticsRequest().load(
        {"start_date": start.isoformat(), "end_date": end.isoformat()}
    )
    assert loaded == {"start_date": start, "end_date": end, "api_key_id": None} | NO_OPTIONS


def test_a_question_read_again_is_read_alike_and_cannot_be_changed():
    """Bodies of up to a kilobyte are read once per worker (service/entrypoints/http/
    usage_endpoint.py): the same bytes give the same reading, for each range limit of its
    own, never a stale verdict, and what is handed out is read-only."""
    payload = b'{"start_date": "2024-01-01", "end_date": "2024-02-09"}'  # 40 days
    raw, loaded = read_question(payload, 366)
    assert raw == {"start_date": "2024-01-01", "end_date": "2024-02-09"}
    assert loaded["start_date"] == date(2024, 1, 1) and loaded["end_date"] == date(2024, 2, 9)
    assert read_question(payload, 366) == (raw, loaded)
    with pytest.raises(TypeError):
        loaded["end_date"] = date(2030, 1, 1)  # type: ignore[index]
    for _ in range(2):  # a refusal is given again, not remembered as an answer
        with pytest.raises(InvalidRequest) as refused:
            read_question(payload, 31)
        assert "end_date" in refused.value.errors or "start_date" in refused.value.errors
    long = payload[:-1] + b" " * REMEMBERED_BODY_BYTES + b"}"  # read afresh every time
    assert read_question(long, 366) == (raw, loaded)
    for broken in (b"{", b"[]", b'{"start_date": "2024-01-01", "start_date": "2024-01-02"}'):
        for _ in range(2):
            with pytest.raises(InvalidRequest):
                read_question(broken, 366)
