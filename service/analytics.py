"""The use case behind POST /api/v1/usage-analytics: figures per UTC day for a range.

Figures come from the rollup cache where it holds them and from one SQL query for the rest
(DESIGN "The rollup cache"); without a usable cache, from one SQL query for the range.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from datetime import UTC, date, datetime
from uuid import UUID

from schemas.usage_event import UUID_TEXT
from service import invalidation, metrics, repository
from service.context import Services
from service.domain import ApiKeyInfo, DayUsage, Principal, UsageQuery, UsageSummary
from service.errors import ApiKeyNotFound, ApiKeyOutsideOrganisation
from service.rollup_cache import CacheUnavailable, Lease, Scope

log = logging.getLogger("scrubs.cache")


def utc_today() -> date:
    return datetime.now(UTC).date()


def usage_for_range(services: Services, principal: Principal, query: UsageQuery) -> UsageSummary:
    """CONTRACT §1 checks 6-7, then the figures: org-wide, or one key of the organisation."""
    target = None
    if query.api_key_id is not None:
        target = target_key(services, principal, query.api_key_id)
    scope = Scope(principal.organisation_id, None if target is None else target.id)
    days = daily_usage(services, scope, query.start, query.end, principal.cache_pending)
    return UsageSummary(target, [day for day in days if not day.is_empty])


def target_key(services: Services, principal: Principal, api_key_id: str) -> ApiKeyInfo:
    if not UUID_TEXT.fullmatch(api_key_id):
        raise ApiKeyNotFound()  # key ids are UUIDs: this names no key
    key = services.db.read(repository.api_key_info, UUID(api_key_id))
    if key is None:
        raise ApiKeyNotFound()
    if key.organisation_id != principal.organisation_id:
        raise ApiKeyOutsideOrganisation()
    if key.clinic_id is None:
        raise ApiKeyNotFound("The requested api_key_id has no linked clinic.")
    return key


def daily_usage(
    services: Services, scope: Scope, start: date, end: date, cache_pending: bool = False
) -> list[DayUsage]:
    """The scope's figures for every day of the range that has a rollup, ascending."""
    days = list(map(date.fromordinal, range(start.toordinal(), end.toordinal() + 1)))
    cache = services.cache
    if cache is None or not cache.available:  # no cache, or Redis out: no time lost on it
        return _from_sql(services, scope, days)
    if cache_pending:
        # Some committed imports have not reached the cache yet: its figures for this
        # organisation cannot be trusted until they do.
        _deliver_pending(services, scope.organisation_id)
        return _from_sql(services, scope, days)
    today = utc_today()
    try:
        cached = cache.read(scope, days, today)
    except CacheUnavailable:
        return _from_sql(services, scope, days)
    metrics.CACHE_DAYS.labels("hit").inc(len(days) - len(cached.missing))
    metrics.CACHE_DAYS.labels("miss").inc(len(cached.missing))
    uncached = cached.missing + [day for day in days if day > today]
    if not uncached:
        return [cached.found[day] for day in days if day in cached.found]
    lease = _lease(services, scope, cached.missing, today)
    fetched = _from_sql(services, scope, sorted(uncached))
    _fill(services, lease, scope, fetched, today)
    merged = cached.found | {day.day: day for day in fetched}
    return [merged[day] for day in days if day in merged]


def _from_sql(services: Services, scope: Scope, days: list[date]) -> list[DayUsage]:
    started = time.perf_counter()
    if scope.api_key_id is None:
        found = services.db.read(repository.organisation_daily_usage, scope.organisation_id, days)
    else:
        found = services.db.read(repository.key_daily_usage, scope.api_key_id, days)
    kind = "organisation" if scope.api_key_id is None else "key"
    metrics.SQL_FIGURES_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return found


def _lease(services: Services, scope: Scope, missing: list[date], today: date) -> Lease | None:
    assert services.cache is not None
    try:
        return services.cache.lease([(scope, missing)], today)
    except CacheUnavailable:
        return None


def _fill(
    services: Services, lease: Lease | None, scope: Scope, fetched: list[DayUsage], today: date
) -> None:
    if lease is None or not lease.buckets:
        return
    assert services.cache is not None
    with suppress(CacheUnavailable):  # the figures are served all the same; the next reader fills
        written = services.cache.fill(lease, {scope: {day.day: day for day in fetched}}, today)
        metrics.CACHE_FILLED_DAYS.inc(written)


def _deliver_pending(services: Services, organisation_id: UUID) -> None:
    try:
        invalidation.replay(services, organisation_id, max_rows=invalidation.REPLAY_BATCH)
    except Exception:  # best effort on the request path: the request is served from SQL anyway
        log.warning("could not deliver pending cache invalidations", exc_info=True)
