"""The figures of several scopes at once (usecases/reports.py, scope_figures): cache-aside
on the real cache adapter over fakeredis, against rollups kept in memory. Whatever the cache
holds, the figures are the ones SQL alone gives."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, timedelta

import pytest

from service.domain.figures import DayUsage, Scope
from service.domain.reports import QUARTERS_PER_DAY, Figures, Point, cells_for
from service.domain.time_buckets import plan
from service.usecases.reports import scope_figures
from tests.unit.fakes import fake_cache, fake_services

TODAY = date(2024, 3, 10)
ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
KEYS = [uuid.UUID(int=n) for n in range(1, 5)]


class QuarterRollups:
    """Each key's usage per UTC day and quarter-hour (a few quarters of every day, key 4
    none), and a record of every read."""

    def __init__(self) -> None:
        self.quarters: dict[tuple[uuid.UUID, date], list[int]] = {}
        for n, key in enumerate(KEYS[:3]):
            for day in (TODAY - timedelta(days=d) for d in range(-2, 60)):
                counts = [0] * QUARTERS_PER_DAY
                for quarter in (3 + n, 40, 75 + day.day % 7, 95):
                    counts[quarter] = 10 * (n + 1) + day.day
                self.quarters[(key, day)] = counts
        self.reads: list[tuple[str, list]] = []

    def _day(self, keys: list[uuid.UUID], day: date, before: int = QUARTERS_PER_DAY) -> Figures:
        tokens = sum(sum(self.quarters.get((key, day), [])[:before]) for key in keys)
        return Figures(tokens, tokens % 7, tokens % 3)

    def organisation_days(self, organisation_id, days: list[date]) -> list[DayUsage]:
        self.reads.append(("organisation_days", list(days)))
        return [DayUsage(day, *self._day(KEYS, day)) for day in days if any(self._day(KEYS, day))]

    def keys_days(self, api_key_ids, days: list[date]) -> dict[uuid.UUID, list[DayUsage]]:
        self.reads.append(("keys_days", list(days)))
        return {
            key: [
                DayUsage(day, *self._day([key], day)) for day in days if any(self._day([key], day))
            ]
            for key in api_key_ids
        }

    def organisation_points(self, organisation_id, points: list[Point]) -> dict[Point, Figures]:
        self.reads.append(("organisation_points", list(points)))
        found = {point: self._day(KEYS, *point) for point in points}
        return {point: figures for point, figures in found.items() if any(figures)}

    def keys_points(self, api_key_ids, points: list[Point]) -> dict[uuid.UUID, dict]:
        self.reads.append(("keys_points", list(points)))
        return {
            key: {
                point: self._day([key], *point) for point in points if any(self._day([key], *point))
            }
            for key in api_key_ids
        }


@pytest.fixture()
def rollups() -> QuarterRollups:
    return QuarterRollups()


def services_with(rollups: QuarterRollups, cached: bool):
    return replace(fake_services(fake_cache() if cached else None), rollups=rollups)


@pytest.mark.parametrize(
    ("zone", "granularity", "start"),
    [
        ("UTC", "day", TODAY - timedelta(days=30)),
        ("Asia/Kolkata", "day", TODAY - timedelta(days=40)),
        ("America/New_York", "day", TODAY - timedelta(days=40)),  # ends on the UTC day after
        ("America/New_York", "hour", TODAY - timedelta(days=1)),
        ("Asia/Kathmandu", "week", TODAY - timedelta(days=50)),
    ],
)
@pytest.mark.parametrize("scopes", [[Scope(ORG)], [Scope(ORG, key) for key in KEYS]])
def test_figures_from_a_cold_or_a_warm_cache_are_sqls_own(
    rollups, zone, granularity, start, scopes
):
    cells = cells_for(plan(start, TODAY, zone, granularity))
    from_sql = scope_figures(services_with(rollups, cached=False), scopes, cells, today=TODAY)
    services = services_with(rollups, cached=True)
    cold = scope_figures(services, scopes, cells, today=TODAY)
    rollups.reads.clear()
    warm = scope_figures(services, scopes, cells, today=TODAY)
    assert cold == warm == from_sql
    assert any(any(figures) for series in from_sql for figures in series)
    later_points = [point for point in cells.points if point[0] > TODAY]
    assert [points for kind, points in rollups.reads if "points" in kind] == (
        [later_points] if later_points else []
    ), "only what comes after the current UTC day is read again"
    assert [days for kind, days in rollups.reads if "days" in kind] == []


def test_days_the_cache_lost_are_read_again_and_filled(rollups):
    scopes = [Scope(ORG, key) for key in KEYS]
    cells = cells_for(plan(TODAY - timedelta(days=20), TODAY - timedelta(days=1), "UTC", "day"))
    services = services_with(rollups, cached=True)
    expected = scope_figures(services, scopes, cells, today=TODAY)
    lost = list(cells.days[3:5])
    services.cache.invalidate([(ORG, KEYS[1], day) for day in lost], today=TODAY)
    rollups.reads.clear()
    assert scope_figures(services, scopes, cells, today=TODAY) == expected
    assert rollups.reads == [("keys_days", lost)]
    rollups.reads.clear()
    assert scope_figures(services, scopes, cells, today=TODAY) == expected
    assert rollups.reads == []


def test_a_warm_question_asked_again_shares_its_bucket_figures_until_a_value_changes(rollups):
    cells = cells_for(
        plan(TODAY - timedelta(days=40), TODAY - timedelta(days=1), "Asia/Kolkata", "day")
    )
    scopes = [Scope(ORG, key) for key in KEYS]
    services = services_with(rollups, cached=True)
    scope_figures(services, scopes, cells, today=TODAY)  # fills the cache
    warm = scope_figures(services, scopes, cells, today=TODAY)
    assert scope_figures(services, scopes, cells, today=TODAY) is warm, "worked out once"
    day = cells.days[7]
    rollups.quarters[(KEYS[0], day)][50] += 1_000  # an import's, as the cache is told of it
    services.cache.invalidate([(ORG, KEYS[0], day)], today=TODAY)
    scope_figures(services, scopes, cells, today=TODAY)  # reads the day again, fills it
    changed = scope_figures(services, scopes, cells, today=TODAY)
    assert changed is not warm
    from_sql = scope_figures(services_with(rollups, cached=False), scopes, cells, today=TODAY)
    assert changed == from_sql and changed[0] != warm[0] and changed[1:] == warm[1:]
