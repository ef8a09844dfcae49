"""`cache warm` and `cache clear`: fill or drop organisations' cached rollups in bulk.

Both are safe while the service serves and imports run: warming takes the same leases as
a reader's fill (an import's invalidation voids them), and clearing drops leases too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from uuid import UUID

from service.domain.figures import Scope, days_between
from service.domain.moments import utc_today
from service.usecases import invalidations
from service.usecases.errors import CacheDisabled, OperationFailed
from service.usecases.ports import CacheUnavailable, RollupCache, Services

log = logging.getLogger("scrubs.cache")

# At most about this many organisation-days a batch (a lease round trip, one SQL read and
# one write round trip): a few megabytes in memory. Two batches read by two threads at once
# took longer than one read alone (4,812 organisation-days: 24-34 ms against 17-30 ms).
ORG_DAYS_PER_BATCH = 50_000


def _cache(services: Services) -> RollupCache:
    if services.cache is None:
        raise CacheDisabled()
    return services.cache


def organisations(services: Services, organisation_id: UUID | None = None) -> list[UUID]:
    """Every organisation's id, or just the one asked for (which must exist)."""
    found = services.directory.organisation_ids(organisation_id)
    if organisation_id is not None and not found:
        raise OperationFailed(f"no organisation has id {organisation_id}")
    return found


def warm(
    services: Services,
    start: date,
    end: date,
    organisation_id: UUID | None = None,
    on_progress: Callable[[int], None] | None = None,
    today: date | None = None,
) -> dict:
    """Fill the organisation-wide rollups of every organisation (or one) for the range, up
    to the current UTC day, in batches of organisations: per batch, one round trip for the
    leases, one SQL read and one round trip for the writes. Days a reader is filling at
    the same moment are left to it. `seconds` is the fill's own time: it starts once the
    organisations are listed and pending invalidations delivered (both stores connected)."""
    cache = _cache(services)
    today = today or utc_today()
    end = min(end, today)
    found = organisations(services, organisation_id)
    invalidations.replay(services)
    started = time.perf_counter()
    days = days_between(start, end)
    if not days or not found:
        return {"org_days": 0, "seconds": round(time.perf_counter() - started, 3)}
    per_batch = max(1, ORG_DAYS_PER_BATCH // len(days))
    on_cluster = cache.cluster_state() is not None
    written = 0
    for first in range(0, len(found), per_batch):
        batch = found[first : first + per_batch]
        try:
            lease = cache.lease([(Scope(org), days) for org in batch], today)
            texts = services.rollups.organisations_days_text(batch, start, end)
            written += cache.fill_texts(lease, {Scope(org): texts[org] for org in batch}, today)
        except CacheUnavailable:
            # On a cluster, a batch whose organisations all live on a silent node: the
            # others go on, and the end says which nodes did not answer. On one Redis the
            # cache is out, and so is the warm.
            if not on_cluster:
                raise
        if on_progress is not None:
            on_progress(len(batch))
    # On a Redis Cluster, the batches skip the organisations of a node that does not answer
    # and fill the others: say so rather than report a warm cache.
    cluster = cache.cluster_state()
    if cluster is not None and cluster["reachable"] < cluster["primaries"]:
        silent = cluster["primaries"] - cluster["reachable"]
        raise OperationFailed(
            f"Redis: {silent} of {cluster['primaries']} cluster nodes did not answer; the "
            f"organisations they serve were not warmed ({written} organisation-days were)"
        )
    return {"org_days": written, "seconds": round(time.perf_counter() - started, 3)}


def clear(services: Services, organisation_id: UUID | None = None) -> dict:
    """Drop cached rollups and leases; pending invalidations they covered go with them."""
    cache = _cache(services)
    if organisation_id is not None:
        organisations(services, organisation_id)
    covered = services.ledger.pending_invalidation_ids(organisation_id)
    dropped = cache.clear(organisation_id)
    if cache.is_read_by_servers():  # else the servers' own cache still holds those days
        services.ledger.forget_invalidations(covered)
    return {"keys_dropped": dropped}


def start_serving(services: Services) -> None:
    """A server's first use of its cache. A Redis its servers have not marked holds nothing
    they trust (it restarted, or they read another one until now), and it may predate
    imports that could not reach it: it is cleared, with the pending invalidations it
    covered, before the servers mark it as theirs."""
    cache = services.cache
    if cache is None:
        return
    try:
        if not cache.is_marked():
            clear(services)
        cache.open()
    except CacheUnavailable as problem:  # Redis out: readers go to SQL; the breaker retries
        log.warning("the cache could not be opened (%s); serving from Postgres for now", problem)
