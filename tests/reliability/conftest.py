"""A whole stack of the reliability suite's own, free to break: a Postgres cluster made
with initdb in a temporary directory, a redis-server, and gunicorn with the shipped config,
all on free loopback ports."""

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


@dataclass
class Stack:
    postgres: PrivatePostgres
    redis: PrivateRedis
    env: dict
    base_url: str = ""
    process: subprocess.Popen | None = None
    log: Path | None = None
    tenants: list[Tenant] = field(default_factory=list)

    def start_gunicorn(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.env["BIND"] = f"127.0.0.1:{port}"
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "app:app"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn did not start: {self.log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.1)

    def stop_gunicorn(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
            self.process = None

    def worker_pids(self) -> list[int]:
        ran = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in ran.stdout.split()]

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
            "WEB_CONCURRENCY": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            "CACHE_BREAKER_RESET_SECONDS": "1",
        }
        built = Stack(postgres, redis_server, env, log=workdir / "gunicorn.log")
        services = command_services(Settings(database_url=postgres.url, redis_url=""))
        for n in range(3):
            org = create_org(services.directory, clinic_keys=4, name=f"Reliability {n}")
            built.tenants.append(Tenant(org.id, org.provider_id, org.root.secret, org.key_ids))
        services.close()
        built.start_gunicorn()
        yield built
        built.stop_gunicorn()
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
