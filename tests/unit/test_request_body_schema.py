"""schemas/analytics.py: the request body of CONTRACT §1, and the response shape."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas.analytics import UsageAnalyticsRequest, UsageAnalyticsResponse
from service.domain import ApiKeyInfo, DayUsage, UsageSummary

SCHEMA = UsageAnalyticsRequest(max_range_days=7)


def test_a_valid_body_loads_dates_and_no_key():
    loaded = SCHEMA.load({"start_date": "2024-01-01", "end_date": "2024-01-07"})
    assert loaded == {
        "start_date": date(2024, 1, 1),
        "end_date": date(2024, 1, 7),
        "api_key_id": None,
    }
    with_null = SCHEMA.load(
        {"start_date": "2024-01-01", "end_date": "2024-01-01", "api_key_id": None}
    )
    assert with_null["api_key_id"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"end_date": "2024-01-01"}, "start_date"),
        ({"start_date": "2024-01-01"}, "end_date"),
        ({"start_date": "2024-1-01", "end_date": "2024-01-01"}, "start_date"),
        ({"start_date": "20240101", "end_date": "2024-01-01"}, "start_date"),
        ({"start_date": "2024-W01-1", "end_date": "2024-01-01"}, "start_date"),
        ({"start_date": "2024-02-30", "end_date": "2024-03-01"}, "start_date"),
        ({"start_date": "2024-01-02", "end_date": "2024-01-01"}, "end_date"),
        ({"start_date": "2024-01-01", "end_date": "2024-01-08"}, "end_date"),
        ({"start_date": "2024-01-01", "end_date": "2024-01-01", "api_key_id": ""}, "api_key_id"),
        (
            {"start_date": "2024-01-01", "end_date": "2024-01-01", "api_key_id": "k" * 129},
            "api_key_id",
        ),
        ({"start_date": "2024-01-01", "end_date": "2024-01-01", "api_key_id": 5}, "api_key_id"),
        ({"start_date": "2024-01-01", "end_date": "2024-01-01", "other": 1}, "other"),
    ],
)
def test_each_rule_break_is_reported_under_its_field(body, field):
    with pytest.raises(ValidationError) as invalid:
        SCHEMA.load(body)
    assert field in invalid.value.normalized_messages()


def test_the_range_limit_counts_both_ends():
    assert SCHEMA.load({"start_date": "2024-01-01", "end_date": "2024-01-07"})
    with pytest.raises(ValidationError):
        SCHEMA.load({"start_date": "2024-01-01", "end_date": "2024-01-08"})


@settings(max_examples=200, deadline=None)
@given(
    start=st.dates(min_value=date(1, 1, 1), max_value=date(9998, 1, 1)), length=st.integers(0, 365)
)
def test_any_ordered_range_within_the_limit_loads_back_equal(start, length):
    end = start + timedelta(days=length)
    loaded = UsageAnalyticsRequest().load(
        {"start_date": start.isoformat(), "end_date": end.isoformat()}
    )
    assert (loaded["start_date"], loaded["end_date"]) == (start, end)


def summary(api_key: ApiKeyInfo | None) -> UsageSummary:
    days = [DayUsage(date(2024, 1, d), d * 10**15, d, d * 7) for d in range(1, 32, 3)]
    return UsageSummary(api_key, days)


def test_the_summary_sums_its_days_and_matches_the_response_schema():
    key = ApiKeyInfo(
        id=uuid4(),
        organisation_id=uuid4(),
        name="North",
        prefix="scrubs_abcdef",
        clinic_id=uuid4(),
        clinic_name="Northside",
        is_root=False,
        created_at=datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        revoked_at=None,
    )
    for api_key in (None, key):
        body = summary(api_key).as_json()
        assert UsageAnalyticsResponse().validate(body) == {}
        for metric in ("tokens", "usage", "stt_duration"):
            assert body["total"][metric] == sum(day[metric] for day in body["deltas"].values())
        assert list(body["deltas"]) == sorted(body["deltas"])
    assert summary(key).as_json()["api_key"]["created_at"] == "2024-01-01T12:00:00Z"
