"""The cache's layout and lease logic, on fakeredis (no servers)."""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta

import fakeredis
import pytest

from service.adapters.redis.layout import Layout, lease_of, shared_buckets
from service.adapters.redis.rollup_cache import RedisRollupCache
from service.domain.figures import DayUsage, Scope
from service.domain.reports import Figures
from service.observability.metrics import REGISTRY
from service.usecases.ports import CacheRead, CacheUnavailable

TODAY = date(2024, 3, 10)
ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
KEY = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


def days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=n) for n in range(count)]


def usage(day: date, tokens: int) -> DayUsage:
    return DayUsage(day, tokens, tokens % 7, tokens % 11)


def cache_on(server: fakeredis.FakeServer | None = None, **overrides) -> RedisRollupCache:
    """A server's cache unless `read_by_servers=False` says a command's."""
    options = {
        "namespace": "testdb",
        "ttl_seconds": 3600,
        "today_ttl_seconds": 60,
        "lease_ms": 10_000,
        "read_by_servers": True,
    }
    return RedisRollupCache(fakeredis.FakeRedis(server=server), **(options | overrides))


@pytest.fixture()
def cache() -> RedisRollupCache:
    return cache_on()


def test_every_key_of_an_organisation_shares_its_hash_tag():
    layout = Layout("db")
    keys = [
        layout.bucket(Scope(ORG), date(2024, 1, 15), TODAY),
        layout.bucket(Scope(ORG, KEY), date(2023, 12, 31), TODAY),
        layout.bucket(Scope(ORG), TODAY, TODAY),
        lease_of(layout.bucket(Scope(ORG, KEY), TODAY, TODAY)),
    ]
    for key in keys:
        assert key.count("{") == 1 and key[key.index("{") + 1 : key.index("}")] == str(ORG)
        assert key.startswith("ua1:db:")


def test_past_days_group_by_month_and_the_current_day_stands_alone():
    layout = Layout("db")
    range_ = days(date(2023, 12, 20), 30)  # 2023-12-20 .. 2024-01-18
    buckets = layout.buckets(Scope(ORG), range_, today=date(2024, 1, 18))
    assert [b.rsplit(":", 2)[-2:] for b in buckets] == [
        ["m", "2023-12"],
        ["m", "2024-01"],
        ["d", "2024-01-18"],
    ]
    assert sum(len(d) for d in buckets.values()) == 30


def test_days_after_today_are_never_cacheable():
    layout = Layout("db")
    assert layout.buckets(Scope(ORG), days(TODAY + timedelta(days=1), 5), TODAY) == {}


def test_366_days_take_13_or_14_buckets_read_in_one_round_trip(cache, monkeypatch):
    range_ = days(TODAY - timedelta(days=365), 366)
    round_trips = written(cache, monkeypatch)
    read = cache.read(Scope(ORG), range_, TODAY)
    assert len(round_trips) == 1 and round_trips[0].count(b"HMGET") in (13, 14)
    assert read.found == {} and read.missing == range_
    assert len(cache.layout.buckets(Scope(ORG), range_, TODAY)) in (13, 14)


def test_a_filled_range_reads_back_exactly_and_empty_days_are_hits(cache):
    range_ = days(date(2024, 1, 25), 15)
    figures = {day: usage(day, 1000 + n) for n, day in enumerate(range_) if n % 3}
    lease = cache.lease([(Scope(ORG), range_)], TODAY)
    assert cache.fill(lease, {Scope(ORG): figures}, TODAY) == 15
    read = cache.read(Scope(ORG), range_, TODAY)
    assert read.missing == [], "days without usage are hits too"
    assert read.found == figures


def test_a_question_asked_again_reads_as_before_until_one_of_its_values_changes(cache):
    range_ = days(date(2024, 1, 25), 15)
    before = {day: usage(day, 1000 + n) for n, day in enumerate(range_)}
    cache.fill(cache.lease([(Scope(ORG), range_)], TODAY), {Scope(ORG): before}, TODAY)
    first = cache.read(Scope(ORG), range_, TODAY)
    assert cache.read(Scope(ORG), range_, TODAY) is first, "the same replies decode once"
    assert cache.read(Scope(ORG), range_[1:], TODAY).found == dict(list(before.items())[1:])
    assert cache.read(Scope(ORG, KEY), range_, TODAY).missing == range_
    changed = range_[4]
    cache.invalidate([(ORG, KEY, changed)], TODAY)
    assert cache.read(Scope(ORG), range_, TODAY).missing == [changed]
    after = before | {changed: usage(changed, 5)}
    lease = cache.lease([(Scope(ORG), [changed])], TODAY)
    cache.fill(lease, {Scope(ORG): {changed: after[changed]}}, TODAY)
    again = cache.read(Scope(ORG), range_, TODAY)
    assert again.found == after and again.missing == []
    assert first.found == before, "a read given out is never changed"


def test_big_figures_survive_exactly(cache):
    day = date(2024, 1, 5)
    big = DayUsage(day, 2**63 - 1, 2**31 - 1, 2**53 - 1)
    cache.fill(cache.lease([(Scope(ORG), [day])], TODAY), {Scope(ORG): {day: big}}, TODAY)
    assert cache.read(Scope(ORG), [day], TODAY).found == {day: big}


def test_a_second_filler_gets_no_lease_while_the_first_holds_it(cache):
    range_ = days(date(2024, 2, 1), 5)
    first = cache.lease([(Scope(ORG), range_)], TODAY)
    second = cache.lease([(Scope(ORG), range_)], TODAY)
    assert first.buckets and not second.buckets
    assert cache.fill(second, {Scope(ORG): {}}, TODAY) == 0
    assert cache.fill(first, {Scope(ORG): {}}, TODAY) == 5


def test_invalidation_voids_a_fill_in_progress(cache):
    day = date(2024, 2, 3)
    lease = cache.lease([(Scope(ORG), [day])], TODAY)
    cache.invalidate([(ORG, KEY, day)], TODAY)
    assert cache.fill(lease, {Scope(ORG): {day: usage(day, 5)}}, TODAY) == 0
    assert cache.read(Scope(ORG), [day], TODAY).missing == [day]


def test_invalidation_forgets_the_day_for_the_organisation_and_the_key_only(cache):
    range_ = days(date(2024, 2, 1), 3)
    for scope in (Scope(ORG), Scope(ORG, KEY)):
        cache.fill(cache.lease([(scope, range_)], TODAY), {scope: {}}, TODAY)
    cache.invalidate([(ORG, KEY, range_[1])], TODAY)
    for scope in (Scope(ORG), Scope(ORG, KEY)):
        assert cache.read(scope, range_, TODAY).missing == [range_[1]]


def test_invalidation_reaches_a_day_cached_while_it_was_today(cache):
    cache.fill(cache.lease([(Scope(ORG), [TODAY])], TODAY), {Scope(ORG): {}}, TODAY)
    tomorrow = TODAY + timedelta(days=1)
    cache.invalidate([(ORG, KEY, TODAY)], tomorrow)
    assert cache.read(Scope(ORG), [TODAY], TODAY).missing == [TODAY]
    assert cache.read(Scope(ORG), [TODAY], tomorrow).missing == [TODAY]


def test_the_current_day_expires_soon_and_past_days_later(cache):
    past, current = date(2024, 2, 1), TODAY
    lease = cache.lease([(Scope(ORG), [past, current])], TODAY)
    cache.fill(lease, {Scope(ORG): {}}, TODAY)
    layout = cache.layout
    today_ttl = cache.client.pttl(layout.bucket(Scope(ORG), current, TODAY))
    past_ttl = cache.client.pttl(layout.bucket(Scope(ORG), past, TODAY))
    assert 0 < today_ttl <= 66_000
    assert 3_000_000 < past_ttl <= 3_960_000


def test_clear_drops_one_organisation_and_keeps_the_others(cache):
    other = uuid.uuid4()
    day = date(2024, 2, 1)
    for org in (ORG, other):
        cache.fill(cache.lease([(Scope(org), [day])], TODAY), {Scope(org): {}}, TODAY)
    assert cache.clear(ORG) == 1
    assert cache.read(Scope(ORG), [day], TODAY).missing == [day]
    assert cache.read(Scope(other), [day], TODAY).missing == []


def test_namespaces_keep_two_databases_apart():
    server = fakeredis.FakeServer()
    a, b = (cache_on(server, namespace=name) for name in ("db_a", "db_b"))
    day = date(2024, 2, 1)
    a.fill(a.lease([(Scope(ORG), [day])], TODAY), {Scope(ORG): {day: usage(day, 9)}}, TODAY)
    assert b.read(Scope(ORG), [day], TODAY).missing == [day]


def test_redis_failures_open_the_breaker_and_are_reported_as_unavailable():
    server = fakeredis.FakeServer()
    server.connected = False
    cache = cache_on(server, breaker_failures=2, breaker_reset_seconds=60)
    day = date(2024, 2, 1)
    for _ in range(2):
        assert cache.available
        with pytest.raises(CacheUnavailable):
            cache.read(Scope(ORG), [day], TODAY)
    assert not cache.available
    server.connected = True  # even so, the open breaker keeps calls away from Redis
    with pytest.raises(CacheUnavailable):
        cache.invalidate([(ORG, KEY, day)])


def test_the_breaker_lets_a_trial_through_after_its_reset_timeout():
    """And the open-breaker gauge follows it, open then closed again."""
    server = fakeredis.FakeServer()
    cache = cache_on(server, breaker_failures=1, breaker_reset_seconds=0.2)
    day = date(2024, 2, 1)
    server.connected = False
    with pytest.raises(CacheUnavailable):
        cache.read(Scope(ORG), [day], TODAY)
    assert not cache.available
    assert REGISTRY.get_sample_value("scrubs_cache_breaker_open") == 1
    server.connected = True
    time.sleep(0.25)
    assert cache.available
    assert cache.read(Scope(ORG), [day], TODAY).missing == [day]  # the trial
    assert cache.breaker.current_state == "closed"
    assert REGISTRY.get_sample_value("scrubs_cache_breaker_open") == 0


def test_invalidation_sends_one_script_a_bucket_however_many_days(cache, monkeypatch):
    keys = [uuid.uuid4() for _ in range(50)]
    past = days(date(2024, 1, 1), 31)  # one month, long before TODAY: month buckets only
    sent = []
    real_pipeline = cache.client.pipeline

    def counting_pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a, **k):
            sent.append(len(pipe.command_stack))
            return real_execute(*a, **k)

        pipe.execute = execute
        return pipe

    monkeypatch.setattr(cache.client, "pipeline", counting_pipeline)
    forgotten = cache.invalidate([(ORG, key, day) for key in keys for day in past], TODAY)
    assert forgotten == 31 + 50 * 31
    assert sent == [1 + (1 + 50)]  # and the mark


def test_a_commands_invalidation_is_delivered_only_where_servers_have_marked_redis():
    server = fakeredis.FakeServer()
    command = cache_on(server, read_by_servers=False)
    touched = [(ORG, KEY, TODAY - timedelta(days=3))]
    with pytest.raises(CacheUnavailable, match="no server of this database reads this Redis"):
        command.invalidate(touched, today=TODAY)
    assert not command.is_read_by_servers()
    cache_on(server).open()  # a server starts on this Redis
    assert command.is_read_by_servers()
    assert command.invalidate(touched, today=TODAY) == 2
    other_database = cache_on(server, namespace="otherdb", read_by_servers=False)
    assert not other_database.is_read_by_servers(), "the mark is the database's own"


def test_a_server_marks_its_redis_again_whenever_it_fills_or_invalidates():
    server = fakeredis.FakeServer()
    serving = cache_on(server)
    command = cache_on(server, read_by_servers=False)
    for write in (
        lambda: serving.fill(serving.lease([(Scope(ORG), [TODAY])], TODAY), {}, TODAY),
        lambda: serving.invalidate([(ORG, KEY, TODAY)], today=TODAY),
    ):
        fakeredis.FakeRedis(server=server).flushall()  # Redis restarted empty
        assert not command.is_read_by_servers()
        write()
        assert command.is_read_by_servers()


def test_the_namespace_is_looked_up_once_on_first_use():
    looked_up = []

    def identity() -> str:
        looked_up.append(1)
        return "abc123"

    cache = cache_on(namespace=identity)
    assert looked_up == []
    cache.read(Scope(ORG), [TODAY - timedelta(days=1)], TODAY)
    cache.read(Scope(ORG), [TODAY - timedelta(days=1)], TODAY)
    assert looked_up == [1]
    assert cache.layout.bucket(Scope(ORG), TODAY, TODAY).startswith("ua1:abc123:")


def test_a_namespace_that_cannot_be_looked_up_is_an_unavailable_cache_not_an_open_breaker():
    def broken() -> str:
        raise OSError("Postgres is down")

    cache = cache_on(namespace=broken, breaker_failures=1)
    for _ in range(3):
        with pytest.raises(CacheUnavailable, match="namespace"):
            cache.read(Scope(ORG), [TODAY], TODAY)
    assert cache.breaker.current_state == "closed"


def test_running_sums_are_cached_beside_totals_and_forgotten_with_their_day(cache):
    """C(day, quarter) values live in the day's bucket; an invalidation of the day drops
    them with its total, and leaves the other days' alone."""
    month = days(date(2024, 1, 1), 31)
    points = [(month[4], 74), (month[4], 20), (month[9], 74)]
    lease = cache.lease([(Scope(ORG), month, points)], TODAY)
    figures = {Scope(ORG): {month[4]: usage(month[4], 500)}}
    sums = {Scope(ORG): {(month[4], 74): Figures(400, 3, 2), (month[9], 74): Figures(9, 1, 1)}}
    assert cache.fill(lease, figures, TODAY, sums) == 31 + 3
    [read] = cache.read_many([Scope(ORG)], month, points, TODAY)
    assert read.missing == [] and read.missing_points == []
    assert read.found == {month[4]: usage(month[4], 500)}
    assert read.found_points == {
        (month[4], 74): Figures(400, 3, 2),
        (month[9], 74): Figures(9, 1, 1),
    }
    cache.invalidate([(ORG, KEY, month[4])], today=TODAY)
    [read] = cache.read_many([Scope(ORG)], month, points, TODAY)
    assert read.missing == [month[4]]
    assert read.missing_points == [(month[4], 74), (month[4], 20)]
    assert read.found_points == {(month[9], 74): Figures(9, 1, 1)}


def test_one_round_trip_reads_every_scope(cache, monkeypatch):
    scopes = [Scope(ORG, uuid.uuid4()) for _ in range(20)]
    month = days(date(2024, 1, 1), 31)
    round_trips = written(cache, monkeypatch)
    reads = cache.read_many(scopes, month, [(month[0], 10)], TODAY)
    assert len(round_trips) == 1 and round_trips[0].count(b"HMGET") == 20
    assert all(read.missing == month and read.missing_points == [(month[0], 10)] for read in reads)


def test_scopes_read_together_read_as_each_alone(cache):
    """Scopes share the packing and decoding of a read, not their figures: with days and
    running sums in the same buckets (the current day's too), cached in full, in part, as
    empty or not at all, each scope's read is the one it would get alone."""
    range_ = days(date(2024, 2, 25), 15)  # 2024-02-25 .. 2024-03-10 (TODAY): three buckets
    points = [(range_[2], 74), (range_[9], 20), (TODAY, 40), (range_[2], 10)]
    full, part, empty, none = (Scope(ORG, uuid.uuid4()) for _ in range(4))
    for scope, wanted_days, wanted_points, value in (
        (full, range_, points, 7),
        (part, range_[::2], points[1:3], 2**70),  # past 64 bits too
        (empty, range_, points, 0),
    ):
        lease = cache.lease([(scope, wanted_days, wanted_points)], TODAY)
        figures = {day: usage(day, value + n) for n, day in enumerate(wanted_days) if value}
        sums = {point: Figures(value, 1, 2) for point in wanted_points if value}
        cache.fill(lease, {scope: figures}, TODAY, {scope: sums})
    scopes = [none, full, part, empty, full]
    together = cache.read_many(scopes, range_, points, TODAY)
    alone = [cache.read_many([scope], range_, points, TODAY)[0] for scope in scopes]
    assert together == alone
    assert together[1].missing == [] and together[1].missing_points == []
    assert together[1].found[TODAY] == usage(TODAY, 7 + 14)
    assert together[1].found_points[(range_[2], 10)] == Figures(7, 1, 2)
    assert together[0].missing == range_ and sorted(together[0].missing_points) == sorted(points)
    assert together[2].missing == range_[1::2]
    assert together[2].missing_points == [points[0], points[3]]  # bucket by bucket
    assert together[2].found[range_[4]] == usage(range_[4], 2**70 + 2)
    assert together[3].found == {} and together[3].found_points == {}
    assert together[3].missing == [] and together[3].missing_points == []
    alone_daily = cache.read(part, range_, TODAY)
    assert (alone_daily.found, alone_daily.missing) == (together[2].found, together[2].missing)


def test_days_after_today_are_neither_read_nor_missing(cache):
    later = days(TODAY + timedelta(days=1), 3)
    scopes = [Scope(ORG), Scope(ORG, KEY)]
    reads = cache.read_many(scopes, later, [(later[0], 10)], TODAY)
    assert reads == [CacheRead({}, [], {}, []), CacheRead({}, [], {}, [])]


def test_the_buckets_of_a_range_are_the_same_for_every_scope_but_for_their_prefix():
    layout = Layout("db")
    range_ = days(date(2024, 1, 20), 51)  # .. 2024-03-10 (TODAY)
    points = [(range_[0], 30), (TODAY, 8), (range_[20], 4), (TODAY + timedelta(days=1), 8)]
    shared = shared_buckets(range_, points, TODAY)
    assert [bucket.suffix for bucket in shared] == [
        ":m:2024-01",
        ":m:2024-02",
        ":m:2024-03",
        ":d:2024-03-10",
    ]
    for scope in (Scope(ORG), Scope(ORG, KEY)):
        [prefix] = layout.scope_prefixes([scope])
        assert prefix == layout.scope_prefix(scope)
        assert {prefix + bucket.suffix: bucket.days for bucket in shared if bucket.days} == (
            layout.buckets(scope, range_, TODAY)
        )
        assert {prefix + bucket.suffix: bucket.points for bucket in shared if bucket.points} == (
            layout.point_buckets(scope, points, TODAY)
        )


def written(cache, monkeypatch) -> list[bytes]:
    """What each hand-packed write sends, from now on (a round trip of reads is one write;
    a fill's may be several)."""
    sent: list[bytes] = []
    spied: list = []
    pool = cache.client.connection_pool
    real = pool.get_connection

    def spying(*args, **kwargs):
        conn = real(*args, **kwargs)
        if conn in spied:  # a connection back from the pool is spied on already
            return conn
        spied.append(conn)
        send = conn.send_packed_command

        def recorded(command, *a, **k):
            sent.append(b"".join(command))
            return send(command, *a, **k)

        monkeypatch.setattr(conn, "send_packed_command", recorded)
        return conn

    monkeypatch.setattr(pool, "get_connection", spying)
    return sent


def test_consecutive_days_and_any_other_days_read_alike(cache):
    """A range of consecutive days is packed from a plan kept between requests; any other
    list of days is packed afresh: both read the same figures, in the order asked for."""
    range_ = days(TODAY - timedelta(days=70), 71)  # three months and the current day
    figures = {day: usage(day, 10 + n) for n, day in enumerate(range_) if n % 4}
    lease = cache.lease([(Scope(ORG), range_)], TODAY)
    cache.fill(lease, {Scope(ORG): figures}, TODAY)
    whole = cache.read(Scope(ORG), range_, TODAY)
    assert whole.found == figures and list(whole.found) == sorted(figures)
    every_other = range_[::2]
    sparse = cache.read(Scope(ORG), every_other, TODAY)
    assert sparse.found == {day: figures[day] for day in every_other if day in figures}
    assert list(sparse.found) == [day for day in every_other if day in figures]
    later = cache.read(Scope(ORG), range_[30:], TODAY)  # the same today, another range
    assert later.found == {day: figures[day] for day in range_[30:] if day in figures}
    tomorrow = cache.read(Scope(ORG), range_, TODAY + timedelta(days=1))  # another today
    assert tomorrow.found == {day: found for day, found in whole.found.items() if day < TODAY}
    assert tomorrow.missing == [TODAY], "the last day is looked up in its month's bucket now"


def test_every_day_and_point_of_several_scopes_reads_as_flat_figures_or_not_at_all(cache):
    """read_every: each scope's figures of every day in turn and then at every point (zeros
    where there was no usage) when the cache holds them all; None otherwise."""
    range_ = tuple(days(TODAY - timedelta(days=40), 41))
    points = tuple((day, 74) for day in range_[::9])
    scopes = [Scope(ORG), Scope(ORG, KEY), Scope(ORG, uuid.UUID(int=7))]
    filled, sums = {}, {}
    for n, scope in enumerate(scopes):
        figures = {day: usage(day, 2**65 * n + k) for k, day in enumerate(range_) if (k + n) % 3}
        filled[scope] = figures
        sums[scope] = {point: Figures(k + n, 1, 2) for k, point in enumerate(points) if k % 2}
        lease = cache.lease([(scope, list(range_), list(points))], TODAY)
        cache.fill(lease, {scope: figures}, TODAY, {scope: sums[scope]})
    expected = [
        [
            *(n for day in range_ for n in (filled[s][day][1:] if day in filled[s] else (0, 0, 0))),
            *(n for point in points for n in sums[s].get(point, (0, 0, 0))),
        ]
        for s in scopes
    ]
    first = cache.read_every(scopes, range_, points, TODAY)
    assert first == expected
    assert cache.read_every(scopes, range_, points, TODAY) is first, "the same replies: kept"
    days_only = [numbers[: 3 * len(range_)] for numbers in expected]
    assert cache.read_every(scopes, range_, (), TODAY) == days_only
    later_days = [numbers[3 : 3 * len(range_)] for numbers in expected]
    assert cache.read_every(scopes, range_[1:], (), TODAY) == later_days, "other days: theirs"
    cache.invalidate([(ORG, KEY, range_[5])], today=TODAY)
    assert cache.read_every(scopes, range_, points, TODAY) is None, "a day the cache lost"
    assert cache.read_every(scopes[2:], range_, points, TODAY) == expected[2:]
    changed = usage(range_[5], 12_345)
    lease = cache.lease([(Scope(ORG), [range_[5]])], TODAY)
    cache.fill(lease, {Scope(ORG): {range_[5]: changed}}, TODAY)
    again = cache.read_every(scopes[:1], range_, points, TODAY)
    assert again[0][15:18] == list(changed[1:]) and again[0][:15] == expected[0][:15]
    assert first == expected, "lists given out are never changed"
    later = (*range_, TODAY + timedelta(days=1))
    assert cache.read_every(scopes[2:], later, (), TODAY) is None, "a day after today"
    assert cache.read_every(scopes[2:], range_, ((later[-1], 4),), TODAY) is None


def test_days_filled_from_their_figures_as_text_read_as_filled_from_figures():
    range_ = days(date(2023, 12, 20), 60)  # three months
    figures = {day: usage(day, 2**64 + n) for n, day in enumerate(range_) if n % 4}
    texts = {day: b"%d %d %d" % (f.tokens, f.usage, f.stt_duration) for day, f in figures.items()}
    from_figures, from_texts = cache_on(), cache_on()
    from_figures.fill(
        from_figures.lease([(Scope(ORG), range_)], TODAY), {Scope(ORG): figures}, TODAY
    )
    lease = from_texts.lease([(Scope(ORG), range_)], TODAY)
    assert from_texts.fill_texts(lease, {Scope(ORG): texts}, TODAY) == len(range_)
    read = from_texts.read(Scope(ORG), range_, TODAY)
    assert read.missing == [] and read.found == figures
    assert read == from_figures.read(Scope(ORG), range_, TODAY)


def test_a_fill_skips_only_the_buckets_whose_lease_went(cache):
    """One script an organisation checks each bucket's lease on its own."""
    range_ = days(date(2024, 1, 1), 60)  # January, February
    scopes = [Scope(ORG), Scope(ORG, KEY)]
    lease = cache.lease([(scope, range_) for scope in scopes], TODAY)
    assert len(lease.buckets) == 4
    cache.invalidate([(ORG, KEY, date(2024, 2, 5))], TODAY)  # February's, of both scopes
    figures = {day: usage(day, 10 + n) for n, day in enumerate(range_)}
    assert cache.fill(lease, {scope: figures for scope in scopes}, TODAY) == 2 * 31
    for scope in scopes:
        read = cache.read(scope, range_, TODAY)
        assert read.missing == range_[31:]
        assert read.found == {day: figures[day] for day in range_[:31]}


def test_a_fill_sends_one_script_an_organisation_and_survives_a_flushed_script_cache(
    monkeypatch,
):
    server = fakeredis.FakeServer()
    cache = cache_on(server)
    organisations = [uuid.UUID(int=n) for n in range(1, 4)]
    range_ = days(TODAY - timedelta(days=100), 101)
    wanted = [(Scope(org), range_) for org in organisations] + [(Scope(ORG, KEY), range_)]
    fakeredis.FakeRedis(server=server).script_flush()
    sent = written(cache, monkeypatch)
    lease = cache.lease(wanted, TODAY)
    assert cache.fill(lease, {}, TODAY) == len(wanted) * len(range_)
    fill = b"".join(sent[1:])  # after the leases' round trip
    assert fill.count(b"EVALSHA") == len(organisations) + 1  # ORG's key is an organisation
    assert fill.count(b"SCRIPT") == 1
    for scope, _ in wanted:
        assert cache.read(scope, range_, TODAY).missing == []
