"""The question behind POST /api/v1/usage-analytics: figures per UTC day over a range.

Cache-aside: figures come from the rollup cache where it holds them and from one SQL read
for the rest, which then fills the cache under a lease; without a usable cache, from one
SQL read for the range (docs/design.md, "The rollup cache").
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_right
from contextlib import suppress
from datetime import date
from uuid import UUID

from service.domain.errors import ApiKeyNotFound, ApiKeyOutsideOrganisation
from service.domain.figures import (
    DailyFigures,
    DayUsage,
    Scope,
    UsageQuery,
    UsageSummary,
    days_between,
)
from service.domain.keys import UUID_TEXT, ApiKeyInfo, Principal
from service.domain.moments import utc_today
from service.observability import metrics
from service.usecases import invalidations
from service.usecases.ports import CacheUnavailable, Services

log = logging.getLogger("scrubs.cache")


def usage_for_range(services: Services, principal: Principal, query: UsageQuery) -> UsageSummary:
    """Checks 6-7 of the API, then the figures: org-wide, or one key of the organisation."""
    target = None
    if query.api_key_id is not None:
        target = target_key(services, principal, query.api_key_id)
    scope = Scope(principal.organisation_id, None if target is None else target.id)
    figures = daily_figures(services, scope, query.start, query.end, principal.cache_pending)
    return UsageSummary(target, figures)


def target_key(services: Services, principal: Principal, api_key_id: str) -> ApiKeyInfo:
    if not UUID_TEXT.fullmatch(api_key_id):
        raise ApiKeyNotFound()  # key ids are UUIDs: this names no key
    key = services.directory.api_key(UUID(api_key_id))
    if key is None:
        raise ApiKeyNotFound()
    if key.organisation_id != principal.organisation_id:
        raise ApiKeyOutsideOrganisation()
    if key.clinic_id is None:
        raise ApiKeyNotFound("The requested api_key_id has no linked clinic.")
    return key


def daily_figures(
    services: Services,
    scope: Scope,
    start: date,
    end: date,
    cache_pending: bool = False,
    today: date | None = None,
) -> DailyFigures:
    """The scope's figures for every day of the range that has usage: when the cache holds
    every day, as it decoded them."""
    days = days_between(start, end)
    cache = services.cache
    if cache is None or not cache.available:  # no cache, or Redis out: no time lost on it
        return DailyFigures.of(_from_sql(services, scope, days))
    if cache_pending and not delivered_pending(services, scope.organisation_id):
        # Some committed imports have not reached the cache yet: its figures for this
        # organisation cannot be trusted until they do.
        return DailyFigures.of(_from_sql(services, scope, days))
    today = today or utc_today()
    try:
        cached = cache.read(scope, days, today)
    except CacheUnavailable:
        return DailyFigures.of(_from_sql(services, scope, days))
    missed = len(cached.missing)
    metrics.CACHE_HIT_DAYS.inc(len(days) - missed)
    if missed:
        metrics.CACHE_MISSED_DAYS.inc(missed)
    uncached = cached.missing + days[bisect_right(days, today) :]  # and days after today
    if not uncached:
        return cached.figures
    try:
        lease = cache.lease([(scope, cached.missing)], today)
    except CacheUnavailable:
        lease = None
    fetched = _from_sql(services, scope, sorted(uncached))
    if lease is not None:
        # The figures are served all the same when the fill fails; the next reader fills.
        with suppress(CacheUnavailable):
            written = cache.fill(lease, {scope: {day.day: day for day in fetched}}, today)
            metrics.CACHE_FILLED_DAYS.inc(written)
    merged = cached.found | {day.day: day for day in fetched}
    return DailyFigures.of(merged[day] for day in days if day in merged)


def _from_sql(services: Services, scope: Scope, days: list[date]) -> list[DayUsage]:
    started = time.perf_counter()
    if scope.api_key_id is None:
        found = services.rollups.organisation_days(scope.organisation_id, days)
        kind = "organisation"
    else:
        found = services.rollups.key_days(scope.api_key_id, days)
        kind = "key"
    metrics.SQL_FIGURES_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return found


def delivered_pending(services: Services, organisation_id: UUID) -> bool:
    """Deliver the organisation's pending invalidations (a batch at most); True when none
    is left, so that its cached figures can be trusted again."""
    try:
        return invalidations.replay(
            services, organisation_id, max_rows=invalidations.REQUEST_REPLAY_ROWS
        )
    except Exception:  # best effort on the request path: the request is served from SQL anyway
        log.warning("could not deliver pending cache invalidations", exc_info=True)
        return False
