"""In-memory stand-ins for the Postgres ports (service/usecases/ports.py), to run the use
cases without servers; the cache is the real adapter on fakeredis."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from uuid import UUID

import fakeredis

from config.settings import Settings
from service.adapters.redis.rollup_cache import RedisRollupCache
from service.domain.figures import DayUsage
from service.domain.keys import ApiKeyInfo
from service.usecases.ports import (
    BatchOutcome,
    FigureTooLarge,
    ImportConflict,
    PendingInvalidation,
    Services,
)

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
LARGEST = 2**63 - 1  # a bigint


class FakeDirectory:
    def __init__(self) -> None:
        self.organisations: list[UUID] = []
        self.keys: dict[UUID, ApiKeyInfo] = {}

    def add_key(self, organisation_id: UUID, key_id: UUID, clinic_id: UUID | None) -> None:
        if organisation_id not in self.organisations:
            self.organisations.append(organisation_id)
        self.keys[key_id] = ApiKeyInfo(
            key_id, organisation_id, "a key", "scrubs_abcdef", clinic_id, "a clinic",
            clinic_id is None, EPOCH, None,
        )  # fmt: skip

    def api_key(self, api_key_id: UUID) -> ApiKeyInfo | None:
        return self.keys.get(api_key_id)

    def organisation_ids(self, only: UUID | None = None) -> list[UUID]:
        return [org for org in sorted(self.organisations) if only in (None, org)]


class FakeRollups:
    """Rollups per (key, day), and a record of every read: which days it was asked for."""

    def __init__(self, directory: FakeDirectory) -> None:
        self.directory = directory
        self.rows: dict[tuple[UUID, date], DayUsage] = {}
        self.reads: list[tuple[str, list[date]]] = []

    def add(self, key_id: UUID, figures: DayUsage) -> None:
        old = self.rows.get((key_id, figures.day), DayUsage(figures.day, 0, 0, 0))
        self.rows[(key_id, figures.day)] = DayUsage(
            figures.day,
            old.tokens + figures.tokens,
            old.usage + figures.usage,
            old.stt_duration + figures.stt_duration,
        )

    def _summed(self, organisation_id: UUID, wanted) -> dict[date, DayUsage]:
        sums: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
        for (key_id, day), row in self.rows.items():
            if self.directory.keys[key_id].organisation_id == organisation_id and wanted(day):
                for n, value in enumerate(row[1:]):
                    sums[day][n] += value
        return {day: DayUsage(day, *sums[day]) for day in sorted(sums)}

    def organisation_days(self, organisation_id: UUID, days: list[date]) -> list[DayUsage]:
        self.reads.append(("organisation", list(days)))
        return list(self._summed(organisation_id, set(days).__contains__).values())

    def key_days(self, api_key_id: UUID, days: list[date]) -> list[DayUsage]:
        self.reads.append(("key", list(days)))
        return [self.rows[(api_key_id, day)] for day in days if (api_key_id, day) in self.rows]

    def organisations_days_text(
        self, organisation_ids: list[UUID], start: date, end: date
    ) -> dict[UUID, dict[date, bytes]]:
        self.reads.append(("organisations", [start, end]))
        return {
            org: {
                day: b"%d %d %d" % figures[1:]
                for day, figures in self._summed(org, lambda day: start <= day <= end).items()
            }
            for org in organisation_ids
        }


@dataclass
class FakeLedger:
    """Events deduped by id, rolled up into `rollups`, with an outbox. `conflicts` makes the
    next commits fail as if they met a concurrent import, `conflicts_when` every commit of
    the events it is true of. A batch that would take a key's
    day past 2^63 - 1 is refused whole, as Postgres refuses it."""

    rollups: FakeRollups
    conflicts: int = 0
    conflicts_when: Callable[[list[tuple]], bool] | None = None
    seen: set[str] = field(default_factory=set)
    seen_on: dict[str, date] = field(default_factory=dict)  # the UTC day of each seen id
    drops: list[date] = field(default_factory=list)  # the cutoff of each drop_events_before
    kept_from: date | None = None  # ids_kept_from
    outbox: dict[int, PendingInvalidation] = field(default_factory=dict)
    batches: list[list[int]] = field(default_factory=list)  # line numbers of each commit
    attempts: int = 0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def import_session(self) -> Iterator[FakeLedger]:
        yield self

    def prepare_batch(self, events: list[tuple]) -> bytes:
        return repr(events).encode()

    def commit_batch(self, events: list[tuple], prepared: bytes | None = None) -> BatchOutcome:
        assert prepared is None or prepared == self.prepare_batch(events)
        with self._lock:  # two connections commit at once; one transaction at a time here
            return self._commit(events)

    def _commit(self, events: list[tuple]) -> BatchOutcome:
        self.attempts += 1
        if self.conflicts:
            self.conflicts -= 1
            raise ImportConflict()
        if self.conflicts_when is not None and self.conflicts_when(events):
            raise ImportConflict()
        keys = self.rollups.directory.keys
        sums: dict[tuple[UUID, date], list[int]] = {}
        for _, event_id, key_text, occurred_at, tokens, stt, usage in events:
            key_day = (UUID(key_text), occurred_at.date())
            if key_day[0] in keys and event_id not in self.seen:
                old = self.rollups.rows.get(key_day, DayUsage(key_day[1], 0, 0, 0))
                found = sums.setdefault(key_day, list(old[1:]))
                for n, value in enumerate((tokens, usage, stt)):
                    found[n] += value
        if any(value > LARGEST for found in sums.values() for value in found):
            raise FigureTooLarge()
        self.batches.append([event[0] for event in events])
        unknown = [(event[0], UUID(event[2])) for event in events if UUID(event[2]) not in keys]
        touched: dict[UUID, set[tuple[UUID, date]]] = defaultdict(set)
        inserted = 0
        for _, event_id, key_text, occurred_at, tokens, stt, usage in events:
            key_id = UUID(key_text)
            if key_id not in keys or event_id in self.seen:
                continue
            self.seen.add(event_id)
            inserted += 1
            day = occurred_at.date()
            self.seen_on[event_id] = day
            self.rollups.add(key_id, DayUsage(day, tokens, usage, stt))
            touched[keys[key_id].organisation_id].add((key_id, day))
        pending = []
        for organisation_id, pairs in touched.items():
            row = PendingInvalidation(
                next(self._ids),
                organisation_id,
                [key for key, _ in sorted(pairs)],
                [day for _, day in sorted(pairs)],
            )
            self.outbox[row.id] = row
            pending.append(row)
        return BatchOutcome(inserted, unknown, pending)

    def forget_invalidations(self, ids: list[int]) -> None:
        for row_id in ids:
            self.outbox.pop(row_id, None)

    def drop_events_before(self, cutoff: date) -> list[str]:
        self.drops.append(cutoff)
        self.kept_from = max(cutoff, self.kept_from or cutoff)
        for event_id, day in list(self.seen_on.items()):
            if day < cutoff:
                self.seen.discard(event_id)
                del self.seen_on[event_id]
        return []

    def ids_kept_from(self) -> date | None:
        return self.kept_from

    def pending_invalidations(
        self, organisation_id: UUID | None = None, limit: int = 1000
    ) -> list[PendingInvalidation]:
        rows = [
            row for row in self.outbox.values() if organisation_id in (None, row.organisation_id)
        ]
        return sorted(rows)[:limit]

    def pending_invalidation_ids(self, organisation_id: UUID | None = None) -> list[int]:
        return [row.id for row in self.pending_invalidations(organisation_id, limit=10**9)]


class NoDatabase:
    def open(self) -> None:
        pass

    def ping(self, timeout: float) -> float:
        return 0.0

    def close(self) -> None:
        pass


def fake_cache(
    server: fakeredis.FakeServer | None = None, *, read_by_servers: bool = True
) -> RedisRollupCache:
    """The cache on a fake Redis: a server's by default (it marks the Redis as the one
    servers read); `read_by_servers=False` for a command's."""
    cache = RedisRollupCache(
        fakeredis.FakeRedis(server=server or fakeredis.FakeServer()),
        namespace="unit",
        ttl_seconds=3600,
        today_ttl_seconds=60,
        lease_ms=10_000,
        read_by_servers=read_by_servers,
    )
    if read_by_servers:
        cache.open()
    return cache


def fake_services(cache: RedisRollupCache | None = None) -> Services:
    directory = FakeDirectory()
    rollups = FakeRollups(directory)
    return Services(
        settings=Settings(database_url="postgresql:///unit", redis_url="redis://unit"),
        database=NoDatabase(),
        directory=directory,  # type: ignore[arg-type]
        rollups=rollups,
        ledger=FakeLedger(rollups),  # type: ignore[arg-type]
        cache=cache,
    )
