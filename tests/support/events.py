"""Generated usage events whose UTC day is known by construction (the instant is chosen
first, then written down in some offset and spelling), files to import them from, and
per-day sums computed here, independently of the service."""

from __future__ import annotations

import csv
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

METRICS = ("tokens", "usage", "stt_duration")
FIELDS = ("event_id", "api_key_id", "occurred_at", "tokens", "stt_duration", "usage")
ZERO_SPELLINGS = ("Z", "z", "+00:00", "-00:00")
OFFSETS = (
    timedelta(0),
    timedelta(hours=14),
    timedelta(hours=-12),
    timedelta(hours=5, minutes=30),
    -timedelta(hours=3, minutes=30),
    timedelta(hours=9, minutes=45),
)
NEAR_MIDNIGHT_SECONDS = 300  # "within a few minutes of UTC midnight", either side


@dataclass(frozen=True)
class Event:
    day: date  # the UTC day the event must count on, known before it is written down
    record: dict  # what goes into the file (usage may be absent: it then counts as 1)

    @property
    def api_key_id(self) -> str:
        return self.record["api_key_id"]

    @property
    def figures(self) -> dict[str, int]:
        return {metric: self.record.get(metric, 1) for metric in METRICS}


def event_prefix() -> str:
    return f"t-{uuid.uuid4().hex}"


def spelled(instant: datetime, nanoseconds: int, digits: int, offset: timedelta, rng) -> str:
    """`instant` (whole seconds, UTC) plus `nanoseconds`, written in `offset` with
    `digits` fractional digits (0: none), a random date/time separator and zone spelling."""
    local = instant.replace(tzinfo=None) + offset
    text = local.strftime("%Y-%m-%d") + rng.choice("Tt ") + local.strftime("%H:%M:%S")
    if digits:
        text += "." + f"{nanoseconds:09d}"[:digits]
    if offset == timedelta(0):
        return text + rng.choice(ZERO_SPELLINGS)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def random_instant(rng: random.Random, days: list[date]) -> datetime:
    """A whole-second UTC instant on or around one of `days`: mostly within a few minutes
    of a UTC midnight (on both sides), otherwise any time of the day."""
    midnight = datetime.combine(rng.choice(days), time(), UTC)
    if rng.random() < 0.6:
        return midnight + timedelta(
            seconds=rng.randrange(-NEAR_MIDNIGHT_SECONDS, NEAR_MIDNIGHT_SECONDS)
        )
    return midnight + timedelta(seconds=rng.randrange(86_400))


def make_event(
    rng: random.Random,
    event_id: str,
    api_key_id: str,
    instant: datetime,
    figures: dict[str, int] | None = None,
) -> Event:
    """One event at `instant` (whole seconds, UTC); random figures unless given."""
    digits = rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    nanoseconds = rng.randrange(1_000_000_000)
    record = {
        "event_id": event_id,
        "api_key_id": api_key_id,
        "occurred_at": spelled(instant, nanoseconds, digits, rng.choice(OFFSETS), rng),
    }
    if figures is None:
        figures = {
            "tokens": rng.randrange(0, 2_000_000),
            "stt_duration": rng.randrange(0, 3_600),
            "usage": rng.randrange(0, 50),
        }
        if rng.random() < 0.2:
            del figures["usage"]  # absent: counts as 1
    record.update(figures)
    # The fraction never moves an instant past the next whole second, so the UTC day is
    # the whole-second instant's date.
    return Event(instant.date(), record)


def make_events(
    rng: random.Random,
    key_ids: list[str],
    days: list[date],
    count: int,
    prefix: str | None = None,
) -> list[Event]:
    """`count` random events of the given keys on or around `days`, none in the future (an
    import refuses events dated ahead of its clock)."""
    prefix = prefix or event_prefix()
    latest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    events = []
    for n in range(count):
        instant = random_instant(rng, days)
        if instant > latest:
            instant = latest - timedelta(seconds=rng.randrange(3600))
        events.append(make_event(rng, f"{prefix}-{n}", rng.choice(key_ids), instant))
    return events


def write_jsonl(path: Path, events: list[Event]) -> Path:
    path.write_text("".join(json.dumps(event.record) + "\n" for event in events))
    return path


def write_csv(path: Path, events: list[Event]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        for event in events:
            writer.writerow({name: event.record.get(name, "") for name in FIELDS})
    return path


def expected_deltas(
    events: list[Event],
    start: date = date.min,
    end: date = date.max,
    api_key_id: str | None = None,
) -> dict[str, dict[str, int]]:
    """Expected `deltas`: per UTC day in [start, end], days without usage left out."""
    sums: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for event in events:
        if start <= event.day <= end and api_key_id in (None, event.api_key_id):
            for metric, value in event.figures.items():
                sums[event.day][metric] += value
    return {
        day.isoformat(): figures for day, figures in sorted(sums.items()) if any(figures.values())
    }


def total_of(deltas: dict[str, dict[str, int]]) -> dict[str, int]:
    return {metric: sum(day[metric] for day in deltas.values()) for metric in METRICS}
