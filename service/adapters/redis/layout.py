"""Where the rollup cache keeps each day of each scope, and how a day's figures are written.

Keys start with a namespace (the database's identity, so that two databases never share
figures through one Redis) and carry the organisation as their hash tag, so that one
organisation's keys share a Redis Cluster slot and one pipeline reaches them all:

    ua1:NS:{ORG}:org:m:2024-01          hash, a field per day (b"15" -> b"tokens usage stt"),
                                        and running sums within days (b"15.74": the day's
                                        figures before 18:30 UTC; b"15.p" marks that day 15
                                        has some)
    ua1:NS:{ORG}:key:KEY:m:2024-01      the same for one key of the organisation
    ua1:NS:{ORG}:org:d:2024-11-24       the current UTC day, in a hash of its own
    <bucket>:lease                      a fill in progress for that bucket (random token)
    ua1:NS:read-by-servers              the servers of this database read this Redis

A day without usage is stored as b"0 0 0", so it is a hit too. Days after the current UTC
day are never cached. A bucket lives `ttl` (past days) or `today_ttl` (the current day)
from its first fill, plus jitter: a backstop only; invalidation keeps the figures right.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from operator import attrgetter
from uuid import UUID

from service.domain.figures import Scope, figures_text
from service.domain.reports import Point

LAYOUT_VERSION = "ua1"
EMPTY = b"0 0 0"


@dataclass(frozen=True)
class Layout:
    """Where each day of each scope lives."""

    namespace: str

    @property
    def served_mark(self) -> str:
        """Set by the servers of this database in the Redis they read (no lifetime)."""
        return f"{LAYOUT_VERSION}:{self.namespace}:read-by-servers"

    def organisation_prefix(self, organisation_id: UUID) -> str:
        return f"{LAYOUT_VERSION}:{self.namespace}:{{{organisation_id}}}:"

    def pattern(self, organisation_id: UUID | None) -> str:
        if organisation_id is None:
            return f"{LAYOUT_VERSION}:{self.namespace}:*"
        return self.organisation_prefix(organisation_id) + "*"

    def scope_prefix(self, scope: Scope) -> str:
        owner = "org" if scope.api_key_id is None else f"key:{scope.api_key_id}"
        return self.organisation_prefix(scope.organisation_id) + owner

    def scope_prefixes(self, scopes: Iterable[Scope]) -> list[str]:
        """The prefix of each scope, each organisation's part built once."""
        organisations: dict[UUID, str] = {}
        found = []
        for scope in scopes:
            organisation = organisations.get(scope.organisation_id)
            if organisation is None:
                organisation = self.organisation_prefix(scope.organisation_id)
                organisations[scope.organisation_id] = organisation
            key = scope.api_key_id
            found.append(f"{organisation}org" if key is None else f"{organisation}key:{key}")
        return found

    def bucket(self, scope: Scope, day: date, today: date) -> str:
        base = self.scope_prefix(scope)
        if day >= today:
            return f"{base}:d:{day.isoformat()}"
        return f"{base}:m:{day.year:04d}-{day.month:02d}"

    def point_buckets(
        self, scope: Scope, points: Iterable[Point], today: date
    ) -> dict[str, list[Point]]:
        """The buckets the cacheable running sums live in: each in its day's bucket."""
        base = self.scope_prefix(scope)
        return {base + shared.suffix: shared.points for shared in shared_buckets((), points, today)}

    def buckets(self, scope: Scope, days: Iterable[date], today: date) -> dict[str, list[date]]:
        """The buckets the cacheable days live in (days after `today` are not cacheable)."""
        base = self.scope_prefix(scope)
        return {base + shared.suffix: shared.days for shared in shared_buckets(days, (), today)}


@dataclass(frozen=True, slots=True)
class SharedBucket:
    """Cacheable days and running sums of a range that every scope keeps in one bucket of
    its own: the bucket's name is the scope's prefix followed by `suffix`."""

    suffix: str  # ":m:2024-01", or ":d:2024-11-24" for the current UTC day
    days: list[date]
    points: list[Point]

    @property
    def fields(self) -> list[bytes]:
        """The bucket's fields of these days, then of these running sums."""
        return [*map(field_of, self.days), *map(field_of_point, self.points)]


def shared_buckets(
    days: Iterable[date], points: Iterable[Point], today: date
) -> list[SharedBucket]:
    """Where the cacheable days and running sums of a range live, whatever the scope: in
    the order of their first day, then of their first point (days and points after `today`
    are not cacheable). Called for every request: each name is built once, not once a day."""
    found: dict[str, SharedBucket] = {}
    for wanted, is_day in ((days, True), (points, False)):
        month = None
        members: list = []
        for item in wanted:
            day = item if is_day else item[0]
            if day >= today:
                if day == today:
                    members = _shared(found, f":d:{day.isoformat()}", is_day)
                    members.append(item)
                    month = None
                continue
            if (day.year, day.month) != month:
                month = (day.year, day.month)
                members = _shared(found, f":m:{day.year:04d}-{day.month:02d}", is_day)
            members.append(item)
    return list(found.values())


def _shared(found: dict[str, SharedBucket], suffix: str, is_day: bool) -> list:
    """The days (or points) of the bucket named `suffix`, added empty when new."""
    shared = found.get(suffix)
    if shared is None:
        shared = found[suffix] = SharedBucket(suffix, [], [])
    return shared.days if is_day else shared.points


def lease_of(bucket: str) -> str:
    return f"{bucket}:lease"


_DAY_FIELDS = tuple(b"%02d" % n for n in range(32))
_DAY_OF_MONTH = attrgetter("day")


def field_of(day: date) -> bytes:
    return _DAY_FIELDS[day.day]


def fields_of(days: Iterable[date]) -> Iterator[bytes]:
    """`field_of` each day, without a call of ours a day."""
    return map(_DAY_FIELDS.__getitem__, map(_DAY_OF_MONTH, days))


def field_of_point(point: Point) -> bytes:
    """C(day, quarter), the day's figures before that quarter-hour: b"15.74"."""
    return b"%02d.%02d" % (point[0].day, point[1])


def points_mark_of(day: date) -> bytes:
    """Set with the running sums of a day, so that forgetting the day knows to drop them."""
    return b"%02d.p" % day.day


encode = figures_text  # a field's value: the day's (or running sum's) figures as text
