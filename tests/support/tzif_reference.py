"""An independent reader of the tz database, used only as the tests' oracle for offset changes.

It reads the TZif files (RFC 8536, versions 1 to 4) of the installed `tzdata` package through
importlib.resources and expands their POSIX TZ footer rule itself, so the changes it yields
come neither from `zoneinfo` nor from the service's own code.
"""

from __future__ import annotations

import calendar
import re
import struct
from dataclasses import dataclass
from datetime import date
from importlib import resources

DAY = 86_400


def read_tzif_bytes(key: str) -> bytes:
    *package, leaf = key.split("/")
    return resources.files(".".join(["tzdata.zoneinfo", *package])).joinpath(leaf).read_bytes()


@dataclass(frozen=True)
class TZif:
    transitions: list[int]  # UTC seconds
    types: list[int]  # index into offsets, one per transition
    offsets: list[int]  # UTC offset of each local time type
    footer: str  # POSIX TZ rule for instants after the last transition


def parse_tzif(data: bytes) -> TZif:
    def header(at: int) -> tuple[bytes, tuple[int, ...]]:
        if data[at : at + 4] != b"TZif":
            raise ValueError("not a TZif file")
        return data[at + 4 : at + 5], struct.unpack(">6l", data[at + 20 : at + 44])

    version, counts = header(0)
    isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt = counts
    at, size = 44, 4
    if version >= b"2":  # the 64-bit block that follows the version 1 block is the whole story
        at += timecnt * 5 + typecnt * 6 + charcnt + leapcnt * 8 + isstdcnt + isutcnt
        version, counts = header(at)
        isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt = counts
        at, size = at + 44, 8
    fmt = f">{timecnt}{'q' if size == 8 else 'l'}"
    transitions = list(struct.unpack(fmt, data[at : at + timecnt * size]))
    at += timecnt * size
    types = list(data[at : at + timecnt])
    at += timecnt
    offsets = [struct.unpack(">lBB", data[at + 6 * i : at + 6 * i + 6])[0] for i in range(typecnt)]
    at += typecnt * 6 + charcnt + leapcnt * (size + 4) + isstdcnt + isutcnt
    footer = ""
    if size == 8:
        rest = data[at:]
        if rest[:1] != b"\n":
            raise ValueError("TZif footer does not start with a newline")
        footer = rest[1 : rest.index(b"\n", 1)].decode()
    return TZif(transitions, types, offsets, footer)


_NAME = r"(?:<[^>]*>|[A-Za-z]+)"
_OFFSET = r"[+-]?\d{1,3}(?::\d{1,2}(?::\d{1,2})?)?"
_RULE = rf"(?:J\d+|\d+|M\d+\.\d\.\d)(?:/{_OFFSET})?"
_TZ = re.compile(rf"^({_NAME})({_OFFSET})(?:({_NAME})({_OFFSET})?(?:,({_RULE}),({_RULE}))?)?$")


def _seconds(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    parts = [int(p) for p in text.lstrip("+-").split(":")] + [0, 0]
    return sign * (parts[0] * 3600 + parts[1] * 60 + parts[2])


def _day_of_year(rule: str, year: int) -> int:
    """0-based day of the year of a POSIX date rule."""
    if rule.startswith("J"):  # 1..365, 29 February never counted
        day = int(rule[1:]) - 1
        return day + 1 if calendar.isleap(year) and day >= 59 else day
    if rule.startswith("M"):
        month, week, weekday = (int(x) for x in rule[1:].split("."))
        first = (calendar.weekday(year, month, 1) + 1) % 7  # 0 is Sunday in POSIX
        day = 1 + (weekday - first) % 7 + (week - 1) * 7
        while day > calendar.monthrange(year, month)[1]:
            day -= 7
        return (date(year, month, day) - date(year, 1, 1)).days
    return int(rule)  # 0-based, 29 February counted


def posix_changes(footer: str, year: int) -> list[tuple[int, int]]:
    """[(UTC second, offset from then on)] that the footer rule makes in `year`, in order."""
    match = _TZ.match(footer)
    if not match:
        raise ValueError(f"cannot parse TZ footer {footer!r}")
    _, std_text, dst_name, dst_text, start, end = match.groups()
    standard = -_seconds(std_text)
    if not dst_name or not start:
        return []
    daylight = -_seconds(dst_text) if dst_text else standard + 3600

    def instant(rule: str, offset_before: int) -> int:
        day, _, clock = rule.partition("/")
        year_start = calendar.timegm((year, 1, 1, 0, 0, 0))
        local = year_start + _day_of_year(day, year) * DAY + (_seconds(clock) if clock else 7200)
        return local - offset_before

    return sorted([(instant(start, standard), daylight), (instant(end, daylight), standard)])


def transitions(key: str, low: int, high: int) -> tuple[int, list[tuple[int, int, int]]]:
    """The offset in force at `low`, and the changes (second, before, after) with
    low < second < high where the UTC offset really changes."""
    tz = parse_tzif(read_tzif_bytes(key))
    points = [(t, tz.offsets[i]) for t, i in zip(tz.transitions, tz.types, strict=True)]
    last = tz.transitions[-1] if tz.transitions else None
    if tz.footer:
        first_year = 1800 if last is None else last // DAY // 365 + 1969
        for year in range(first_year, high // DAY // 365 + 1972):
            yearly = posix_changes(tz.footer, year)
            points += [(t, o) for t, o in yearly if last is None or t > last]
    points.sort()
    # RFC 8536: local time type 0 applies before the first transition
    current = tz.offsets[0]
    if tz.footer and not tz.transitions:
        current = -_seconds(_TZ.match(tz.footer).group(2))
    at_low = None
    changes = []
    for t, offset in points:
        if t <= low:
            current = offset
            continue
        if at_low is None:
            at_low = current
        if t >= high:
            break
        if offset != current:
            changes.append((t, current, offset))
        current = offset
    return (current if at_low is None else at_low), changes
