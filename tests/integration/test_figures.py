"""Exact figures of POST /api/v1/usage-analytics (README, "The API"), org-wide and per
key, compared with sums computed here from events imported through `usage import`."""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from service.usecases import admin
from tests.support.api import api_request, body_for, figures
from tests.support.events import (
    METRICS,
    Event,
    event_prefix,
    expected_deltas,
    make_event,
    make_events,
    total_of,
    write_csv,
    write_jsonl,
)

DAYS = [date(2023, 12, 28) + timedelta(days=n) for n in range(8)] + [
    date(2024, 2, 26) + timedelta(days=n) for n in range(6)
]  # across a new year and across 29 February
DATA_START, DATA_END = date(2023, 12, 27), date(2024, 3, 3)  # events may slip a day early
RANGE_START, RANGE_END = date(2023, 12, 1), date(2024, 3, 31)
RFC3339_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")
EVENT_COUNT = 400


def import_events(cli, tmp_path, events: list[Event], fmt: str = "jsonl") -> dict:
    writer = write_csv if fmt == "csv" else write_jsonl
    path = writer(tmp_path / f"{uuid.uuid4().hex}.{fmt}", events)
    result = cli("usage", "import", str(path))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"read": len(events), "inserted": len(events), "duplicates": 0, "rejected": 0}
    return report


def all_keys(org) -> list[str]:
    return [org.root.id, *(key.id for key in org.clinic_keys)]


@pytest.fixture()
def imported(make_org, cli, tmp_path):
    """An organisation with three clinic keys and EVENT_COUNT events on all four keys,
    imported partly as JSONL and partly as CSV."""
    org = make_org(clinic_keys=3)
    events = make_events(random.Random(20240229), all_keys(org), DAYS, EVENT_COUNT)
    import_events(cli, tmp_path, events[: EVENT_COUNT // 2], "jsonl")
    import_events(cli, tmp_path, events[EVENT_COUNT // 2 :], "csv")
    return org, events


def test_generated_events_cover_both_sides_of_midnight_and_every_offset_spelling(imported):
    _, events = imported
    stamps = [event.record["occurred_at"] for event in events]
    for spelling in ("Z", "z", "+00:00", "-00:00", "+14:00", "-12:00", "+05:30", "-03:30"):
        assert any(stamp.endswith(spelling) for stamp in stamps), spelling
    assert any(" " in stamp for stamp in stamps)
    assert any("t" in stamp for stamp in stamps)
    assert {event.day for event in events} > {date(2023, 12, 27), date(2023, 12, 31)}


def test_org_wide_deltas_are_the_exact_per_utc_day_sums(client, imported):
    org, events = imported
    response = api_request(client, org, body_for(RANGE_START, RANGE_END))
    assert response.status_code == 200
    body = response.get_json()
    expected = expected_deltas(events)
    assert body["api_key"] is None
    assert body["deltas"] == expected
    assert body["total"] == total_of(expected)


def test_deltas_are_in_ascending_date_order_in_the_json_text(client, imported):
    org, _ = imported
    response = api_request(client, org, body_for(RANGE_START, RANGE_END))
    in_text_order = list(json.loads(response.get_data(as_text=True))["deltas"])
    assert in_text_order == sorted(in_text_order)
    assert len(in_text_order) > 10


def test_only_days_with_usage_are_listed(client, imported):
    org, events = imported
    deltas = figures(client, org, RANGE_START, RANGE_END)["deltas"]
    assert set(deltas) == {
        day for day, sums in expected_deltas(events).items() if any(sums.values())
    }
    assert all(any(day.values()) for day in deltas.values())
    assert "2024-01-15" not in deltas  # inside the range, no events


def test_total_is_the_sum_of_deltas_and_every_figure_is_an_int(client, imported):
    org, _ = imported
    body = figures(client, org, RANGE_START, RANGE_END)
    assert set(body["total"]) == set(METRICS)
    assert body["total"] == total_of(body["deltas"])
    for day in [body["total"], *body["deltas"].values()]:
        assert set(day) == set(METRICS)
        assert all(type(value) is int and value >= 0 for value in day.values())


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2023, 12, 31), date(2024, 1, 1)),
        (date(2023, 12, 29), date(2024, 2, 28)),
        (date(2024, 2, 29), date(2024, 2, 29)),
        (date(2024, 1, 2), date(2024, 3, 1)),
        (date(2023, 12, 27), date(2023, 12, 28)),
    ],
)
def test_a_range_inside_the_data_counts_both_ends_inclusive(client, imported, start, end):
    org, events = imported
    expected = expected_deltas(events, start, end)
    assert start.isoformat() in expected and end.isoformat() in expected
    body = figures(client, org, start, end)
    assert body["deltas"] == expected
    assert body["total"] == total_of(expected)


def test_a_one_day_range_holds_that_utc_day_alone(client, imported):
    org, events = imported
    day = date(2024, 1, 1)
    body = figures(client, org, day, day)
    assert list(body["deltas"]) == ["2024-01-01"]
    assert body["deltas"] == expected_deltas(events, day, day)


def test_a_range_in_the_future_has_zero_totals_and_no_deltas(client, imported):
    org, _ = imported
    start = datetime.now(UTC).date() + timedelta(days=1)
    body = figures(client, org, start, start + timedelta(days=30))
    assert body == {
        "api_key": None,
        "total": {"stt_duration": 0, "tokens": 0, "usage": 0},
        "deltas": {},
    }


def test_the_longest_allowed_range_returns_every_figure(client, imported, settings):
    org, events = imported
    start = RANGE_START
    end = start + timedelta(days=settings.max_range_days - 1)
    assert end > DATA_END
    body = figures(client, org, start, end)
    assert body["deltas"] == expected_deltas(events)
    too_long = api_request(client, org, body_for(start, end + timedelta(days=1)))
    assert too_long.status_code == 400
    assert too_long.get_json()["code"] == "invalid_request"


def test_per_key_figures_cover_that_key_alone(client, imported):
    org, events = imported
    for key in org.clinic_keys:
        expected = expected_deltas(events, api_key_id=key.id)
        body = figures(client, org, RANGE_START, RANGE_END, key.id)
        assert body["deltas"] == expected, key.id
        assert body["total"] == total_of(expected)
        assert list(body["deltas"]) == sorted(body["deltas"])


def test_per_key_answer_describes_the_target_key(client, imported):
    org, _ = imported
    key = org.clinic_keys[1]
    before = datetime.now(UTC)
    described = figures(client, org, RANGE_START, RANGE_END, key.id)["api_key"]
    assert set(described) == {
        "id",
        "name",
        "prefix",
        "clinic_id",
        "clinic_name",
        "is_root",
        "created_at",
        "revoked_at",
    }
    assert described["id"] == key.id
    assert described["name"] == "clinic key 1"
    assert 0 < len(described["prefix"]) < len(key.secret)
    assert key.secret.startswith(described["prefix"])
    assert described["clinic_id"] == key.clinic_id
    assert described["clinic_name"] == org.clinics[key.clinic_id]
    assert described["is_root"] is False
    assert RFC3339_UTC.fullmatch(described["created_at"]), described["created_at"]
    created = datetime.fromisoformat(described["created_at"].replace("Z", "+00:00"))
    assert before - timedelta(minutes=10) < created <= before + timedelta(seconds=1)
    assert described["revoked_at"] is None


def test_a_revoked_key_reports_revoked_at_and_keeps_its_figures(client, imported, services):
    org, events = imported
    key = org.clinic_keys[0]
    before = figures(client, org, RANGE_START, RANGE_END, key.id)
    revoked = admin.revoke_api_key(services.directory, uuid.UUID(key.id))
    after = figures(client, org, RANGE_START, RANGE_END, key.id)
    assert RFC3339_UTC.fullmatch(after["api_key"]["revoked_at"]), after["api_key"]
    assert after["api_key"]["revoked_at"] == revoked["revoked_at"]
    assert after["api_key"]["created_at"] == before["api_key"]["created_at"]
    assert after["deltas"] == expected_deltas(events, api_key_id=key.id) == before["deltas"]
    assert after["deltas"] != {}


def test_org_wide_figures_include_revoked_keys_and_the_root_keys_own_events(
    client, imported, services
):
    org, events = imported
    assert expected_deltas(events, api_key_id=org.root.id) != {}
    for key in org.clinic_keys[:2]:
        admin.revoke_api_key(services.directory, uuid.UUID(key.id))
    body = figures(client, org, RANGE_START, RANGE_END)
    assert body["deltas"] == expected_deltas(events)
    without_root = expected_deltas([event for event in events if event.api_key_id != org.root.id])
    assert body["deltas"] != without_root


def test_events_with_all_zero_metrics_create_no_delta(client, make_org, cli, tmp_path):
    org = make_org(clinic_keys=1)
    rng = random.Random(7)
    prefix = event_prefix()
    zero = {"tokens": 0, "stt_duration": 0, "usage": 0}
    lonely_day, busy_day = date(2024, 5, 10), date(2024, 5, 11)
    midnight = datetime(2024, 5, 11, tzinfo=UTC)
    events = [
        make_event(rng, f"{prefix}-{n}", key, midnight - timedelta(seconds=n + 1), zero)
        for n, key in enumerate([org.root.id, org.clinic_keys[0].id] * 3)
    ] + [
        make_event(rng, f"{prefix}-busy", org.clinic_keys[0].id, midnight, dict(zero, tokens=5)),
        make_event(rng, f"{prefix}-busy-zero", org.clinic_keys[0].id, midnight, zero),
    ]
    assert {event.day for event in events} == {lonely_day, busy_day}
    import_events(cli, tmp_path, events[:3], "csv")
    import_events(cli, tmp_path, events[3:], "jsonl")
    expected = {"2024-05-11": {"tokens": 5, "usage": 0, "stt_duration": 0}}
    org_wide = figures(client, org, lonely_day, busy_day)
    assert org_wide["deltas"] == expected
    assert org_wide["total"] == {"tokens": 5, "usage": 0, "stt_duration": 0}
    per_key = figures(client, org, lonely_day, busy_day, org.clinic_keys[0].id)
    assert per_key["deltas"] == expected
    only_zero = figures(client, org, lonely_day, lonely_day)
    assert only_zero["deltas"] == {}
    assert only_zero["total"] == {"tokens": 0, "usage": 0, "stt_duration": 0}


def test_big_figures_on_one_day_sum_exactly(client, make_org, cli, tmp_path):
    org = make_org(clinic_keys=1)
    rng = random.Random(53)
    prefix = event_prefix()
    biggest = {"tokens": 2**53 - 1, "stt_duration": 2**53 - 1, "usage": 2**31 - 1}
    day = date(2024, 7, 1)
    midnight = datetime(2024, 7, 1, tzinfo=UTC)
    events = [
        make_event(rng, f"{prefix}-{n}", key, midnight + timedelta(seconds=n), biggest)
        for n, key in enumerate([org.clinic_keys[0].id] * 5 + [org.root.id] * 2)
    ]
    plain = {"tokens": 1, "stt_duration": 0}  # usage absent: counts as 1
    events.append(make_event(rng, f"{prefix}-one", org.clinic_keys[0].id, midnight, plain))
    import_events(cli, tmp_path, events[:4], "jsonl")
    import_events(cli, tmp_path, events[4:], "csv")
    org_wide = {
        "tokens": 7 * (2**53 - 1) + 1,
        "usage": 7 * (2**31 - 1) + 1,
        "stt_duration": 7 * (2**53 - 1),
    }
    key_only = {
        "tokens": 5 * (2**53 - 1) + 1,
        "usage": 5 * (2**31 - 1) + 1,
        "stt_duration": 5 * (2**53 - 1),
    }
    response = api_request(client, org, body_for(day, day))
    assert response.status_code == 200
    body = response.get_json()
    assert body["deltas"] == {"2024-07-01": org_wide}
    assert body["total"] == org_wide
    assert str(7 * (2**53 - 1) + 1) in response.get_data(as_text=True)  # not 6.305039478318694e16
    per_key = figures(client, org, day, day, org.clinic_keys[0].id)
    assert per_key["deltas"] == {"2024-07-01": key_only}
    assert per_key["total"] == key_only


def test_each_root_key_sees_only_its_own_organisations_figures(client, make_org, cli, tmp_path):
    rng = random.Random(1212)
    first, second = make_org(clinic_keys=2), make_org(clinic_keys=2)
    first_events = make_events(rng, all_keys(first), DAYS, 120)
    second_events = make_events(rng, all_keys(second), DAYS, 120)
    import_events(cli, tmp_path, first_events + second_events, "jsonl")
    for org, events in ((first, first_events), (second, second_events)):
        body = figures(client, org, RANGE_START, RANGE_END)
        assert body["deltas"] == expected_deltas(events)
        assert body["total"] == total_of(expected_deltas(events))


@pytest.mark.parametrize("asker", [0, 1])
def test_a_key_of_another_organisation_gets_403_api_key_outside_organisation(
    client, make_org, cli, tmp_path, asker
):
    orgs = [make_org(clinic_keys=1), make_org(clinic_keys=1)]
    noon = datetime(2024, 1, 1, 12, tzinfo=UTC)
    rng = random.Random(asker)
    events = [
        make_event(rng, f"{event_prefix()}-{n}", org.clinic_keys[0].id, noon)
        for n, org in enumerate(orgs)
    ]
    import_events(cli, tmp_path, events, "jsonl")
    mine, theirs = orgs[asker], orgs[1 - asker]
    response = api_request(client, mine, body_for(RANGE_START, RANGE_END, theirs.clinic_keys[0].id))
    assert response.status_code == 403
    problem = response.get_json()
    assert problem["code"] == "api_key_outside_organisation"
    assert problem["title"] == "Target API key is outside the organisation."
    assert "deltas" not in problem and "total" not in problem


@pytest.mark.parametrize("scope", ["organisation", "key"])
def test_a_late_event_for_a_day_already_queried_shows_up_in_the_next_query(
    client, make_org, cli, tmp_path, scope
):
    org = make_org(clinic_keys=1)
    key = org.clinic_keys[0].id
    api_key_id = key if scope == "key" else None
    rng = random.Random(99)
    day = date(2024, 4, 2)
    events = make_events(rng, [key], [day, day + timedelta(days=1)], 40)
    import_events(cli, tmp_path, events, "csv")
    first = figures(client, org, DATA_START, day + timedelta(days=2), api_key_id)
    assert first["deltas"] == expected_deltas(events, api_key_id=api_key_id)
    late = make_event(
        rng,
        f"{event_prefix()}-late",
        key,
        datetime(2024, 4, 2, 23, 59, 59, tzinfo=UTC),
        {"tokens": 1_000, "stt_duration": 3, "usage": 2},
    )
    import_events(cli, tmp_path, [late], "jsonl")
    second = figures(client, org, DATA_START, day + timedelta(days=2), api_key_id)
    assert second["deltas"] == expected_deltas([*events, late], api_key_id=api_key_id)
    assert second["total"]["tokens"] == first["total"]["tokens"] + 1_000
