"""`cache warm` and `cache clear`: fill or drop organisations' cached rollups in bulk.

Both are safe while the service serves and imports run: warming takes the same leases as
a reader's fill (an import's invalidation voids them), and clearing drops leases too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from uuid import UUID

from service import invalidation, repository
from service.admin import AdminError
from service.analytics import utc_today
from service.context import Services
from service.rollup_cache import RollupCache, Scope

ORGANISATIONS_PER_BATCH = 50


def _cache(services: Services) -> RollupCache:
    if services.cache is None:
        raise AdminError("the cache is disabled (REDIS_URL is empty)")
    return services.cache


def _organisations(services: Services, organisation_id: UUID | None) -> list[UUID]:
    with services.db.connection() as conn:
        found = repository.organisation_ids(conn, organisation_id)
    if organisation_id is not None and not found:
        raise AdminError(f"no organisation has id {organisation_id}")
    return found


def organisation_count(services: Services) -> int:
    return len(_organisations(services, None))


def warm(
    services: Services,
    start: date,
    end: date,
    organisation_id: UUID | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Fill the organisation-wide rollups of every organisation (or one) for the range, up
    to the current UTC day: one SQL query and three pipelined round trips per batch of
    organisations. Days a reader is filling at the same moment are left to it."""
    cache = _cache(services)
    started = time.perf_counter()
    today = utc_today()
    end = min(end, today)
    organisations = _organisations(services, organisation_id)
    invalidation.replay(services)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    written = 0
    for first in range(0, len(organisations), ORGANISATIONS_PER_BATCH):
        batch = organisations[first : first + ORGANISATIONS_PER_BATCH]
        if days:
            lease = cache.lease([(Scope(org), days) for org in batch], today)
            with services.db.connection() as conn:
                usage = repository.organisations_daily_usage(conn, batch, start, end)
            figures = {Scope(org): {day.day: day for day in usage[org]} for org in batch}
            written += cache.fill(lease, figures, today)
        if on_progress is not None:
            on_progress(len(batch))
    return {"org_days": written, "seconds": round(time.perf_counter() - started, 3)}


def clear(services: Services, organisation_id: UUID | None = None) -> dict:
    """Drop cached rollups and leases; pending invalidations they covered go with them."""
    cache = _cache(services)
    if organisation_id is not None:
        _organisations(services, organisation_id)
    with services.db.connection() as conn:
        covered = repository.pending_invalidation_ids(conn, organisation_id)
    dropped = cache.clear(organisation_id)
    with services.db.connection() as conn:
        repository.forget_invalidations(conn, covered)
    return {"keys_dropped": dropped}
