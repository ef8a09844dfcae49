"""`cache warm` and `cache clear` on fakes: how organisations are batched and read, what is
written, and the refusals."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, timedelta

import fakeredis
import pytest

from service.domain.figures import DayUsage, Scope, days_between
from service.usecases import cache_upkeep
from service.usecases.errors import CacheDisabled, OperationFailed
from service.usecases.ports import PendingInvalidation
from tests.unit.fakes import fake_cache, fake_services

TODAY = date(2024, 3, 10)
ORG_A = uuid.UUID(int=501)
KEY_A = uuid.UUID(int=502)


def services_with(organisations: int):
    services = fake_services(fake_cache())
    orgs = [uuid.UUID(int=n + 1) for n in range(organisations)]
    for n, org in enumerate(orgs):
        key = uuid.UUID(int=1000 + n)
        services.directory.add_key(org, key, clinic_id=uuid.uuid4())
        services.rollups.add(key, DayUsage(TODAY - timedelta(days=n + 1), 10 + n, 1, 2))
    return services, orgs


@pytest.mark.parametrize(
    ("organisations", "days", "org_days_per_batch", "batches"),
    [
        (5, 400, 500, 5),  # a year is more than a batch: one organisation a batch
        (10, 31, 500, 1),  # 500 // 31 = 16 organisations a batch
        (40, 31, 500, 3),  # 16 + 16 + 8
        (3, 1, 500, 1),
        (130, 400, cache_upkeep.ORG_DAYS_PER_BATCH, 2),  # 50,000 // 400 = 125 a batch
    ],
)
def test_organisations_are_read_in_batches_of_about_so_many_organisation_days(
    organisations, days, org_days_per_batch, batches, monkeypatch
):
    monkeypatch.setattr(cache_upkeep, "ORG_DAYS_PER_BATCH", org_days_per_batch)
    services, orgs = services_with(organisations)
    start = TODAY - timedelta(days=days - 1)
    summary = cache_upkeep.warm(services, start, TODAY, today=TODAY)
    assert summary["org_days"] == organisations * days
    assert len(services.rollups.reads) == batches
    assert all(read == ("organisations", [start, TODAY]) for read in services.rollups.reads)
    every_day = days_between(start, TODAY)
    for n, org in enumerate(orgs):
        cached = services.cache.read(Scope(org), every_day, TODAY)
        assert cached.missing == []
        expected = set() if n + 1 >= days else {TODAY - timedelta(days=n + 1)}
        assert set(cached.found) == expected


def test_the_range_stops_at_the_current_day():
    services, _ = services_with(2)
    summary = cache_upkeep.warm(services, TODAY, TODAY + timedelta(days=9), today=TODAY)
    assert summary["org_days"] == 2
    later = cache_upkeep.warm(
        services, TODAY + timedelta(days=1), TODAY + timedelta(days=9), today=TODAY
    )
    assert later["org_days"] == 0 and len(services.rollups.reads) == 1


def test_one_organisation_only_and_progress_counts_organisations():
    services, orgs = services_with(4)
    progress = []
    summary = cache_upkeep.warm(
        services, TODAY - timedelta(days=9), TODAY, orgs[2], progress.append, today=TODAY
    )
    assert summary["org_days"] == 10 and progress == [1]
    assert services.cache.read(Scope(orgs[1]), [TODAY], TODAY).missing == [TODAY]
    everyone = []
    cache_upkeep.warm(
        services, TODAY - timedelta(days=9), TODAY, None, everyone.append, today=TODAY
    )
    assert sum(everyone) == 4


def test_days_a_reader_is_filling_are_left_to_it():
    services, orgs = services_with(1)
    held = services.cache.lease([(Scope(orgs[0]), [TODAY])], TODAY)
    summary = cache_upkeep.warm(services, TODAY - timedelta(days=2), TODAY, today=TODAY)
    assert held.buckets and summary["org_days"] == 2  # the current day's bucket was taken


def test_warm_delivers_pending_invalidations_first():
    services, orgs = services_with(1)
    services.ledger.outbox[7] = PendingInvalidation(7, orgs[0], [uuid.UUID(int=1000)], [TODAY])
    cache_upkeep.warm(services, TODAY, TODAY, today=TODAY)
    assert services.ledger.outbox == {}


def test_clear_drops_the_cache_and_the_outbox_rows_it_covered():
    services, orgs = services_with(2)
    cache_upkeep.warm(services, TODAY - timedelta(days=3), TODAY, today=TODAY)
    services.ledger.outbox[1] = PendingInvalidation(1, orgs[0], [uuid.UUID(int=1000)], [TODAY])
    services.ledger.outbox[2] = PendingInvalidation(2, orgs[1], [uuid.UUID(int=1001)], [TODAY])
    assert cache_upkeep.clear(services, orgs[0])["keys_dropped"] >= 1
    assert list(services.ledger.outbox) == [2]
    assert services.cache.read(Scope(orgs[0]), [TODAY], TODAY).missing == [TODAY]
    assert services.cache.read(Scope(orgs[1]), [TODAY], TODAY).missing == []


def test_without_a_cache_or_with_an_unknown_organisation_nothing_is_done():
    services, _ = services_with(1)
    with pytest.raises(OperationFailed, match="no organisation has id"):
        cache_upkeep.warm(services, TODAY, TODAY, uuid.UUID(int=99), today=TODAY)
    with pytest.raises(OperationFailed, match="no organisation has id"):
        cache_upkeep.clear(services, uuid.UUID(int=99))
    plain = fake_services(cache=None)
    with pytest.raises(CacheDisabled, match="REDIS_URL is empty"):
        cache_upkeep.warm(plain, TODAY, TODAY, today=TODAY)
    with pytest.raises(CacheDisabled):
        cache_upkeep.clear(plain)


def test_a_server_clears_an_unmarked_redis_and_its_covered_backlog_before_marking_it():
    """Imports ran while no server read this Redis (a bulk load before the first start):
    their invalidations wait in the outbox, and what commands left in Redis is not to be
    trusted. The first server to open it clears it and forgets that backlog at once."""
    server = fakeredis.FakeServer()
    command = fake_services(fake_cache(server, read_by_servers=False))
    command.directory.add_key(ORG_A, KEY_A, clinic_id=uuid.uuid4())
    command.rollups.add(KEY_A, DayUsage(TODAY - timedelta(days=1), 5, 1, 1))
    cache_upkeep.warm(command, TODAY - timedelta(days=3), TODAY, today=TODAY)  # unmarked Redis
    for n in range(1, 4):
        command.ledger.outbox[n] = PendingInvalidation(n, ORG_A, [KEY_A], [TODAY])
    serving = fake_services(fake_cache(server, read_by_servers=True))
    serving.ledger.outbox.update(command.ledger.outbox)
    serving.cache.client.delete(serving.cache.layout.served_mark)  # as before any server
    cache_upkeep.start_serving(serving)
    assert serving.ledger.outbox == {}
    assert serving.cache.is_marked()
    assert serving.cache.read(Scope(ORG_A), [TODAY - timedelta(days=1)], TODAY).missing == [
        TODAY - timedelta(days=1)
    ]
    cache_upkeep.start_serving(serving)  # marked now: a later worker keeps what is cached
    assert serving.cache.is_marked()


def test_a_backlog_no_server_reads_is_not_read_whole_on_every_warm():
    """A command whose Redis no server has marked cannot deliver: it asks whether anything
    is pending (one row), not for a batch of rows it would then leave (78 ms of a 157 ms
    warm of the bench's dataset, with its 9,600 rows left by imports before any server)."""
    services, orgs = services_with(1)
    services = dataclasses.replace(services, cache=fake_cache(read_by_servers=False))
    for n in range(1, 1201):
        row = PendingInvalidation(n, orgs[0], [uuid.UUID(int=1000)], [TODAY])
        services.ledger.outbox[n] = row
    asked = []
    pending = services.ledger.pending_invalidations
    services.ledger.pending_invalidations = lambda org=None, limit=1000: (
        asked.append(limit) or pending(org, limit)
    )
    summary = cache_upkeep.warm(services, TODAY - timedelta(days=1), TODAY, today=TODAY)
    assert summary["org_days"] == 2
    assert asked == [1]
    assert len(services.ledger.outbox) == 1200  # nothing counted as delivered
