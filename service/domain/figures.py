"""Usage figures: whose figures (a scope), which days (a query), what a day holds, and the
answer, summed exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from itertools import compress
from operator import itemgetter
from typing import Any, NamedTuple
from uuid import UUID

from service.domain.keys import ApiKeyInfo, describe_key

METRICS = ("tokens", "usage", "stt_duration")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose figures: the whole organisation (api_key_id None) or one of its keys."""

    organisation_id: UUID
    api_key_id: UUID | None = None


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


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    return list(map(date.fromordinal, range(start.toordinal(), end.toordinal() + 1)))


@dataclass(frozen=True, slots=True)
class UsageSummary:
    api_key: ApiKeyInfo | None
    days: list[DayUsage]  # ascending, days without usage left out

    def as_json(self, write_deltas: Callable[[list[DayUsage]], Any] | None = None) -> dict:
        """The 200 body of POST /api/v1/usage-analytics: `total` is exactly the sum of
        `deltas`, one entry per day with usage. `write_deltas` may write the `deltas`
        object itself (as JSON text, say) instead of a dict of dicts."""
        days = self.days
        if write_deltas is None:
            deltas = {
                day.day.isoformat(): {
                    "tokens": day.tokens,
                    "usage": day.usage,
                    "stt_duration": day.stt_duration,
                }
                for day in days
            }
        else:
            deltas = write_deltas(days)
        return {
            "api_key": None if self.api_key is None else describe_key(self.api_key),
            "total": {
                "stt_duration": sum(map(_STT_DURATION, days)),
                "tokens": sum(map(_TOKENS, days)),
                "usage": sum(map(_USAGE, days)),
            },
            "deltas": deltas,
        }


_TOKENS, _USAGE, _STT_DURATION = itemgetter(1), itemgetter(2), itemgetter(3)
_FIGURES = itemgetter(1, 2, 3)


def with_usage(days: Iterable[DayUsage]) -> list[DayUsage]:
    """The days that have some usage, in their order."""
    days = list(days)
    return list(compress(days, map(any, map(_FIGURES, days))))
