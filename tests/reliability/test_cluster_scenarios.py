"""The reliability scenarios on a Redis Cluster (REDIS_CLUSTER=true; 3 masters with a
replica each, private, on free ports): steady load with imports throughout, a master
killed (its replica promoted) and a master paused: no valid request fails, every figure
equals the independent sum of the imported events, and the other masters keep serving
their organisations from the cache meanwhile (their keyspace hits keep growing)."""

from __future__ import annotations

import json
import os

import pytest

from config.settings import Settings
from service.adapters.postgres.migrate import upgrade_database
from service.bootstrap import command_services
from tests.reliability.conftest import WORKERS, Stack, Tenant
from tests.reliability.test_scenarios import (
    SECONDS,
    check,
    divergences,
    run_under_load,
    seed_figures,
)
from tests.support.orgs import create_org
from tests.support.servers import PrivatePostgres, PrivateRedisCluster

pytestmark = pytest.mark.reliability
REPORT = []


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory):
    """The suite's stack with a Redis Cluster in place of the one Redis, and tenants whose
    organisations sit on every master."""
    workdir = tmp_path_factory.mktemp("reliability-cluster")
    postgres = PrivatePostgres()
    cluster = PrivateRedisCluster(workdir / "cluster")
    try:
        postgres.init()
        postgres.start()
        cluster.start()
        upgrade_database(postgres.url)
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "REDIS_URL": cluster.url,
            "REDIS_CLUSTER": "true",
            "WEB_CONCURRENCY": str(WORKERS),
            "CACHE_BREAKER_RESET_SECONDS": "1",
        }
        built = Stack(postgres, cluster, env, log=workdir / "servers.log")
        services = command_services(Settings(database_url=postgres.url, redis_url=""))
        ports = {node.port for node in cluster.masters()}
        served: set[int] = set()
        while served != ports or len(built.tenants) < 3:
            org = create_org(services.directory, clinic_keys=3, name="Cluster tenant")
            built.tenants.append(Tenant(org.id, org.provider_id, org.root.secret, org.key_ids))
            served.add(cluster.node_of(f"{{{org.id}}}").port)
        services.close()
        try:
            built.start(workdir)
            yield built
        finally:
            built.stop()
    finally:
        cluster.stop()
        postgres.remove()


@pytest.fixture(scope="module")
def seeded(cluster_stack, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster-scenarios")
    events = seed_figures(cluster_stack, workdir)
    assert not divergences(cluster_stack, events)  # and now the readers' days are cached
    yield workdir, events
    print("\nreliability on a Redis Cluster:", json.dumps(REPORT, indent=1))


def keyspace_hits(nodes) -> dict[int, int]:
    """Per node: the lookups that found their key, since it started."""
    found = {}
    for node in nodes:
        client = node.client()
        try:
            found[node.port] = client.info("stats")["keyspace_hits"]
        finally:
            client.close()
    return found


def victim_of(stack: Stack):
    """The master of the first tenant's organisation."""
    return stack.redis.node_of(f"{{{stack.tenants[0].organisation_id}}}")


def run_with_fault(stack: Stack, seeded, name: str, fault, heal):
    """Load with a fault, and the hits of the masters left alone counted across it."""
    victim = victim_of(stack)
    others = [node for node in stack.redis.masters() if node.port != victim.port]
    before: dict[int, int] = {}

    def fault_and_count() -> None:
        before.update(keyspace_hits(others))
        fault(victim)

    def heal_and_count() -> None:
        after = keyspace_hits(others)
        gained = {port: after[port] - hits for port, hits in before.items()}
        REPORT.append({"scenario": name, "hits_on_the_other_masters_during_the_fault": gained})
        heal(victim)

    outcome = run_under_load(stack, seeded[0], fault=fault_and_count, heal=heal_and_count)
    stack.redis.wait_healthy()
    check(stack, seeded, outcome, name)
    REPORT[-1] |= {
        "requests": len(outcome.requests),
        "failed": len(outcome.failures()),
        "latency_ms_during_the_fault": latencies(outcome, outcome.fault_at, outcome.healed_at),
        "latency_ms_otherwise": latencies(outcome, None, None),
    }
    gained = REPORT[-1]["hits_on_the_other_masters_during_the_fault"]
    assert gained and all(hits > 0 for hits in gained.values()), gained


def latencies(outcome, start: float | None, end: float | None) -> dict[str, float]:
    """Median, 99th percentile and worst of the requests begun within [start, end] (None,
    None: of those begun outside the fault's window); 64 connections on 4 workers queue."""
    inside = [
        r["end"] - r["start"]
        for r in outcome.requests
        if (start is not None and start <= r["start"] <= end)
        or (start is None and not outcome.fault_at <= r["start"] <= outcome.healed_at)
    ]
    if not inside:
        return {}
    inside.sort()
    return {
        "p50": round(1000 * inside[len(inside) // 2], 1),
        "p99": round(1000 * inside[int(len(inside) * 0.99)], 1),
        "max": round(1000 * inside[-1], 1),
    }


def test_steady_load_on_a_cluster_fails_nothing(cluster_stack, seeded):
    masters = cluster_stack.redis.masters()
    before = keyspace_hits(masters)
    outcome = run_under_load(cluster_stack, seeded[0])
    check(cluster_stack, seeded, outcome, "Redis Cluster: steady load, imports throughout")
    after = keyspace_hits(masters)
    gained = {port: after[port] - before[port] for port in before}
    REPORT.append({"scenario": "steady load", "hits_per_master": gained})
    assert all(hits > 0 for hits in gained.values()), gained


def test_a_master_killed_under_load_fails_over(cluster_stack, seeded):
    def restart(victim) -> None:
        victim.start()  # it comes back empty, as a replica of the promoted one

    run_with_fault(
        cluster_stack,
        seeded,
        "Redis Cluster: a master killed (replica promoted), then restarted",
        fault=lambda victim: victim.stop(),
        heal=restart,
    )


def test_a_master_paused_under_load(cluster_stack, seeded):
    run_with_fault(
        cluster_stack,
        seeded,
        f"Redis Cluster: a master paused (SIGSTOP) for {min(3.0, SECONDS * 0.3):.1f} s",
        fault=lambda victim: victim.pause(),
        heal=lambda victim: victim.resume(),
    )
