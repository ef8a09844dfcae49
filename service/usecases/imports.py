"""Usage import: events committed in batches, each batch with its rollups and its cache
invalidations in one transaction (a crash never half-counts one), then delivered to the
cache before the next batch, so figures are current when an import returns."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from service.domain.usage_events import (
    IN_THE_FUTURE,
    TOO_OLD,
    InvalidEvent,
    NumberedLine,
    latest_acceptable,
    retention_cutoff,
)
from service.observability import metrics
from service.usecases import invalidations
from service.usecases.errors import OperationFailed
from service.usecases.ports import (
    FigureTooLarge,
    ImportConflict,
    ImportSession,
    PendingInvalidation,
    Services,
)

DEFAULT_BATCH_SIZE = 10_000
CONNECTIONS = 2
MAX_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 0.05  # times the attempt number
TOO_LARGE = "the figures of key {key} on {day} would pass the largest storable (2^63-1)"
RejectionSink = Callable[[int, str], None]


@dataclass
class ImportReport:
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    pending_invalidations: bool = False  # the cache has not been told of everything yet

    def as_json(self) -> dict[str, int]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


class ImportFailed(OperationFailed):
    """The import stopped before the end; batches committed before it stay committed,
    and `report` counts them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.report = ImportReport()


def import_events(
    services: Services,
    lines: Iterable[NumberedLine],
    *,
    on_rejected: RejectionSink,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[ImportReport], None] | None = None,
    connections: int = CONNECTIONS,
) -> ImportReport:
    """Import every valid line; rejected lines go to `on_rejected(line_number, reason)`.
    Each batch is split by a hash of event_id over `connections` connections committing at
    once (Postgres then works on as many cores; every line of one id goes through one
    connection, in file order, so the first still wins). Each batch's cache invalidations
    are delivered right after its commit, so the figures are current when this returns;
    any left from earlier imports are delivered at the end.

    With a retention window (EVENT_RETENTION_DAYS), raw events past it are dropped first
    and lines older than it are rejected: too old to be told from a resend."""
    report = ImportReport()
    retention = services.settings.event_retention_days
    cutoff = retention_cutoff(datetime.now(UTC), retention)
    if cutoff is not None:
        services.ledger.drop_events_before(cutoff.date())
    try:
        with ExitStack() as stack:
            sessions = [
                stack.enter_context(services.ledger.import_session()) for _ in range(connections)
            ]
            committer = stack.enter_context(
                ThreadPoolExecutor(max_workers=connections, thread_name_prefix="import-commit")
            )
            for batch in _read_ahead(lines, batch_size):
                shares: list[list[tuple]] = [[] for _ in sessions]
                now = datetime.now(UTC)
                latest = latest_acceptable(now)
                cutoff = retention_cutoff(now, retention)
                rejected = 0
                for number, item in batch:
                    if isinstance(item, InvalidEvent):
                        on_rejected(number, str(item))
                        rejected += 1
                    elif item.occurred_at > latest:
                        on_rejected(number, IN_THE_FUTURE)
                        rejected += 1
                    elif cutoff is not None and item.occurred_at < cutoff:
                        on_rejected(number, TOO_OLD.format(days=retention, cutoff=cutoff.date()))
                        rejected += 1
                    else:
                        shares[hash(item.event_id) % connections].append((number, *item))
                metrics.IMPORTED_EVENTS.labels("rejected").inc(rejected)
                futures = [
                    committer.submit(_commit_batch, session, share)
                    for session, share in zip(sessions, shares, strict=True)
                    if share
                ]
                outcomes = [future.result() for future in futures]
                for outcome in outcomes:
                    for number, reason in outcome.rejected:
                        on_rejected(number, reason)
                    report.inserted += outcome.inserted
                    report.duplicates += outcome.duplicates
                    rejected += len(outcome.rejected)
                # One delivery for the batch: a day both shares touched is forgotten once.
                pending = [row for outcome in outcomes for row in outcome.pending]
                invalidations.deliver(services, pending, sessions[0].forget_invalidations)
                report.read += len(batch)
                report.rejected += rejected
                if on_batch is not None:
                    on_batch(report)
    except ImportFailed as failure:
        failure.report = report
        raise
    report.pending_invalidations = not invalidations.replay(services)
    return report


def _read_ahead(lines: Iterable[NumberedLine], batch_size: int) -> Iterator[list[NumberedLine]]:
    """Batches of lines, each read and validated in a thread of its own while the one before
    is being committed (the database wait releases the GIL): the two costs overlap."""
    iterator = iter(lines)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-reader") as reader:
        upcoming = reader.submit(lambda: list(islice(iterator, batch_size)))
        while batch := upcoming.result():
            upcoming = reader.submit(lambda: list(islice(iterator, batch_size)))
            yield batch


@dataclass
class Committed:
    """What one connection's share of a batch came to."""

    inserted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    pending: list[PendingInvalidation] = field(default_factory=list)

    def __add__(self, other: Committed) -> Committed:
        return Committed(
            self.inserted + other.inserted,
            self.duplicates + other.duplicates,
            self.rejected + other.rejected,
            self.pending + other.pending,
        )


def _commit_batch(session: ImportSession, events: list[tuple]) -> Committed:
    """Events in one transaction, tried again (whole) when it meets a concurrent import. A
    share that would take a key's day past the largest storable figure is committed in
    halves, down to the lines that would, which are rejected."""
    lines = f"lines {events[0][0]}-{events[-1][0]}"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            outcome = session.commit_batch(events)
            break
        except ImportConflict:
            if attempt == MAX_ATTEMPTS:
                raise ImportFailed(
                    f"{lines}: gave up after {attempt} attempts against concurrent imports; "
                    "re-run the import to finish"
                ) from None
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
        except FigureTooLarge:
            if len(events) == 1:
                number, _, api_key_id, occurred_at, *_ = events[0]
                reason = TOO_LARGE.format(key=api_key_id, day=occurred_at.date())
                metrics.IMPORTED_EVENTS.labels("rejected").inc()
                return Committed(rejected=[(number, reason)])
            half = len(events) // 2
            return _commit_batch(session, events[:half]) + _commit_batch(session, events[half:])
    unknown = [
        (number, f"api_key_id {api_key_id} names no API key")
        for number, api_key_id in outcome.unknown_keys
    ]
    duplicates = len(events) - len(unknown) - outcome.inserted
    metrics.IMPORTED_EVENTS.labels("inserted").inc(outcome.inserted)
    metrics.IMPORTED_EVENTS.labels("duplicate").inc(duplicates)
    metrics.IMPORTED_EVENTS.labels("rejected").inc(len(unknown))
    return Committed(outcome.inserted, duplicates, unknown, outcome.pending)
