"""The benchmark's dataset: organisations, keys and usage events, the same on every run.

About 10 organisations x 100 keys, 400 days ending today and 5 million events by default
(`--small`: 3 x 20 keys, 60 days, 200,000 events), plus two organisations of 10 and of
1,000 keys, whose latencies must not differ (the cache must not grow with keys). Every
organisation has the same share of the traffic; weekdays are three times busier than
weekends, and in every organisation five keys take half of it.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import orjson

from service.usecases import admin
from service.usecases.ports import Services

NAMESPACE = uuid.UUID("0b5e3d2c-7a41-4f69-8d1e-52c9a6f0b7e4")
FIELDS = ("event_id", "api_key_id", "occurred_at", "tokens", "stt_duration", "usage")


@dataclass(frozen=True)
class Shape:
    organisations: int
    keys_per_organisation: int
    days: int
    events: int
    seed: int = 20261124
    # Organisations of these many keys beside the others, compared with one another.
    sized_organisations: tuple[int, ...] = (10, 1000)

    @classmethod
    def standard(cls) -> Shape:
        return cls(organisations=10, keys_per_organisation=100, days=400, events=5_000_000)

    @classmethod
    def small(cls) -> Shape:
        return cls(organisations=3, keys_per_organisation=20, days=60, events=200_000)


@dataclass(frozen=True)
class Organisation:
    id: uuid.UUID
    provider_id: str
    root_secret: str
    key_ids: list[uuid.UUID]


def _key_counts(shape: Shape) -> list[int]:
    return [shape.keys_per_organisation] * shape.organisations + list(shape.sized_organisations)


def fixed_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, ":".join(map(str, parts)))


def create_organisations(services: Services, shape: Shape) -> list[Organisation]:
    """Organisations, providers, clinics and keys with fixed ids, in an empty database: the
    standard ones first, then the sized ones."""
    made = []
    for n, key_count in enumerate(_key_counts(shape)):
        org_id = fixed_id("org", n)
        directory = services.directory
        admin.create_organisation(directory, f"Bench organisation {n}", org_id)
        provider_id = f"bench-provider-{n}"
        admin.create_provider(directory, org_id, provider_id)
        _, secret = admin.create_api_key(directory, org_id, "bench root", is_root=True)
        keys = []
        for k in range(key_count):
            clinic_id = fixed_id("clinic", n, k)
            admin.create_clinic(directory, org_id, f"Clinic {k}", clinic_id)
            key_id = fixed_id("key", n, k)
            admin.create_api_key(
                directory, org_id, f"Clinic {k} key", clinic_id=clinic_id, api_key_id=key_id
            )
            keys.append(key_id)
        made.append(Organisation(org_id, provider_id, secret, keys))
    return made


def events(
    shape: Shape, organisations: list[Organisation], today: date, id_prefix: str = "b"
) -> Iterator[tuple]:
    """(event_id, api_key_id, occurred_at, tokens, stt_duration, usage), day by day, over
    the days before `today` (an import refuses events that have not happened yet). Another
    `id_prefix` (and shape) gives events of their own, new to a database holding these."""
    rng = random.Random(f"{shape.seed}:{id_prefix}")
    keys = [key for org in organisations for key in org.key_ids]
    weights = []
    for org in organisations:  # five heavy keys per organisation carry half its traffic
        heavy = len(org.key_ids) - 5
        weights += [0.5 / 5] * 5 + [0.5 / max(heavy, 1)] * heavy
    cumulative = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    days = [today - timedelta(days=n) for n in range(shape.days, 0, -1)]
    day_weights = [3.0 if day.weekday() < 5 else 1.0 for day in days]
    per_weight = shape.events / sum(day_weights)
    produced = 0
    for index, (day, day_weight) in enumerate(zip(days, day_weights, strict=True)):
        count = round(per_weight * day_weight) if index < len(days) - 1 else shape.events - produced
        midnight = datetime.combine(day, time(), UTC)
        chosen = rng.choices(keys, cum_weights=cumulative, k=count)
        for n, key in enumerate(chosen):
            moment = midnight + timedelta(seconds=rng.randrange(86_400))
            yield (
                f"{id_prefix}{index}-{n}",
                str(key),
                moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                int(rng.lognormvariate(7.5, 1.0)),
                rng.randrange(0, 900),
                1 if rng.random() < 0.9 else rng.randrange(2, 5),
            )
        produced += count


def write_jsonl(path: Path, rows: Iterator[tuple]) -> int:
    count = 0
    with path.open("wb") as out:
        for row in rows:
            out.write(orjson.dumps(dict(zip(FIELDS, row, strict=True))) + b"\n")
            count += 1
    return count


def write_csv(path: Path, rows: Iterator[tuple]) -> int:
    count = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count
