"""The figures of a report's buckets and the JSON answer written from them: the day-by-day
path against the running sums' path it stands in for, sums across scopes, and the answer's
text against the body it writes (as orjson, or the standard encoder, would write it)."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from itertools import pairwise

import orjson
import pytest

from service.domain.figures import DayUsage
from service.domain.keys import ApiKeyInfo
from service.domain.reports import (
    Clinic,
    Figures,
    Group,
    Report,
    ReportQuery,
    Series,
    bucket_figures,
    bucket_figures_of,
    cells_for,
    summed,
)
from service.domain.time_buckets import plan
from service.entrypoints.report_formats import json_text

START, END = date(2024, 1, 20), date(2024, 3, 5)
ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")


def random_totals(days: list[date], rng: random.Random) -> dict[date, DayUsage]:
    """Days with usage, days cached as having none, and days missing altogether."""
    found = {}
    for day in days:
        kind = rng.random()
        if kind < 0.6:
            found[day] = DayUsage(
                day, rng.randrange(10**15), rng.randrange(10**6), rng.randrange(99)
            )
        elif kind < 0.8:
            found[day] = DayUsage(day, 0, 0, 0)
    return found


@pytest.mark.parametrize(
    ("zone", "granularity", "start", "end", "daily"),
    [
        ("UTC", "day", START, END, True),
        ("Europe/London", "day", START, END, True),  # UTC+0 all along
        ("Europe/London", "day", START, date(2024, 4, 5), False),  # summer time from 31 March
        ("Asia/Kolkata", "day", START, END, False),
        ("UTC", "week", START, END, False),
        ("UTC", "month", START, END, False),
        ("UTC", "hour", START, START, False),
    ],
)
def test_only_buckets_of_one_whole_utc_day_each_take_the_day_by_day_path(
    zone, granularity, start, end, daily
):
    assert cells_for(plan(start, end, zone, granularity)).daily is daily


@pytest.mark.parametrize("seed", range(10))
def test_a_day_by_day_bucket_is_its_days_total_as_the_running_sums_would_have_it(seed):
    rng = random.Random(seed)
    cells = cells_for(plan(START, END, "UTC", "day"))
    totals = random_totals(cells.days, rng)
    figures = bucket_figures(cells, totals, {})
    assert figures == bucket_figures(replace(cells, daily=False), totals, {})
    assert list(figures) == [
        Figures(*totals[day][1:]) if day in totals else (0, 0, 0) for day in cells.days
    ]
    assert len(figures) == len(cells.days)


def test_zoned_buckets_add_the_running_sums_at_their_edges():
    """Kolkata's days begin at 18:30 UTC: a bucket is the totals of the UTC days between its
    edges, plus C at its end, minus C at its start."""
    cells = cells_for(plan(date(2024, 1, 1), date(2024, 1, 2), "Asia/Kolkata", "day"))
    first, second = cells.days  # 2023-12-31, 2024-01-01
    assert cells.points == ((first, 74), (second, 74), (date(2024, 1, 2), 74))
    totals = {first: DayUsage(first, 100, 0, 1), second: DayUsage(second, 200, 1, 1)}
    points = {(first, 74): Figures(30, 0, 0), (second, 74): Figures(150, 1, 1)}
    figures = bucket_figures(cells, totals, points)
    assert list(figures) == [Figures(100 + 150 - 30, 0 + 1, 1 + 1), Figures(200 - 150, 0, 0)]


def test_a_local_day_inside_one_utc_day_is_its_running_sum():
    """London's first day of summer time, 2025-03-30, runs 00:00-23:00 UTC: no whole UTC day
    lies inside it; its figures are C(day, 92) alone."""
    cells = cells_for(plan(date(2025, 3, 30), date(2025, 3, 30), "Europe/London", "day"))
    day = date(2025, 3, 30)
    assert cells.days == () and cells.points == ((day, 92),)
    figures = bucket_figures(cells, {}, {(day, 92): Figures(40, 2, 9)})
    assert list(figures) == [Figures(40, 2, 9)]
    assert list(bucket_figures(cells, {}, {})) == [Figures(0, 0, 0)]


@pytest.mark.parametrize(
    ("zone", "granularity"),
    [
        ("UTC", "day"),
        ("UTC", "hour"),
        ("Asia/Kolkata", "day"),
        ("America/New_York", "week"),
        ("Asia/Kathmandu", "month"),
        ("Europe/London", "hour"),
    ],
)
def test_figures_from_every_number_at_once_are_those_of_the_lookups(zone, granularity):
    """bucket_figures_of (the cache's flat figures, zeros included) gives G(b) - G(a) for
    every bucket, summed here day by day, and bucket_figures (days and points looked up in
    dicts) gives the same."""
    rng = random.Random(f"{zone}{granularity}")
    cells = cells_for(plan(date(2024, 3, 1), date(2024, 4, 10), zone, granularity))
    totals = random_totals(cells.days, rng)
    points = {
        point: Figures(rng.randrange(10**6), rng.randrange(9), rng.randrange(10**4))
        for point in cells.points
        if rng.random() < 0.7
    }
    numbers = [
        *(n for day in cells.days for n in (totals[day][1:] if day in totals else (0, 0, 0))),
        *(n for point in cells.points for n in points.get(point, (0, 0, 0))),
    ]
    marks = []  # G at each edge, summed here day by day: the days before it, and C at it
    for day_index, point_index in zip(cells.edge_days, cells.edge_point_index, strict=True):
        before = [totals[day][1:] for day in cells.days[:day_index] if day in totals]
        at = points.get(cells.points[point_index], (0, 0, 0)) if point_index >= 0 else (0, 0, 0)
        marks.append([sum(column) for column in zip((0, 0, 0), at, *before, strict=True)])
    expected = [Figures(*(b - a for a, b in zip(x, y, strict=True))) for x, y in pairwise(marks)]
    assert list(bucket_figures_of(cells, numbers)) == expected
    assert bucket_figures(cells, totals, points) == bucket_figures_of(cells, numbers)


def test_sums_across_scopes_are_bucket_by_bucket():
    rng = random.Random(7)
    cells = cells_for(plan(START, END, "UTC", "day"))
    per_scope = [bucket_figures(cells, random_totals(cells.days, rng), {}) for _ in range(5)]
    expected = [
        Figures(*map(sum, zip(*column, strict=True))) for column in zip(*per_scope, strict=True)
    ]
    assert list(summed(per_scope)) == expected
    assert summed(per_scope).total() == Figures(*map(sum, zip(*expected, strict=True)))
    assert summed(per_scope[:1]) == per_scope[0]


def key(name: str, clinic: bool = True) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=uuid.uuid4(),
        organisation_id=ORG,
        name=name,
        prefix="sk_live_abcd",
        clinic_id=uuid.uuid4() if clinic else None,
        clinic_name='Clinic "north" \u00e9' if clinic else None,
        is_root=False,
        created_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        revoked_at=None,
    )


def grouped_report(group_by: str, scale: int = 1) -> Report:
    """Three scopes' figures in Kolkata's weeks, the second without usage."""
    rng = random.Random(3)
    query = ReportQuery(START, END, "Asia/Kolkata", "week", group_by=group_by, limit=2)
    buckets = plan(START, END, query.time_zone, query.granularity)
    cells = cells_for(buckets)
    per_scope = []
    for n in range(3):
        figures = bucket_figures(cells, random_totals(cells.days, rng), {})
        columns = (figures.tokens, figures.usage, figures.stt_duration)
        per_scope.append(Series(*([scale * value * (n != 1) for value in c] for c in columns)))
    if group_by == "api_key":
        owners = [key("front desk \u2603"), key('"quoted" key', clinic=False)]
        groups = [
            Group(str(o.id), api_key=o, figures=f)
            for o, f in zip(owners, per_scope[:2], strict=True)
        ]
    else:
        groups = [
            Group("c1", clinic=Clinic("c1", "Clinic <one>"), figures=per_scope[1]),
            Group("~", figures=per_scope[2]),
        ]
    return Report(query, buckets, None, summed(per_scope), groups, next_cursor="abc.def")


@pytest.mark.parametrize("group_by", ["api_key", "clinic"])
def test_the_json_answer_is_the_body_as_orjson_writes_it(group_by):
    report = grouped_report(group_by)
    body = report.as_json()
    assert [bool(group["deltas"]) for group in body["groups"]] == (
        [True, False] if group_by == "api_key" else [False, True]
    )
    assert json_text(report) == orjson.dumps(body)


def test_an_answer_without_groups_is_written_alike():
    report = grouped_report("api_key")
    report.groups, report.next_cursor = None, None
    report.api_key = key("single")
    assert json_text(report) == orjson.dumps(report.as_json())


def test_figures_past_64_bits_are_written_exactly_by_the_standard_encoder():
    report = grouped_report("api_key", scale=2**70)
    text = json_text(report)
    assert text == json.dumps(report.as_json(), separators=(",", ":")).encode()
    assert json.loads(text) == report.as_json()
