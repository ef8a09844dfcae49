"""Usage import: events committed in batches, each batch with its rollups and its cache
invalidations in one transaction (a crash never half-counts one), then delivered to the
cache while the next batch commits, so figures are current when an import returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import islice

from service.domain.usage_events import (
    FORGOTTEN,
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
    """The import stopped before the end; batches committed before it stay committed, and
    the import's report counts them."""


def import_events(
    services: Services,
    lines: Iterable[NumberedLine],
    *,
    on_rejected: RejectionSink,
    batch_size: int = DEFAULT_BATCH_SIZE,
    connections: int = CONNECTIONS,
    report: ImportReport | None = None,
) -> ImportReport:
    """Import every valid line; rejected lines go to `on_rejected(line_number, reason)`.
    `report` (a new one by default) counts what is committed as the import goes: when it
    fails, whatever the failure, the report holds what was committed before it.
    Each batch is shared over `connections` connections (Postgres then works on as many
    cores; see Sorter), each committing its shares in file order on a thread of its own:
    a connection goes on to its share of the next batch without waiting for the others to
    finish this one. Each batch's cache invalidations are delivered once all its shares
    have committed, while the next batch commits, so the figures are current when this
    returns; any left from earlier imports are delivered at the end.

    With a retention window (EVENT_RETENTION_DAYS), raw events past it are dropped first
    and lines older than it are rejected: too old to be told from a resend. So are lines
    older than any window applied before, whatever this import's (Ledger.ids_kept_from)."""
    report = ImportReport() if report is None else report
    retention = services.settings.event_retention_days
    cutoff = retention_cutoff(datetime.now(UTC), retention)
    if cutoff is not None:
        services.ledger.drop_events_before(cutoff.date())
    kept_from = services.ledger.ids_kept_from()
    forgotten = None if kept_from is None else datetime.combine(kept_from, datetime.min.time(), UTC)
    with ExitStack() as stack:
        sessions = [
            stack.enter_context(services.ledger.import_session()) for _ in range(connections)
        ]
        lanes = [
            stack.enter_context(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-commit-{n}")
            )
            for n in range(connections)
        ]
        stop = threading.Event()  # a share failed: the shares after it are not tried
        sort = Sorter(connections, retention, services.ledger.prepare_batch, forgotten)
        settle = partial(_settle, services, report, on_rejected)
        in_flight: list[InFlight] = []  # handed out and not yet settled, in file order
        try:
            for batch in _read_ahead(lines, batch_size, sort):
                handed = InFlight(batch, [])
                in_flight.append(handed)
                for lane, session, share, prepared in zip(
                    lanes, sessions, batch.shares, batch.prepared, strict=True
                ):
                    if share:
                        commit = lane.submit(_commit_share, stop, session, share, prepared)
                        handed.shares.append(commit)
                if len(in_flight) == 2:
                    settle(in_flight)
            while in_flight:
                settle(in_flight)
        except BaseException:  # a share's failure, a read error, an interrupt
            stop.set()
            while in_flight:  # calls off what has not started, counts what committed
                settle(in_flight, failed=True)
            raise
    report.pending_invalidations = not invalidations.replay(services)
    return report


@dataclass
class InFlight:
    """A batch whose shares were handed to their connections."""

    batch: SortedBatch
    shares: list[Future[Committed | None]]  # each share's commit


def _settle(
    services: Services,
    report: ImportReport,
    on_rejected: RejectionSink,
    in_flight: list[InFlight],
    failed: bool = False,
) -> None:
    """Wait for the first batch's shares, then take it from `in_flight`, count the shares
    committed and deliver their invalidations; then raise the first share's failure, if
    any. An interrupt while waiting leaves the batch in `in_flight`. `failed`: the import
    is failing, so the shares not yet started are called off, and this batch's own failure
    is not raised."""
    shares = in_flight[0].shares
    if failed:
        for commit in shares:
            commit.cancel()
    wait(shares)
    batch = in_flight.pop(0).batch
    outcomes: list[Committed] = []
    failure: BaseException | None = None
    for commit in shares:
        if commit.cancelled():
            continue
        if (error := commit.exception()) is not None:
            if isinstance(error, CutShort):  # its committed parts count
                outcomes.append(error.committed)
                error = error.__cause__
            failure = failure or error
            continue
        if (outcome := commit.result()) is not None:
            outcomes.append(outcome)
    # The lines refused before the database, and those of every share committed, are read;
    # so read = inserted + duplicates + rejected even for a batch cut short.
    refused = [*batch.rejected, *(line for outcome in outcomes for line in outcome.rejected)]
    for number, reason in sorted(refused):  # in file order, whichever share refused it
        on_rejected(number, reason)
    metrics.IMPORTED_EVENTS.labels("rejected").inc(len(batch.rejected))
    report.read += len(batch.rejected) + sum(outcome.lines for outcome in outcomes)
    report.rejected += len(refused)
    for outcome in outcomes:
        report.inserted += outcome.inserted
        report.duplicates += outcome.duplicates
    # One delivery for the batch, on a connection of its own (the import's are committing
    # the next batch): a day both shares touched is forgotten once.
    invalidations.deliver(services, [row for outcome in outcomes for row in outcome.pending])
    if failure is not None and not failed:
        raise failure


def _commit_share(
    stop: threading.Event, session: ImportSession, events: list[tuple], prepared: bytes
) -> Committed | None:
    """A share committed, or None, untried, when a share before it failed (the import is
    stopping: what it committed stays, and a new run finishes the job)."""
    if stop.is_set():
        return None
    try:
        return _commit_batch(session, events, prepared)
    except BaseException:
        stop.set()
        raise


@dataclass
class SortedBatch:
    """Lines read and checked: each valid event, as (line number, *UsageEvent), in the
    share of the connection that commits it, and the lines refused before the database."""

    read: int
    shares: list[list[tuple]]
    prepared: list[bytes]  # each share, as Ledger.prepare_batch makes it
    rejected: list[tuple[int, str]]  # (line number, reason)


@dataclass
class Sorter:
    """Sorts each batch's lines into the connections' shares, batch after batch in file
    order (in the thread that reads them)."""

    connections: int
    retention: int | None
    prepare: Callable[[list[tuple]], bytes]
    forgotten_before: datetime | None = None  # events before it are refused: ids forgotten
    # The share each event_id of the batch before went to: a connection may still be
    # committing its share of that batch while the other commits its share of this one.
    before: dict[str, int] = field(default_factory=dict)

    def __call__(self, batch: list[NumberedLine]) -> SortedBatch:
        """Shares by API key, so that no two connections update one key's rollups. Every
        line of one event_id goes to the share of its first line, so that the first still
        wins: the share it went to in this batch or in the one before (a batch is handed
        out once the one two before it has committed whole)."""
        now = datetime.now(UTC)
        latest = latest_acceptable(now)
        cutoff = retention_cutoff(now, self.retention)
        forgotten = self.forgotten_before
        shares: list[list[tuple]] = [[] for _ in range(self.connections)]
        rejected: list[tuple[int, str]] = []
        owner: dict[str, int] = {}  # event_id: the share of its first line
        for number, item in batch:
            if isinstance(item, InvalidEvent):
                rejected.append((number, str(item)))
            elif item.occurred_at > latest:
                rejected.append((number, IN_THE_FUTURE))
            elif cutoff is not None and item.occurred_at < cutoff:
                reason = TOO_OLD.format(days=self.retention, cutoff=cutoff.date())
                rejected.append((number, reason))
            elif forgotten is not None and item.occurred_at < forgotten:
                rejected.append((number, FORGOTTEN.format(day=forgotten.date())))
            else:
                share = owner.get(item.event_id)
                if share is None:
                    by_key = hash(item.api_key_id) % self.connections
                    share = owner[item.event_id] = self.before.get(item.event_id, by_key)
                shares[share].append((number, *item))
        self.before = owner
        prepared = [self.prepare(share) if share else b"" for share in shares]
        return SortedBatch(len(batch), shares, prepared, rejected)


def _read_ahead(
    lines: Iterable[NumberedLine],
    batch_size: int,
    sort: Callable[[list[NumberedLine]], SortedBatch],
) -> Iterator[SortedBatch]:
    """Batches of lines, each read, validated and sorted in a thread of its own while the
    one before is being committed (the database wait releases the GIL): the costs overlap."""
    iterator = iter(lines)

    def read() -> SortedBatch:
        return sort(list(islice(iterator, batch_size)))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-reader") as reader:
        upcoming = reader.submit(read)
        while (batch := upcoming.result()).read:
            upcoming = reader.submit(read)
            yield batch


@dataclass
class Committed:
    """What one connection's share of a batch came to."""

    inserted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    pending: list[PendingInvalidation] = field(default_factory=list)

    @property
    def lines(self) -> int:
        """The lines it came to: each was inserted, a duplicate or rejected."""
        return self.inserted + self.duplicates + len(self.rejected)

    def __add__(self, other: Committed) -> Committed:
        return Committed(
            self.inserted + other.inserted,
            self.duplicates + other.duplicates,
            self.rejected + other.rejected,
            self.pending + other.pending,
        )


class CutShort(Exception):
    """A share committed in parts stopped after some had committed: what they came to.
    The failure that stopped it is the cause."""

    def __init__(self, committed: Committed) -> None:
        super().__init__(committed)
        self.committed = committed


def _commit_batch(
    session: ImportSession, events: list[tuple], prepared: bytes | None = None
) -> Committed:
    """Events in one transaction, tried again (whole) when it meets a concurrent import. A
    share that would take a key's day past the largest storable figure is committed in
    halves, down to the lines that would, which are rejected; a half that then fails
    raises CutShort, so that the halves committed before it are still counted."""
    lines = f"lines {events[0][0]}-{events[-1][0]}"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            outcome = session.commit_batch(events, prepared)
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
            first = _commit_batch(session, events[:half])
            try:
                return first + _commit_batch(session, events[half:])
            except CutShort as cut:
                raise CutShort(first + cut.committed) from cut.__cause__
            except BaseException as failure:
                raise CutShort(first) from failure
    unknown = [
        (number, f"api_key_id {api_key_id} names no API key")
        for number, api_key_id in outcome.unknown_keys
    ]
    duplicates = len(events) - len(unknown) - outcome.inserted
    metrics.IMPORTED_EVENTS.labels("inserted").inc(outcome.inserted)
    metrics.IMPORTED_EVENTS.labels("duplicate").inc(duplicates)
    metrics.IMPORTED_EVENTS.labels("rejected").inc(len(unknown))
    return Committed(outcome.inserted, duplicates, unknown, outcome.pending)
