"""The cache-aside logic of the figures use case, on fakes: what is read from the cache,
what from SQL (and how often), what is filled, and that the answer is the same either way."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

import fakeredis
import pytest

from service.domain.errors import ApiKeyNotFound, ApiKeyOutsideOrganisation
from service.domain.figures import DayUsage, Scope, UsageQuery, days_between
from service.domain.keys import Principal
from service.usecases import invalidations
from service.usecases.figures import daily_figures, usage_for_range
from service.usecases.ports import PendingInvalidation
from tests.unit.fakes import fake_cache, fake_services

TODAY = date(2024, 3, 10)
ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER_ORG = uuid.UUID("00000000-0000-4000-8000-000000000002")
KEYS = [uuid.UUID(f"00000000-0000-4000-8000-0000000000a{n}") for n in range(3)]
FOREIGN_KEY = uuid.UUID("00000000-0000-4000-8000-0000000000ff")
ROOT = uuid.UUID("00000000-0000-4000-8000-0000000000b0")
START = TODAY - timedelta(days=59)


def daily_usage(*args, **options) -> list[DayUsage]:
    """What daily_figures answers, as a DayUsage a day with usage."""
    return daily_figures(*args, **options).day_usages()


@pytest.fixture()
def services():
    services = fake_services(fake_cache())
    for key in KEYS:
        services.directory.add_key(ORG, key, clinic_id=uuid.uuid4())
    services.directory.add_key(ORG, ROOT, clinic_id=None)
    services.directory.add_key(OTHER_ORG, FOREIGN_KEY, clinic_id=uuid.uuid4())
    rng = random.Random(5)
    for _ in range(300):
        day = START + timedelta(days=rng.randrange(62))  # some after today
        key = rng.choice([*KEYS, FOREIGN_KEY])
        services.rollups.add(key, DayUsage(day, rng.randrange(10**6), rng.randrange(9), 7))
    return services


def expected(services, start: date, end: date, key: uuid.UUID | None = None) -> list[DayUsage]:
    """Sums straight from the fake's rows, for the organisation or one key."""
    sums: dict[date, list[int]] = {}
    for (key_id, day), row in services.rollups.rows.items():
        owner = services.directory.keys[key_id].organisation_id
        if start <= day <= end and owner == ORG and key in (None, key_id):
            found = sums.setdefault(day, [0, 0, 0])
            for n, value in enumerate(row[1:]):
                found[n] += value
    return [DayUsage(day, *sums[day]) for day in sorted(sums)]


def test_a_first_read_asks_sql_once_and_fills_a_second_is_served_from_the_cache(services):
    first = daily_usage(services, Scope(ORG), START, TODAY, today=TODAY)
    assert first == expected(services, START, TODAY)
    assert services.rollups.reads == [("organisation", days_between(START, TODAY))]
    again = daily_usage(services, Scope(ORG), START, TODAY, today=TODAY)
    assert again == first
    assert len(services.rollups.reads) == 1, "the second read did not reach SQL"


def test_only_the_missing_days_are_asked_from_sql(services):
    daily_usage(services, Scope(ORG), START, START + timedelta(days=9), today=TODAY)
    services.rollups.reads.clear()
    found = daily_usage(services, Scope(ORG), START, START + timedelta(days=19), today=TODAY)
    assert found == expected(services, START, START + timedelta(days=19))
    assert services.rollups.reads == [
        ("organisation", days_between(START + timedelta(days=10), START + timedelta(days=19)))
    ]


def test_days_after_today_are_read_from_sql_every_time_and_never_cached(services):
    end = TODAY + timedelta(days=2)
    assert daily_usage(services, Scope(ORG), START, end, today=TODAY) == expected(
        services, START, end
    )
    services.rollups.reads.clear()
    assert daily_usage(services, Scope(ORG), START, end, today=TODAY) == expected(
        services, START, end
    )
    assert services.rollups.reads == [("organisation", days_between(TODAY + timedelta(1), end))]


def test_a_keys_figures_are_cached_apart_from_the_organisations(services):
    key = KEYS[1]
    assert daily_usage(services, Scope(ORG, key), START, TODAY, today=TODAY) == expected(
        services, START, TODAY, key
    )
    assert services.rollups.reads == [("key", days_between(START, TODAY))]
    assert daily_usage(services, Scope(ORG), START, TODAY, today=TODAY) == expected(
        services, START, TODAY
    )
    assert [kind for kind, _ in services.rollups.reads] == ["key", "organisation"]


def test_without_a_cache_every_read_is_one_sql_read():
    services = fake_services(cache=None)
    services.directory.add_key(ORG, KEYS[0], clinic_id=uuid.uuid4())
    services.rollups.add(KEYS[0], DayUsage(START, 5, 1, 2))
    for _ in range(2):
        assert daily_usage(services, Scope(ORG), START, TODAY, today=TODAY) == [
            DayUsage(START, 5, 1, 2)
        ]
    assert len(services.rollups.reads) == 2


def test_with_redis_down_figures_come_from_sql_and_are_the_same(services):
    cached_answer = daily_usage(services, Scope(ORG), START, TODAY, today=TODAY)
    server = fakeredis.FakeServer()
    server.connected = False
    broken = fake_services(fake_cache(server))
    broken.directory.keys.update(services.directory.keys)
    broken.rollups.rows.update(services.rollups.rows)
    for _ in range(5):  # past the breaker's threshold: then Redis is not even tried
        assert daily_usage(broken, Scope(ORG), START, TODAY, today=TODAY) == cached_answer
    assert len(broken.rollups.reads) == 5
    assert not broken.cache.available


def test_pending_invalidations_are_delivered_first_then_the_cache_is_trusted(services):
    daily_usage(services, Scope(ORG), START, TODAY, today=TODAY)  # cached
    late_day = START + timedelta(days=3)
    services.rollups.add(KEYS[0], DayUsage(late_day, 1_000, 1, 1))  # committed, not delivered
    services.ledger.outbox[1] = PendingInvalidation(1, ORG, [KEYS[0]], [late_day])
    services.rollups.reads.clear()
    found = daily_usage(services, Scope(ORG), START, TODAY, cache_pending=True, today=TODAY)
    assert found == expected(services, START, TODAY)
    assert services.ledger.outbox == {}, "the reader delivered the row"
    assert services.rollups.reads == [("organisation", [late_day])], "only the forgotten day"


def test_while_pending_invalidations_cannot_be_delivered_figures_come_from_sql(services):
    daily_usage(services, Scope(ORG), START, TODAY, today=TODAY)  # cached
    late_day = START + timedelta(days=3)
    services.rollups.add(KEYS[0], DayUsage(late_day, 1_000, 1, 1))
    services.ledger.outbox[1] = PendingInvalidation(1, ORG, [KEYS[0]], [late_day])
    services.cache.client.connection_pool.connection_kwargs["server"].connected = False
    services.rollups.reads.clear()
    found = daily_usage(services, Scope(ORG), START, TODAY, cache_pending=True, today=TODAY)
    assert found == expected(services, START, TODAY)
    assert services.rollups.reads == [("organisation", days_between(START, TODAY))]
    assert list(services.ledger.outbox) == [1], "kept for the next reader"


def test_a_reader_that_finds_anothers_lease_serves_sql_and_fills_nothing(services):
    other = services.cache.lease([(Scope(ORG), days_between(START, TODAY))], TODAY)
    assert daily_usage(services, Scope(ORG), START, TODAY, today=TODAY) == expected(
        services, START, TODAY
    )
    assert services.cache.read(Scope(ORG), days_between(START, TODAY), TODAY).found == {}
    assert other.buckets, "the first filler still holds its leases"


def test_usage_for_range_checks_the_target_key_and_drops_empty_days(services):
    principal = Principal(ORG, ROOT, is_root=True)
    start, end = START, TODAY
    whole = usage_for_range(services, principal, UsageQuery(start, end))
    assert whole.api_key is None
    assert whole.days == [day for day in expected(services, start, end) if not day.is_empty]
    one = usage_for_range(services, principal, UsageQuery(start, end, str(KEYS[2]).upper()))
    assert one.api_key is not None and one.api_key.id == KEYS[2]
    assert one.days == [day for day in expected(services, start, end, KEYS[2]) if not day.is_empty]
    with pytest.raises(ApiKeyOutsideOrganisation):
        usage_for_range(services, principal, UsageQuery(start, end, str(FOREIGN_KEY)))
    with pytest.raises(ApiKeyNotFound):
        usage_for_range(services, principal, UsageQuery(start, end, str(ROOT)))  # no clinic
    with pytest.raises(ApiKeyNotFound):
        usage_for_range(services, principal, UsageQuery(start, end, "not-a-uuid"))
    with pytest.raises(ApiKeyNotFound):
        usage_for_range(services, principal, UsageQuery(start, end, str(uuid.uuid4())))


def test_a_request_delivers_a_short_backlog_itself_and_leaves_a_long_one_to_the_drain(services):
    daily_usage(services, Scope(ORG), START, TODAY, today=TODAY)  # cached
    day = START + timedelta(days=2)
    rows = invalidations.REQUEST_REPLAY_ROWS + 5
    for n in range(1, rows + 1):
        services.ledger.outbox[n] = PendingInvalidation(n, ORG, [KEYS[0]], [day])
    services.rollups.reads.clear()
    found = daily_usage(services, Scope(ORG), START, TODAY, cache_pending=True, today=TODAY)
    assert found == expected(services, START, TODAY)
    assert len(services.ledger.outbox) == 5, "the request delivered its share only"
    assert services.rollups.reads == [("organisation", days_between(START, TODAY))]
    invalidations.drain_in_background(services).join(timeout=10)
    assert services.ledger.outbox == {}
