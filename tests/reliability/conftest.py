"""A whole stack of the reliability suite's own, free to break: a Postgres cluster made
with initdb in a temporary directory, a redis-server, and two gunicorn instances with the
shipped config behind the shipped front proxy (nginx balancing them), all on free loopback
ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from config.front_proxy import FrontProxy
from config.settings import Settings
from service.adapters.postgres.migrate import upgrade_database
from service.bootstrap import command_services
from tests.support.orgs import create_org
from tests.support.servers import PrivatePostgres, PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Tenant:
    organisation_id: str
    provider_id: str
    root_secret: str
    key_ids: list[str]


INSTANCES = 2  # gunicorn instances behind the load balancer
WORKERS = 2  # workers in each


@dataclass
class Instance:
    """One gunicorn of the stack, on a port of its own, with its own metrics directory."""

    port: int
    env: dict
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "app:app"],
                cwd=ROOT,
                env={**self.env, "BIND": f"127.0.0.1:{self.port}"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn did not start: {self.log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Gracefully (SIGTERM): requests under way are answered, then it exits."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
            self.process = None

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        ran = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in ran.stdout.split()]


@dataclass
class Stack:
    """Postgres, Redis, and INSTANCES gunicorn instances behind the shipped front proxy
    (nginx as the load balancer, docs/operations.md): requests go to `base_url`, nginx's."""

    postgres: PrivatePostgres
    redis: PrivateRedis
    env: dict
    log: Path
    instances: list[Instance] = field(default_factory=list)
    front: FrontProxy | None = None
    tenants: list[Tenant] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        assert self.front is not None
        return f"http://{self.front.listen}"

    def start(self, workdir: Path) -> None:
        for _ in range(INSTANCES):
            # Each makes a metrics directory of its own under METRICS_DIR at start.
            instance = Instance(free_port(), {**self.env, "METRICS_DIR": str(workdir)}, self.log)
            instance.start()
            self.instances.append(instance)
        with self.log.open("ab") as out:
            self.front = FrontProxy(
                listen=f"127.0.0.1:{free_port()}",
                upstream=[instance.url.removeprefix("http://") for instance in self.instances],
                stderr=out,
            )
            self.front.start()

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
        for instance in self.instances:
            instance.stop()

    def worker_pids(self) -> list[int]:
        return [pid for instance in self.instances for pid in instance.worker_pids()]

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 120):
        return subprocess.run(
            [str(BIN / "scrubs-analytics"), *args],
            env=self.env,
            input=input,
            capture_output=True,
            timeout=timeout,
        )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reliability")
    postgres = PrivatePostgres()
    redis_server = PrivateRedis(workdir)
    try:
        postgres.init()
        postgres.start()
        redis_server.start()
        upgrade_database(postgres.url)
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            "WEB_CONCURRENCY": str(WORKERS),
            "CACHE_BREAKER_RESET_SECONDS": "1",
        }
        built = Stack(postgres, redis_server, env, log=workdir / "servers.log")
        services = command_services(Settings(database_url=postgres.url, redis_url=""))
        for n in range(3):
            org = create_org(services.directory, clinic_keys=4, name=f"Reliability {n}")
            built.tenants.append(Tenant(org.id, org.provider_id, org.root.secret, org.key_ids))
        services.close()
        try:
            built.start(workdir)
            yield built
        finally:
            built.stop()
    finally:
        redis_server.stop()
        postgres.remove()


def plan_for(stack: Stack, start: str, end: str) -> list[dict]:
    """The valid requests the load generator sends: org-wide and per key, every tenant."""
    plan = []
    for tenant in stack.tenants:
        headers = {
            "X-Scrubs-Clinic-Api-Key": tenant.root_secret,
            "X-Scrubs-Clinic-Provider": tenant.provider_id,
            "Content-Type": "application/json",
        }
        bodies = [{"start_date": start, "end_date": end}] + [
            {"start_date": start, "end_date": end, "api_key_id": key} for key in tenant.key_ids[:2]
        ]
        for body in bodies:
            plan.append(
                {
                    "path": "/api/v1/usage-analytics",
                    "headers": headers,
                    "body": json.dumps(body),
                    "kind": "key" if "api_key_id" in body else "org",
                }
            )
    return plan


def connectable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False
