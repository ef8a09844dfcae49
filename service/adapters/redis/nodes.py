"""Which Redis holds which organisation's rollups: one Redis, or the primaries of a Redis
Cluster. Each node has a plain client and a circuit breaker of its own, so that one node's
trouble sends only the organisations whose slots it serves to SQL.

On a cluster, redis-py's RedisCluster only tells the topology (which primary serves which
slot): commands go to the nodes' own clients, whose pipelines
run the cache's scripts and whose connections take the hand-packed reads, which the
cluster client's pipeline refuses. A key's slot is that of its `{organisation}` hash tag.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pybreaker
import redis
from redis.backoff import NoBackoff
from redis.cluster import PRIMARY, RedisCluster
from redis.connection import parse_url
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, RedisClusterException, TryAgainError
from redis.retry import Retry

from service.adapters.breaker import CircuitBreaker
from service.observability import metrics
from service.usecases.ports import CacheUnavailable

log = logging.getLogger("scrubs.cache")
# A node that answers "ask another node" or "the cluster is down" answers at once: it is
# not slow, so its breaker stays shut; the topology is looked up again instead.
NOT_A_NODE_FAILURE = (AskError, TryAgainError, ClusterDownError)
# At most one topology lookup this often, in the background; and after a failed first
# lookup, requests go to SQL at once for this long instead of each trying again.
REFRESH_INTERVAL_SECONDS = 0.5
# The topology is looked up again at least this often even without trouble (a slot moved
# by resharding is otherwise noticed only by the MOVED answer of its first request).
TOPOLOGY_MAX_AGE_SECONDS = 10.0
DISCOVERY_RETRY_SECONDS = 1.0


def client_options(timeout_ms: int) -> dict:
    """A cache must never hold a request up: redis-py's defaults (seconds of timeout, several
    retries) would make one command against a hung Redis block for most of a minute. Here a
    dead pooled socket (Redis restarted) is retried once at once; a timeout is not retried."""
    return {
        "socket_timeout": timeout_ms / 1000,
        "socket_connect_timeout": timeout_ms / 1000,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        "health_check_interval": 0,
        "max_connections": 64,
    }


@dataclass(eq=False)
class Node:
    """One Redis the cache writes to, with the breaker that keeps requests off it while it
    keeps failing."""

    name: str
    client: redis.Redis
    breaker: pybreaker.CircuitBreaker
    state: pybreaker.CircuitMemoryStorage

    @property
    def allows_calls(self) -> bool:
        """False while the breaker is open and its reset timeout has not passed (after it,
        the next call is the breaker's trial)."""
        if self.breaker.current_state != pybreaker.STATE_OPEN:
            return True
        opened_at = self.state.opened_at
        return opened_at is None or (
            datetime.now(UTC) >= opened_at + timedelta(seconds=self.breaker.reset_timeout)
        )


@dataclass
class Breakers:
    """How each node's breaker is made; the gauge counts a process as open while any of
    its breakers is."""

    failures: int = 3
    reset_seconds: float = 5
    nodes: list[Node] = field(default_factory=list)

    def node(self, name: str, client: redis.Redis) -> Node:
        state = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        breaker = CircuitBreaker(
            fail_max=self.failures,
            reset_timeout=self.reset_seconds,
            state_storage=state,
            listeners=[_BreakerGauge(self)],
            exclude=list(NOT_A_NODE_FAILURE),
            name=name,
        )
        node = Node(name, client, breaker, state)
        self.nodes.append(node)
        return node

    def any_open(self, changing: pybreaker.CircuitBreaker | None = None, to: str = "") -> bool:
        """Whether any breaker is open; `changing` counts as in state `to` (pybreaker tells
        its listeners of a change before it stores the new state)."""
        return any(
            (to if node.breaker is changing else node.breaker.current_state) == pybreaker.STATE_OPEN
            for node in self.nodes
        )


class _BreakerGauge(pybreaker.CircuitBreakerListener):
    def __init__(self, breakers: Breakers) -> None:
        self.breakers = breakers

    def state_change(self, cb, old_state, new_state) -> None:
        opened = self.breakers.any_open(changing=cb, to=new_state.name)
        metrics.CACHE_BREAKER_OPEN.set(1 if opened else 0)


class OneRedis:
    """Every organisation on one Redis."""

    is_cluster = False

    def __init__(self, client: redis.Redis, breakers: Breakers) -> None:
        self.node = breakers.node("redis", client)
        self._told_cluster = False

    def node_of(self, organisation_id: UUID) -> Node:
        return self.node

    def node_of_key(self, key: str) -> Node:
        return self.node

    def primaries(self) -> list[Node]:
        return [self.node]

    def known(self) -> list[Node]:
        return [self.node]

    def replicas_of(self, node: Node) -> int:
        """One Redis's replicas are not waited for: none is promoted by the service's
        deployment (a cluster's are)."""
        return 0

    def trouble(self, problem: Exception | None = None) -> None:
        """One Redis has no topology to look up again; but one that sends us elsewhere is a
        node of a Redis Cluster, which only REDIS_CLUSTER=true can use whole."""
        if isinstance(problem, AskError) and not self._told_cluster:
            self._told_cluster = True
            log.warning(
                "REDIS_URL names a node of a Redis Cluster (it answered MOVED): the "
                "organisations of its other nodes are read from Postgres; set REDIS_CLUSTER=true"
            )

    def close(self) -> None:
        self.node.client.close()


class ClusterNodes:
    """The primaries of a Redis Cluster found from one node's URL. Nothing connects until
    first used (so not before gunicorn forks); the topology is looked up again in the
    background whenever a node fails or answers MOVED, so that a failover is followed
    without a request waiting for it."""

    is_cluster = True

    def __init__(self, url: str, timeout_ms: int) -> None:
        self.url = url
        self.timeout_ms = timeout_ms
        options = parse_url(url)
        self._node_options = {
            name: value for name, value in options.items() if name not in ("host", "port", "db")
        } | client_options(timeout_ms)
        self.breakers = Breakers()
        self._lock = threading.Lock()
        self._cluster: RedisCluster | None = None
        self._pid = 0
        self._nodes: dict[str, Node] = {}
        self._failed_at = -math.inf
        self._refresh_wanted = threading.Event()
        self._refresher: threading.Thread | None = None
        self._looked_up_at = -math.inf

    def use_breakers(self, breakers: Breakers) -> None:
        self.breakers = breakers

    # --- the topology ---

    def _topology(self) -> RedisCluster:
        cluster = self._cluster
        if cluster is not None and self._pid == os.getpid():
            return cluster
        with self._lock:
            if self._cluster is not None and self._pid == os.getpid():
                return self._cluster
            if time.monotonic() - self._failed_at < DISCOVERY_RETRY_SECONDS:
                raise CacheUnavailable("the Redis Cluster did not answer lately")
            try:
                cluster = RedisCluster.from_url(
                    self.url,
                    socket_timeout=self.timeout_ms / 1000,
                    socket_connect_timeout=self.timeout_ms / 1000,
                    retry=Retry(NoBackoff(), 0),
                    require_full_coverage=False,  # a failover in progress leaves slots bare
                    health_check_interval=0,
                )
            except (RedisClusterException, redis.RedisError) as problem:
                self._failed_at = time.monotonic()
                metrics.CACHE_UNAVAILABLE.inc()
                said = str(problem).lower()
                if "cluster mode is not enabled" in said or "cluster support disabled" in said:
                    raise CacheUnavailable(
                        "REDIS_CLUSTER=true, but REDIS_URL names a Redis without cluster "
                        "support: set REDIS_CLUSTER=false, or name a node of a cluster"
                    ) from None
                raise CacheUnavailable(f"the Redis Cluster could not be found: {problem}") from None
            self._cluster, self._pid = cluster, os.getpid()
            self._looked_up_at = time.monotonic()
            self._refresher = None  # a thread of the parent, if any, did not survive fork
            return cluster

    def trouble(self, problem: Exception | None = None) -> None:
        """A node failed, or sent us elsewhere: look the topology up again soon."""
        self._refresh_wanted.set()
        refresher = self._refresher
        if refresher is not None and refresher.is_alive():
            return
        with self._lock:
            if self._refresher is None or not self._refresher.is_alive():
                self._refresher = threading.Thread(
                    target=self._refresh_forever, name="redis-cluster-topology", daemon=True
                )
                self._refresher.start()

    def _refresh_forever(self) -> None:
        while True:
            self._refresh_wanted.wait()
            self._refresh_wanted.clear()
            with suppress(Exception):  # the next trouble asks again; requests use SQL
                self._topology().nodes_manager.initialize()
                self._looked_up_at = time.monotonic()
            time.sleep(REFRESH_INTERVAL_SECONDS)

    def _node(self, name: str, host: str, port: int) -> Node:
        node = self._nodes.get(name)
        if node is None:
            with self._lock:
                node = self._nodes.get(name)
                if node is None:
                    client = redis.Redis(host=host, port=port, **self._node_options)
                    node = self._nodes[name] = self.breakers.node(name, client)
        return node

    def _node_of_slot(self, slot: int) -> Node:
        serving = self._topology().nodes_manager.slots_cache.get(slot)
        if time.monotonic() - self._looked_up_at > TOPOLOGY_MAX_AGE_SECONDS:
            self._looked_up_at = time.monotonic()  # one lookup asked for, not one a request
            self.trouble()
        if not serving:
            self.trouble()
            raise CacheUnavailable(f"no node of the Redis Cluster serves slot {slot}")
        primary = serving[0]
        return self._node(primary.name, primary.host, primary.port)

    def node_of(self, organisation_id: UUID) -> Node:
        """The primary serving the organisation's hash tag (every key of the organisation)."""
        return self._node_of_slot(key_slot(str(organisation_id).encode()))

    def node_of_key(self, key: str) -> Node:
        return self._node_of_slot(key_slot(key.encode()))

    def primaries(self) -> list[Node]:
        """Every primary serving slots now."""
        found = {}
        slots = self._topology().nodes_manager.slots_cache
        for serving in {id(nodes): nodes for nodes in slots.values()}.values():
            primary = serving[0]
            if primary.server_type != PRIMARY and primary.server_type is not None:
                continue
            found[primary.name] = primary
        return [
            self._node(name, primary.host, primary.port) for name, primary in sorted(found.items())
        ]

    def known(self) -> list[Node]:
        return list(self._nodes.values())

    def replicas_of(self, node: Node) -> int:
        """How many replicas the primary streams to, in its own words (ROLE). The slot
        table is no guide: it hides a replica while the node answering it has not yet heard
        that replica report an offset, and drops one the cluster has marked failed, which may
        return and be promoted later."""
        role = node.client.execute_command("ROLE")
        return len(role[2]) if role[0] == b"master" else 0

    def state(self) -> dict:
        """The cluster as this client sees it: `cluster_state` of the first primary that
        answers, how many primaries serve slots and how many answer a PING, all asked at
        once, each bounded by the socket timeouts."""
        primaries = self.primaries()

        def ask(node: Node) -> tuple[float | None, str | None]:
            started = time.perf_counter()
            try:
                node.client.ping()
                latency = (time.perf_counter() - started) * 1000
                return latency, node.client.cluster("info").get("cluster_state")
            except redis.RedisError:
                return None, None

        with ThreadPoolExecutor(max_workers=max(1, len(primaries))) as pool:
            futures = [pool.submit(ask, node) for node in primaries]
            answers = [future.result() for future in futures]
        reachable = [answer for answer in answers if answer[0] is not None]
        states = [state for _, state in reachable if state]
        if len(reachable) < len(primaries):
            self.trouble()
        return {
            "state": states[0] if states else None,
            "primaries": len(primaries),
            "reachable": len(reachable),
            "latency_ms": max((latency for latency, _ in reachable), default=None),
        }

    def close(self) -> None:
        for node in list(self._nodes.values()):
            node.client.close()
        if self._cluster is not None:
            self._cluster.close()
