"""Usage figures: whose figures (a scope), which days (a query), what a day holds, and the
answer, summed exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from itertools import chain, compress
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


def figures_text(figures: DayUsage) -> bytes:
    """A day's figures as the text the stores exchange in bulk: tokens, usage and
    stt_duration in decimal, a space between them (b"1200 3 95"). Anything with those three
    attributes will do."""
    return b"%d %d %d" % (figures.tokens, figures.usage, figures.stt_duration)


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    return list(_days_between(start, end))


@lru_cache(maxsize=64)
def _days_between(start: date, end: date) -> tuple[date, ...]:
    return tuple(map(date.fromordinal, range(start.toordinal(), end.toordinal() + 1)))


@dataclass(frozen=True, slots=True)
class DailyFigures:
    """Days with usage, ascending, and their figures as one flat list: the tokens, usage and
    stt_duration of each day in turn. A year is two lists, not hundreds of objects, and
    the cache's figures decode straight into them."""

    days: list[date]
    numbers: list[int]

    @classmethod
    def of(cls, days: Iterable[DayUsage]) -> DailyFigures:
        """From days in ascending order; those without usage are left out."""
        kept = with_usage(days)
        return cls(list(map(_DAY, kept)), list(chain.from_iterable(map(_FIGURES, kept))))

    def day_usages(self) -> list[DayUsage]:
        numbers = iter(self.numbers)
        return list(map(DayUsage, self.days, numbers, numbers, numbers))

    def totals(self) -> tuple[int, int, int]:
        """(tokens, usage, stt_duration) summed over every day, exactly."""
        numbers = self.numbers
        return sum(numbers[0::3]), sum(numbers[1::3]), sum(numbers[2::3])


@dataclass(frozen=True, slots=True)
class UsageSummary:
    api_key: ApiKeyInfo | None
    figures: DailyFigures

    @property
    def days(self) -> list[DayUsage]:
        """Ascending, days without usage left out."""
        return self.figures.day_usages()

    def as_json(self, write_deltas: Callable[[DailyFigures], Any] | None = None) -> dict:
        """The 200 body of POST /api/v1/usage-analytics: `total` is exactly the sum of
        `deltas`, one entry per day with usage. `write_deltas` may write the `deltas`
        object itself (as JSON text, say) instead of a dict of dicts."""
        if write_deltas is None:
            deltas = {
                day.day.isoformat(): {
                    "tokens": day.tokens,
                    "usage": day.usage,
                    "stt_duration": day.stt_duration,
                }
                for day in self.days
            }
        else:
            deltas = write_deltas(self.figures)
        tokens, usage, stt_duration = self.figures.totals()
        return {
            "api_key": None if self.api_key is None else describe_key(self.api_key),
            "total": {"stt_duration": stt_duration, "tokens": tokens, "usage": usage},
            "deltas": deltas,
        }


_DAY, _FIGURES = itemgetter(0), itemgetter(1, 2, 3)


def with_usage(days: Iterable[DayUsage]) -> list[DayUsage]:
    """The days that have some usage, in their order."""
    days = list(days)
    return list(compress(days, map(any, map(_FIGURES, days))))
