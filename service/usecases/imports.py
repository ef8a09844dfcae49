"""Usage import: events committed in batches, each batch with its rollups and its cache
invalidations in one transaction (a crash never half-counts one), then delivered to the
cache before the next batch, so figures are current when an import returns."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from service.domain.usage_events import (
    InvalidEvent,
    NumberedLine,
    UsageEvent,
    check_not_in_future,
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
) -> ImportReport:
    """Import every valid line; rejected lines go to `on_rejected(line_number, reason)`.
    Each batch's cache invalidations are delivered right after its commit, so the figures
    are current when this returns; any left from earlier imports are delivered at the end."""
    report = ImportReport()
    try:
        with services.ledger.import_session() as session:
            for batch in _read_ahead(lines, batch_size):
                events = []
                now = datetime.now(UTC)
                for number, item in batch:
                    if isinstance(item, UsageEvent):
                        try:
                            check_not_in_future(item, now)
                        except InvalidEvent as reason:
                            item = reason
                    if isinstance(item, InvalidEvent):
                        on_rejected(number, str(item))
                    else:
                        events.append((number, *item))
                if events:
                    pending = _commit_batch(session, events, report, on_rejected)
                    invalidations.deliver(services, pending, session.forget_invalidations)
                report.read += len(batch)
                report.rejected += len(batch) - len(events)
                metrics.IMPORTED_EVENTS.labels("rejected").inc(len(batch) - len(events))
                if on_batch is not None:
                    on_batch(report)
    except ImportFailed as failure:
        failure.report = report
        raise
    invalidations.replay(services)
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


def _commit_batch(
    session: ImportSession,
    events: list[tuple],
    report: ImportReport,
    on_rejected: RejectionSink,
) -> list[PendingInvalidation]:
    """One batch in one transaction, tried again (whole) when it meets a concurrent import.
    A batch that would take a key's day past the largest storable figure is committed in
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
                on_rejected(number, TOO_LARGE.format(key=api_key_id, day=occurred_at.date()))
                report.rejected += 1
                metrics.IMPORTED_EVENTS.labels("rejected").inc()
                return []
            half = len(events) // 2
            return [
                *_commit_batch(session, events[:half], report, on_rejected),
                *_commit_batch(session, events[half:], report, on_rejected),
            ]
    for number, api_key_id in outcome.unknown_keys:
        on_rejected(number, f"api_key_id {api_key_id} names no API key")
    duplicates = len(events) - len(outcome.unknown_keys) - outcome.inserted
    report.rejected += len(outcome.unknown_keys)
    report.inserted += outcome.inserted
    report.duplicates += duplicates
    metrics.IMPORTED_EVENTS.labels("inserted").inc(outcome.inserted)
    metrics.IMPORTED_EVENTS.labels("duplicate").inc(duplicates)
    metrics.IMPORTED_EVENTS.labels("rejected").inc(len(outcome.unknown_keys))
    return outcome.pending
