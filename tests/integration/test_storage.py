"""Storage that stays small as events pile up: raw events in monthly partitions with
"imported once" kept across them, a retention window that drops old months whole while
every answer stays, rollup upserts that are HOT updates, and the migration of a database
made before all this, in place. Each test has a database of its own: dropping partitions
must not touch the other tests' events."""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from flask.testing import FlaskClient
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app import create_app
from config.settings import Settings
from service.adapters.postgres.migrate import available_migrations, upgrade_database
from service.bootstrap import command_services
from service.domain.usage_events import UsageEvent
from service.entrypoints.http.conventions import services_of
from tests.conftest import SERVER_URL
from tests.support.api import body_for
from tests.support.commands import run_command
from tests.support.events import Event, expected_deltas, make_event, make_events, write_jsonl
from tests.support.orgs import Org, create_org

TODAY = datetime.now(UTC).date()


@pytest.fixture()
def own_database() -> Iterator[str]:
    """The URL of an empty database, dropped at the end."""
    name = f"scrubs_storage_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(SERVER_URL, dbname=name)
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def settings_for(url: str, **changes) -> Settings:
    # No cache: these tests are about what Postgres keeps, and answers come from SQL; ranges
    # of years in one question.
    settings = Settings(database_url=url, redis_url="", max_range_days=4000)
    return dataclasses.replace(settings, **changes)


def new_org(url: str, clinic_keys: int = 2) -> Org:
    services = command_services(settings_for(url))
    try:
        return create_org(services.directory, clinic_keys)
    finally:
        services.close()


def imported(settings: Settings, path: Path) -> dict:
    ran = run_command(settings, "usage", "import", str(path))
    assert ran.exit_code in (0, 2), ran.output
    return json.loads(ran.stdout.strip().splitlines()[-1])


@contextmanager
def client_on(url: str) -> Iterator[FlaskClient]:
    """A test client of the service on that database, its pools closed after use: a pool
    left to the garbage collector may be collected in a thread of its own, which fails."""
    app = create_app(settings_for(url))
    try:
        yield app.test_client()
    finally:
        services_of(app).close()


def answers(url: str, org: Org, start: date, end: date) -> dict:
    """The org-wide answer and each key's, from the service on that database."""
    found = {}
    with client_on(url) as client:
        for key in [None, *org.key_ids]:
            response = client.post(
                "/api/v1/usage-analytics", headers=org.headers(), json=body_for(start, end, key)
            )
            assert response.status_code == 200, response.get_data(as_text=True)
            found[key] = response.get_json()["deltas"]
    return found


def partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'usage_events'::regclass ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows]


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def test_events_go_to_monthly_partitions_and_an_id_is_imported_once_across_them(
    own_database, tmp_path
):
    upgrade_database(own_database)
    org = new_org(own_database)
    rng = random.Random(5)
    days = [date(2024, 1, 31), date(2024, 2, 1), date(2024, 2, 29), date(2024, 3, 1), TODAY]
    events = make_events(rng, org.key_ids, days, 300)
    assert imported(settings_for(own_database), write_jsonl(tmp_path / "a.jsonl", events))[
        "inserted"
    ] == len(events)
    months = {f"usage_events_{event.day:%Y%m}" for event in events}
    assert set(partitions(own_database)) == months
    # The same ids again, each moved to another month (and another key): all duplicates.
    moved = [
        make_event(rng, event.record["event_id"], org.key_ids[0], at(date(2023, 6, 15)))
        for event in events[:50]
    ]
    report = imported(settings_for(own_database), write_jsonl(tmp_path / "b.jsonl", moved))
    assert report == {"read": 50, "inserted": 0, "duplicates": 50, "rejected": 0}
    assert "usage_events_202306" in partitions(own_database)  # made, and left empty
    with psycopg.connect(own_database) as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone()[0] == len(events)
        assert conn.execute("SELECT count(*) FROM usage_event_ids").fetchone()[0] == len(events)
    found = answers(own_database, org, date(2023, 1, 1), date(2023, 12, 31))
    assert found[None] == {}
    found = answers(own_database, org, date(2024, 1, 1), date(2024, 3, 31))
    assert found[None] == expected_deltas(events, date(2024, 1, 1), date(2024, 3, 31))
    for key in org.key_ids:
        assert found[key] == expected_deltas(events, date(2024, 1, 1), date(2024, 3, 31), key)


def test_event_ids_are_compared_byte_by_byte(own_database, tmp_path):
    """The ids' unique index and each batch's sorts compare bytes (collation "C"), not a
    language's order; ids a language may order alike stay distinct events."""
    upgrade_database(own_database)
    org = new_org(own_database)
    rng = random.Random(6)
    ids = ["é", "e\u0301", "E", "e", "ß", "ss", "a b", "ab", "ä", "a\u0308"]
    events = [make_event(rng, event_id, org.key_ids[0], at(TODAY, 1)) for event_id in ids]
    report = imported(settings_for(own_database), write_jsonl(tmp_path / "ids.jsonl", events))
    assert report == {"read": 10, "inserted": 10, "duplicates": 0, "rejected": 0}
    with psycopg.connect(own_database) as conn:
        [collation] = conn.execute(
            "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation"
            " WHERE a.attrelid = 'usage_event_ids'::regclass AND a.attname = 'event_id'"
        ).fetchone()
    assert collation == "C"


def test_the_retention_window_drops_old_months_whole_and_every_answer_stays(own_database, tmp_path):
    upgrade_database(own_database)
    org = new_org(own_database)
    rng = random.Random(9)
    old_days = [date(2024, 1, 10), date(2024, 2, 20), date(2024, 3, 31)]
    recent = [TODAY - timedelta(days=n) for n in (3, 2, 1)]
    events = make_events(rng, org.key_ids, old_days + recent, 400)
    forever = settings_for(own_database)
    assert imported(forever, write_jsonl(tmp_path / "all.jsonl", events))["inserted"] == 400
    start, end = date(2024, 1, 1), TODAY
    before = answers(own_database, org, start, end)
    assert before[None] == expected_deltas(events, start, end)

    window = 20
    cutoff = TODAY - timedelta(days=window)
    kept = settings_for(own_database, event_retention_days=window)
    late = [
        make_event(rng, "too-old", org.key_ids[0], at(cutoff, 0) - timedelta(seconds=1)),
        make_event(rng, "first-kept", org.key_ids[0], at(cutoff, 0)),
        next(event for event in events if event.day > cutoff),  # a resend: still a duplicate
    ]
    ran = run_command(kept, "usage", "import", str(write_jsonl(tmp_path / "late.jsonl", late)))
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == {
        "read": 3,
        "inserted": 1,
        "duplicates": 1,
        "rejected": 1,
    }
    assert "line 1" in ran.stderr and "EVENT_RETENTION_DAYS=20" in ran.stderr

    names = partitions(own_database)
    for day in old_days:
        assert f"usage_events_{day:%Y%m}" not in names, "a month past the window is dropped"
    assert f"usage_events_{TODAY:%Y%m}" in names
    with psycopg.connect(own_database) as conn:
        oldest = conn.execute("SELECT min(occurred_on) FROM usage_event_ids").fetchone()[0]
        raw = conn.execute("SELECT count(*) FROM usage_events").fetchone()[0]
    assert oldest >= cutoff
    assert raw == sum(1 for event in events if event.day >= date(cutoff.year, cutoff.month, 1)) + 1
    after = answers(own_database, org, start, end)
    accepted = [event for event in late if event.record["event_id"] == "first-kept"]
    assert after[None] == expected_deltas(events + accepted, start, end)
    for key in org.key_ids:
        assert after[key] == expected_deltas(events + accepted, start, end, key)

    # The whole file again, with no window or a wider one: the ids before the cutoff are
    # forgotten, so those lines are refused, never counted a second time.
    forgotten = sum(1 for event in events if event.day < cutoff)
    for again in (forever, settings_for(own_database, event_retention_days=3000)):
        ran = run_command(again, "usage", "import", str(tmp_path / "all.jsonl"))
        assert ran.exit_code == 1
        assert json.loads(ran.stdout.strip().splitlines()[-1]) == {
            "read": 400,
            "inserted": 0,
            "duplicates": 400 - forgotten,
            "rejected": forgotten,
        }
        assert f"before {cutoff}" in ran.stderr
        assert answers(own_database, org, start, end) == after


def hot_share(url: str, table: str) -> tuple[int, int]:
    """(updates, HOT updates) of a table, once the statistics have caught up."""
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            updates, hot = conn.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s",
                (table,),
            ).fetchone()
            if updates or time.monotonic() > deadline:
                return updates, hot
            time.sleep(0.2)


def test_rollup_upserts_are_hot_updates(own_database, tmp_path):
    upgrade_database(own_database)
    org = new_org(own_database, clinic_keys=3)
    rng = random.Random(11)
    days = [TODAY - timedelta(days=n) for n in range(10)]
    everything: list[Event] = []
    for n in range(12):  # every import adds to rows the ones before made
        events = make_events(rng, org.key_ids, days, 300, prefix=f"hot{n}")
        everything += events
        imported(settings_for(own_database), write_jsonl(tmp_path / f"{n}.jsonl", events))
    for table in ("usage_daily", "usage_daily_org", "usage_quarter", "usage_quarter_org"):
        updates, hot = hot_share(own_database, table)
        assert updates > 0, table
        assert hot >= 0.9 * updates, f"{table}: {hot} of {updates} updates HOT"
    found = answers(own_database, org, days[-1] - timedelta(days=1), TODAY)
    assert found[None] == expected_deltas(everything, days[-1] - timedelta(days=1), TODAY)


def test_a_database_made_before_partitions_is_converted_in_place(own_database, tmp_path):
    """The migrations up to quarter-hours, events written as the service wrote them then,
    then `db upgrade`: every event partitioned and guarded, rollups kept and summed."""
    earlier = [(v, script) for v, script in available_migrations() if v < "0005"]
    org = None
    with psycopg.connect(own_database, autocommit=True) as conn:
        for _, script in earlier:
            conn.execute(script.encode())
        conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, _ in earlier:
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
    org = new_org(own_database)
    rng = random.Random(13)
    days = [date(2023, 12, 31), date(2024, 1, 1), date(2024, 7, 4), TODAY]
    events = make_events(rng, org.key_ids, days, 200)
    imported_before = events[:150]
    with psycopg.connect(own_database) as conn:
        # As the service wrote them before this migration: events and both daily rollups.
        for event in imported_before:
            record = event.record
            conn.execute(
                "INSERT INTO usage_events (event_id, api_key_id, occurred_at, tokens,"
                " stt_duration, usage) VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    record["event_id"],
                    record["api_key_id"],
                    record["occurred_at"],
                    record["tokens"],
                    record["stt_duration"],
                    record.get("usage", 1),
                ),
            )
        conn.execute(
            "INSERT INTO usage_daily (api_key_id, day, organisation_id, tokens, usage,"
            " stt_duration) SELECT e.api_key_id, (e.occurred_at AT TIME ZONE 'UTC')::date,"
            " k.organisation_id, sum(tokens), sum(usage), sum(stt_duration)"
            " FROM usage_events e JOIN api_keys k ON k.id = e.api_key_id GROUP BY 1, 2, 3"
        )
    result = upgrade_database(own_database)
    assert result["applied"] == [v for v, _ in available_migrations() if v >= "0005"]
    with psycopg.connect(own_database) as conn:
        kind = conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'usage_events'"
        ).fetchone()[0]
        counted = conn.execute("SELECT count(*) FROM usage_events").fetchone()[0]
        guarded = conn.execute("SELECT count(*) FROM usage_event_ids").fetchone()[0]
    assert kind == "p" and counted == guarded == 150
    assert set(partitions(own_database)) == {
        f"usage_events_{event.day:%Y%m}" for event in imported_before
    }
    # The rest of the file, and the whole file again: only the 50 new ones count.
    report = imported(settings_for(own_database), write_jsonl(tmp_path / "rest.jsonl", events))
    assert report == {"read": 200, "inserted": 50, "duplicates": 150, "rejected": 0}
    found = answers(own_database, org, date(2023, 12, 1), TODAY)
    assert found[None] == expected_deltas(events, date(2023, 12, 1), TODAY)
    for key in org.key_ids:
        assert found[key] == expected_deltas(events, date(2023, 12, 1), TODAY, key)


def test_demo_seed_makes_its_months_of_usage_with_a_short_retention_window(own_database):
    """Its usage is months long (found: with EVENT_RETENTION_DAYS=30 it stopped at its first
    old event); the next import drops the raw events past the window, the figures stay."""
    upgrade_database(own_database)
    window = settings_for(own_database, event_retention_days=30)
    seeded = run_command(window, "demo", "seed")
    assert seeded.exit_code == 0, seeded.output
    ids = json.loads(seeded.stdout)
    start, end = (date.fromisoformat(day) for day in ids["usage_days"].split(".."))
    assert (end - start).days > 60

    def answer() -> dict:
        headers = {
            "X-Scrubs-Clinic-Api-Key": ids["root_key_secret"],
            "X-Scrubs-Clinic-Provider": ids["provider_id"],
        }
        with client_on(own_database) as client:
            response = client.post(
                "/api/v1/usage-analytics", headers=headers, json=body_for(start, end)
            )
        assert response.status_code == 200
        return response.get_json()

    before = answer()
    assert str(start) in before["deltas"]
    assert run_command(window, "usage", "import", "-", input="").exit_code == 0
    assert f"usage_events_{start:%Y%m}" not in partitions(own_database)
    assert answer() == before


def test_a_month_dropped_under_a_running_import_is_made_again(own_database):
    """Another import's retention window may drop a month while a long import has its own
    events there (found: the running import stopped on 'no partition of relation')."""
    upgrade_database(own_database)
    org = new_org(own_database)
    services = command_services(settings_for(own_database))
    old_day = date(2025, 3, 10)
    batches = [
        [(n, *UsageEvent(f"{part}-{n}", org.key_ids[0], at(old_day), n, 1, 1)) for n in range(1, 6)]
        for part in ("before", "after")
    ]
    try:
        with services.ledger.import_session() as session:
            assert session.commit_batch(batches[0]).inserted == 5
            with psycopg.connect(own_database, autocommit=True) as conn:
                conn.execute("DROP TABLE usage_events_202503")
            assert session.commit_batch(batches[1]).inserted == 5
    finally:
        services.close()
    assert "usage_events_202503" in partitions(own_database)
    found = answers(own_database, org, old_day, old_day)
    assert found[None][str(old_day)]["tokens"] == 2 * sum(range(1, 6))


def test_a_batch_of_new_ids_skips_the_look_up_and_a_seen_id_still_counts_once(
    own_database, monkeypatch
):
    """Ids all new (the usual import) are inserted without asking whether each was seen
    (COMMIT_NEW); a batch holding a seen id falls back to the statement that asks, within
    its transaction, and so does the batch after it."""
    from service.adapters.postgres import imports

    upgrade_database(own_database)
    org = new_org(own_database)
    services = command_services(settings_for(own_database))
    day = date(2025, 3, 10)

    def batch(*numbers: int) -> list[tuple]:
        return [(n, *UsageEvent(f"id-{n}", org.key_ids[n % 2], at(day), n, 1, 1)) for n in numbers]

    careful = imports.COMMIT_STAGED
    try:
        with services.ledger.import_session() as session:
            monkeypatch.setattr(imports, "COMMIT_STAGED", "SELECT 1 / 0")  # must not run
            assert session.commit_batch(batch(1, 2, 3)).inserted == 3
            monkeypatch.setattr(imports, "COMMIT_STAGED", careful)
            # ids 2 and 3 were seen: the fast statement meets them and is undone whole
            assert session.commit_batch(batch(2, 3, 4, 5)).inserted == 2
            monkeypatch.setattr(imports, "COMMIT_NEW", "SELECT 1 / 0")  # the batch after
            assert session.commit_batch(batch(6, 3)).inserted == 1
    finally:
        services.close()
    found = answers(own_database, org, day, day)[None][str(day)]
    assert found["tokens"] == sum(range(1, 7))  # each id once, by its first line's figures
    assert found["usage"] == 6
    with psycopg.connect(own_database) as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone()[0] == 6
        assert conn.execute("SELECT count(*) FROM usage_event_ids").fetchone()[0] == 6


@pytest.mark.parametrize("expect_new", [True, False], ids=["COMMIT_NEW", "COMMIT_STAGED"])
def test_a_batch_takes_its_ids_before_any_rollup_row(own_database, expect_new):
    """Both batch statements insert the ids before they touch a rollup row. Found: the
    statement for new ids inserted them last; two imports of the same ids at once then
    deadlocked, one holding a day's row while waiting for an id the other held while
    waiting for that row (Postgres broke each such cycle after a second)."""
    upgrade_database(own_database)
    org = new_org(own_database)
    services = command_services(settings_for(own_database))
    day, key = date(2025, 3, 10), org.key_ids[0]
    try:
        with services.ledger.import_session() as session:
            session.commit_batch([(1, *UsageEvent("before", key, at(day), 1, 1, 1))])
            session.expect_new = expect_new
            pid = session.conn.info.backend_pid
            with ThreadPoolExecutor(1) as thread, psycopg.connect(own_database) as holder:
                holder.execute("INSERT INTO usage_event_ids VALUES ('held', %s)", (day,))
                batch = [(1, *UsageEvent("held", key, at(day), 2, 1, 1))]
                committing = thread.submit(session.commit_batch, batch)
                waits_for_a_lock(own_database, pid)
                with psycopg.connect(own_database) as other:  # the day's row is free
                    other.execute(
                        "SELECT 1 FROM usage_daily WHERE api_key_id = %s AND day = %s"
                        " FOR UPDATE NOWAIT",
                        (key, day),
                    )
                holder.rollback()  # the id is free: the batch goes on and inserts it
                assert committing.result(timeout=30).inserted == 1
    finally:
        services.close()
    assert answers(own_database, org, day, day)[None][str(day)]["tokens"] == 3


def waits_for_a_lock(url: str, pid: int) -> None:
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")
