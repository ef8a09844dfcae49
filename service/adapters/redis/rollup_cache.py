"""The Redis rollup cache: daily figures of an organisation (or of one key) in hashes.

Where each day lives is layout.py's business. Fills are lease-guarded: a reader takes the
bucket's lease (SET NX PX) before its SQL read and writes only while its lease is still
there (one script checks and writes). Invalidation deletes the lease before the day's
field, so a fill that raced an import writes nothing, whichever order they meet in.

On a Redis Cluster (nodes.py) every command of one organisation goes to the node serving
its hash tag; commands spanning organisations are sent node by node, each under that
node's breaker. Forgetting is all or nothing: it counts as done only once every node
concerned has forgotten, and its replicas have acknowledged it.
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, partial
from itertools import chain, compress, repeat
from operator import itemgetter, ne
from typing import TypeVar
from uuid import UUID

import orjson
import pybreaker
import redis
from hiredis import pack_command
from redis.commands.core import Script
from redis.exceptions import RedisClusterException

from service.adapters.redis.layout import (
    EMPTY,
    Layout,
    SharedBucket,
    encode,
    field_of,
    field_of_point,
    fields_of,
    lease_of,
    points_mark_of,
    shared_buckets,
)
from service.adapters.redis.nodes import Breakers, ClusterNodes, Node, OneRedis, client_options
from service.domain.figures import DailyFigures, DayUsage, Scope, days_between
from service.domain.kept import KeptByIdentity
from service.domain.reports import Figures, Point
from service.observability import metrics
from service.usecases.ports import CacheRead, CacheUnavailable, DailyRead

T = TypeVar("T")
SCAN_BATCH = 1000

# Forget days of a bucket: its lease first (a fill that checks it afterwards writes nothing),
# then each day's total, and its running sums when the day's mark says it has some.
FORGET_SCRIPT = """
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], unpack(ARGV))
for _, day in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[1], day .. '.p') == 1 then
    local names = {day .. '.p'}
    for quarter = 1, 95 do names[quarter + 1] = string.format('%s.%02d', day, quarter) end
    redis.call('HDEL', KEYS[1], unpack(names))
  end
end
return 1
"""

# Fill buckets of one organisation (one slot on a cluster): KEYS are bucket, lease, bucket,
# lease...; ARGV the token, then for each bucket its lifetime, how many field and value
# items follow, and those. A bucket is written only while its lease holds the token; the
# answer says, bucket by bucket, whether it was.
FILL_SCRIPT = """
local token, at, written = ARGV[1], 2, {}
for i = 1, #KEYS, 2 do
  local ttl, items = ARGV[at], tonumber(ARGV[at + 1])
  if redis.call('GET', KEYS[i + 1]) == token then
    redis.call('HSET', KEYS[i], unpack(ARGV, at + 2, at + 1 + items))
    redis.call('PEXPIRE', KEYS[i], ttl, 'NX')
    redis.call('DEL', KEYS[i + 1])
    written[#written + 1] = 1
  else
    written[#written + 1] = 0
  end
  at = at + 2 + items
end
return written
"""

# Fills are packed by hand: the script is loaded in each fill's round trip and run by its
# digest.
LOAD_FILL = pack_command((b"SCRIPT", b"LOAD", FILL_SCRIPT))
FILL_DIGEST = hashlib.sha1(FILL_SCRIPT.encode()).hexdigest().encode()


@dataclass
class Lease:
    """The buckets a fill may write (their leases were free), and the token proving it."""

    token: bytes
    buckets: dict[str, tuple[Scope, list[date], list[Point]]] = field(default_factory=dict)


def redis_client(url: str, timeout_ms: int = 200) -> redis.Redis:
    """One Redis, with timeouts and retries that suit a cache (nodes.client_options)."""
    return redis.Redis.from_url(url, **client_options(timeout_ms))


def _packed_hmget_head(key: bytes, field_count: int) -> bytes:
    return b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n" % (field_count + 2, len(key), key)


def _packed_arguments(fields: list[bytes]) -> bytes:
    return b"".join(b"$%d\r\n%s\r\n" % (len(field), field) for field in fields)


# A DayUsage from a (day, tokens, usage, stt_duration) tuple, and Figures from a triple, made
# in C: the named tuples' own constructors are Python functions, and a report of a hundred
# keys makes thousands of them.
_day_usage = partial(tuple.__new__, DayUsage)
_figures = partial(tuple.__new__, Figures)
# A cached value "t u s" holding a figure of 2^64 or more (20 digits) is at least this long.
_WIDE_VALUE = 24


def _decoded(values: list[bytes]) -> list[int]:
    """The figures of many cached values at once, in one parse: orjson reads a list of
    numbers several times faster than int() reads them one by one, but reads a figure of
    2^64 or more as a float: values long enough to hold one go through int()."""
    joined = b" ".join(values)
    if values and max(map(len, values)) >= _WIDE_VALUE:
        return list(map(int, joined.split()))
    return orjson.loads(b"[%s]" % joined.replace(b" ", b","))


def _with_usage(values: list[bytes | None]) -> list[bool]:
    """Per cached value: whether it holds figures (not missing, not EMPTY)."""
    if None in values:
        return [value is not None and value != EMPTY for value in values]
    return list(map(ne, values, repeat(EMPTY)))


def _reads_of(days: Sequence[date], points: Sequence[Point], today: date) -> tuple:
    """What a read of these days and running sums sends, whatever the scope: per bucket its
    name after the scope's prefix, how many fields and the fields packed; what puts a
    scope's replies in the order of its days' values then its points' (None when they
    already are); the cacheable days and points in that order."""
    shared = shared_buckets(days, points, today)
    tails = []
    is_day: list[bool] = []  # per value of a scope's replies
    for bucket in shared:
        fields = bucket.fields
        tails.append((bucket.suffix.encode(), len(fields), _packed_arguments(fields)))
        is_day += [True] * len(bucket.days) + [False] * len(bucket.points)
    reorder = None
    if not all(is_day):  # bucket by bucket, days then points: days first, then points
        order = [n for n, kind in enumerate(is_day) if kind]
        order += [n for n, kind in enumerate(is_day) if not kind]
        if order != sorted(order):  # then it has two values at least: itemgetter gives tuples
            reorder = itemgetter(*order)
    cached_days = [day for bucket in shared for day in bucket.days]
    cached_points = [point for bucket in shared for point in bucket.points]
    return tails, reorder, cached_days, cached_points


@lru_cache(maxsize=256)
def _range_reads(first: date, last: date, today: date) -> tuple:
    """_reads_of the consecutive days `first`..`last`, worked out once for every request
    asking for those days the same UTC day (callers must not change the lists)."""
    return _reads_of(days_between(first, last), (), today)


_shared_plans: KeptByIdentity[tuple] = KeptByIdentity()


def _shared_reads(days: Sequence[date], points: Sequence[Point], today: date) -> tuple:
    """_reads_of, kept for tuples by their identity the same UTC day: a report's cells are
    tuples shared between requests (service/usecases/reports.py: the plan of a question is
    made once)."""
    if not (isinstance(days, tuple) and isinstance(points, tuple)):
        return _reads_of(days, points, today)
    return _shared_plans.get_or_make((days, points), partial(_reads_of, days, points, today), today)


def _missing(wanted: list[T], values: list[bytes | None]) -> list[T]:
    if None not in values:
        return []
    return [item for item, value in zip(wanted, values, strict=True) if value is None]


class RedisRollupCache:
    """The RollupCache port (service/usecases/ports.py): every Redis command of the service.
    Each raises CacheUnavailable, never a redis error; a breaker per node (one per process
    on one Redis) stops calls while that node keeps failing."""

    def __init__(
        self,
        client: redis.Redis | ClusterNodes,
        *,
        namespace: str | Callable[[], str],
        ttl_seconds: int,
        today_ttl_seconds: int,
        lease_ms: int,
        read_by_servers: bool = False,
        breaker_failures: int = 3,
        breaker_reset_seconds: float = 5,
    ) -> None:
        """`namespace`: the database's identity in the cache, or how to look it up (once, on
        first use). `read_by_servers`: this process serves requests from this cache.
        `client`: one Redis, or the nodes of a Redis Cluster."""
        self._namespace = namespace
        self._layout: Layout | None = None
        self._layout_lock = threading.Lock()
        self.read_by_servers = read_by_servers
        self.ttl_ms = ttl_seconds * 1000
        self.today_ttl_ms = today_ttl_seconds * 1000
        self.lease_ms = lease_ms
        # Breakers per process (each gunicorn worker builds its own app), one per node.
        breakers = Breakers(breaker_failures, breaker_reset_seconds)
        self.nodes: OneRedis | ClusterNodes
        # How long a forget waits for a node's replicas, well within the socket timeout.
        self._wait_ms = 100
        if isinstance(client, ClusterNodes):
            client.use_breakers(breakers)
            self.nodes = client
            self.client = None
            self.breaker = None
            self._wait_ms = max(1, client.timeout_ms // 2)
        else:
            self.nodes = OneRedis(client, breakers)
            self.client = client
            self.breaker = self.nodes.node.breaker
        # The forget script is sent by digest through whichever node's pipeline needs it.
        self._forget = Script(None, FORGET_SCRIPT.encode())
        # The last read of each question, by its HMGETs as sent: its replies, cacheable
        # days and what they decoded to (see read); read_every's by its scopes, its days'
        # and points' identity (a plan's, shared between requests) and the day: its
        # replies and what they decoded to.
        self._last_reads: KeptByIdentity[tuple[list, list[date], DailyRead]] = KeptByIdentity()
        self._last_every: KeptByIdentity[tuple[list, list[list[int]]]] = KeptByIdentity()

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            with self._layout_lock:
                if self._layout is None:
                    self._layout = Layout(self._looked_up_namespace())
        return self._layout

    def _looked_up_namespace(self) -> str:
        if isinstance(self._namespace, str):
            return self._namespace
        try:
            return self._namespace()
        except Exception as problem:  # Postgres' trouble, not Redis': the breaker stays shut
            raise CacheUnavailable("the cache's namespace could not be looked up") from problem

    def open(self) -> None:
        """Look the namespace up, and, in a server, mark this Redis as the one servers read
        (the mark is set again with every fill and invalidation, should Redis lose it)."""
        if self.read_by_servers:
            with suppress(CacheUnavailable):
                node = self._mark_node()
                self._on(node, lambda: node.client.set(self.layout.served_mark, b"1"))
        else:
            self.layout  # noqa: B018

    def _mark_node(self) -> Node:
        return self.nodes.node_of_key(self.layout.served_mark)

    def is_marked(self) -> bool:
        """Whether this Redis (on a cluster: the node serving the mark's slot) bears the
        mark of this database's servers."""
        node = self._mark_node()
        return bool(self._on(node, lambda: node.client.exists(self.layout.served_mark)))

    def is_read_by_servers(self) -> bool:
        """Whether servers of this database read this Redis: they mark it. A command that
        cannot see the mark must not count an invalidation as delivered: the servers' cache
        may be another Redis (another REDIS_URL), which still holds the old figures."""
        return self.read_by_servers or self.is_marked()

    @property
    def available(self) -> bool:
        """False while every node's breaker is open and its reset timeout has not passed:
        nothing would reach Redis (after the timeout, the next call is the breaker's trial).
        On a cluster, a node's open breaker answers its organisations' calls at once."""
        known = self.nodes.known()
        return not known or any(node.allows_calls for node in known)

    def ping(self) -> float:
        """Milliseconds for a PING, bounded by the socket timeouts; past the breaker, so that
        readiness tells whether Redis answers now. On a cluster, every primary is asked and
        the slowest answer counts; one that does not answer makes the cache unavailable."""
        if self.nodes.is_cluster:
            state = self.cluster_state()
            assert state is not None
            if state["reachable"] < state["primaries"] or state["state"] != "ok":
                raise CacheUnavailable("some node of the Redis Cluster does not answer")
            return state["latency_ms"]
        started = time.perf_counter()
        try:
            self.nodes.node.client.ping()
        except redis.RedisError as problem:
            raise CacheUnavailable(str(problem) or type(problem).__name__) from problem
        return (time.perf_counter() - started) * 1000

    def cluster_state(self) -> dict | None:
        """On a Redis Cluster, its state as this process sees it (`state`, the cluster's
        own `cluster_state`; `primaries` serving slots; how many are `reachable`;
        `latency_ms` of the slowest); None on one Redis."""
        if not self.nodes.is_cluster:
            return None
        try:
            return self.nodes.state()
        except CacheUnavailable:
            return {"state": None, "primaries": 0, "reachable": 0, "latency_ms": None}

    def close(self) -> None:
        self.nodes.close()

    def _on(self, node: Node, operation: Callable[[], T]) -> T:
        """`operation` on `node` behind its breaker; a failure is CacheUnavailable."""
        try:
            return node.breaker.call(operation)
        except (redis.RedisError, pybreaker.CircuitBreakerError) as problem:
            metrics.CACHE_UNAVAILABLE.inc()
            self.nodes.trouble(problem)
            raise CacheUnavailable(str(problem) or type(problem).__name__) from problem

    def _per_node(
        self, groups: dict[Node, T], operation: Callable[[Node, T], list]
    ) -> tuple[dict[Node, list], list[CacheUnavailable]]:
        """`operation(node, group)` on each node behind its breaker: the answers of the
        nodes that answered, and the failures of the others."""
        answers: dict[Node, list] = {}
        failures: list[CacheUnavailable] = []
        for node, group in groups.items():
            try:
                answers[node] = self._on(node, partial(operation, node, group))
            except CacheUnavailable as failure:
                failures.append(failure)
        return answers, failures

    def _exchange(self, node: Node, packed: Iterable[bytes], replies: int) -> list:
        """Send commands packed by hand, each part as soon as it is made (Redis runs the
        first while the next are packed), then read their replies back in one go: for a few
        hundred buckets the client library's own pipeline costs several times more than
        Redis does. A connection found dead (Redis restarted) is tried once more on a fresh
        one, as the client's own retry would; an error reply raises."""
        pool = node.client.connection_pool
        sent: list[bytes] = []
        parts = iter(packed)
        for attempt in (1, 2):
            conn = pool.get_connection()
            try:
                if sent:
                    conn.send_packed_command(sent)
                for part in parts:
                    sent.append(part)
                    conn.send_packed_command([part], check_health=False)
                return [conn.read_response() for _ in range(replies)]
            except redis.ConnectionError:
                conn.disconnect()
                if attempt == 2:
                    raise
            except BaseException:
                conn.disconnect()  # a reply may be left half read: never reuse it
                raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")

    def read(self, scope: Scope, days: list[date], today: date) -> DailyRead:
        """One pipelined round trip for all the cacheable days (ascending) of a range,
        however many buckets (an HMGET each: cheaper for Redis than any script), decoded in
        bulk. Replies equal to the last ones of the same HMGETs give the very DailyRead they
        gave then (callers must not change it): a dashboard asking again while its figures
        stay the same decodes nothing, and what was made of them can be kept by identity."""
        if days and days[-1].toordinal() - days[0].toordinal() + 1 == len(days):
            tails, _, cacheable, _ = _range_reads(days[0], days[-1], today)  # consecutive days
        else:
            tails, _, cacheable, _ = _reads_of(days, (), today)
        if not tails:
            return DailyRead(DailyFigures([], []), [])

        prefix = self.layout.scope_prefix(scope).encode()
        packed = b"".join(
            _packed_hmget_head(prefix + suffix, count) + arguments
            for suffix, count, arguments in tails
        )
        node = self.nodes.node_of(scope.organisation_id)
        answers = self._on(node, lambda: self._exchange(node, [packed], len(tails)))
        values = list(chain(*answers))
        last = self._last_reads.get((), packed)
        if last is not None and last[0] == values and last[1] == cacheable:
            return last[2]
        with_usage = _with_usage(values)
        days_with_usage = list(compress(cacheable, with_usage))
        numbers = _decoded(list(compress(values, with_usage)))
        read = DailyRead(DailyFigures(days_with_usage, numbers), _missing(cacheable, values))
        return self._last_reads.keep((), (values, cacheable, read), packed)[2]

    def read_many(
        self, scopes: list[Scope], days: Sequence[date], points: Sequence[Point], today: date
    ) -> list[CacheRead]:
        """The days' totals and the running sums at `points` of several scopes, in one
        pipelined round trip (an HMGET a bucket and scope). Every scope asks for the same
        fields of the same buckets but for its prefix: they are worked out and packed once,
        and every scope's values are decoded in one parse."""
        replies, cached_days, cached_points = self._scope_replies(scopes, days, points, today)
        if not replies:
            return [CacheRead({}, [], {}, []) for _ in scopes]
        width = len(cached_days) + len(cached_points)
        day_count = len(cached_days)
        with_usage = _with_usage(replies)
        some_missing = None in replies
        numbers = iter(_decoded(list(compress(replies, with_usage))))
        reads = []
        for start in range(0, len(replies), width):
            middle, end = start + day_count, start + width
            days_with_usage = list(compress(cached_days, with_usage[start:middle]))
            usage = map(_day_usage, zip(days_with_usage, numbers, numbers, numbers, strict=False))
            read = CacheRead(dict(zip(days_with_usage, usage, strict=False)), [], {}, [])
            if cached_points:
                points_with_usage = list(compress(cached_points, with_usage[middle:end]))
                sums = map(_figures, zip(numbers, numbers, numbers, strict=False))
                read.found_points = dict(zip(points_with_usage, sums, strict=False))
            if some_missing:
                read.missing = _missing(cached_days, replies[start:middle])
                read.missing_points = _missing(cached_points, replies[middle:end])
            reads.append(read)
        return reads

    def read_every(
        self, scopes: list[Scope], days: Sequence[date], points: Sequence[Point], today: date
    ) -> list[list[int]] | None:
        """Every scope's figures of every day (ascending) and then at every point (running
        sums, ascending), in one pipelined round trip: the tokens, usage and stt_duration of
        each in turn, zeros where there was no usage; None unless the cache holds every day
        and point of every scope. Nothing is made per day: the replies decode in one parse
        into each scope's slice. Replies equal to the last ones of the same scopes, days
        and points give the very lists they gave then (callers must not change them), as
        read does."""
        if (days and days[-1] > today) or (points and points[-1][0] > today):
            return None  # never cached
        replies, cached_days, cached_points = self._scope_replies(scopes, days, points, today)
        if not replies or None in replies:
            return None
        asked = (*scopes, today)
        last = self._last_every.get((days, points), asked)
        if last is not None and last[0] == replies:
            return last[1]
        numbers = _decoded(replies)
        width = 3 * (len(cached_days) + len(cached_points))
        every = [numbers[start : start + width] for start in range(0, len(numbers), width)]
        return self._last_every.keep((days, points), (replies, every), asked)[1]

    def _scope_replies(
        self, scopes: list[Scope], days: Sequence[date], points: Sequence[Point], today: date
    ) -> tuple[list[bytes | None], list[date], list[Point]]:
        """Every scope's cached values in one pipelined round trip, scope after scope, each
        its days' then its points' (as the cacheable days and points returned beside)."""
        tails, reorder, cached_days, cached_points = _shared_reads(days, points, today)
        if not tails:
            return [], cached_days, cached_points
        prefixes = [prefix.encode() for prefix in self.layout.scope_prefixes(scopes)]
        replies = list(chain(*self._read_scopes(scopes, prefixes, tails)))
        if reorder is not None:  # a scope's replies at a time, in C
            width = len(cached_days) + len(cached_points)
            scopes_replies = (
                replies[start : start + width] for start in range(0, len(replies), width)
            )
            replies = list(chain.from_iterable(map(reorder, scopes_replies)))
        return replies, cached_days, cached_points

    def _read_scopes(
        self, scopes: list[Scope], prefixes: list[bytes], tails: list[tuple]
    ) -> list[list[bytes | None]]:
        """The replies of every scope's HMGETs, scope after scope: one round trip per node
        (one in all when the scopes are of one organisation)."""
        by_node: dict[Node, list[int]] = defaultdict(list)
        organisations: dict[UUID, Node] = {}
        for n, scope in enumerate(scopes):
            node = organisations.get(scope.organisation_id)
            if node is None:
                node = organisations[scope.organisation_id] = self.nodes.node_of(
                    scope.organisation_id
                )
            by_node[node].append(n)
        per_scope: list[list] = [[] for _ in scopes]
        for node, members in by_node.items():
            packed = b"".join(
                _packed_hmget_head(prefixes[n] + suffix, count) + arguments
                for n in members
                for suffix, count, arguments in tails
            )
            replies = self._on(
                node, partial(self._exchange, node, [packed], len(members) * len(tails))
            )
            if len(by_node) == 1:  # one node (always on one Redis): already in scope order
                return replies
            for rank, n in enumerate(members):
                per_scope[n] = replies[rank * len(tails) : (rank + 1) * len(tails)]
        return list(chain.from_iterable(per_scope))

    def lease(self, wanted: Iterable[tuple], today: date) -> Lease:
        """Take the free leases of the buckets these (scope, days[, points]) live in, in one
        round trip."""
        lease = Lease(token=secrets.token_hex(16).encode())
        buckets: dict[str, tuple[Scope, list[date], list[Point]]] = {}
        shared_days: dict[tuple[date, ...], list[SharedBucket]] = {}  # scopes share ranges
        for scope, days, *more in wanted:
            shared = shared_days.get(wanted_days := tuple(days))
            if shared is None:
                shared = shared_days[wanted_days] = shared_buckets(wanted_days, (), today)
            base = self.layout.scope_prefix(scope)
            for bucket in shared:
                buckets[base + bucket.suffix] = (scope, bucket.days, [])
            for bucket, found in self.layout.point_buckets(
                scope, more[0] if more else [], today
            ).items():
                buckets.setdefault(bucket, (scope, [], []))[2].extend(found)
        if not buckets:
            return lease
        groups = self._by_node((name, entry[0].organisation_id) for name, entry in buckets.items())

        def take(node: Node, names: list[str]) -> list[bytes | None]:
            held = (lease.token, b"NX", b"PX", self.lease_ms)
            packed = b"".join(pack_command((b"SET", lease_of(bucket), *held)) for bucket in names)
            return self._exchange(node, [packed], len(names))

        answers, failures = self._per_node(groups, take)
        if failures and not answers:  # no node answered: the caller serves from SQL alone
            raise failures[0]
        for node, granted in answers.items():
            for bucket, ok in zip(groups[node], granted, strict=True):
                if ok:
                    lease.buckets[bucket] = buckets[bucket]
        return lease

    def _by_node(self, owned: Iterable[tuple[T, UUID]]) -> dict[Node, list[T]]:
        """Things (bucket names, organisations) grouped by the node serving the organisation
        each belongs to (a node per organisation)."""
        groups: dict[Node, list[T]] = defaultdict(list)
        organisations: dict[UUID, Node] = {}
        for thing, organisation_id in owned:
            node = organisations.get(organisation_id)
            if node is None:
                node = organisations[organisation_id] = self.nodes.node_of(organisation_id)
            groups[node].append(thing)
        return groups

    def fill(
        self,
        lease: Lease,
        figures: dict[Scope, dict[date, DayUsage]],
        today: date,
        points: dict[Scope, dict[Point, Figures]] | None = None,
    ) -> int:
        """Write the leased buckets whose lease is still ours, from `figures[scope][day]`
        and `points[scope][point]` (a day or point missing there had no usage), in one round
        trip. Returns the days and points written."""
        points = points or {}

        def pairs(scope: Scope, days: list[date], bucket_points: list[Point]) -> list[bytes]:
            known = figures.get(scope, {})
            found: list[bytes] = []
            for day in days:
                usage = known.get(day)
                found += (field_of(day), EMPTY if usage is None else encode(usage))
            known_points = points.get(scope, {})
            for point in bucket_points:
                usage = known_points.get(point)
                found += (field_of_point(point), EMPTY if usage is None else encode(usage))
            for day in {day for day, _ in bucket_points}:
                found += (points_mark_of(day), b"1")
            return found

        return self._write_leased(lease, today, pairs)

    def fill_texts(self, lease: Lease, texts: dict[Scope, dict[date, bytes]], today: date) -> int:
        """`fill` of days from their figures as text (`figures_text`), as a bulk read gives
        them: nothing to encode."""

        def pairs(scope: Scope, days: list[date], _: list[Point]) -> list[bytes]:
            known = texts.get(scope, {})
            return list(
                chain.from_iterable(
                    zip(fields_of(days), map(known.get, days, repeat(EMPTY)), strict=True)
                )
            )

        return self._write_leased(lease, today, pairs)

    def _write_leased(
        self,
        lease: Lease,
        today: date,
        pairs: Callable[[Scope, list[date], list[Point]], list[bytes]],
    ) -> int:
        """Write each leased bucket's `pairs` (fields and values) while its lease is still
        ours: one script an organisation, packed by hand, one round trip a node (the script
        is loaded first in the same round trip, so that Redis always knows it)."""
        if not lease.buckets:
            return 0
        by_organisation: dict[UUID, list[str]] = defaultdict(list)
        for bucket, (scope, _, _) in lease.buckets.items():
            by_organisation[scope.organisation_id].append(bucket)
        groups = self._by_node((org, org) for org in by_organisation)
        mark_node = self._mark_node() if self.read_by_servers else None

        def script(buckets: list[str]) -> bytes:
            keys: list[str] = []
            arguments: list[bytes | int] = [lease.token]
            for bucket in buckets:
                scope, days, bucket_points = lease.buckets[bucket]
                first_day = days[0] if days else bucket_points[0][0]
                ttl = self.today_ttl_ms if first_day >= today else self.ttl_ms
                written = pairs(scope, days, bucket_points)
                keys += (bucket, lease_of(bucket))
                arguments += (ttl + random.randrange(ttl // 10 + 1), len(written), *written)
            return pack_command((b"EVALSHA", FILL_DIGEST, len(keys), *keys, *arguments))

        def write(node: Node, organisations: list[UUID]) -> list[list[int]]:
            packed = chain(
                [LOAD_FILL],
                (script(by_organisation[org]) for org in organisations),
                [pack_command((b"SET", self.layout.served_mark, b"1"))]
                if node is mark_node
                else [],
            )
            replies = self._exchange(node, packed, len(organisations) + 1 + (node is mark_node))
            return replies[1 : 1 + len(organisations)]  # after the load; the mark's comes last

        answers, failures = self._per_node(groups, write)
        if failures and not answers:
            raise failures[0]
        written = 0
        for node, per_organisation in answers.items():
            for org, oks in zip(groups[node], per_organisation, strict=True):
                for bucket, ok in zip(by_organisation[org], oks, strict=True):
                    if ok:
                        _, days, bucket_points = lease.buckets[bucket]
                        written += len(days) + len(bucket_points)
        return written

    def invalidate(
        self, touched: Iterable[tuple[UUID, UUID, date]], today: date | None = None
    ) -> int:
        """Forget the figures of these (organisation, key, day) triples, in the organisation's
        rollups and in the key's, in whichever bucket they may sit: a day sits in its month's
        bucket, and in a day bucket of its own while it is (or was lately) the current day.
        Each bucket's lease goes before its fields: a fill that checks its lease in between
        writes nothing, one before is overwritten. One round trip, one script a bucket;
        returns how many (scope, day) pairs were forgotten (their running sums go with
        them). Outside a server, an invalidation counts as delivered only where servers
        have marked this Redis as theirs (CacheUnavailable otherwise, asked first)."""
        if not self.read_by_servers and not self.is_read_by_servers():
            raise CacheUnavailable("no server of this database reads this Redis")
        today = today or datetime.now(UTC).date()
        # A day bucket outlives its day by its TTL and jitter at most.
        day_bucket_lifetime = math.ceil(self.today_ttl_ms * 1.1 / 86_400_000)
        recent = today - timedelta(days=1 + day_bucket_lifetime)
        forgotten: set[tuple[Scope, date]] = set()
        fields: dict[str, tuple[UUID, set[bytes]]] = {}
        for organisation_id, api_key_id, day in touched:
            for scope in (Scope(organisation_id), Scope(organisation_id, api_key_id)):
                if (scope, day) in forgotten:
                    continue
                forgotten.add((scope, day))
                buckets = [self.layout.bucket(scope, day, today=date.max)]
                if day >= recent:
                    buckets.append(self.layout.bucket(scope, day, today=day))
                for bucket in buckets:
                    fields.setdefault(bucket, (organisation_id, set()))[1].add(field_of(day))
        if not fields:
            return 0
        groups = self._by_node((name, entry[0]) for name, entry in fields.items())
        # The mark rides along where its node is concerned anyway (on one Redis, always):
        # a node that holds none of these organisations must not make their forgetting
        # fail (a command asked for the mark above already).
        mark_node: Node | None = self._mark_node()
        if mark_node not in groups:
            mark_node = None

        def forget(node: Node, names: list[str]) -> list:
            pipe = node.client.pipeline(transaction=False)
            if node is mark_node:
                if self.read_by_servers:
                    pipe.set(self.layout.served_mark, b"1")
                else:
                    pipe.exists(self.layout.served_mark)
            for bucket in names:
                days = sorted(fields[bucket][1])
                self._forget(keys=[bucket, lease_of(bucket)], args=days, client=pipe)
            answers = pipe.execute()
            if names:
                self._await_replicas(node)
            return answers

        answers, failures = self._per_node(groups, forget)
        if failures:
            raise CacheUnavailable(
                f"{len(failures)} of {len(groups)} Redis nodes did not forget: {failures[0]}"
            )
        if mark_node is not None and not answers[mark_node][0]:
            raise CacheUnavailable("no server of this database reads this Redis")
        return len(forgotten)

    def _await_replicas(self, node: Node) -> None:
        """On a cluster, until every replica the node streams to has acknowledged what was
        just written: a replica promoted without a forget would serve the forgotten figures
        again."""
        replicas = self.nodes.replicas_of(node)
        if replicas and node.client.wait(replicas, self._wait_ms) < replicas:
            raise redis.TimeoutError("the node's replicas did not acknowledge in time")

    def clear(self, organisation_id: UUID | None = None) -> int:
        """Drop the cached rollups and leases of one organisation, or of all, on every node
        (SCAN sees one node's keys only); returns how many keys went. CacheUnavailable when
        any node could not be cleared (or its replicas did not follow)."""
        if organisation_id is None:
            nodes = self._all_primaries()
        else:
            nodes = [self.nodes.node_of(organisation_id)]
        pattern = self.layout.pattern(organisation_id)
        mark = self.layout.served_mark.encode()

        def unlink(client: redis.Redis, keys: list[bytes]) -> int:
            if not self.nodes.is_cluster:
                return client.unlink(*keys)
            pipe = client.pipeline(transaction=False)  # a cluster's keys may span slots
            for key in keys:
                pipe.unlink(key)
            return sum(pipe.execute())

        def drop(node: Node, _: None) -> int:
            client = node.client
            dropped = 0
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=SCAN_BATCH):
                if key == mark:  # still the servers' Redis
                    continue
                batch.append(key)
                if len(batch) == SCAN_BATCH:
                    dropped += unlink(client, batch)
                    batch.clear()
            if batch:
                dropped += unlink(client, batch)
            self._await_replicas(node)
            return dropped

        answers, failures = self._per_node(dict.fromkeys(nodes), drop)
        if failures:
            raise CacheUnavailable(
                f"{len(failures)} of {len(nodes)} Redis nodes were not cleared: {failures[0]}"
            )
        return sum(answers.values())

    def _all_primaries(self) -> list[Node]:
        try:
            return self.nodes.primaries()
        except (redis.RedisError, RedisClusterException) as problem:
            raise CacheUnavailable(str(problem) or type(problem).__name__) from problem
