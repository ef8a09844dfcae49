"""Values that cross layers: who is asking, what they ask, what they get."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API key and the organisation it belongs to."""

    organisation_id: UUID
    api_key_id: UUID
    is_root: bool
    cache_pending: bool = False  # cache invalidations not yet delivered for the organisation


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start: date
    end: date
    api_key_id: str | None = None


class DayUsage(NamedTuple):
    """One day's figures (a tuple: there are hundreds in a response, made by the cache)."""

    day: date
    tokens: int
    usage: int
    stt_duration: int

    @property
    def is_empty(self) -> bool:
        return not (self.tokens or self.usage or self.stt_duration)


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: UUID
    organisation_id: UUID
    name: str
    prefix: str
    clinic_id: UUID | None
    clinic_name: str | None
    is_root: bool
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class UsageSummary:
    api_key: ApiKeyInfo | None
    days: list[DayUsage]  # ascending, days without usage left out

    def as_json(self) -> dict:
        """The 200 body of CONTRACT §1 (schemas.analytics.UsageAnalyticsResponse)."""
        tokens = usage = stt_duration = 0
        deltas = {}
        for day in self.days:
            tokens += day.tokens
            usage += day.usage
            stt_duration += day.stt_duration
            deltas[day.day.isoformat()] = {
                "tokens": day.tokens,
                "usage": day.usage,
                "stt_duration": day.stt_duration,
            }
        return {
            "api_key": None if self.api_key is None else describe_key(self.api_key),
            "total": {"stt_duration": stt_duration, "tokens": tokens, "usage": usage},
            "deltas": deltas,
        }


def describe_key(key: ApiKeyInfo) -> dict:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "clinic_id": None if key.clinic_id is None else str(key.clinic_id),
        "clinic_name": key.clinic_name,
        "is_root": key.is_root,
        "created_at": rfc3339(key.created_at),
        "revoked_at": None if key.revoked_at is None else rfc3339(key.revoked_at),
    }


def rfc3339(moment: datetime) -> str:
    """UTC to the second, with a Z: 2024-01-15T09:30:00Z."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
