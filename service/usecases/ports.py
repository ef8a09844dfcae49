"""The ports: what the use cases need from storage, as protocols that the adapters
implement (service/adapters) and that unit tests fake, and `Services`, the bundle of them
a use case receives (built by service/bootstrap.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from config.settings import Settings
from service.domain.directory import Clinic, Organisation, Provider
from service.domain.figures import DailyFigures, DayUsage, Scope
from service.domain.keys import ApiKeyInfo, NewApiKey
from service.domain.reports import Figures, Point


class CacheUnavailable(Exception):
    """Redis did not answer (or its breaker is open): serve from SQL."""


class ImportConflict(Exception):
    """A batch met a concurrent import (a deadlock or serialization failure) and was rolled
    back whole: it may be tried again."""


class FigureTooLarge(Exception):
    """A batch would take one key's day past the largest storable figure (2^63 - 1); it was
    rolled back whole."""


class Credentials(NamedTuple):
    """What one auth lookup learns: the provider's organisation and the key, if any."""

    organisation_id: UUID
    api_key_id: UUID | None
    key_organisation_id: UUID | None
    is_root: bool
    revoked: bool
    cache_pending: bool  # the organisation has cache invalidations not yet delivered


class PendingInvalidation(NamedTuple):
    """An outbox row: the (key, day) pairs of one organisation that a batch changed."""

    id: int
    organisation_id: UUID
    api_key_ids: list[UUID]
    days: list[date]


class BatchOutcome(NamedTuple):
    inserted: int  # events not seen before
    unknown_keys: list[tuple[int, UUID]]  # (line number, api_key_id) naming no key
    pending: list[PendingInvalidation]  # the outbox rows the batch wrote


class Directory(Protocol):
    """Organisations, their providers, clinics and API keys."""

    def credentials(self, provider_id: str, secret_hash: bytes) -> Credentials | None: ...
    def api_key(self, api_key_id: UUID) -> ApiKeyInfo | None: ...
    def organisations(self) -> list[Organisation]: ...
    def providers(self, organisation_id: UUID | None = None) -> list[Provider]: ...
    def clinics(self, organisation_id: UUID) -> list[Clinic]: ...
    def organisation_keys(self, organisation_id: UUID) -> list[ApiKeyInfo]: ...
    def service_secret(self) -> bytes: ...
    def organisation_ids(self, only: UUID | None = None) -> list[UUID]: ...
    def add_organisation(self, organisation_id: UUID, name: str) -> datetime: ...
    def add_provider(self, provider_id: str, organisation_id: UUID, name: str | None) -> bool: ...
    def provider_organisation(self, provider_id: str) -> UUID | None: ...
    def add_clinic(self, clinic_id: UUID, organisation_id: UUID, name: str) -> None: ...
    def clinic_organisation(self, clinic_id: UUID) -> UUID | None: ...
    def add_api_key(self, key: NewApiKey) -> ApiKeyInfo: ...
    def revoke_api_key(self, api_key_id: UUID) -> datetime | None: ...


class Rollups(Protocol):
    """The exact daily and quarter-hour rollups in SQL, the source of truth for figures."""

    def organisation_days(self, organisation_id: UUID, days: list[date]) -> list[DayUsage]: ...
    def key_days(self, api_key_id: UUID, days: list[date]) -> list[DayUsage]: ...
    def keys_days(
        self, api_key_ids: list[UUID], days: list[date]
    ) -> dict[UUID, list[DayUsage]]: ...
    def organisation_points(
        self, organisation_id: UUID, points: list[Point]
    ) -> dict[Point, Figures]: ...
    def keys_points(
        self, api_key_ids: list[UUID], points: list[Point]
    ) -> dict[UUID, dict[Point, Figures]]: ...
    def organisations_days_text(
        self, organisation_ids: list[UUID], start: date, end: date
    ) -> dict[UUID, dict[date, bytes]]:
        """Each day with usage in the range, its figures as `figures_text`."""
        ...


class ImportSession(Protocol):
    """One connection held for a whole import."""

    def commit_batch(self, events: list[tuple], prepared: bytes | None = None) -> BatchOutcome:
        """`prepared`: Ledger.prepare_batch(events), when made beforehand."""
        ...


class Ledger(Protocol):
    """Imported events, their rollups, and the outbox of cache invalidations."""

    def import_session(self) -> AbstractContextManager[ImportSession]: ...
    def prepare_batch(self, events: list[tuple]) -> bytes:
        """What a session's commit_batch sends of `events`, made in any thread: a thread
        reading the next batch makes it, so the connection's thread need not."""
        ...

    def pending_invalidations(
        self, organisation_id: UUID | None = None, limit: int = 1000
    ) -> list[PendingInvalidation]: ...
    def pending_invalidation_ids(self, organisation_id: UUID | None = None) -> list[int]: ...
    def forget_invalidations(self, ids: list[int]) -> None: ...
    def drop_events_before(self, cutoff: date) -> list[str]: ...
    def ids_kept_from(self) -> date | None:
        """The UTC day before which imported ids were forgotten (a retention window dropped
        them), for good: an event before it could not be told from a resend. None when no
        id ever was."""
        ...


@dataclass
class DailyRead:
    """A scope's days read from the cache: those cached with usage, as columns, and the
    cacheable days the cache does not hold (cached days without usage are neither)."""

    figures: DailyFigures
    missing: list[date]

    @property
    def found(self) -> dict[date, DayUsage]:
        return dict(zip(self.figures.days, self.figures.day_usages(), strict=True))


@dataclass
class CacheRead:
    found: dict[date, DayUsage]  # cached days that had usage, in the order asked for
    missing: list[date]  # cacheable days not in the cache (cached days without usage are neither)
    found_points: dict[Point, Figures] = field(default_factory=dict)  # running sums, likewise
    missing_points: list[Point] = field(default_factory=list)


class RollupCache(Protocol):
    """Daily figures of scopes in Redis; every method raises CacheUnavailable, never a
    client error. A lease is opaque: take it before the SQL read, hand it back to fill.
    `invalidate` outside a server raises CacheUnavailable too when no server reads this
    Redis: the invalidation has not reached the servers' cache."""

    @property
    def available(self) -> bool: ...
    def open(self) -> None: ...
    def is_marked(self) -> bool: ...
    def is_read_by_servers(self) -> bool: ...
    def read(self, scope: Scope, days: list[date], today: date) -> DailyRead: ...
    def read_many(
        self, scopes: list[Scope], days: Sequence[date], points: Sequence[Point], today: date
    ) -> list[CacheRead]: ...
    def read_every(
        self, scopes: list[Scope], days: Sequence[date], points: Sequence[Point], today: date
    ) -> list[list[int]] | None: ...
    def lease(self, wanted: Iterable[tuple], today: date) -> Any: ...
    def fill(
        self,
        lease: Any,
        figures: dict[Scope, dict[date, DayUsage]],
        today: date,
        points: dict[Scope, dict[Point, Figures]] | None = None,
    ) -> int: ...
    def fill_texts(self, lease: Any, texts: dict[Scope, dict[date, bytes]], today: date) -> int: ...
    def invalidate(self, touched: Iterable[tuple[UUID, UUID, date]]) -> int: ...
    def clear(self, organisation_id: UUID | None = None) -> int: ...
    def ping(self) -> float: ...
    def cluster_state(self) -> dict | None: ...
    def close(self) -> None: ...


class Database(Protocol):
    def open(self) -> None: ...
    def ping(self, timeout: float) -> float: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Services:
    """What every use case receives: the settings and the ports, wired once per process."""

    settings: Settings
    database: Database
    directory: Directory
    rollups: Rollups
    ledger: Ledger
    cache: RollupCache | None  # None when REDIS_URL is empty

    def close(self) -> None:
        self.database.close()
        if self.cache is not None:
            self.cache.close()
