"""Delivering committed invalidations to the cache: the outbox (README, "The rollup cache").

An import records the (key, day) pairs it changed in the outbox in the transaction that
changes them; after the commit they are delivered (the cache forgets those days) and only
then deleted. Rows that could not be delivered (Redis out, or the cache disabled in the
importing process) stay; readers distrust the organisation's cached days meanwhile, and
the next import, reader or `cache warm` that reaches Redis delivers them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from uuid import UUID

from service.observability import metrics
from service.usecases.ports import CacheUnavailable, PendingInvalidation, Services

REPLAY_BATCH = 500


def touched(pending: list[PendingInvalidation]) -> Iterator[tuple[UUID, UUID, date]]:
    for row in pending:
        for api_key_id, day in zip(row.api_key_ids, row.days, strict=True):
            yield row.organisation_id, api_key_id, day


def deliver(
    services: Services,
    pending: list[PendingInvalidation],
    forget: Callable[[list[int]], None] | None = None,
) -> bool:
    """Make the cache forget these rows' days, then drop the rows (through `forget` when
    given, say on an import's own connection). False, rows kept, when there is no cache or
    it does not answer."""
    if services.cache is None or not pending:
        return False
    try:
        forgotten = services.cache.invalidate(touched(pending))
    except CacheUnavailable:
        return False
    metrics.CACHE_INVALIDATED_DAYS.inc(forgotten)
    (forget or services.ledger.forget_invalidations)([row.id for row in pending])
    return True


def replay(services: Services, organisation_id: UUID | None = None, max_rows: int = 50_000) -> bool:
    """Deliver pending rows, oldest first (one organisation's, or everyone's), up to
    `max_rows`; stops at the first failure. True when none is left pending."""
    delivered = 0
    while delivered < max_rows:
        pending = services.ledger.pending_invalidations(organisation_id, REPLAY_BATCH)
        if not pending:
            return True
        if not deliver(services, pending):
            return False
        delivered += len(pending)
        if len(pending) < REPLAY_BATCH:
            return True
    return False
