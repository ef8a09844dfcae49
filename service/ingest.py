"""Usage import: read JSONL or CSV as a stream, validate each line, and commit events in
batches, each batch with its rollups in one transaction (a crash never half-counts one)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import BinaryIO

import orjson
import psycopg

from schemas.usage_event import (
    InvalidEvent,
    UsageEvent,
    check_csv_header,
    event_from_csv,
    event_from_json,
)
from service import invalidation, metrics, repository
from service.context import Services

DEFAULT_BATCH_SIZE = 10_000
MAX_ATTEMPTS = 5
FORMATS = ("jsonl", "csv")
# Lines come with their number; a line is an event or the reason it is not one.
NumberedLine = tuple[int, UsageEvent | InvalidEvent]
RejectionSink = Callable[[int, str], None]


class ImportFailed(Exception):
    """The import stopped before the end; batches committed before it stay committed,
    and `report` counts them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.report = ImportReport()


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


def format_for(filename: str) -> str:
    return "csv" if filename.lower().endswith(".csv") else "jsonl"


def read_events(stream: BinaryIO, fmt: str) -> Iterator[NumberedLine]:
    return read_csv(stream) if fmt == "csv" else read_jsonl(stream)


def read_jsonl(stream: BinaryIO) -> Iterator[NumberedLine]:
    """One JSON object a line; blank lines are skipped and not counted."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield number, event_from_json(orjson.loads(line))
        except orjson.JSONDecodeError:
            yield number, InvalidEvent("not valid JSON (or not UTF-8)")
        except InvalidEvent as reason:
            yield number, reason


def read_csv(stream: BinaryIO) -> Iterator[NumberedLine]:
    """A header row, then one event a record; line numbers are the file's own lines.
    A bad header stops the import before anything is read; a bad record is one rejection."""
    # Bytes that are not UTF-8 survive decoding as surrogates so that only their line fails.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _csv_records(csv.reader(text, strict=True))
    finally:
        text.detach()  # the stream belongs to the caller


def _csv_records(reader) -> Iterator[NumberedLine]:
    try:
        header = next(reader, None)
        check_csv_header(header)
    except (InvalidEvent, csv.Error) as problem:
        raise ImportFailed(f"CSV header: {problem}") from None
    assert header is not None
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as problem:
            yield reader.line_num, InvalidEvent(f"malformed CSV: {problem}")
            continue
        if values:  # a blank line is no record
            yield reader.line_num, _csv_record(header, values)


def _csv_record(header: list[str], values: list[str]) -> UsageEvent | InvalidEvent:
    if len(values) != len(header):
        if not any(values):
            return InvalidEvent("an empty record")
        return InvalidEvent(f"{len(values)} values for {len(header)} header columns")
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return InvalidEvent("not valid UTF-8")
    try:
        return event_from_csv(dict(zip(header, values, strict=True)))
    except InvalidEvent as reason:
        return reason


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
        with services.db.connection() as conn:
            repository.create_event_stage(conn)
            for batch in _read_ahead(lines, batch_size):
                events = []
                for number, item in batch:
                    if isinstance(item, InvalidEvent):
                        on_rejected(number, str(item))
                    else:
                        events.append((number, *item))
                if events:
                    pending = _commit_batch(conn, events, report, on_rejected)
                    invalidation.deliver(services, pending, conn)
                report.read += len(batch)
                report.rejected += len(batch) - len(events)
                metrics.IMPORTED_EVENTS.labels("rejected").inc(len(batch) - len(events))
                if on_batch is not None:
                    on_batch(report)
    except ImportFailed as failure:
        failure.report = report
        raise
    invalidation.replay(services)
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
    conn: psycopg.Connection,
    events: list[tuple],
    report: ImportReport,
    on_rejected: RejectionSink,
) -> list[repository.PendingInvalidation]:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with conn.transaction():
                repository.stage_events(conn, events)
                unknown = repository.staged_lines_with_unknown_keys(conn)
                inserted, pending = repository.commit_staged_events(conn)
            break
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            if attempt == MAX_ATTEMPTS:
                raise ImportFailed(
                    f"lines {events[0][0]}-{events[-1][0]}: gave up after {attempt} attempts "
                    "against concurrent imports; re-run the import to finish"
                ) from None
            time.sleep(0.05 * attempt)
        except psycopg.errors.NumericValueOutOfRange:
            raise ImportFailed(
                f"lines {events[0][0]}-{events[-1][0]}: a day's total for one key would pass "
                "the largest storable figure (2^63-1); nothing from these lines was imported"
            ) from None
    for number, api_key_id in unknown:
        on_rejected(number, f"api_key_id {api_key_id} names no API key")
    duplicates = len(events) - len(unknown) - inserted
    report.rejected += len(unknown)
    report.inserted += inserted
    report.duplicates += duplicates
    metrics.IMPORTED_EVENTS.labels("inserted").inc(inserted)
    metrics.IMPORTED_EVENTS.labels("duplicate").inc(duplicates)
    metrics.IMPORTED_EVENTS.labels("rejected").inc(len(unknown))
    return pending
