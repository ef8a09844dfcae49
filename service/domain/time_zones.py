"""IANA time zones, from the pinned `tzdata` package alone (never the system's zone files,
so that every machine draws the same boundaries), and the UTC offsets they give over time.

Zones are built with `ZoneInfo.from_file` on the package's own files, only for names in the
package's `zones` list: nothing in zoneinfo's process-wide state is read or changed, and no
path is ever built from a client's text before the name is found in that list.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

import tzdata

TZDATA_VERSION: str = tzdata.__version__  # the package, e.g. "2026.6"
IANA_VERSION: str = tzdata.IANA_VERSION  # the tz database in it, e.g. "2026f"

DAY = 86_400
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MAX_ZONE_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
_NOT_PLACES = frozenset({"Factory"})  # "local time unknown": a placeholder, not a place


def _zone_names() -> frozenset[str]:
    text = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    names = {name.strip() for name in text.splitlines()} - {""} - _NOT_PLACES
    unexpected = [n for n in names if len(n) > MAX_ZONE_NAME or not _NAME.fullmatch(n)]
    if unexpected:
        raise RuntimeError(f"unexpected names in the tzdata zones list: {unexpected[:3]}")
    return frozenset(names)


ZONE_NAMES: frozenset[str] = _zone_names()


def is_zone(name: object) -> bool:
    """Exactly (case included) a name of the shipped tz database: zones and links such as
    `US/Eastern`, `EST`, `CET`; not abbreviations such as `IST`, not offsets."""
    return type(name) is str and 0 < len(name) <= MAX_ZONE_NAME and name in ZONE_NAMES


@cache  # bounded: only names of ZONE_NAMES reach it
def zone(name: str) -> ZoneInfo:
    if not is_zone(name):
        raise ValueError(f"unknown time zone {name!r}")
    *package, leaf = name.split("/")
    with resources.files(".".join(["tzdata.zoneinfo", *package])).joinpath(leaf).open("rb") as f:
        return ZoneInfo.from_file(f, key=name)


def offset_at(name: str, second: int) -> int:
    """The zone's UTC offset, in seconds, at UTC epoch second `second`."""
    return int(datetime.fromtimestamp(second, zone(name)).utcoffset().total_seconds())


def _year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY


@lru_cache(maxsize=16_384)
def _changes_in_year(name: str, year: int) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(offset at the year's first UTC instant, ((second, offset from then on), …)) for the
    changes within the UTC year. The offset is sampled once a day and each change pinned to
    the second: no two changes in the database are closer than a week."""
    second, end = _year_start(year), _year_start(year + 1)
    first = previous = offset_at(name, second)
    changes: list[tuple[int, int]] = []
    while second < end:
        following = second + DAY
        offset = offset_at(name, following)
        if offset != previous:
            low, high = second, following
            while high - low > 1:
                middle = (low + high) // 2
                if offset_at(name, middle) == previous:
                    low = middle
                else:
                    high = middle
            changes.append((high, offset))
        previous, second = offset, following
    return first, tuple(changes)


def offset_segments(name: str, low: int, high: int) -> tuple[list[int], list[int]]:
    """Constant-offset stretches covering [low, high]: stretch i starts at starts[i] (the
    first at `low`) and has offset offsets[i] until the next one starts."""
    first_year = date.fromordinal(low // DAY + EPOCH_ORDINAL).year
    last_year = date.fromordinal(high // DAY + EPOCH_ORDINAL).year
    offset, changes = _changes_in_year(name, first_year)
    for second, changed in changes:
        if second > low:
            break
        offset = changed
    starts, offsets = [low], [offset]
    for year in range(first_year, last_year + 1):
        for second, changed in _changes_in_year(name, year)[1]:
            if low < second <= high:
                starts.append(second)
                offsets.append(changed)
    return starts, offsets
