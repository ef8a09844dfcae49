"""The import use case on fakes: batching in file order, rejected lines reported without
stopping the import, retries against concurrent imports, and invalidations delivered
after each batch."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import signal
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import fakeredis
import pytest

from service.domain.figures import DayUsage, Scope
from service.domain.usage_events import InvalidEvent, UsageEvent
from service.usecases import imports
from service.usecases.imports import ImportFailed
from service.usecases.imports import import_events as import_on_connections
from tests.unit.fakes import fake_cache, fake_services

ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
KEY = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
UNKNOWN = uuid.UUID("00000000-0000-4000-8000-0000000000ee")
DAY = date(2024, 3, 1)
TODAY = date(2024, 3, 10)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(imports, "RETRY_PAUSE_SECONDS", 0)


@pytest.fixture()
def services():
    services = fake_services(fake_cache())
    services.directory.add_key(ORG, KEY, clinic_id=uuid.uuid4())
    return services


def import_events(*args, connections: int = 1, **kwargs):
    """One connection unless said otherwise: batches then commit as they are read."""
    return import_on_connections(*args, connections=connections, **kwargs)


def lines(count: int, key: uuid.UUID = KEY, first: int = 1) -> list[tuple]:
    moment = datetime(2024, 3, 1, 12, tzinfo=UTC)
    return [
        (n, UsageEvent(f"e-{n}", str(key), moment + timedelta(minutes=n), n, 1, 1))
        for n in range(first, first + count)
    ]


def rejections() -> tuple[list[tuple[int, str]], object]:
    found: list[tuple[int, str]] = []
    return found, lambda line, reason: found.append((line, reason))


def test_lines_are_committed_in_batches_in_file_order(services):
    found, sink = rejections()
    report = import_events(services, lines(25), on_rejected=sink, batch_size=10)
    assert services.ledger.batches == [
        list(range(1, 11)),
        list(range(11, 21)),
        list(range(21, 26)),
    ]
    assert report.as_json() == {"read": 25, "inserted": 25, "duplicates": 0, "rejected": 0}
    assert found == []
    assert services.rollups.rows[(KEY, DAY)] == DayUsage(DAY, sum(range(1, 26)), 25, 25)


def test_invalid_and_unknown_key_lines_are_reported_and_the_rest_imported(services):
    found, sink = rejections()
    numbered = [
        *lines(3),
        (4, InvalidEvent("tokens must be an integer 0 <= n < 2^53")),
        *lines(2, key=UNKNOWN, first=5),
        *lines(2, first=7),
    ]
    report = import_events(services, numbered, on_rejected=sink, batch_size=4)
    assert report.as_json() == {"read": 8, "inserted": 5, "duplicates": 0, "rejected": 3}
    assert found == [
        (4, "tokens must be an integer 0 <= n < 2^53"),
        (5, f"api_key_id {UNKNOWN} names no API key"),
        (6, f"api_key_id {UNKNOWN} names no API key"),
    ]


def test_an_event_seen_before_is_a_duplicate(services):
    _, sink = rejections()
    import_events(services, lines(5), on_rejected=sink)
    report = import_events(services, lines(8), on_rejected=sink)
    assert report.as_json() == {"read": 8, "inserted": 3, "duplicates": 5, "rejected": 0}


def test_a_batch_that_meets_a_concurrent_import_is_tried_again_whole(services):
    services.ledger.conflicts = imports.MAX_ATTEMPTS - 1
    _, sink = rejections()
    report = import_events(services, lines(6), on_rejected=sink, batch_size=10)
    assert report.inserted == 6
    assert services.ledger.attempts == imports.MAX_ATTEMPTS
    assert services.ledger.batches == [list(range(1, 7))]


def test_an_import_gives_up_after_its_attempts_and_counts_what_it_committed(services):
    _, sink = rejections()
    import_events(services, lines(3), on_rejected=sink)  # a batch committed earlier
    # The second batch meets concurrent imports at every attempt.
    services.ledger.conflicts_when = lambda events: events[-1][0] >= 110
    report = imports.ImportReport()
    with pytest.raises(ImportFailed) as failure:
        import_events(
            services, lines(30, first=100), on_rejected=sink, batch_size=10, report=report
        )
    assert "lines 110-119" in str(failure.value) and "re-run" in str(failure.value)
    assert services.ledger.attempts == 1 + 1 + imports.MAX_ATTEMPTS, "the third is not tried"
    assert report.as_json() == {
        "read": 10,
        "inserted": 10,
        "duplicates": 0,
        "rejected": 0,
    }


def test_a_line_that_would_take_a_keys_day_past_the_largest_figure_is_one_rejection(services):
    services.rollups.add(KEY, DayUsage(DAY, 2**63 - 100, 0, 0))
    moment = datetime(2024, 3, 1, 9, tzinfo=UTC)
    numbered = [
        (n, UsageEvent(f"big-{n}", str(KEY), moment, tokens, 1, 1))
        for n, tokens in enumerate([40, 50, 30, 5, 1], start=1)
    ]
    found, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink)
    assert found == [
        (3, f"the figures of key {KEY} on {DAY} would pass the largest storable (2^63-1)")
    ]
    assert report.as_json() == {"read": 5, "inserted": 4, "duplicates": 0, "rejected": 1}
    assert services.rollups.rows[(KEY, DAY)].tokens == 2**63 - 100 + 40 + 50 + 5 + 1
    again = import_events(services, numbered, on_rejected=sink)  # a re-run goes past it too
    assert again.as_json() == {"read": 5, "inserted": 0, "duplicates": 4, "rejected": 1}


def test_an_event_more_than_five_minutes_ahead_of_the_import_is_rejected(services):
    now = datetime.now(UTC)
    numbered = [
        (1, UsageEvent("soon", str(KEY), now + timedelta(minutes=4), 1, 1, 1)),
        (2, UsageEvent("later", str(KEY), now + timedelta(minutes=6), 1, 1, 1)),
    ]
    found, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink)
    assert report.inserted == 1
    assert [number for number, _ in found] == [2]
    assert "in the future" in found[0][1]


def test_with_a_retention_window_older_events_are_dropped_first_and_older_lines_rejected(
    services,
):
    settings = dataclasses.replace(services.settings, event_retention_days=30)
    services = dataclasses.replace(services, settings=settings)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    cutoff = midnight - timedelta(days=30)
    services.ledger.seen_on["kept"] = cutoff.date()  # imported before: its day is in the window
    services.ledger.seen.add("kept")
    services.ledger.seen_on["expired"] = cutoff.date() - timedelta(days=1)
    services.ledger.seen.add("expired")
    numbered = [
        (1, UsageEvent("inside", str(KEY), cutoff, 1, 1, 1)),
        (2, UsageEvent("outside", str(KEY), cutoff - timedelta(microseconds=1), 1, 1, 1)),
        (3, UsageEvent("kept", str(KEY), now, 1, 1, 1)),
    ]
    found, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink)
    assert services.ledger.drops == [cutoff.date()]
    assert "expired" not in services.ledger.seen and "kept" in services.ledger.seen
    assert report.as_json() == {"read": 3, "inserted": 1, "duplicates": 1, "rejected": 1}
    assert [number for number, _ in found] == [2]
    assert "EVENT_RETENTION_DAYS=30" in found[0][1] and str(cutoff.date()) in found[0][1]


def test_without_a_retention_window_nothing_is_dropped_and_old_events_are_imported(services):
    numbered = [(1, UsageEvent("old", str(KEY), datetime(1999, 1, 1, tzinfo=UTC), 1, 1, 1))]
    found, sink = rejections()
    assert import_events(services, numbered, on_rejected=sink).inserted == 1
    assert services.ledger.drops == [] and found == []


@pytest.mark.parametrize("window", [None, 30, 700])
def test_lines_older_than_any_window_applied_before_are_rejected_whatever_this_ones(
    services, window
):
    forgot = datetime.now(UTC).date() - timedelta(days=60)
    services.ledger.drop_events_before(forgot)  # an import with a window of 60 days, once
    settings = dataclasses.replace(services.settings, event_retention_days=window)
    services = dataclasses.replace(services, settings=settings)
    midnight = datetime(forgot.year, forgot.month, forgot.day, tzinfo=UTC)
    numbered = [
        (1, UsageEvent("forgotten", str(KEY), midnight - timedelta(microseconds=1), 1, 1, 1)),
        (2, UsageEvent("known", str(KEY), midnight, 1, 1, 1)),
    ]
    found, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink)
    if window == 30:  # its own window is the narrower: its reason, and its drop
        assert report.as_json() == {"read": 2, "inserted": 0, "duplicates": 0, "rejected": 2}
        assert "EVENT_RETENTION_DAYS=30" in found[0][1]
        return
    assert report.as_json() == {"read": 2, "inserted": 1, "duplicates": 0, "rejected": 1}
    assert [number for number, _ in found] == [1]
    assert f"before {forgot}" in found[0][1] and "forgotten" in found[0][1]
    assert "forgotten" not in services.ledger.seen


def test_each_batch_makes_the_cache_forget_its_days_while_the_next_commits(services):
    cache = services.cache
    days = [DAY]
    cache.fill(cache.lease([(Scope(ORG), days)], TODAY), {Scope(ORG): {}}, TODAY)
    assert cache.read(Scope(ORG), days, TODAY).missing == []
    seen_missing = []

    def watching():
        for number, event in lines(40):
            # Batches are read one ahead of the commit, and a batch is delivered while the
            # next commits: the fourth is read once the first has committed and been
            # delivered.
            if number == 31:
                seen_missing.append(cache.read(Scope(ORG), days, TODAY).missing)
            yield number, event

    _, sink = rejections()
    import_events(services, watching(), on_rejected=sink, batch_size=10)
    assert seen_missing == [[DAY]]
    assert services.ledger.outbox == {}, "delivered, so forgotten"


def test_without_a_cache_the_invalidations_wait_in_the_outbox():
    services = fake_services(cache=None)
    services.directory.add_key(ORG, KEY, clinic_id=uuid.uuid4())
    _, sink = rejections()
    import_events(services, lines(3), on_rejected=sink)
    [row] = services.ledger.outbox.values()
    assert row.organisation_id == ORG and row.days == [DAY]


def test_a_commands_invalidations_count_as_delivered_only_in_the_redis_servers_read():
    """An importer whose REDIS_URL names another Redis than the servers' (or a Redis the
    servers have not marked yet) leaves its outbox rows for the servers to deliver."""
    elsewhere = fake_services(fake_cache(read_by_servers=False))
    elsewhere.directory.add_key(ORG, KEY, clinic_id=uuid.uuid4())
    _, sink = rejections()
    import_events(elsewhere, lines(3), on_rejected=sink)
    assert len(elsewhere.ledger.outbox) == 1, "kept: no server reads that Redis"

    server = fakeredis.FakeServer()
    fake_cache(server)  # a server opens its cache on this Redis, and marks it
    shared = fake_services(fake_cache(server, read_by_servers=False))
    shared.directory.add_key(ORG, KEY, clinic_id=uuid.uuid4())
    import_events(shared, lines(3), on_rejected=sink)
    assert shared.ledger.outbox == {}, "delivered to the servers' Redis"


def test_two_connections_share_a_batch_by_key_and_the_first_line_of_an_id_wins(services):
    """60 ids over 20 keys, 3 ids a key: line n has id n % 60, and key n % 20 on the first
    line of its id (n <= 60), another key on the lines after it."""
    keys = [uuid.uuid4() for _ in range(20)]
    for key in keys:
        services.directory.add_key(ORG, key, clinic_id=uuid.uuid4())
    moment = datetime(2024, 3, 1, 12, tzinfo=UTC)

    def key_of(n: int) -> uuid.UUID:
        return keys[n % 20] if n <= 60 else keys[(n + 7) % 20]

    numbered = [
        (n, UsageEvent(f"id-{n % 60}", str(key_of(n)), moment, n, 1, 1)) for n in range(1, 201)
    ]
    _, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink, connections=2)
    assert report.as_json() == {"read": 200, "inserted": 60, "duplicates": 140, "rejected": 0}
    assert len(services.ledger.batches) == 2, "each connection committed its share"
    shares = [set(batch) for batch in services.ledger.batches]
    share_of = {n: next(i for i, share in enumerate(shares) if n in share) for n in range(1, 201)}
    for n in range(61, 201):  # every line of an id went where its first line (n % 60) went
        assert share_of[n] == share_of[n % 60 or 60]
    for first, second in itertools.combinations(range(1, 61), 2):  # one key, one connection
        if first % 20 == second % 20:
            assert share_of[first] == share_of[second]
    for index, key in enumerate(keys):  # the first lines won
        expected = sum(n for n in range(1, 61) if n % 20 == index)
        assert services.rollups.rows[(key, DAY)].tokens == expected


def keys_of_each_share(services, connections: int = 2) -> list[uuid.UUID]:
    """A key of the organisation for each connection's share (shares go by key)."""
    found: dict[int, uuid.UUID] = {}
    while len(found) < connections:
        key = uuid.uuid4()
        found.setdefault(hash(str(key)) % connections, key)
    for key in found.values():
        services.directory.add_key(ORG, key, clinic_id=uuid.uuid4())
    return [found[share] for share in range(connections)]


def alternating(keys: list[uuid.UUID], count: int) -> list[tuple]:
    """Lines 1..count, their keys taking turns."""
    moment = datetime(2024, 3, 1, 12, tzinfo=UTC)
    return [
        (n, UsageEvent(f"e-{n}", str(keys[n % len(keys)]), moment, n, 1, 1))
        for n in range(1, count + 1)
    ]


def gated(services, held: int, until: int) -> list[list[int]]:
    """Import sessions whose share holding line `held` waits (2 s at most) until the share
    holding line `until` has committed; returns each commit's line numbers, in order."""
    committed: list[list[int]] = []
    until_done = threading.Event()
    ledger = services.ledger

    class Gated:
        def commit_batch(self, events, prepared=None):
            numbers = [event[0] for event in events]
            if held in numbers:
                until_done.wait(timeout=2)
            outcome = ledger.commit_batch(events, prepared)
            committed.append(numbers)
            if until in numbers:
                until_done.set()
            return outcome

    ledger.import_session = lambda: contextlib.nullcontext(Gated())
    return committed


def test_a_connection_goes_on_to_the_next_batch_while_another_still_commits(services):
    """One connection's share of the first batch (line 2) is held until the other has
    committed its share of the second batch (line 3): a connection does not wait for the
    others."""
    first, second = keys_of_each_share(services)
    # Batches (1, 2) and (3, 4): lines 1 and 3 are first's, 2 and 4 second's.
    numbered = alternating([second, first], 4)
    committed = gated(services, held=2, until=3)
    _, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink, batch_size=2, connections=2)
    assert committed.index([3]) < committed.index([2])
    assert report.as_json() == {"read": 4, "inserted": 4, "duplicates": 0, "rejected": 0}


def test_a_share_halved_for_a_too_large_figure_and_then_failing_counts_its_committed_half(
    services,
):
    """The share is too large whole; its first half commits, its second gives up against
    concurrent imports: the report still counts the first half."""
    services.rollups.add(KEY, DayUsage(DAY, 2**63 - 100, 0, 0))
    moment = datetime(2024, 3, 1, 9, tzinfo=UTC)
    numbered = [
        (n, UsageEvent(f"big-{n}", str(KEY), moment, tokens, 1, 1))
        for n, tokens in enumerate([40, 50, 30, 5, 1], start=1)
    ]
    services.ledger.conflicts_when = lambda events: len(events) < 5 and events[-1][0] == 5
    found, sink = rejections()
    report = imports.ImportReport()
    with pytest.raises(ImportFailed):
        import_events(services, numbered, on_rejected=sink, report=report)
    assert services.ledger.seen == {"big-1", "big-2"}
    assert report.as_json() == {"read": 2, "inserted": 2, "duplicates": 0, "rejected": 0}
    assert found == []


def test_when_a_share_fails_the_report_counts_exactly_what_was_committed(services):
    """One connection's shares meet concurrent imports from the second batch on, while the
    other's commit: the import stops, its report counts every event committed (the other
    connection's included), the lines it read add up to what it counts, every line it
    counts as rejected is named, and the failing connection tries no share after its
    failure."""
    keys = keys_of_each_share(services)
    failing = str(keys[0])  # the key of the even lines
    services.ledger.conflicts_when = lambda events: events[0][2] == failing and events[0][0] > 5
    numbered = [
        (number, InvalidEvent("a bad line") if number % 5 == 0 else event)
        for number, event in alternating(keys, 50)
    ]
    found, sink = rejections()
    report = imports.ImportReport()
    with pytest.raises(ImportFailed):
        import_events(
            services, numbered, on_rejected=sink, batch_size=5, connections=2, report=report
        )
    committed = {int(event_id.removeprefix("e-")) for event_id in services.ledger.seen}
    assert {n for n in committed if n % 2 == 0} == {2, 4}, "the failing key's first batch"
    assert report.inserted == len(committed) and report.duplicates == 0
    assert report.read == report.inserted + report.rejected
    assert report.rejected == len(found) >= 1
    assert {number for number, _ in found} <= set(range(5, 51, 5))
    failed_attempts = services.ledger.attempts - len(services.ledger.batches)
    assert failed_attempts == imports.MAX_ATTEMPTS, "no share tried after the failure"


def test_a_file_that_fails_mid_read_leaves_a_report_of_exactly_what_was_committed(services):
    """Reading fails while a batch is still committing: that batch is waited for (or called
    off before it starts), and the report counts exactly the events committed."""

    def failing():
        yield from lines(25)
        raise OSError("the disk went away")

    _, sink = rejections()
    report = imports.ImportReport()
    with pytest.raises(OSError, match="went away"):
        import_events(
            services, failing(), on_rejected=sink, batch_size=10, connections=2, report=report
        )
    assert report.inserted == len(services.ledger.seen) >= 10
    assert report.read == report.inserted


def test_the_first_line_of_an_id_wins_when_it_comes_again_in_the_next_batch(services):
    """A connection may commit its share of a batch while the other still commits its share
    of the batch before: a line of an id seen in the batch before goes to that batch's
    share of it, behind its first line. Here the first share of batch 1 (line 1, id
    "twice") is held until the other connection has committed its share of batch 2, which
    would hold line 3 ("twice" again, another key) if it went by its key."""
    first, second = keys_of_each_share(services)
    moment = datetime(2024, 3, 1, 12, tzinfo=UTC)
    numbered = [
        (1, UsageEvent("twice", str(first), moment, 100, 1, 1)),
        (2, UsageEvent("b", str(second), moment, 1, 1, 1)),
        (3, UsageEvent("twice", str(second), moment, 7, 1, 1)),
        (4, UsageEvent("d", str(second), moment, 1, 1, 1)),
    ]
    gated(services, held=1, until=4)
    _, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink, batch_size=2, connections=2)
    assert report.as_json() == {"read": 4, "inserted": 3, "duplicates": 1, "rejected": 0}
    assert services.rollups.rows[(first, DAY)].tokens == 100, "the first line won"
    assert services.rollups.rows[(second, DAY)].tokens == 2


class Interrupted(BaseException):
    """What the test's SIGINT handler raises, as Python's own raises KeyboardInterrupt."""


def test_an_interrupt_while_a_share_commits_leaves_a_report_that_counts_it(services):
    """SIGINT reaches the main thread while a connection commits a share, which commits
    anyway: the import stops, and its report counts that share too."""
    keys = keys_of_each_share(services)
    ledger = services.ledger

    def interrupt(signum, frame):
        raise Interrupted()

    class Interrupting:
        def commit_batch(self, events, prepared=None):
            if events[0][0] == 9:  # a share of the third batch
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                time.sleep(0.2)  # the main thread is interrupted meanwhile
            return ledger.commit_batch(events, prepared)

    ledger.import_session = lambda: contextlib.nullcontext(Interrupting())
    previous = signal.signal(signal.SIGINT, interrupt)
    report = imports.ImportReport()
    try:
        with pytest.raises(Interrupted):
            import_events(
                services,
                alternating(keys, 40),
                on_rejected=rejections()[1],
                batch_size=4,
                connections=2,
                report=report,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 9 in {int(event_id.removeprefix("e-")) for event_id in ledger.seen}
    assert report.inserted == len(ledger.seen)
    assert report.read == report.inserted


def test_rejected_lines_are_reported_in_file_order_whatever_share_they_went_to(services):
    """Lines refused before the database and lines each connection's share refused (keys
    that name no API key) come out in line order, not share by share."""
    other_unknown = uuid.UUID("00000000-0000-4000-8000-0000000000ef")
    numbered = []
    for n in range(1, 41):
        if n % 5 == 0:
            numbered.append((n, InvalidEvent("tokens must be an integer 0 <= n < 2^53")))
        else:
            key = (UNKNOWN, other_unknown, KEY)[n % 3]
            numbered += lines(1, key=key, first=n)
    found, sink = rejections()
    report = import_events(services, numbered, on_rejected=sink, batch_size=20, connections=2)
    assert report.rejected == len(found) > 20
    assert [line for line, _ in found] == sorted(line for line, _ in found)
