"""The cache over several nodes, each a fakeredis server of its own standing in for a
primary of a Redis Cluster: commands go to the node of their organisation, each node has
its own breaker, and forgetting counts only when every node concerned forgot."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import fakeredis
import pytest

from service.adapters.redis.nodes import Breakers, ClusterNodes, Node
from service.adapters.redis.rollup_cache import RedisRollupCache
from service.domain.figures import DayUsage, Scope
from service.usecases.ports import CacheUnavailable

TODAY = date(2024, 3, 10)
DAYS = [date(2024, 2, 1) + timedelta(days=n) for n in range(5)]
A, B = uuid.UUID(int=1), uuid.UUID(int=2)  # an organisation on each node
KEY = uuid.UUID(int=99)


class FakeCluster(ClusterNodes):
    """Organisation A on node "a", everything else (the servers' mark included) on "b"."""

    def __init__(self) -> None:
        self.timeout_ms = 200
        self.breakers = Breakers()
        self.servers = {name: fakeredis.FakeServer() for name in ("a", "b")}
        self.by_name: dict[str, Node] = {}
        self.troubles = 0

    def use_breakers(self, breakers: Breakers) -> None:
        self.by_name = {
            name: breakers.node(name, fakeredis.FakeRedis(server=server))
            for name, server in self.servers.items()
        }

    def node_of(self, organisation_id: uuid.UUID) -> Node:
        return self.by_name["a" if organisation_id == A else "b"]

    def node_of_key(self, key: str) -> Node:
        return self.by_name["b"]

    def primaries(self) -> list[Node]:
        return list(self.by_name.values())

    def known(self) -> list[Node]:
        return list(self.by_name.values())

    def replicas_of(self, node: Node) -> int:
        return 0  # a fakeredis server has none

    def trouble(self, problem: Exception | None = None) -> None:
        self.troubles += 1

    def close(self) -> None:
        for node in self.by_name.values():
            node.client.close()

    def keys(self, name: str) -> list[bytes]:
        return [k for k in self.by_name[name].client.keys("ua1:*") if b"read-by-servers" not in k]


@pytest.fixture()
def cluster() -> FakeCluster:
    return FakeCluster()


def cache_on(cluster: FakeCluster, **overrides) -> RedisRollupCache:
    options = {
        "namespace": "testdb",
        "ttl_seconds": 3600,
        "today_ttl_seconds": 60,
        "lease_ms": 10_000,
        "read_by_servers": True,
        "breaker_failures": 2,
        "breaker_reset_seconds": 60,
    }
    return RedisRollupCache(cluster, **(options | overrides))


def figures_of(org: uuid.UUID) -> dict[date, DayUsage]:
    return {day: DayUsage(day, 100 + n, n, 2 * n) for n, day in enumerate(DAYS) if n % 2}


def fill_both(cache: RedisRollupCache) -> None:
    lease = cache.lease([(Scope(A), DAYS), (Scope(B), DAYS)], TODAY)
    figures = {Scope(org): figures_of(org) for org in (A, B)}
    assert cache.fill(lease, figures, TODAY) == 2 * len(DAYS)


def test_each_organisation_is_cached_on_its_own_node(cluster):
    cache = cache_on(cluster)
    fill_both(cache)
    assert cluster.keys("a") and all(str(A).encode() in key for key in cluster.keys("a"))
    assert cluster.keys("b") and all(str(B).encode() in key for key in cluster.keys("b"))
    for org in (A, B):
        read = cache.read(Scope(org), DAYS, TODAY)
        assert read.missing == [] and read.found == figures_of(org)


def test_scopes_of_organisations_on_two_nodes_are_read_back_in_their_order(cluster):
    cache = cache_on(cluster)
    fill_both(cache)
    reads = cache.read_many([Scope(B), Scope(A), Scope(B, KEY)], DAYS, [], TODAY)
    assert [read.found for read in reads] == [figures_of(B), figures_of(A), {}]
    assert reads[2].missing == DAYS


def test_a_failing_node_sends_only_its_organisations_to_sql(cluster):
    cache = cache_on(cluster)
    fill_both(cache)
    cluster.servers["a"].connected = False
    for _ in range(4):  # past the breaker's threshold of the node
        with pytest.raises(CacheUnavailable):
            cache.read(Scope(A), DAYS, TODAY)
        assert cache.read(Scope(B), DAYS, TODAY).found == figures_of(B)
    assert cluster.by_name["a"].breaker.current_state == "open"
    assert cluster.by_name["b"].breaker.current_state == "closed"
    assert cache.available, "the healthy node is still used"
    assert cluster.troubles >= 1, "the topology is looked up again"


def test_leases_and_fills_go_on_where_nodes_answer(cluster):
    cache = cache_on(cluster)
    cluster.servers["a"].connected = False
    lease = cache.lease([(Scope(A), DAYS), (Scope(B), DAYS)], TODAY)
    assert {scope.organisation_id for scope, _, _ in lease.buckets.values()} == {B}
    figures = {Scope(org): figures_of(org) for org in (A, B)}
    assert cache.fill(lease, figures, TODAY) == len(DAYS)
    assert cache.read(Scope(B), DAYS, TODAY).found == figures_of(B)


def test_no_node_answering_is_an_unavailable_cache(cluster):
    cache = cache_on(cluster)
    for server in cluster.servers.values():
        server.connected = False
    with pytest.raises(CacheUnavailable):
        cache.lease([(Scope(A), DAYS), (Scope(B), DAYS)], TODAY)


def test_forgetting_fails_whole_when_one_node_does_not_answer(cluster):
    cache = cache_on(cluster)
    fill_both(cache)
    cluster.servers["a"].connected = False
    with pytest.raises(CacheUnavailable):
        cache.invalidate([(A, KEY, DAYS[1]), (B, KEY, DAYS[1])], TODAY)
    # The node that answered forgot all the same; the caller keeps the outbox rows.
    assert cache.read(Scope(B), DAYS, TODAY).missing == [DAYS[1]]
    cluster.servers["a"].connected = True
    cluster.by_name["a"].breaker.close()
    assert cache.invalidate([(A, KEY, DAYS[1]), (B, KEY, DAYS[1])], TODAY) == 4
    assert cache.read(Scope(A), DAYS, TODAY).missing == [DAYS[1]]


def test_a_node_holding_none_of_the_organisations_does_not_fail_their_forgetting(cluster):
    cache = cache_on(cluster)
    fill_both(cache)
    cluster.servers["b"].connected = False  # the node of B and of the servers' mark
    assert cache.invalidate([(A, KEY, DAYS[3])], TODAY) == 2
    assert cache.read(Scope(A), DAYS, TODAY).missing == [DAYS[3]]


def test_a_command_forgets_only_where_the_servers_left_their_mark(cluster):
    server_cache = cache_on(cluster)
    command_cache = cache_on(cluster, read_by_servers=False)
    with pytest.raises(CacheUnavailable):
        command_cache.invalidate([(A, KEY, DAYS[0])], TODAY)
    server_cache.open()
    assert command_cache.invalidate([(A, KEY, DAYS[0])], TODAY) == 2


def test_clear_reaches_every_node_and_keeps_the_mark(cluster):
    cache = cache_on(cluster)
    cache.open()
    fill_both(cache)
    held = len(cluster.keys("a")) + len(cluster.keys("b"))
    assert held == 2  # a bucket per organisation, its lease gone with the fill
    assert cache.clear() == held
    assert cluster.keys("a") == [] and cluster.keys("b") == []
    assert cache.is_marked()


def test_clear_fails_when_a_node_cannot_be_cleared(cluster):
    cache = cache_on(cluster)
    fill_both(cache)
    cluster.servers["a"].connected = False
    with pytest.raises(CacheUnavailable):
        cache.clear()
    assert cluster.keys("b") == []
