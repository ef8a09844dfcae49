"""The rollup cache against real Redis and Postgres: served from the cache, and never a
figure older than an import that has returned."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app import create_app
from service.adapters.postgres.identity import cache_identity
from service.adapters.postgres.pool import CommandDatabase
from service.domain.figures import Scope
from service.entrypoints.http.conventions import services_of
from service.usecases import cache_upkeep
from tests.support.api import api_request, body_for, deltas
from tests.support.events import expected_deltas, make_events, write_jsonl

TODAY = datetime.now(UTC).date()
PAST = [TODAY - timedelta(days=n) for n in range(40, 10, -1)]


def import_file(cli, path):
    result = cli("usage", "import", str(path))
    assert result.exit_code == 0, result.output
    return result


def outbox_rows(services, org) -> int:
    with services.database.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM cache_outbox WHERE organisation_id = %s", (org.id,)
        ).fetchone()
    return row[0]


@pytest.fixture()
def sql_unreachable(monkeypatch, services):
    """Make every figure query fail: what still answers comes from the cache."""

    def refuse(*args, **kwargs):
        raise AssertionError("the figures were read from SQL")

    def apply():
        monkeypatch.setattr(services.rollups, "organisation_days", refuse)
        monkeypatch.setattr(services.rollups, "key_days", refuse)

    return apply


def test_a_second_query_is_served_from_the_cache(client, org, cli, tmp_path, sql_unreachable):
    keys = [k.id for k in org.clinic_keys]
    events = make_events(random.Random(1), keys, PAST, 300)
    import_file(cli, write_jsonl(tmp_path / "e.jsonl", events))
    start, end = PAST[0], PAST[-1]
    expected = expected_deltas(events, start, end)
    assert deltas(client, org, start, end) == expected
    per_key = expected_deltas(events, start, end, keys[0])
    assert deltas(client, org, start, end, keys[0]) == per_key
    sql_unreachable()
    assert deltas(client, org, start, end) == expected
    assert deltas(client, org, start, end, keys[0]) == per_key


def test_days_without_usage_are_cached_too(client, org, sql_unreachable):
    start, end = PAST[0], PAST[-1]
    assert deltas(client, org, start, end) == {}
    sql_unreachable()
    assert deltas(client, org, start, end) == {}


def test_late_events_for_cached_days_show_at_once(client, org, cli, tmp_path):
    keys = [k.id for k in org.clinic_keys]
    rng = random.Random(2)
    first = make_events(rng, keys, PAST, 200)
    import_file(cli, write_jsonl(tmp_path / "a.jsonl", first))
    start, end = PAST[0], TODAY
    for _ in range(2):  # filled, then read whole from the cache as a dashboard asks again
        assert deltas(client, org, start, end) == expected_deltas(first, start, end)
        assert deltas(client, org, start, end, keys[1]) == expected_deltas(
            first, start, end, keys[1]
        )
    late = make_events(rng, keys, [*PAST[5:8], TODAY], 30)
    import_file(cli, write_jsonl(tmp_path / "b.jsonl", late))
    assert deltas(client, org, start, end) == expected_deltas(first + late, start, end)
    assert deltas(client, org, start, end, keys[1]) == expected_deltas(
        first + late, start, end, keys[1]
    )
    assert outbox_rows(services_of(client.application), org) == 0


def test_a_fill_that_raced_an_import_writes_nothing(
    client, org, cli, tmp_path, monkeypatch, sql_unreachable, services
):
    """The stale-set race, held open on purpose: the reader has read SQL but not yet written
    the cache when an import commits and returns. Its fill must not write the old figures."""
    keys = [k.id for k in org.clinic_keys]
    rng = random.Random(4)
    before = make_events(rng, keys, PAST, 100)
    racing = make_events(rng, keys, PAST, 100)
    import_file(cli, write_jsonl(tmp_path / "before.jsonl", before))
    racing_file = write_jsonl(tmp_path / "racing.jsonl", racing)
    start, end = PAST[0], PAST[-1]
    real_read = services.rollups.organisation_days
    imported = []

    def read_then_let_the_import_commit(organisation_id, days):
        figures = real_read(organisation_id, days)  # the old figures, lease held
        monkeypatch.setattr(services.rollups, "organisation_days", real_read)
        imported.append(import_file(cli, racing_file))  # commits, invalidates, returns
        return figures

    monkeypatch.setattr(services.rollups, "organisation_days", read_then_let_the_import_commit)
    assert deltas(client, org, start, end) == expected_deltas(before, start, end)
    assert imported, "the import ran inside the fill"
    cached = services.cache.read(Scope(uuid.UUID(org.id)), PAST, TODAY)
    assert cached.found == {}, "the racing fill wrote nothing"

    assert deltas(client, org, start, end) == expected_deltas(before + racing, start, end)
    sql_unreachable()
    assert deltas(client, org, start, end) == expected_deltas(before + racing, start, end)


def test_an_import_that_could_not_reach_redis_is_not_hidden_by_the_cache(
    client, org, console, tmp_path, services
):
    keys = [k.id for k in org.clinic_keys]
    rng = random.Random(5)
    first = make_events(rng, keys, PAST, 100)
    late = make_events(rng, keys, PAST, 50)
    start, end = PAST[0], PAST[-1]
    ran = console("usage", "import", str(write_jsonl(tmp_path / "a.jsonl", first)))
    assert ran.returncode == 0, ran.stderr
    assert deltas(client, org, start, end) == expected_deltas(first, start, end)  # now cached

    dead_redis = {"REDIS_URL": "redis://127.0.0.1:1/0"}
    ran = console(
        "usage", "import", str(write_jsonl(tmp_path / "b.jsonl", late)), extra_env=dead_redis
    )
    assert ran.returncode == 0, ran.stderr
    assert outbox_rows(services, org) > 0, "the undelivered invalidation is kept"

    assert deltas(client, org, start, end) == expected_deltas(first + late, start, end)
    assert outbox_rows(services, org) == 0, "the reader delivered it"
    assert deltas(client, org, start, end) == expected_deltas(first + late, start, end)


def test_the_service_runs_without_a_cache_when_redis_url_is_empty(
    settings, make_org, cli, tmp_path
):
    app = create_app(replace(settings, redis_url=""))
    try:
        assert services_of(app).cache is None
        client = app.test_client()
        org = make_org()
        events = make_events(random.Random(6), [k.id for k in org.clinic_keys], PAST, 100)
        import_file(cli, write_jsonl(tmp_path / "e.jsonl", events))
        for _ in range(2):
            assert deltas(client, org, PAST[0], PAST[-1]) == expected_deltas(
                events, PAST[0], PAST[-1]
            )
        ready = client.get("/readyz").get_json()
        assert ready["status"] == "ok" and ready["redis"]["configured"] is False
    finally:
        services_of(app).close()


# --- cache warm / cache clear ---------------------------------------------------------


def test_cache_warm_fills_every_organisation_day_of_the_range(
    client, make_org, cli, tmp_path, sql_unreachable
):
    org = make_org()
    events = make_events(random.Random(7), [k.id for k in org.clinic_keys], PAST, 200)
    import_file(cli, write_jsonl(tmp_path / "e.jsonl", events))
    start, end = PAST[0], PAST[-1]
    result = cli("cache", "warm", "--start", str(start), "--end", str(end), "--org", org.id)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["org_days"] == len(PAST)
    assert isinstance(summary["seconds"], float)
    sql_unreachable()
    assert deltas(client, org, start, end) == expected_deltas(events, start, end)


def test_cache_warm_of_all_organisations_counts_organisation_days(cli, make_org, services):
    make_org()
    with services.database.connection() as conn:
        organisations = conn.execute("SELECT count(*) FROM organisations").fetchone()[0]
    day = PAST[0]
    result = cli("cache", "warm", "--start", str(day), "--end", str(day + timedelta(days=1)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["org_days"] <= 2 * organisations
    assert json.loads(result.stdout)["org_days"] >= 2  # at least the new organisation's two days


@pytest.mark.parametrize("org_days_per_batch", [500, cache_upkeep.ORG_DAYS_PER_BATCH])
def test_cache_warm_of_a_long_range_fills_every_organisation_in_batches(
    client, make_org, cli, tmp_path, sql_unreachable, monkeypatch, org_days_per_batch
):
    """400 days: one organisation a batch, or all of them in one."""
    monkeypatch.setattr(cache_upkeep, "ORG_DAYS_PER_BATCH", org_days_per_batch)
    orgs = [make_org(clinic_keys=1) for _ in range(3)]
    start = TODAY - timedelta(days=399)
    days = [start + timedelta(days=n) for n in range(400)]
    events = {
        org.id: make_events(random.Random(n), [org.clinic_keys[0].id], days, 150)
        for n, org in enumerate(orgs)
    }
    everything = [event for found in events.values() for event in found]
    import_file(cli, write_jsonl(tmp_path / "e.jsonl", everything))
    result = cli("cache", "warm", "--start", str(start), "--end", str(TODAY))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["org_days"] >= 400 * len(orgs)
    sql_unreachable()
    halves = [(days[0], days[199]), (days[200], days[-1])]  # a request spans 366 days at most
    for org, (first, last) in itertools.product(orgs, halves):
        assert deltas(client, org, first, last) == expected_deltas(events[org.id], first, last)


def test_cache_warm_of_days_still_to_come_writes_nothing(cli, org):
    later = TODAY + timedelta(days=3)
    result = cli("cache", "warm", "--start", str(later), "--end", str(later + timedelta(days=5)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["org_days"] == 0


def test_cache_clear_drops_an_organisations_rollups(client, org, cli):
    start, end = PAST[0], PAST[-1]
    deltas(client, org, start, end)
    services = services_of(client.application)
    scope = Scope(uuid.UUID(org.id))
    assert services.cache.read(scope, PAST, TODAY).missing == []
    result = cli("cache", "clear", "--org", org.id)
    assert result.exit_code == 0, result.output
    assert services.cache.read(scope, PAST, TODAY).missing == PAST


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["cache", "warm", "--start", "2024-02-01", "--end", "2024-01-01"], 2),
        (["cache", "warm", "--start", "2024-02-30", "--end", "2024-03-01"], 2),
        (["cache", "warm", "--end", "2024-03-01"], 2),
        (["cache", "warm", "--start", "2024-01-01", "--end", "2024-01-02", "--org", "nope"], 2),
        (
            [
                "cache",
                "warm",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-02",
                "--org",
                str(uuid.uuid4()),
            ],
            1,
        ),
        (["cache", "clear", "--org", str(uuid.uuid4())], 1),
    ],
)
def test_cache_commands_refuse_bad_input(cli, args, status):
    result = cli(*args)
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output


def test_cache_commands_say_so_when_the_cache_is_disabled(console):
    for args in (
        ["cache", "clear"],
        ["cache", "warm", "--start", "2024-01-01", "--end", "2024-01-02"],
    ):
        ran = console(*args, extra_env={"REDIS_URL": ""})
        assert ran.returncode == 1
        assert ran.stderr.decode().strip().count("\n") == 0
        assert "disabled" in ran.stderr.decode()


def test_responses_are_the_same_from_cache_and_from_sql(client, org, cli, tmp_path, settings):
    """The same request against the cached service and a cache-less one, byte for byte."""
    events = make_events(random.Random(8), [k.id for k in org.clinic_keys], [*PAST, TODAY], 300)
    import_file(cli, write_jsonl(tmp_path / "e.jsonl", events))
    uncached = create_app(replace(settings, redis_url=""))
    try:
        for _ in range(2):
            cached = api_request(client, org, body_for(PAST[0], TODAY))
            plain = api_request(uncached.test_client(), org, body_for(PAST[0], TODAY))
            assert cached.status_code == plain.status_code == 200
            assert cached.data == plain.data
    finally:
        services_of(uncached).close()


# --- whose cache: the database's identity, and the Redis the servers read ---------------


def cache_figures_of(client, org, day) -> dict:
    """The day's figures as the server answers them (cached after the first call)."""
    deltas(client, org, day, day)
    return deltas(client, org, day, day)


@pytest.mark.parametrize(
    "importer",
    [
        pytest.param({"CACHE_NAMESPACE": "ops"}, id="cache-namespace-set"),
        pytest.param({"PGDATABASE": "<database>", "DATABASE_URL": "<server>"}, id="pgdatabase"),
        pytest.param({"REDIS_URL": "redis://127.0.0.1:6379/1"}, id="another-redis-database"),
    ],
)
def test_no_importer_configuration_leaves_a_cached_figure_stale(
    client, org, console, settings, importer
):
    day = PAST[3]
    key = org.clinic_keys[0].id
    first = {"event_id": uuid.uuid4().hex, "api_key_id": key, "tokens": 1000, "stt_duration": 1}
    first["occurred_at"] = f"{day}T12:00:00Z"
    second = dict(first, event_id=uuid.uuid4().hex)
    assert console("usage", "import", "-", input=json.dumps(first).encode()).returncode == 0
    assert cache_figures_of(client, org, day)[str(day)]["tokens"] == 1000

    server = conninfo_to_dict(settings.database_url)
    values = {"<database>": str(server.pop("dbname")), "<server>": make_conninfo("", **server)}
    env = {name: values.get(value, value) for name, value in importer.items()}
    ran = console("usage", "import", "-", input=json.dumps(second).encode(), extra_env=env)
    assert ran.returncode == 0, ran.stderr.decode()
    assert deltas(client, org, day, day)[str(day)]["tokens"] == 2000
    assert deltas(client, org, day, day)[str(day)]["tokens"] == 2000


def test_a_copy_of_the_database_has_a_cache_identity_of_its_own(database_url, tmp_path):
    copy_name = f"{conninfo_to_dict(database_url)['dbname']}_copy"
    copy_url = make_conninfo(database_url, dbname=copy_name)
    dump = tmp_path / "dump.sql"
    subprocess.run(["pg_dump", "-d", database_url, "-f", str(dump)], check=True)
    with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(copy_name)))
    try:
        subprocess.run(
            ["psql", "-q", "-X", "-d", copy_url, "-f", str(dump)], check=True, capture_output=True
        )
        original, copy = CommandDatabase(database_url), CommandDatabase(copy_url)
        try:
            assert cache_identity(original) == cache_identity(original)
            assert cache_identity(copy) != cache_identity(original)
            assert cache_identity(copy) == cache_identity(copy)
        finally:
            original.close()
            copy.close()
    finally:
        with psycopg.connect(
            make_conninfo(database_url, dbname="postgres"), autocommit=True
        ) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(copy_name)))
