"""Files of usage events as `usage import` reads them: JSONL or CSV, as a stream of
numbered lines, each a valid event or the reason it is not one."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from service.domain import json_numbers
from service.domain.usage_events import (
    MAX_LINE_BYTES,
    InvalidEvent,
    NumberedLine,
    UsageEvent,
    check_csv_header,
    event_from_csv,
    event_from_json,
    usual_csv_events,
)
from service.usecases.imports import ImportFailed

FORMATS = ("jsonl", "csv")
BOM = b"\xef\xbb\xbf"
READ_PAST_CHUNK = 1 << 20
TOO_LONG = f"the line is longer than {MAX_LINE_BYTES // 1024} KiB"


def format_for(filename: str) -> str:
    return "csv" if filename.lower().endswith(".csv") else "jsonl"


def read_events(stream: BinaryIO, fmt: str) -> Iterator[NumberedLine]:
    return read_csv(stream) if fmt == "csv" else read_jsonl(stream)


def bounded_lines(stream: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The stream's lines, each at most `limit` bytes plus its line end; None in place of a
    longer line, which is read past without being held (a line of 200 MB costs 64 KiB)."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or (line.endswith(b"\n") and len(line.rstrip(b"\r\n")) <= limit):
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = stream.readline(READ_PAST_CHUNK)
        yield None


def read_jsonl(stream: BinaryIO) -> Iterator[NumberedLine]:
    """One JSON object a line; blank lines are skipped and not counted; a byte order mark
    before the first line is ignored."""
    for number, line in enumerate(bounded_lines(stream), start=1):
        if line is None:
            yield number, InvalidEvent(TOO_LONG)
            continue
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        if not line.strip():
            continue
        try:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                # Valid JSON that orjson refuses (a number past a double's range) is
                # rejected for its field; anything else is not JSON.
                event_from_json(_read_strictly(line))
                raise
            if isinstance(obj, dict) and _may_repeat_a_field(line, obj):
                _read_strictly(line)
            yield number, event_from_json(obj)
        except InvalidEvent as reason:  # a ValueError too: caught first, its reason kept
            yield number, reason
        except (ValueError, RecursionError):  # orjson's and json's decode errors included
            yield number, InvalidEvent(_not_json(number, line))


def _not_json(number: int, line: bytes) -> str:
    if number == 1 and b"event_id" in line and b"," in line and not line.lstrip().startswith(b"{"):
        return "not valid JSON: this looks like a CSV header; import CSV with --format csv"
    return "not valid JSON (or not UTF-8)"


def _may_repeat_a_field(line: bytes, obj: dict) -> bool:
    """False when the line cannot hold a field twice: every field name is written out once
    (no escapes). orjson keeps the last of repeated fields silently; the rare line that may
    repeat one is read again, strictly."""
    if b"\\" in line:
        return True
    return any(line.count(b'"%s"' % name.encode()) != 1 for name in obj)


def _read_strictly(line: bytes) -> Any:
    """The line as Python's own reader takes it, a field named twice refused: slower than
    orjson, but it reads integers of any length (json_numbers.integer)."""
    return json.loads(
        line,
        object_pairs_hook=_object_without_repeats,
        parse_int=json_numbers.integer,
        parse_constant=_not_a_number,
    )


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        raise InvalidEvent(f"field {twice!r} appears twice")
    return found


def read_csv(stream: BinaryIO, *, shortcut: bool = True) -> Iterator[NumberedLine]:
    """A header row, then one event a record; line numbers are the file's own lines.
    A bad header stops the import before anything is read; a bad record is one rejection.
    `shortcut`: a line with no quotes and a record in the usual shape is split and judged
    in one go; every other line goes through the csv module and event_from_csv, as every
    line does without it (the same outcome, at about half the cost)."""
    lines = _TextLines(stream)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if lines.too_long:
            raise InvalidEvent(TOO_LONG)
        check_csv_header(header)
    except (InvalidEvent, csv.Error) as problem:
        raise ImportFailed(f"CSV header: {problem}") from None
    assert header is not None
    usual = usual_csv_events(header) if shortcut else None
    for line in lines:
        if usual is not None:
            plain = _unquoted(line)
            if plain == "":  # a blank line (or one over the limit) is no record
                yield from lines.too_long_until(lines.number)
                continue
            if plain is not None and (event := usual(plain.split(","))) is not None:
                if lines.too_long:
                    yield from lines.too_long_until(lines.number)
                yield lines.number, event
                continue
        lines.again(line)
        try:
            values = next(reader)
        except csv.Error as problem:
            yield lines.number, InvalidEvent(f"malformed CSV: {problem}")
            continue
        yield from lines.too_long_until(lines.number)
        if values:  # a blank line is no record
            yield lines.number, _csv_record(header, values)
    yield from lines.too_long_until(lines.number)


def _unquoted(line: str) -> str | None:
    """The line without its line end when the csv module would split it at every comma:
    it holds no quote and no other line break. None otherwise."""
    if line.endswith("\n"):
        line = line[:-2] if line.endswith("\r\n") else line[:-1]
    if '"' in line or "\r" in line or "\n" in line:
        return None
    return line


class _TextLines:
    """The stream's lines as text, a byte order mark before the first dropped; bytes that
    are not UTF-8 survive as surrogates, so that only their record fails. A line over the
    limit becomes an empty one, its number kept in `too_long`. `number`: the lines read so
    far; a line handed back with `again` is read once more, not counted twice."""

    def __init__(self, stream: BinaryIO) -> None:
        self._lines = enumerate(bounded_lines(stream), start=1)
        self._again: str | None = None
        self.number = 0
        self.too_long: list[int] = []

    def __iter__(self) -> _TextLines:
        return self

    def __next__(self) -> str:
        if self._again is not None:
            line, self._again = self._again, None
            return line
        self.number, line = next(self._lines)
        if line is None:
            self.too_long.append(self.number)
            return "\n"
        if self.number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        return line.decode("utf-8", "surrogateescape")

    def again(self, line: str) -> None:
        self._again = line

    def too_long_until(self, number: int) -> list[NumberedLine]:
        """The rejections of the lines over the limit up to line `number`, in order."""
        found: list[NumberedLine] = []
        while self.too_long and self.too_long[0] <= number:
            found.append((self.too_long.pop(0), InvalidEvent(TOO_LONG)))
        return found


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
