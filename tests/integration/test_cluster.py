"""The rollup cache on a real Redis Cluster (3 masters, 3 replicas, private, on free ports)
with REDIS_CLUSTER=true: organisations on every master are cached, imports, `cache clear`
and `cache warm` reach every node, one node's trouble stays with its organisations, and a
failover is followed. Expected figures are sums of the generated events."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from service.entrypoints.http.conventions import services_of
from service.usecases import cache_upkeep
from service.usecases.cache_upkeep import start_serving
from tests.support.api import deltas
from tests.support.commands import run_command
from tests.support.events import expected_deltas, make_events, write_jsonl
from tests.support.orgs import create_org
from tests.support.servers import PrivateRedisCluster

TODAY = datetime.now(UTC).date()
PAST = [TODAY - timedelta(days=n) for n in range(70, 30, -1)]
START, END = PAST[0], PAST[-1]
TIMEOUT_MS = 200
FAILURES = 3
RESET_SECONDS = 1


def start_cluster(path) -> PrivateRedisCluster:
    cluster = PrivateRedisCluster(path)
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture()
def own_cluster(tmp_path):
    """A cluster of the test's own, to pause or kill a master of."""
    cluster = start_cluster(tmp_path / "cluster")
    yield cluster
    cluster.stop()


def app_on(settings, cluster):
    app = create_app(
        replace(
            settings,
            redis_url=cluster.url,
            redis_cluster=True,
            redis_timeout_ms=TIMEOUT_MS,
            cache_breaker_failures=FAILURES,
            cache_breaker_reset_seconds=RESET_SECONDS,
        )
    )
    start_serving(services_of(app))
    return app


@contextmanager
def cached_world(settings, cluster, tmp_path, seed: int) -> Iterator[World]:
    """A World on an app of its own, its organisations' figures imported and cached on
    every master."""
    app = app_on(settings, cluster)
    try:
        world = World(app, cluster, tmp_path, seed=seed)
        world.import_events(40)
        world.hits()
        yield world
    finally:
        services_of(app).close()


@pytest.fixture()
def shared_app(settings, shared_cluster):
    app = app_on(settings, shared_cluster)
    yield app
    services_of(app).close()


class World:
    """Organisations with a master of each, their events, and SQL reads counted."""

    def __init__(self, app, cluster, tmp_path, seed: int) -> None:
        self.app, self.cluster, self.tmp_path = app, cluster, tmp_path
        self.services = services_of(app)
        self.client = app.test_client()
        self.rng = random.Random(seed)
        self.orgs = []  # one per master at least
        self.master_of: dict[str, int] = {}  # org id -> its master's port
        ports = {node.port for node in cluster.masters()}
        while set(self.master_of.values()) != ports:
            org = create_org(self.services.directory, clinic_keys=2)
            self.orgs.append(org)
            self.master_of[org.id] = cluster.node_of(f"{{{org.id}}}").port
        self.events = {org.id: [] for org in self.orgs}
        self.sql_reads: Counter[str] = Counter()
        rollups = self.services.rollups
        read = rollups.organisation_days

        def counted(organisation_id, days):
            self.sql_reads[str(organisation_id)] += 1
            return read(organisation_id, days)

        rollups.organisation_days = counted
        self.imports = 0

    def import_events(self, count: int, days=PAST) -> None:
        batch = []
        for org in self.orgs:
            events = make_events(self.rng, org.key_ids, days, count)
            self.events[org.id] += events
            batch += events
        self.imports += 1
        path = write_jsonl(self.tmp_path / f"import-{self.imports}.jsonl", batch)
        result = run_command(self.services.settings, "usage", "import", str(path))
        assert result.exit_code == 0, result.output

    def check(self, org) -> float:
        """Ask for the organisation's figures; they must be the events' sums. Seconds taken."""
        began = time.perf_counter()
        found = deltas(self.client, org, START, END)
        took = time.perf_counter() - began
        assert found == expected_deltas(self.events[org.id], START, END), org.id
        return took

    def hits(self) -> Counter[int]:
        """Per master: organisations answered twice in a row without a SQL read."""
        per_master: Counter[int] = Counter()
        for org in self.orgs:
            self.check(org)
            before = self.sql_reads[org.id]
            self.check(org)
            if self.sql_reads[org.id] == before:
                per_master[self.master_of[org.id]] += 1
        return per_master

    def cached_keys(self) -> dict[int, int]:
        """Per master: the cache's keys of these organisations it holds."""
        found = {}
        for node in self.cluster.masters():
            client = node.client()
            try:
                found[node.port] = sum(
                    1 for org in self.orgs for _ in client.scan_iter(match=f"ua1:*{{{org.id}}}*")
                )
            finally:
                client.close()
        return found


@pytest.fixture()
def world(shared_app, shared_cluster, tmp_path):
    return World(shared_app, shared_cluster, tmp_path, seed=31)


def test_organisations_on_every_master_are_cached_on_their_own_master(world):
    world.import_events(40)
    hits = world.hits()
    assert set(hits) == set(world.master_of.values()), hits
    assert sum(hits.values()) == len(world.orgs)
    keys = world.cached_keys()
    for org in world.orgs:
        assert keys[world.master_of[org.id]] > 0
    for port, count in keys.items():
        mine = [org for org in world.orgs if world.master_of[org.id] == port]
        assert (count > 0) == bool(mine)


def test_an_import_reaches_every_node_before_it_returns(world):
    world.import_events(40)
    world.hits()  # every organisation cached
    world.import_events(25, PAST[5:15])  # late events for cached days, on every node
    for org in world.orgs:
        world.check(org)
    assert sum(world.hits().values()) == len(world.orgs)
    with world.services.database.connection() as conn:
        left = conn.execute("SELECT count(*) FROM cache_outbox").fetchone()[0]
    assert left == 0


def test_cache_clear_and_cache_warm_reach_every_node(world, settings, shared_cluster):
    world.import_events(30)
    world.hits()
    assert all(world.cached_keys().values())
    cluster_settings = world.services.settings

    cleared = run_command(cluster_settings, "cache", "clear")
    assert cleared.exit_code == 0, cleared.output
    assert not any(world.cached_keys().values())
    for org in world.orgs:  # misses, from SQL, exact
        before = world.sql_reads[org.id]
        world.check(org)
        assert world.sql_reads[org.id] == before + 1

    run_command(cluster_settings, "cache", "clear")
    warmed = run_command(
        cluster_settings, "cache", "warm", "--start", START.isoformat(), "--end", END.isoformat()
    )
    assert warmed.exit_code == 0, warmed.output
    assert all(world.cached_keys()[port] > 0 for port in set(world.master_of.values()))
    for org in world.orgs:  # hits straight after the warm
        before = world.sql_reads[org.id]
        world.check(org)
        assert world.sql_reads[org.id] == before, org.id


def test_readyz_reports_the_cluster(shared_app):
    answer = shared_app.test_client().get("/readyz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ok"
    assert body["redis"]["ok"] is True
    assert body["redis"]["cluster"] == {"state": "ok", "primaries": 3, "reachable": 3}
    assert body["redis"]["latency_ms"] >= 0


def test_a_paused_master_sends_only_its_organisations_to_sql(settings, own_cluster, tmp_path):
    with cached_world(settings, own_cluster, tmp_path, seed=32) as world:
        victim = own_cluster.node_of(f"{{{world.orgs[0].id}}}")
        hurt = [org for org in world.orgs if world.master_of[org.id] == victim.port]
        spared = [org for org in world.orgs if world.master_of[org.id] != victim.port]

        victim.pause()
        try:
            durations = [world.check(org) for _ in range(FAILURES + 5) for org in hurt]
            ready = world.client.get("/readyz").get_json()
            for org in spared:  # still from the cache
                before = world.sql_reads[org.id]
                world.check(org)
                assert world.sql_reads[org.id] == before, "a healthy node's organisation"
        finally:
            victim.resume()
        assert ready["status"] == "degraded"
        assert ready["redis"]["cluster"]["reachable"] == 2
        # Each request waits on the paused node once at most (a read, bounded by the
        # timeout), and only until that node's breaker opens.
        slow = [took for took in durations if took > TIMEOUT_MS / 2000]
        assert len(slow) <= FAILURES, durations
        assert max(durations) < 2 * TIMEOUT_MS / 1000, durations
        print(f"paused-node requests, seconds: {[round(d, 3) for d in durations]}")

        own_cluster.wait_healthy()
        time.sleep(RESET_SECONDS + 0.1)
        world.import_events(20, PAST[3:9])
        for org in world.orgs:
            world.check(org)


def test_an_import_while_a_master_is_paused_is_never_hidden(settings, own_cluster, tmp_path):
    with cached_world(settings, own_cluster, tmp_path, seed=33) as world:
        victim = own_cluster.node_of(f"{{{world.orgs[0].id}}}")
        victim.pause()
        try:
            world.import_events(20, PAST[3:9])  # its invalidations cannot reach the victim
            for org in world.orgs:
                world.check(org)
        finally:
            victim.resume()
        own_cluster.wait_healthy()
        time.sleep(RESET_SECONDS + 0.1)
        for org in world.orgs:  # the victim's old figures are never served
            world.check(org)
            world.check(org)


def test_a_killed_master_fails_over_and_caching_resumes(settings, own_cluster, tmp_path):
    with cached_world(settings, own_cluster, tmp_path, seed=34) as world:
        org = world.orgs[0]
        victim = own_cluster.node_of(f"{{{org.id}}}")
        victim.stop()
        deadline = time.monotonic() + 20
        while True:  # answers stay exact throughout the failover
            world.check(org)
            try:
                if own_cluster.node_of(f"{{{org.id}}}").port != victim.port:
                    break
            except LookupError:
                pass
            assert time.monotonic() < deadline, "no replica was promoted"
            time.sleep(0.1)
        own_cluster.wait_healthy()
        world.import_events(20, PAST[3:9])
        deadline = time.monotonic() + 10
        while True:  # the promoted replica serves the organisation's cache
            before = world.sql_reads[org.id]
            world.check(org)
            world.check(org)
            if world.sql_reads[org.id] <= before + 1:
                break
            assert time.monotonic() < deadline, "caching did not resume on the new master"
            time.sleep(0.2)
        assert sum(world.hits().values()) == len(world.orgs)


class Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def replica_of(cluster: PrivateRedisCluster, master) -> object:
    for node in cluster.nodes:
        if node.process is not None and node is not master:
            client = node.client()
            try:
                role = client.role()
            finally:
                client.close()
            if role[0] == b"slave" and int(role[2]) == master.port:
                return node
    raise LookupError(f"no replica follows {master.port}")


def test_forgetting_counts_only_once_the_replicas_have_it(settings, own_cluster, tmp_path):
    """A replica promoted without the forgetting would serve the old figures again: a
    forget is delivered only when every replica its master streams to acknowledges it
    (WAIT), whether or not the cluster has marked a silent one failed yet."""
    with cached_world(settings, own_cluster, tmp_path, seed=35) as world:
        org = world.orgs[0]

        world.import_events(10, PAST[2:6])  # forgotten on masters and replicas alike
        assert pending_rows(world) == 0
        for each in world.orgs:
            world.check(each)

        master = own_cluster.node_of(f"{{{org.id}}}")
        replica = replica_of(own_cluster, master)
        replica.pause()
        try:
            world.import_events(10, PAST[6:9])
            assert pending_rows(world, org.id) > 0, "unacknowledged: the rows stay"
            for each in world.orgs:
                world.check(each)
            deadline = time.monotonic() + 20  # the node timeout is 1 s
            while not marked_failed(master, replica):
                assert time.monotonic() < deadline, "the paused replica was never marked failed"
                time.sleep(0.2)
            held = pending_rows(world, org.id)
            world.import_events(10, PAST[9:11])  # still streamed to: still waited for
            assert pending_rows(world, org.id) > held
            for each in world.orgs:
                world.check(each)
        finally:
            replica.resume()
        own_cluster.wait_healthy()
        time.sleep(RESET_SECONDS + 0.1)
        for each in world.orgs:
            world.check(each)
            world.check(each)
        assert pending_rows(world) == 0


def marked_failed(master, replica) -> bool:
    """The master's view: is the replica flagged `fail` (agreed by the cluster)?"""
    client = master.client()
    try:
        table = client.execute_command("CLUSTER NODES")  # {"host:port": {"flags": ...}}
    finally:
        client.close()
    for address, node in table.items():
        if address.endswith(f":{replica.port}"):
            return "fail" in node["flags"].split(",")
    raise LookupError(f"the master does not know {replica.port}")


def pending_rows(world: World, organisation_id: str | None = None) -> int:
    with world.services.database.connection() as conn:
        if organisation_id is None:
            return conn.execute("SELECT count(*) FROM cache_outbox").fetchone()[0]
        return conn.execute(
            "SELECT count(*) FROM cache_outbox WHERE organisation_id = %s", (organisation_id,)
        ).fetchone()[0]


def test_a_cluster_node_read_as_one_redis_answers_exactly_and_says_what_to_set(
    settings, shared_cluster, tmp_path
):
    """REDIS_CLUSTER left false with REDIS_URL at a cluster node: answers stay exact, the
    log says what to set, and MOVED answers (a node that answers at once) do not open the
    breaker."""
    said = Said()
    logger = logging.getLogger("scrubs.cache")  # the service's loggers do not propagate
    logger.addHandler(said)
    app = create_app(replace(settings, redis_url=shared_cluster.url, redis_timeout_ms=TIMEOUT_MS))
    start_serving(services_of(app))
    try:
        world = World(app, shared_cluster, tmp_path, seed=36)
        world.import_events(20)
        for _ in range(FAILURES + 1):
            for org in world.orgs:
                world.check(org)
        assert any("set REDIS_CLUSTER=true" in line for line in said.lines), said.lines
        assert services_of(app).cache.breaker.current_state == "closed"
    finally:
        logger.removeHandler(said)
        services_of(app).close()


def test_redis_cluster_set_for_a_single_redis_answers_exactly_and_says_what_to_set(
    settings, tmp_path
):
    """REDIS_CLUSTER=true with REDIS_URL at a Redis without cluster support (this machine's):
    every answer comes from Postgres, exactly, and the log says what to set."""
    said = Said()
    logger = logging.getLogger("scrubs.cache")  # the service's loggers do not propagate
    logger.addHandler(said)
    app = create_app(replace(settings, redis_cluster=True, redis_timeout_ms=TIMEOUT_MS))
    try:
        start_serving(services_of(app))
        services = services_of(app)
        org = create_org(services.directory, clinic_keys=2)
        events = make_events(random.Random(37), org.key_ids, PAST, 30)
        imported = run_command(
            services.settings, "usage", "import", str(write_jsonl(tmp_path / "e.jsonl", events))
        )
        assert imported.exit_code == 0, imported.output
        for _ in range(2):
            found = deltas(app.test_client(), org, START, END)
            assert found == expected_deltas(events, START, END)
        wanted = "set REDIS_CLUSTER=false"
        assert any(wanted in line for line in said.lines), said.lines
    finally:
        logger.removeHandler(said)
        services_of(app).close()


def test_a_master_paused_past_its_failover_never_serves_its_old_figures(
    settings, own_cluster, tmp_path
):
    """The master is paused until its replica is promoted, imports change its organisations'
    days on the new master, then the old one comes back (as a replica, its days stale)."""
    with cached_world(settings, own_cluster, tmp_path, seed=37) as world:
        org = world.orgs[0]
        victim = own_cluster.node_of(f"{{{org.id}}}")
        heir = replica_of(own_cluster, victim)
        victim.pause()
        try:
            deadline = time.monotonic() + 20
            while heir.role() != "master":
                world.check(org)
                assert time.monotonic() < deadline, "no replica was promoted"
                time.sleep(0.1)
            world.import_events(20, PAST[2:12])
            for each in world.orgs:
                world.check(each)
                world.check(each)
        finally:
            victim.resume()
        own_cluster.wait_healthy()
        assert victim.role() == "slave"
        world.import_events(10, PAST[12:20])
        for _ in range(3):
            for each in world.orgs:
                world.check(each)
        # Caching resumes once the old master has resynced as a replica (until then the
        # new master's forgets wait for it in vain, and its organisations use SQL).
        deadline = time.monotonic() + 10
        while sum(world.hits().values()) < len(world.orgs):
            assert time.monotonic() < deadline, "caching did not resume"
            time.sleep(0.2)
        print(f"caching resumed {10 - (deadline - time.monotonic()):.1f} s after the resync")


def test_cache_warm_fills_the_nodes_that_answer_and_names_the_silent_ones(
    settings, own_cluster, tmp_path, monkeypatch
):
    # A batch of one organisation each: some batches then hold only the silent node's
    # organisations (found: such a batch stopped the warm with the breaker's message).
    monkeypatch.setattr(cache_upkeep, "ORG_DAYS_PER_BATCH", 1)
    app = app_on(settings, own_cluster)
    try:
        world = World(app, own_cluster, tmp_path, seed=38)
        world.import_events(30)
        cluster_settings = world.services.settings
        assert run_command(cluster_settings, "cache", "clear").exit_code == 0
        # Not the node REDIS_URL names: a command finds the cluster through that one.
        victim = next(node for node in own_cluster.masters() if node.url != own_cluster.url)
        victim.pause()
        try:
            began = time.perf_counter()
            warmed = run_command(
                cluster_settings, "cache", "warm", "--start", str(START), "--end", str(END)
            )
            took = time.perf_counter() - began
        finally:
            victim.resume()
        assert warmed.exit_code == 1
        assert "1 of 3 cluster nodes did not answer" in warmed.output
        assert took < 5, took
        own_cluster.wait_healthy()
        for org in world.orgs:
            before = world.sql_reads[org.id]
            world.check(org)
            warmed_here = world.sql_reads[org.id] == before
            assert warmed_here == (world.master_of[org.id] != victim.port), org.id
    finally:
        services_of(app).close()
