"""The buckets of a question asked in a time zone: each bucket's key and the UTC instants
it spans, as epoch seconds.

A local date's first instant is the earliest UTC instant whose local date is on or after it:
local midnight, or the moment a clock change that skips midnight lands on (01:00 in
Havana). The range runs from the first instant of `start` to that of the day after `end`, so
a local day lasts 23, 24 or 25 hours around a change. Buckets are contiguous and ascending;
a local date that never existed (Apia, 2011-12-30) makes an empty bucket, which is left out.

- day: `YYYY-MM-DD`, one local date.
- week: the Monday's `YYYY-MM-DD`, Monday to Sunday, cut to the range at both ends.
- month: `YYYY-MM`, cut to the range at both ends.
- hour: local RFC 3339 of the bucket's start, `2025-11-02T01:00:00-04:00` (a zero offset is
  `+00:00`): edges where the clock reads HH:00:00, at every change of offset and at every
  day's first instant, so that a bucket is one hour of the local clock at one offset. A
  fall-back repeats 01:00 (two buckets, told apart by their offsets); a skipped hour does
  not exist; a change of 30 or 45 minutes leaves part of an hour: when Lord Howe's clocks
  go from 02:00 to 02:30, hour 2 is the half hour `02:30:00+11:00`, and when they go back
  from 02:00 to 01:30, the repeated half hour is `01:30:00+10:30`. A change off the UTC
  quarter-hours (St John's at 00:01, until 2011) stays within the hour it falls in: the
  rollups could not split there.

Every edge falls on a UTC quarter-hour for every zone since 1980 (every offset in use since
then is a multiple of 15 minutes); older history with other offsets (Monrovia's -00:44:30)
is refused, never approximated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise

from service.domain.time_zones import DAY, EPOCH_ORDINAL, offset_segments

GRANULARITIES = ("hour", "day", "week", "month")
MAX_HOUR_DAYS = 31
QUARTER = 900
HOUR = 3600
# Zones other than UTC are computed within these dates (local mean time before 1900 is never
# on quarter-hours, and the day after the last must still be a date).
FIRST_ZONED_DATE = date(1900, 1, 1)
LAST_ZONED_DATE = date(9998, 12, 28)  # its offsets are looked up to a few days past it


class OutsideZoneRules(ValueError):
    """An edge of the question does not fall on a UTC quarter-hour, or the dates lie outside
    those the service computes: the figures could not be exact (or written down). `field`
    is the date to change: `start_date` when the range begins too early for the zone,
    `end_date` when it ends too late."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class BucketPlan:
    keys: list[str]  # one per bucket, ascending in time
    edges: list[int]  # len(keys) + 1 UTC epoch seconds: bucket i is [edges[i], edges[i + 1])

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.edges[0], UTC)

    @property
    def end(self) -> datetime:
        """Exclusive."""
        return datetime.fromtimestamp(self.edges[-1], UTC)


def plan(start: date, end: date, zone_name: str, granularity: str) -> BucketPlan:
    """The buckets of [start, end] (local dates, both included) in the zone."""
    first, last = start.toordinal(), end.toordinal()
    if granularity in ("day", "hour"):
        ordinals: list[int] = list(range(first, last + 2))
    elif granularity == "week":
        monday = first - (first + 6) % 7 + 7
        ordinals = [first, *range(monday, last + 1, 7), last + 1]
    else:
        ordinals = [first, *_month_firsts(start, end), last + 1]
    starts, offsets = _first_instants(zone_name, ordinals)
    if granularity == "hour":
        return _hours(zone_name, starts, offsets)
    if granularity == "day":
        keys = _day_keys(first, last)
    elif granularity == "week":
        keys = [_day_key(ordinal - (ordinal + 6) % 7) for ordinal in ordinals[:-1]]
    else:
        keys = [_day_key(ordinal)[:7] for ordinal in ordinals[:-1]]
    return _without_empty(keys, starts)


def _month_firsts(start: date, end: date) -> list[int]:
    found = []
    year, month = start.year, start.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        if (year, month) > (end.year, end.month):
            return found
        found.append(date(year, month, 1).toordinal())


def _without_empty(keys: list[str], edges: list[int]) -> BucketPlan:
    if all(a != b for a, b in pairwise(edges)):
        return BucketPlan(keys, edges)
    kept_keys, kept_edges = [], [edges[0]]
    for key, edge in zip(keys, edges[1:], strict=True):
        if edge != kept_edges[-1]:  # an empty bucket: a date that never existed here
            kept_keys.append(key)
            kept_edges.append(edge)
    return BucketPlan(kept_keys, kept_edges)


def _first_instants(zone_name: str, ordinals: list[int]) -> tuple[list[int], list[int]]:
    """For increasing local date ordinals: the first UTC second of each, and the offset then.
    A zone's own bounds are checked before Python's, which lie beyond them: a date past both
    is refused for the reason that a date one day earlier would still meet."""
    last = ordinals[-1] - 1  # the day after the range is the last ordinal
    if zone_name != "UTC":
        if ordinals[0] < FIRST_ZONED_DATE.toordinal():
            raise OutsideZoneRules(
                "start_date",
                f"In time zones other than UTC, start_date must be {FIRST_ZONED_DATE} or later.",
            )
        if last > LAST_ZONED_DATE.toordinal():
            raise OutsideZoneRules(
                "end_date",
                f"In time zones other than UTC, end_date must be {LAST_ZONED_DATE} or earlier.",
            )
    if ordinals[-1] > date.max.toordinal():  # the end of 9999-12-31 is no date of Python's
        raise OutsideZoneRules(
            "end_date", f"end_date must be {date.max - timedelta(days=1)} or earlier."
        )
    if zone_name == "UTC":
        return [(ordinal - EPOCH_ORDINAL) * DAY for ordinal in ordinals], [0] * len(ordinals)
    low = (ordinals[0] - EPOCH_ORDINAL - 2) * DAY
    high = (ordinals[-1] - EPOCH_ORDINAL + 2) * DAY
    segment_starts, segment_offsets = offset_segments(zone_name, low, high)
    if len(segment_starts) == 1:  # one offset all along
        offset = segment_offsets[0]
        starts = [(ordinal - EPOCH_ORDINAL) * DAY - offset for ordinal in ordinals]
        offsets = [offset] * len(ordinals)
    else:
        starts, offsets = [], []
        segment, last = 0, len(segment_starts) - 1
        for ordinal in ordinals:
            midnight = (ordinal - EPOCH_ORDINAL) * DAY
            while True:
                offset = segment_offsets[segment]
                candidate = max(midnight - offset, segment_starts[segment])
                if segment == last or candidate < segment_starts[segment + 1]:
                    starts.append(candidate)
                    offsets.append(offset)
                    break
                segment += 1
    for second, offset in zip(starts, offsets, strict=True):
        _check_quarter(second, offset, zone_name)
    return starts, offsets


def _check_quarter(second: int, offset: int, zone_name: str) -> None:
    """An edge off the UTC quarter-hours comes of the zone's history before the range (local
    mean time, an offset such as Monrovia's -00:44:30): the range begins too early."""
    if second % QUARTER:
        at = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise OutsideZoneRules(
            "start_date",
            f"In {zone_name}, a bucket of the range begins at {at} (UTC offset "
            f"{_offset_text(offset, seconds=True)}), not on a UTC quarter-hour, so its "
            "figures could not be exact: figures in this zone need a later start_date.",
        )


@lru_cache(maxsize=512)
def _year_keys(year: int) -> tuple[int, tuple[str, ...]]:
    """(ordinal of 1 January, the key of every day of the year)."""
    first = date(year, 1, 1).toordinal()
    days = date(year + 1, 1, 1).toordinal() - first if year < 9999 else 365
    return first, tuple(date.fromordinal(first + n).isoformat() for n in range(days))


def _day_key(ordinal: int) -> str:
    first, keys = _year_keys(date.fromordinal(ordinal).year)
    return keys[ordinal - first]


def _day_keys(first: int, last: int) -> list[str]:
    keys: list[str] = []
    ordinal = first
    while ordinal <= last:
        year_first, year_keys = _year_keys(date.fromordinal(ordinal).year)
        stop = min(last + 1, year_first + len(year_keys))
        keys.extend(year_keys[ordinal - year_first : stop - year_first])
        ordinal = stop
    return keys


def _offset_text(offset: int, seconds: bool = False) -> str:
    """`+05:30`; with `seconds`, a historical offset's seconds too when it has any."""
    sign = "-" if offset < 0 else "+"
    minutes_in, second = divmod(abs(offset), 60)
    hours, minutes = divmod(minutes_in, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}"
    return text + f":{second:02d}" if seconds and second else text


def _hours(zone_name: str, day_starts: list[int], day_offsets: list[int]) -> BucketPlan:
    """Hour buckets: an edge wherever the local clock reads HH:00:00, wherever the offset
    changes on a UTC quarter-hour (after a change of 30 or 45 minutes the clock reads
    another hour, or an hour again) and at every day's first instant (so that hours nest
    in days)."""
    begin, finish = day_starts[0], day_starts[-1]
    if begin == finish:
        return BucketPlan([], [begin])
    if zone_name == "UTC":
        starts, offsets = [begin], [0]
    else:
        starts, offsets = offset_segments(zone_name, begin, finish)
    found: dict[int, int] = {}
    for n, (segment_start, offset) in enumerate(zip(starts, offsets, strict=True)):
        low = max(segment_start, begin)
        high = min(starts[n + 1] if n + 1 < len(starts) else finish, finish)
        first_hour = -(-(low + offset) // HOUR) * HOUR - offset
        for second in range(first_hour, high, HOUR):
            found[second] = offset
        # A change off the quarter-hours stays in the hour it falls in (module docstring).
        changed = offset != offsets[n - 1] and segment_start % QUARTER == 0
        if changed and begin < segment_start < finish:
            found.setdefault(segment_start, offset)
    for second, offset in zip(day_starts, day_offsets, strict=True):
        if second < finish:
            found.setdefault(second, offset)
    keys, edges = [], []
    for second, offset in sorted(found.items()):
        _check_quarter(second, offset, zone_name)
        local = second + offset
        ordinal, clock = divmod(local, DAY)
        hour, rest = divmod(clock, HOUR)
        minute, sec = divmod(rest, 60)
        keys.append(
            f"{_day_key(ordinal + EPOCH_ORDINAL)}T{hour:02d}:{minute:02d}:{sec:02d}"
            f"{_offset_text(offset)}"
        )
        edges.append(second)
    edges.append(finish)
    return BucketPlan(keys, edges)
