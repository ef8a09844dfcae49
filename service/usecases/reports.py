"""Questions with options (README, "The API"): a time zone and a granularity, several keys,
figures per key or per clinic in pages. Exact in every zone: each bucket is read off the day
totals and the running sums at its edges (service/domain/reports.py; docs/design.md, "Time
zones, from quarter-hour rollups"), from the rollup cache where it holds them and from SQL
for the rest, which then fills the cache under the same leases as the daily figures
(docs/design.md, "The rollup cache")."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from functools import lru_cache, partial
from uuid import UUID

from service.domain.errors import ApiKeyNotFound, ApiKeyOutsideOrganisation, InvalidRequest
from service.domain.figures import DayUsage, Scope
from service.domain.kept import KeptByIdentity
from service.domain.keys import UUID_TEXT, ApiKeyInfo, Principal
from service.domain.moments import utc_today
from service.domain.reports import (
    DEFAULT_LIMIT,
    BadCursor,
    Cells,
    Clinic,
    Figures,
    Group,
    Point,
    Report,
    ReportQuery,
    Series,
    bucket_figures,
    bucket_figures_of,
    cells_for,
    make_cursor,
    read_cursor,
    summed,
)
from service.domain.time_buckets import BucketPlan, OutsideZoneRules, plan
from service.observability import metrics
from service.usecases.admin import require_organisation
from service.usecases.figures import delivered_pending, target_key
from service.usecases.ports import CacheUnavailable, Services

NO_CLINIC = "~"  # sorts after every clinic id: the keys without a clinic come last


@dataclass(frozen=True, slots=True)
class Prepared:
    query: ReportQuery
    plan: BucketPlan
    after: str | None  # the last group of the page before, from the cursor
    cells: Cells  # what the plan reads of each scope


@lru_cache(maxsize=64)  # at most 15 MB a worker: a 31-day hour plan, the largest, is 230 KiB
def _plan_and_cells(start: date, end: date, zone_name: str, granularity: str) -> tuple:
    """A question's buckets and what they read depend on nothing else, and dashboards ask
    the same ranges again and again: a 366-day plan in a zone costs about half a
    millisecond to make. Shared between requests, so never changed by them."""
    buckets = plan(start, end, zone_name, granularity)
    return buckets, cells_for(buckets)


def prepare(
    services: Services, query: ReportQuery, organisation_id: UUID | None = None
) -> Prepared:
    """What check 5 cannot know from the body alone: that the zone's boundaries over the
    range are exact quarter-hours, and that the cursor is this service's for this question
    of this organisation (None: a question asked for no client, the command line's, which
    has no pages and so no cursor)."""
    try:
        buckets, cells = _plan_and_cells(query.start, query.end, query.time_zone, query.granularity)
    except OutsideZoneRules as problem:
        raise InvalidRequest(
            {problem.field: [str(problem)]}, f"{problem.field}: {problem}"
        ) from None
    after = None
    if query.cursor is not None:
        try:
            if organisation_id is None:
                raise BadCursor("the cursor was not made for this question")
            secret = services.directory.service_secret()
            after = read_cursor(secret, organisation_id, query, query.cursor)
        except BadCursor as problem:
            raise InvalidRequest(
                {"cursor": [f"{problem}: send the next_cursor of the same question."]},
                f"cursor: {problem}.",
            ) from None
    return Prepared(query, buckets, after, cells)


def report(
    services: Services, principal: Principal, prepared: Prepared, every_group: bool = False
) -> Report:
    """Checks 6-7 for the keys asked for, then the figures of the selected keys: all of them
    in `figures`, and the groups of this page (every group when `every_group`: CSV)."""
    query = prepared.query
    keys = _selected_keys(services, principal, query)
    cells = prepared.cells
    if keys is None:
        scopes = [Scope(principal.organisation_id)]
    else:
        scopes = [Scope(principal.organisation_id, key.id) for key in keys]
    per_scope = scope_figures(services, scopes, cells, principal.cache_pending)
    result = Report(query, prepared.plan, None, summed(per_scope))
    if query.api_key_id is not None:
        result.api_key = keys[0] if keys else None
    if query.group_by is not None:
        assert keys is not None
        groups = _groups(query.group_by, keys, per_scope)
        _page(services, principal.organisation_id, result, groups, prepared.after, every_group)
    return result


def principal_of(services: Services, organisation_id: UUID) -> Principal:
    """The organisation as the command line asks for it: a root key's view, no key needed."""
    require_organisation(services.directory, organisation_id)
    pending = bool(services.ledger.pending_invalidation_ids(organisation_id))
    return Principal(organisation_id, organisation_id, is_root=True, cache_pending=pending)


def _selected_keys(
    services: Services, principal: Principal, query: ReportQuery
) -> list[ApiKeyInfo] | None:
    """The keys asked for, every key of the organisation for groups, or None: the
    organisation as a whole."""
    if query.api_key_id is not None:
        return [target_key(services, principal, query.api_key_id)]
    if query.api_key_ids is not None:
        return _target_keys(services, principal, query.api_key_ids)
    if query.group_by is not None:
        return services.directory.organisation_keys(principal.organisation_id)
    return None


def _target_keys(
    services: Services, principal: Principal, api_key_ids: tuple[str, ...]
) -> list[ApiKeyInfo]:
    """Check 6 over every id, then check 7 over every id: a key of another organisation is
    answered as such even when an id before it names no key. Each check names the first id
    in array order that fails it, by its index as a bad item of the list is named."""
    found = [
        services.directory.api_key(UUID(key_id)) if UUID_TEXT.fullmatch(key_id) else None
        for key_id in api_key_ids
    ]
    for n, key in enumerate(found):
        if key is not None and key.organisation_id != principal.organisation_id:
            raise ApiKeyOutsideOrganisation(
                f"api_key_ids item {n} belongs to a different organisation than the root key."
            )
    keys = []
    for n, key in enumerate(found):
        if key is None:
            raise ApiKeyNotFound(f"api_key_ids item {n} names no API key.")
        if key.clinic_id is None:
            raise ApiKeyNotFound(f"api_key_ids item {n} names a key with no linked clinic.")
        keys.append(key)
    return keys


def _groups(group_by: str, keys: list[ApiKeyInfo], per_scope: list[Series]) -> list[Group]:
    """The groups with any usage, in their order: by key id, or by clinic id and then the
    keys without a clinic."""
    groups: dict[str, Group] = {}
    if group_by == "api_key":
        for key, figures in zip(keys, per_scope, strict=True):
            key_id = str(key.id)
            groups[key_id] = Group(key_id, api_key=key, figures=figures)
    else:
        members: dict[str, list[Series]] = {}
        for key, figures in zip(keys, per_scope, strict=True):
            sort_key = NO_CLINIC if key.clinic_id is None else str(key.clinic_id)
            if sort_key not in groups:
                clinic = None
                if key.clinic_id is not None:
                    clinic = Clinic(str(key.clinic_id), key.clinic_name or "")
                groups[sort_key] = Group(sort_key, clinic=clinic)
                members[sort_key] = []
            members[sort_key].append(figures)
        for sort_key, group in groups.items():
            group.figures = summed(members[sort_key])
    return [groups[sort_key] for sort_key in sorted(groups) if groups[sort_key].figures.has_usage]


def _page(
    services: Services,
    organisation_id: UUID,
    result: Report,
    groups: list[Group],
    after: str | None,
    every_group: bool,
) -> None:
    if every_group:
        result.groups = groups
        return
    if after is not None:
        groups = [group for group in groups if group.sort_key > after]
    limit = result.query.limit or DEFAULT_LIMIT
    result.groups = groups[:limit]
    if len(groups) > limit:
        secret = services.directory.service_secret()
        last = groups[limit - 1].sort_key
        result.next_cursor = make_cursor(secret, organisation_id, result.query, last)


# --- figures of several scopes at once: cache-aside, one round trip and one query a kind ---


def scope_figures(
    services: Services,
    scopes: list[Scope],
    cells: Cells,
    cache_pending: bool = False,
    today: date | None = None,
) -> list[Series]:
    """Each scope's figures per bucket of the cells' plan."""
    today = today or utc_today()
    cache = services.cache
    reads = None
    usable = cache is not None and cache.available
    if usable and cache_pending:
        usable = delivered_pending(services, scopes[0].organisation_id)
    if usable:  # the cache holds it all (the usual case): its figures, no object a day
        assert cache is not None
        try:
            every = cache.read_every(scopes, cells.days, cells.points, today)
        except CacheUnavailable:
            every, usable = None, False
        if every is not None:
            metrics.CACHE_HIT_DAYS.inc(len(cells.days) * len(scopes))
            return _bucket_figures_of_every(cells, every)
    if usable:
        assert cache is not None
        with suppress(CacheUnavailable):
            reads = cache.read_many(scopes, cells.days, cells.points, today)
    if reads is None:  # no cache, Redis out, or its figures not to be trusted yet
        every_day, every_point = [cells.days] * len(scopes), [cells.points] * len(scopes)
        totals, points = _from_sql(services, scopes, every_day, every_point)
        return list(map(partial(bucket_figures, cells), totals, points))

    assert cache is not None
    totals = [read.found for read in reads]
    points = [read.found_points for read in reads]
    missed = sum(len(read.missing) for read in reads)
    metrics.CACHE_HIT_DAYS.inc(len(cells.days) * len(reads) - missed)
    metrics.CACHE_MISSED_DAYS.inc(missed)
    later_days = [day for day in cells.days if day > today]
    later_points = [point for point in cells.points if point[0] > today]
    if missed or later_days or later_points or any(read.missing_points for read in reads):
        missing_days = [read.missing + later_days for read in reads]
        missing_points = [read.missing_points + later_points for read in reads]
        wanted = [
            (scope, read.missing, read.missing_points)
            for scope, read in zip(scopes, reads, strict=True)
            if read.missing or read.missing_points
        ]
        lease = None
        if wanted:
            with suppress(CacheUnavailable):
                lease = cache.lease(wanted, today)
        fetched_days, fetched_points = _from_sql(services, scopes, missing_days, missing_points)
        for n in range(len(scopes)):
            if fetched_days[n]:
                totals[n] = totals[n] | fetched_days[n]
            if fetched_points[n]:
                points[n] = points[n] | fetched_points[n]
        if lease is not None:
            with suppress(CacheUnavailable):  # the figures are served all the same
                written = cache.fill(
                    lease,
                    {scope: fetched_days[n] for n, scope in enumerate(scopes)},
                    today,
                    {scope: fetched_points[n] for n, scope in enumerate(scopes)},
                )
                metrics.CACHE_FILLED_DAYS.inc(written)
    return list(map(partial(bucket_figures, cells), totals, points))


# The buckets last worked out of what the cache gave, by its identity: the cache gives the
# same lists again while a question's cached values stay the same (RollupCache.read_every),
# and their buckets are the same figures.
_figured: KeptByIdentity[list[Series]] = KeptByIdentity()


def _bucket_figures_of_every(cells: Cells, every: list[list[int]]) -> list[Series]:
    """Each scope's bucket figures, shared with the requests that got the same `every`
    (never changed by them)."""
    return _figured.get_or_make(
        (cells, every), lambda: [bucket_figures_of(cells, numbers) for numbers in every]
    )


def _from_sql(
    services: Services,
    scopes: list[Scope],
    missing_days: list[list[date]],
    missing_points: list[list[Point]],
) -> tuple[list[dict[date, DayUsage]], list[dict[Point, Figures]]]:
    """The missing totals and running sums of every scope: one query for the organisation,
    or one for all the keys (and one more for running sums, when any is missing)."""
    started = time.perf_counter()
    rollups = services.rollups
    days: list[dict[date, DayUsage]] = [{} for _ in scopes]
    points: list[dict[Point, Figures]] = [{} for _ in scopes]
    if len(scopes) == 1 and scopes[0].api_key_id is None:
        organisation = scopes[0].organisation_id
        if missing_days[0]:
            found = rollups.organisation_days(organisation, sorted(missing_days[0]))
            days[0] = {row.day: row for row in found}
        if missing_points[0]:
            points[0] = rollups.organisation_points(organisation, sorted(missing_points[0]))
        kind = "organisation"
    else:
        key_ids: list[UUID] = [scope.api_key_id for scope in scopes]  # type: ignore[misc]
        day_union = sorted({day for wanted in missing_days for day in wanted})
        point_union = sorted({point for wanted in missing_points for point in wanted})
        needing_days = [key for key, wanted in zip(key_ids, missing_days, strict=True) if wanted]
        needing_points = [
            key for key, wanted in zip(key_ids, missing_points, strict=True) if wanted
        ]
        by_key_days = rollups.keys_days(needing_days, day_union) if needing_days else {}
        by_key_points = rollups.keys_points(needing_points, point_union) if needing_points else {}
        for n, key in enumerate(key_ids):
            days[n] = {row.day: row for row in by_key_days.get(key, [])}
            points[n] = by_key_points.get(key, {})
        kind = "key"
    if any(missing_days) or any(missing_points):
        metrics.SQL_FIGURES_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return days, points
