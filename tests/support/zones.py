"""Where an instant falls in a time zone, worked out here from Python's zoneinfo on the
pinned tzdata package, by brute force (never through the service's bucket code): the
tests' oracle for figures asked in a time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)


@cache
def zone(name: str) -> ZoneInfo:
    *package, leaf = name.split("/")
    with resources.files(".".join(["tzdata.zoneinfo", *package])).joinpath(leaf).open("rb") as f:
        return ZoneInfo.from_file(f, key=name)


def local(instant: datetime, name: str) -> datetime:
    return instant.astimezone(zone(name))


def offset_text(moment: datetime) -> str:
    minutes = int(moment.utcoffset().total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def bucket_of(instant: datetime, name: str, granularity: str) -> str:
    """The key of the bucket the instant counts in: its local date, the Monday of its week,
    its month, or the local reading at the start of its local clock hour at its offset
    (looked back for minute by minute while the clock shows the same date and hour, and no
    change of offset on a UTC quarter-hour, so that a repeated or a partial hour comes out
    as it happened)."""
    moment = local(instant, name)
    if granularity == "day":
        return moment.date().isoformat()
    if granularity == "week":
        return (moment.date() - timedelta(days=moment.weekday())).isoformat()
    if granularity == "month":
        return moment.date().isoformat()[:7]
    probe = instant.replace(second=0, microsecond=0)
    seen = local(probe, name)
    while True:
        before = local(probe - MINUTE, name)
        changed = before.utcoffset() != seen.utcoffset() and probe.minute % 15 == 0
        if (before.date(), before.hour) != (seen.date(), seen.hour) or changed:
            return f"{seen.date().isoformat()}T{seen.strftime('%H:%M:%S')}{offset_text(seen)}"
        probe, seen = probe - MINUTE, before


def first_instant(day: date, name: str) -> datetime:
    """The earliest UTC instant whose local date is `day` or later, to the minute."""
    probe = datetime.combine(day, datetime.min.time(), UTC) - timedelta(days=1)
    while local(probe, name).date() < day:
        probe += MINUTE
    return probe


def local_hour_starts(day: date, name: str) -> list[datetime]:
    """The UTC instants of the day at which the local clock reads HH:00:00, or the offset
    changes."""
    found = []
    probe = first_instant(day, name)
    end = first_instant(day + timedelta(days=1), name)
    while probe < end:
        seen = local(probe, name)
        if seen.minute == 0 or seen.utcoffset() != local(probe - MINUTE, name).utcoffset():
            found.append(probe)  # an edge, or where a change splits an hour
        probe += MINUTE
    return found
