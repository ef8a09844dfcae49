"""Delivering committed invalidations to the cache: the outbox (docs/design.md, "The rollup cache").

An import records the (key, day) pairs it changed in the outbox in the transaction that
changes them; after the commit they are delivered (the cache forgets those days) and only
then deleted. Rows that could not be delivered (Redis out, or the cache disabled in the
importing process) stay; readers distrust the organisation's cached days meanwhile, and
the next import, reader or `cache warm` that reaches Redis delivers them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import date
from uuid import UUID

from service.observability import metrics
from service.usecases.ports import CacheUnavailable, PendingInvalidation, Services

log = logging.getLogger("scrubs.cache")
REPLAY_BATCH = 500
# A request delivers at most this many rows itself (a row is one import batch's days of one
# organisation); a longer backlog is the server's to drain in the background (drain()).
REQUEST_REPLAY_ROWS = 20


def touched(pending: list[PendingInvalidation]) -> Iterator[tuple[UUID, UUID, date]]:
    for row in pending:
        for api_key_id, day in zip(row.api_key_ids, row.days, strict=True):
            yield row.organisation_id, api_key_id, day


def deliver(services: Services, pending: list[PendingInvalidation]) -> bool:
    """Make the cache forget these rows' days, then drop the rows. False, rows kept, when
    there is no cache or it does not answer."""
    if services.cache is None or not pending:
        return False
    try:
        forgotten = services.cache.invalidate(touched(pending))
    except CacheUnavailable:
        return False
    metrics.CACHE_INVALIDATED_DAYS.inc(forgotten)
    services.ledger.forget_invalidations([row.id for row in pending])
    return True


def drain_in_background(services: Services) -> threading.Thread:
    """Deliver every pending row, beside the requests (a server starting after imports ran
    with its cache out of reach finds a backlog)."""

    def drain() -> None:
        try:
            replay(services, max_rows=10**9)
        except Exception:  # the next import or reader delivers what is left
            log.warning("could not deliver pending cache invalidations", exc_info=True)

    thread = threading.Thread(target=drain, name="outbox-drain", daemon=True)
    thread.start()
    return thread


def replay(services: Services, organisation_id: UUID | None = None, max_rows: int = 50_000) -> bool:
    """Deliver pending rows, oldest first (one organisation's, or everyone's), up to
    `max_rows`; stops at the first failure. True when none is left pending."""
    if not _can_deliver(services):  # then only whether any row is pending, not the rows
        return not services.ledger.pending_invalidations(organisation_id, 1)
    left = max_rows
    while left > 0:
        wanted = min(REPLAY_BATCH, left)
        pending = services.ledger.pending_invalidations(organisation_id, wanted)
        if not pending:
            return True
        if not deliver(services, pending):
            return False
        if len(pending) < wanted:
            return True
        left -= len(pending)
    return not services.ledger.pending_invalidations(organisation_id, 1)


def _can_deliver(services: Services) -> bool:
    """Whether a delivery may count: a cache that servers read (deliver asks again, since
    Redis may go meanwhile)."""
    if services.cache is None:
        return False
    try:
        return services.cache.is_read_by_servers()
    except CacheUnavailable:
        return False
