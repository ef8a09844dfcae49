"""A report written out: the JSON answer as text, CSV (README, "The API": RFC 4180,
CRLF line ends, a header row, one row per bucket with usage, per group and bucket when
grouped, in the order of the JSON answer; a text cell a spreadsheet would run as a formula
gets a leading '), and an aligned table for a terminal."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from functools import lru_cache, partial

import orjson

from service.domain.figures import DailyFigures, UsageSummary
from service.domain.kept import KeptByIdentity
from service.domain.reports import Group, Report, Series

FORMULA_STARTS = ("=", "+", "-", "@")


def inert(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@lru_cache(maxsize=64)
def _bucket_heads(keys: tuple[str, ...]) -> list[str]:
    """Each bucket key's part of a `deltas` object, for every request of the same buckets."""
    return [f'{orjson.dumps(key).decode()}:{{"tokens":' for key in keys]


class DeltasAsJson:
    """Writes each `deltas` object of a report straight to JSON text: a report of a hundred
    keys holds thousands of deltas, which as dicts would each be an object to make, encode
    and collect. Each bucket key's part is written once for the same buckets."""

    def __init__(self) -> None:
        self._keys: list[str] | None = None
        self._heads: list[str] = []

    def __call__(self, keys: list[str], figures: Series) -> orjson.Fragment:
        if keys is not self._keys:
            self._keys = keys
            self._heads = _bucket_heads(tuple(keys))
        found = zip(self._heads, figures.tokens, figures.usage, figures.stt_duration, strict=True)
        deltas = [
            f'{head}{tokens},"usage":{usage},"stt_duration":{stt}}}'
            for head, tokens, usage, stt in found
            if tokens or usage or stt
        ]
        return orjson.Fragment("{" + ",".join(deltas) + "}")


@lru_cache(maxsize=128)  # a year's template is about 22 KB
def _deltas_template(days: tuple[date, ...]) -> bytes:
    """The `deltas` object of these days, a `%b` in place of each figure: a question asked
    again finds its days' template made (the days with usage change far less often)."""
    heads = _bucket_heads(tuple(map(date.isoformat, days)))
    entries = (head.encode() + b'%b,"usage":%b,"stt_duration":%b}' for head in heads)
    return b"{%b}" % b",".join(entries)


def daily_deltas(figures: DailyFigures) -> orjson.Fragment:
    """The `deltas` object of a daily summary, written straight to JSON text: every figure
    written by one call, put in its place in the days' template by another. TypeError for
    a figure past 64 bits, as orjson.dumps."""
    if not figures.days:
        return orjson.Fragment(b"{}")
    digits = orjson.dumps(figures.numbers)[1:-1].split(b",")
    return orjson.Fragment(_deltas_template(tuple(figures.days)) % tuple(digits))


# The answers last written, by their figures' identity and their key: the cache gives the
# same DailyFigures again while a question's cached values stay the same
# (RedisRollupCache.read), and their answer is the same text.
_written: KeptByIdentity[bytes] = KeptByIdentity()


def summary_json(summary: UsageSummary) -> bytes:
    """The JSON answer of the daily question: summary.as_json() as orjson writes it (the
    standard encoder when a figure is past 64 bits); written once for the same figures."""
    return _written.get_or_make(
        (summary.figures,), partial(_summary_json, summary), summary.api_key
    )


def _summary_json(summary: UsageSummary) -> bytes:
    try:
        return orjson.dumps(summary.as_json(daily_deltas))
    except TypeError:
        return json.dumps(summary.as_json(), separators=(",", ":")).encode()


def json_text(report: Report) -> bytes:
    """The JSON answer: report.as_json() as orjson writes it (the standard encoder when a
    figure is past 64 bits, which orjson refuses)."""
    try:
        return orjson.dumps(report.as_json(DeltasAsJson()))
    except TypeError:
        return json.dumps(report.as_json(), separators=(",", ":")).encode()


def rows(report: Report) -> tuple[list[str], list[list]]:
    """The header and the rows, in the order of the JSON answer."""
    group_by = report.query.group_by
    owner = {"api_key": ["api_key_id", "api_key_name"], "clinic": ["clinic_id", "clinic_name"]}
    header = ["bucket", *owner.get(group_by or "", []), "tokens", "usage", "stt_duration"]
    keys = report.plan.keys
    if group_by is None:
        found = zip(keys, report.figures, strict=True)
        return header, [[key, *figures] for key, figures in found if any(figures)]
    lines = []
    for group in report.groups or []:
        names = list(_owner(group))
        for key, figures in zip(keys, group.figures, strict=True):
            if any(figures):
                lines.append([key, *names, *figures])
    return header, lines


def csv_body(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header, lines = rows(report)
    writer.writerow(header)
    for line in lines:
        writer.writerow([inert(cell) if isinstance(cell, str) else cell for cell in line])
    return out.getvalue()


def table_text(report: Report) -> str:
    """Columns aligned for a terminal, figures to the right, and a total line."""
    header, lines = rows(report)
    total = report.figures.total()
    cells = [header, *[[str(c) for c in line] for line in lines]]
    cells.append(["total", *[""] * (len(header) - 4), *map(str, total)])
    widths = [max(len(row[n]) for row in cells) for n in range(len(header))]
    numeric = len(header) - 3
    return "".join(
        "  ".join(
            cell.rjust(width) if n >= numeric else cell.ljust(width)
            for n, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        + "\n"
        for row in cells
    )


def _owner(group: Group) -> tuple[str, str]:
    if group.api_key is not None:
        return str(group.api_key.id), group.api_key.name
    if group.clinic is not None:
        return group.clinic.id, group.clinic.name
    return "", ""
