"""UsageSummary.as_json, the 200 body (README, "The API"): exact sums, and a shape the
response schema accepts, org-wide and for one key."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.usage_analytics import UsageAnalyticsResponse
from service.domain.figures import DailyFigures, DayUsage, UsageSummary, with_usage
from service.domain.keys import ApiKeyInfo
from service.entrypoints.report_formats import summary_json


def summary_of(key: ApiKeyInfo | None, days: list[DayUsage]) -> UsageSummary:
    return UsageSummary(key, DailyFigures.of(days))


DAYS = [
    DayUsage(date(2024, 1, 15), tokens=1_000_000, usage=25, stt_duration=30),
    DayUsage(date(2024, 1, 16), tokens=800_000, usage=20, stt_duration=25),
    DayUsage(date(2024, 2, 29), tokens=0, usage=0, stt_duration=7),
]
BIG = 2**62 + 1  # far past the integers a float holds exactly
KEY = ApiKeyInfo(
    id=uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"),
    organisation_id=uuid.UUID("11111111-2222-4333-8444-555555555555"),
    name="Front desk",
    prefix="sk_live_ab12",
    clinic_id=uuid.UUID("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"),
    clinic_name="North Clinic",
    is_root=False,
    created_at=datetime(2024, 1, 15, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
    revoked_at=None,
)


def test_org_wide_summary_sums_every_day_exactly():
    body = summary_of(None, DAYS).as_json()
    assert body == {
        "api_key": None,
        "total": {"stt_duration": 62, "tokens": 1_800_000, "usage": 45},
        "deltas": {
            "2024-01-15": {"tokens": 1_000_000, "usage": 25, "stt_duration": 30},
            "2024-01-16": {"tokens": 800_000, "usage": 20, "stt_duration": 25},
            "2024-02-29": {"tokens": 0, "usage": 0, "stt_duration": 7},
        },
    }
    assert list(body["deltas"]) == ["2024-01-15", "2024-01-16", "2024-02-29"]


def test_sums_of_big_figures_stay_exact_ints():
    days = [DayUsage(date(2024, 1, 1) + timedelta(days=n), BIG, BIG, BIG) for n in range(3)]
    total = summary_of(None, days).as_json()["total"]
    assert total == {"stt_duration": 3 * BIG, "tokens": 3 * BIG, "usage": 3 * BIG}
    assert all(type(value) is int for value in total.values())
    assert total["tokens"] != int(float(BIG) * 3)


def test_no_usage_gives_zeros_and_no_deltas():
    assert summary_of(None, []).as_json() == {
        "api_key": None,
        "total": {"stt_duration": 0, "tokens": 0, "usage": 0},
        "deltas": {},
    }


def test_a_key_summary_describes_the_key_in_utc():
    described = summary_of(KEY, DAYS[:1]).as_json()["api_key"]
    assert described == {
        "id": "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        "name": "Front desk",
        "prefix": "sk_live_ab12",
        "clinic_id": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        "clinic_name": "North Clinic",
        "is_root": False,
        "created_at": "2024-01-15T09:30:15Z",
        "revoked_at": None,
    }


def test_a_revoked_key_summary_gives_revoked_at_in_utc():
    revoked = datetime(2024, 3, 1, 0, 15, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    described = summary_of(replace(KEY, revoked_at=revoked), DAYS).as_json()["api_key"]
    assert described["revoked_at"] == "2024-02-29T18:45:00Z"


@pytest.mark.parametrize(
    "summary",
    [
        summary_of(None, DAYS),
        summary_of(None, []),
        summary_of(KEY, DAYS),
        summary_of(KEY, []),
        summary_of(replace(KEY, revoked_at=datetime.now(UTC)), DAYS),
        summary_of(None, [DayUsage(date(2024, 1, 1), BIG, BIG, BIG)]),
    ],
    ids=["org-wide", "org-wide-empty", "key", "key-empty", "revoked-key", "big"],
)
def test_the_body_validates_against_the_response_schema(summary):
    assert UsageAnalyticsResponse().validate(summary.as_json()) == {}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 800),
            st.integers(0, 2**70),
            st.integers(0, 2**40),
            st.integers(0, 2**64 - 1),
        ),
        unique_by=lambda day: day[0],
        max_size=40,
    ),
    st.booleans(),
)
def test_the_answer_written_as_text_is_the_dict_written_by_a_json_encoder(days, for_a_key):
    """summary_json writes `deltas` itself; the text must be what the standard encoder
    makes of as_json(), byte for byte (figures past 64 bits included)."""
    found = [
        DayUsage(date(2023, 1, 1) + timedelta(days=offset), tokens, usage, stt)
        for offset, tokens, usage, stt in sorted(days)
    ]
    summary = summary_of(KEY if for_a_key else None, found)
    expected = json.dumps(summary.as_json(), separators=(",", ":")).encode()
    assert summary_json(summary) == expected
    assert json.loads(summary_json(summary))["total"]["tokens"] == sum(day[1] for day in days)


def test_the_same_figures_are_written_once_and_other_figures_or_keys_anew():
    figures = DailyFigures.of(DAYS)
    first = summary_json(UsageSummary(None, figures))
    assert summary_json(UsageSummary(None, figures)) is first
    assert json.loads(first)["api_key"] is None
    assert json.loads(summary_json(UsageSummary(KEY, figures)))["api_key"]["revoked_at"] is None
    revoked = replace(KEY, revoked_at=datetime(2024, 3, 1, tzinfo=UTC))
    written = json.loads(summary_json(UsageSummary(revoked, figures)))
    assert written["api_key"]["revoked_at"] is not None
    fewer = DailyFigures.of(DAYS[:1])
    written = json.loads(summary_json(UsageSummary(None, fewer)))
    assert written["total"]["tokens"] == DAYS[0].tokens and list(written["deltas"]) == [
        DAYS[0].day.isoformat()
    ]
    assert json.loads(summary_json(UsageSummary(None, figures)))["total"]["tokens"] == sum(
        day.tokens for day in DAYS
    )


def test_only_days_with_some_usage_are_kept_in_order():
    day = date(2024, 5, 1)
    kept = [DayUsage(day, 0, 0, 1), DayUsage(day, 0, 2, 0), DayUsage(day, 3, 0, 0)]
    mixed = [DayUsage(day, 0, 0, 0), kept[0], kept[1], DayUsage(day, 0, 0, 0), kept[2]]
    assert with_usage(mixed) == kept
    assert with_usage(iter(mixed)) == kept
    assert with_usage([]) == []


def test_daily_figures_hold_the_days_with_usage_as_columns():
    empty = DayUsage(date(2024, 1, 14), 0, 0, 0)
    figures = DailyFigures.of([empty, *DAYS])
    assert figures.days == [day.day for day in DAYS]
    assert figures.numbers == [1_000_000, 25, 30, 800_000, 20, 25, 0, 0, 7]
    assert figures.day_usages() == DAYS
    assert figures.totals() == (1_800_000, 45, 62)
    assert DailyFigures.of([]).totals() == (0, 0, 0)


def test_the_same_days_with_other_figures_are_written_with_their_own_figures():
    """The text of a question's days is kept for the next time; the figures never are."""
    days = [date(2024, 2, 28) + timedelta(days=n) for n in range(3)]
    for tokens in (1, 2**40, 7):
        summary = summary_of(None, [DayUsage(day, tokens + n, n, 1) for n, day in enumerate(days)])
        expected = json.dumps(summary.as_json(), separators=(",", ":")).encode()
        assert summary_json(summary) == expected
