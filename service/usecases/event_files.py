"""Files of usage events as `usage import` reads them: JSONL or CSV, as a stream of
numbered lines, each a valid event or the reason it is not one."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import BinaryIO

import orjson

from service.domain.usage_events import (
    InvalidEvent,
    NumberedLine,
    UsageEvent,
    check_csv_header,
    event_from_csv,
    event_from_json,
)
from service.usecases.imports import ImportFailed

FORMATS = ("jsonl", "csv")


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
