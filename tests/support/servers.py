"""Servers of a test's own on free loopback ports, to stop, pause and restart at will."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

import pytest
import redis

from config.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop, pause and restart at will."""

    def __init__(self, workdir) -> None:

        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.resume()
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:

        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:

        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class ClusterNode(PrivateRedis):
    """One redis-server of a PrivateRedisCluster: it keeps its node id and slots across a
    restart (its nodes.conf is in its own directory)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_cluster_port()
        self.workdir = workdir / f"node-{self.port}"
        self.workdir.mkdir(parents=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                # A master silent this long is failed over to its replica.
                *("--cluster-node-timeout", str(PrivateRedisCluster.NODE_TIMEOUT_MS)),
                # A replica syncs at once, not after the default 5 s wait for others.
                *("--repl-diskless-sync-delay", "0"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_until(lambda client: client.ping(), "start")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def wait_until(self, ready, what: str, timeout: float = 20) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        try:
            while True:
                with suppress(redis.RedisError):
                    if ready(client):
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis cluster node {self.port} did not {what}")
                time.sleep(0.1)
        finally:
            client.close()

    def role(self) -> str:
        client = self.client()
        try:
            return client.role()[0].decode()
        finally:
            client.close()


class PrivateRedisCluster:
    """A Redis Cluster of the test's own: MASTERS masters with a replica each, on free
    ports, made with `redis-cli --cluster create`. `url` names one node (the client finds
    the others); nodes can be killed, paused and restarted one by one."""

    MASTERS = 3
    NODE_TIMEOUT_MS = 1000

    def __init__(self, workdir: Path) -> None:
        self.nodes = [ClusterNode(Path(workdir)) for _ in range(2 * self.MASTERS)]
        self.url = self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        ran = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
        )
        if ran.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {ran.stdout[-2000:]!r}")
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every running node says the cluster is ok and sees every slot served, and
        every replica is in sync with its master (a replica that never synced is not
        promoted when its master dies, nor listed by CLUSTER SLOTS)."""
        for node in self.nodes:
            if node.process is not None:
                node.wait_until(
                    lambda client: (
                        client.cluster("info")["cluster_state"] == "ok"
                        and (
                            client.role()[0] != b"slave"
                            or client.info("replication").get("master_link_status") == "up"
                        )
                    ),
                    "see the cluster healthy",
                    timeout,
                )

    def masters(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.process is not None and node.role() == "master"]

    def node_of(self, key: str) -> ClusterNode:
        """The master that serves this key's slot now."""
        client = next(node for node in self.nodes if node.process is not None).client()
        try:
            slot = client.cluster("keyslot", key)
        finally:
            client.close()
        for node in self.masters():
            client = node.client()
            try:
                for start, end, *_ in client.cluster("slots"):
                    if start <= slot <= end and _ and _[0][1] == node.port:
                        return node
            finally:
                client.close()
        raise LookupError(f"no master serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class PrivatePostgres:
    """initdb + pg_ctl as the postgres user (Postgres refuses to run as root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not found:
            pytest.exit("no PostgreSQL server binaries under /usr/lib/postgresql", returncode=3)
        self.bin = Path(found[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="scrubs-pg-"))
        account = pwd.getpwnam("postgres")
        os.chown(self.dir, account.pw_uid, account.pw_gid)
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/scrubs_reliability"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def init(self) -> None:
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"
        )

    def remove(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


ROOT = Path(__file__).resolve().parents[2]


class Gunicorn:
    """The service under gunicorn with the shipped config, on a free loopback port, started
    as a user starts it (from the project root, PROMETHEUS_MULTIPROC_DIR not set)."""

    def __init__(self, workdir: Path, **environment: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "2",
            **environment,
        }
        self.log = workdir / f"gunicorn-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> Gunicorn:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "-c", "config/gunicorn.conf.py", "app:app"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = self.log.read_text(errors="replace")
                pytest.fail(f"gunicorn did not start on {self.base_url}:\n{output[-5000:]}")
            time.sleep(0.1)
        return self

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    @property
    def metrics_dir(self) -> Path:
        """The directory this instance keeps its workers' metric samples in."""
        assert self.process is not None
        settings = Settings.from_env(self.env)
        parent = Path(settings.metrics_base_directory) / settings.database_name
        [found] = parent.glob(f"instance-{self.process.pid}-*")
        return found

    def worker_pids(self) -> set[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
