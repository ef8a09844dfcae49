"""Test helpers: generated usage events with their expected UTC day known by construction,
independent sums, and the API call that reads figures back."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

METRICS = ("tokens", "usage", "stt_duration")
OFFSETS = [timedelta(0), timedelta(hours=14), timedelta(hours=-12), timedelta(hours=5, minutes=30)]


@dataclass(frozen=True)
class Event:
    day: date  # the UTC day it must count on, known before it is written down
    record: dict

    @property
    def api_key_id(self) -> str:
        return self.record["api_key_id"]


def rfc3339(instant: datetime, offset: timedelta) -> str:
    """The UTC instant written in another offset."""
    local = instant.astimezone(UTC).replace(tzinfo=None) + offset
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return local.isoformat() + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def make_events(
    rng: random.Random, key_ids: list[str], days: list[date], count: int, prefix: str | None = None
) -> list[Event]:
    prefix = prefix or uuid.uuid4().hex[:12]
    events = []
    for n in range(count):
        day = rng.choice(days)
        instant = datetime.combine(day, time(), UTC) + timedelta(seconds=rng.randrange(86_400))
        record = {
            "event_id": f"{prefix}-{n}",
            "api_key_id": rng.choice(key_ids),
            "occurred_at": rfc3339(instant, rng.choice(OFFSETS)),
            "tokens": rng.randrange(0, 50_000),
            "stt_duration": rng.randrange(0, 3_600),
            "usage": rng.randrange(1, 4),
        }
        events.append(Event(day, record))
    return events


def write_jsonl(path: Path, events: list[Event]) -> Path:
    path.write_text("".join(json.dumps(event.record) + "\n" for event in events))
    return path


def expected_deltas(
    events: list[Event], start: date, end: date, api_key_id: str | None = None
) -> dict[str, dict[str, int]]:
    sums: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for event in events:
        if start <= event.day <= end and api_key_id in (None, event.api_key_id):
            for metric in METRICS:
                sums[event.day][metric] += event.record[metric]
    return {
        day.isoformat(): figures for day, figures in sorted(sums.items()) if any(figures.values())
    }


def query(client, org, start: date, end: date, api_key_id: str | None = None):
    body = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    if api_key_id is not None:
        body["api_key_id"] = api_key_id
    return client.post("/api/v1/usage-analytics", headers=org.headers(), json=body)


def deltas(client, org, start: date, end: date, api_key_id: str | None = None) -> dict:
    response = query(client, org, start, end, api_key_id)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["total"] == {
        metric: sum(day[metric] for day in body["deltas"].values())
        for metric in ("stt_duration", "tokens", "usage")
    }
    return body["deltas"]
