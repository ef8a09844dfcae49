"""Reports: the figures of a question with options (a time zone, a granularity, several keys,
groups), computed exactly from rollups at UTC quarter-hour grain.

Every bucket edge is a UTC day and quarter-hour (d, q). With C(d, q) the figures of day d
before quarter q (C(d, 0) is nothing, C(d, 96) the day's total), and G(d, q) the figures
of every day of the range before d plus C(d, q), a bucket [a, b) holds G(b) - G(a): the
day totals and one running sum per edge, whatever the zone, daylight saving included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate, chain, repeat
from operator import add, itemgetter, sub
from typing import Any, NamedTuple
from uuid import UUID

from service.domain.figures import DayUsage
from service.domain.keys import ApiKeyInfo, describe_key
from service.domain.moments import rfc3339
from service.domain.time_buckets import BucketPlan
from service.domain.time_zones import DAY, EPOCH_ORDINAL

QUARTER = 900
QUARTERS_PER_DAY = 96
DEFAULT_LIMIT = 100


class Figures(NamedTuple):
    tokens: int
    usage: int
    stt_duration: int


NOTHING = Figures(0, 0, 0)
NO_USAGE = DayUsage(date.min, 0, 0, 0)  # stands for a day missing from the totals
Point = tuple[date, int]  # a UTC day and a quarter-hour 1-95: C(day, quarter) is wanted


@dataclass(slots=True)
class Series:
    """Figures per bucket of a plan, a list per metric: a report of a hundred keys holds
    thousands of buckets, which as a tuple each would be as many objects to make, add up,
    take apart and collect."""

    tokens: list[int]
    usage: list[int]
    stt_duration: list[int]

    def __len__(self) -> int:
        return len(self.tokens)

    def __iter__(self) -> Iterator[Figures]:
        """Each bucket's figures."""
        return map(Figures, self.tokens, self.usage, self.stt_duration)

    @property
    def has_usage(self) -> bool:
        return any(self.tokens) or any(self.usage) or any(self.stt_duration)

    def total(self) -> Figures:
        return Figures(sum(self.tokens), sum(self.usage), sum(self.stt_duration))


@dataclass(frozen=True, slots=True)
class ReportQuery:
    start: date
    end: date
    time_zone: str = "UTC"
    granularity: str = "day"
    group_by: str | None = None
    api_key_id: str | None = None
    api_key_ids: tuple[str, ...] | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ReportQuery:
        """From a request body loaded by schemas/usage_analytics.py."""
        return cls(
            start=body["start_date"],
            end=body["end_date"],
            time_zone=body["time_zone"],
            granularity=body["granularity"],
            group_by=body["group_by"],
            api_key_id=body["api_key_id"],
            api_key_ids=None if body["api_key_ids"] is None else tuple(body["api_key_ids"]),
            limit=body["limit"] if body["limit"] is not None else DEFAULT_LIMIT,
            cursor=body["cursor"],
        )

    def fingerprint(self, organisation_id: UUID) -> str:
        """What a cursor is bound to: the organisation that asks (its groups are not another's)
        and every field of the question but the cursor itself."""
        fields = {
            "organisation": str(organisation_id),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "time_zone": self.time_zone,
            "granularity": self.granularity,
            "group_by": self.group_by,
            "api_key_id": self.api_key_id,
            "api_key_ids": list(self.api_key_ids) if self.api_key_ids is not None else None,
            "limit": self.limit,
        }
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Cells:
    """What a plan needs of each scope: the totals of `days` (every UTC day from the first
    edge's to the last edge's, that one excluded), and C at `points` (tuples: a question's
    cells are shared between its requests)."""

    days: tuple[date, ...]
    points: tuple[Point, ...]
    edge_days: tuple[int, ...]  # per edge: its day's index in days
    edge_point_index: tuple[int, ...]  # per edge: its point's index in points, or -1
    daily: bool = False  # bucket i is the whole UTC day days[i]: its figures are that day's
    # The same indices as getters, which pick every edge's value of a list at once, in C
    # (a year of days has hundreds of edges). Made from them; compared through them.
    at_edge_days: Callable[[list], tuple] = field(init=False, repr=False, compare=False)
    at_edge_points: Callable[[list], tuple] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at_edge_days", _picker(self.edge_days))
        object.__setattr__(self, "at_edge_points", _picker(self.edge_point_index))


def _picker(indices: tuple[int, ...]) -> Callable[[list], tuple]:
    """The values at `indices` of a list, as a tuple even for one index: a range of only a
    date that never existed in its zone (Apia, 2011-12-30) has one edge and no bucket."""
    if len(indices) == 1:
        (only,) = indices
        return lambda values: (values[only],)
    return itemgetter(*indices)


def cells_for(plan: BucketPlan) -> Cells:
    first = plan.edges[0] // DAY
    days = tuple(
        map(date.fromordinal, range(first + EPOCH_ORDINAL, plan.edges[-1] // DAY + EPOCH_ORDINAL))
    )
    edges: list[tuple[int, Point | None]] = []
    points: dict[Point, None] = {}
    for second in plan.edges:
        day, rest = divmod(second, DAY)
        if rest:
            point = (date.fromordinal(day + EPOCH_ORDINAL), rest // QUARTER)
            points[point] = None
            edges.append((day - first, point))
        else:
            edges.append((day - first, None))
    daily = not points and edges == [(n, None) for n in range(len(days) + 1)]
    edge_days, edge_points = zip(*edges, strict=True)
    ordered = tuple(sorted(points))
    index = {point: n for n, point in enumerate(ordered)}
    edge_point_index = tuple(-1 if point is None else index[point] for point in edge_points)
    return Cells(days, ordered, edge_days, edge_point_index, daily)


def bucket_figures(
    cells: Cells, totals: dict[date, DayUsage], points: dict[Point, Figures]
) -> Series:
    """Each bucket's figures from the day totals and the running sums at the edges (missing
    entries are days or points without usage)."""
    found = map(totals.get, cells.days, repeat(NO_USAGE))
    at_points = map(points.get, cells.points, repeat(NOTHING))
    numbers = [*chain.from_iterable(map(_FIGURES_OF_DAY, found)), *chain.from_iterable(at_points)]
    return bucket_figures_of(cells, numbers)


_FIGURES_OF_DAY = itemgetter(1, 2, 3)


def bucket_figures_of(cells: Cells, numbers: list[int]) -> Series:
    """bucket_figures from every figure at once: the tokens, usage and stt_duration of each
    of the cells' days in turn, then of each of its points (zeros where there was no
    usage)."""
    if cells.daily:
        return Series(numbers[0::3], numbers[1::3], numbers[2::3])
    at_points = 3 * len(cells.days)
    columns = []
    for metric in range(3):
        before = cells.at_edge_days([0, *accumulate(numbers[metric:at_points:3])])
        running = cells.at_edge_points([*numbers[at_points + metric :: 3], 0])  # -1: no point
        marks = list(map(add, before, running))
        columns.append(list(map(sub, marks[1:], marks[:-1])))
    return Series(*columns)


def summed(per_scope: list[Series]) -> Series:
    """Bucket by bucket, the figures of every scope added up."""
    if len(per_scope) == 1:
        alone = per_scope[0]
        return Series(list(alone.tokens), list(alone.usage), list(alone.stt_duration))
    return Series(
        list(map(sum, zip(*(series.tokens for series in per_scope), strict=True))),
        list(map(sum, zip(*(series.usage for series in per_scope), strict=True))),
        list(map(sum, zip(*(series.stt_duration for series in per_scope), strict=True))),
    )


@dataclass(frozen=True, slots=True)
class Clinic:
    id: str
    name: str


@dataclass(slots=True)
class Group:
    """One api key, one clinic, or the keys without a clinic (clinic None)."""

    sort_key: str  # the key's or clinic's id; "~" (after every id) for no clinic
    api_key: ApiKeyInfo | None = None
    clinic: Clinic | None = None
    figures: Series = field(default_factory=lambda: Series([], [], []))


@dataclass(slots=True)
class Report:
    query: ReportQuery
    plan: BucketPlan
    api_key: ApiKeyInfo | None
    figures: Series  # per bucket of the plan, every selected key
    groups: list[Group] | None = None  # this page's, with usage, in order
    next_cursor: str | None = None

    def as_json(self, deltas: DeltasWriter | None = None) -> dict[str, Any]:
        """The 200 body of the API with query options. `deltas` writes each `deltas` object
        from the bucket keys and the figures (deltas_of, dicts, unless told otherwise)."""
        deltas = deltas or deltas_of
        keys = self.plan.keys
        body: dict[str, Any] = {
            "api_key": None if self.api_key is None else describe_key(self.api_key),
            "total": _total(self.figures),
            "deltas": deltas(keys, self.figures),
            "query": {
                "time_zone": self.query.time_zone,
                "granularity": self.query.granularity,
                "group_by": self.query.group_by,
                "start": rfc3339(self.plan.start),
                "end": rfc3339(self.plan.end),
            },
        }
        if self.groups is not None:
            body["groups"] = [
                {
                    self.query.group_by: _group_owner(group),
                    "total": _total(group.figures),
                    "deltas": deltas(keys, group.figures),
                }
                for group in self.groups
            ]
            body["next_cursor"] = self.next_cursor
        return body


DeltasWriter = Callable[[list[str], Series], Any]


def deltas_of(keys: list[str], figures: Series) -> dict[str, dict[str, int]]:
    """The API's `deltas`: each bucket with usage, by its key."""
    found = zip(keys, figures.tokens, figures.usage, figures.stt_duration, strict=True)
    return {
        key: {"tokens": tokens, "usage": usage, "stt_duration": stt}
        for key, tokens, usage, stt in found
        if tokens or usage or stt
    }


def _group_owner(group: Group) -> dict | None:
    if group.api_key is not None:
        return describe_key(group.api_key)
    if group.clinic is not None:
        return {"id": group.clinic.id, "name": group.clinic.name}
    return None


def _total(figures: Series) -> dict[str, int]:
    tokens, usage, stt = figures.total()
    return {"stt_duration": stt, "tokens": tokens, "usage": usage}


# --- cursors: the next page of groups, bound to the organisation and the question, signed ---


class BadCursor(ValueError):
    pass


def make_cursor(secret: bytes, organisation_id: UUID, query: ReportQuery, after: str) -> str:
    bound = query.fingerprint(organisation_id)
    payload = base64.urlsafe_b64encode(
        json.dumps({"a": after, "q": bound}, separators=(",", ":")).encode()
    ).rstrip(b"=")
    return (payload + b"." + _signature(secret, payload)).decode()


def read_cursor(secret: bytes, organisation_id: UUID, query: ReportQuery, cursor: str) -> str:
    """The id of the last group of the page the cursor follows, or BadCursor."""
    try:
        payload, signature = cursor.encode("ascii").split(b".")
        if not hmac.compare_digest(signature, _signature(secret, payload)):
            raise BadCursor("the cursor was not made by this service")
        content = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    except (ValueError, UnicodeError, TypeError):
        raise BadCursor("the cursor was not made by this service") from None
    if not isinstance(content, dict) or not isinstance(content.get("a"), str):
        raise BadCursor("the cursor was not made by this service")
    if content.get("q") != query.fingerprint(organisation_id):
        raise BadCursor("the cursor belongs to another question (other fields or organisation)")
    return content["a"]


def _signature(secret: bytes, payload: bytes) -> bytes:
    digest = hmac.new(secret, b"cursor:" + payload, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest)
