"""The I/O floor (DESIGN, "Performance targets"): a bare WSGI function doing exactly the I/O
of a warm query, served by the same gunicorn config as the service, so that the service's
throughput over the floor's is the share our own Python costs.

For each request it knows (by provider and body), it runs the service's own auth statement
on the service's pool class, the organisation's keys statement where a report by key needs
them, and the HMGETs of the range packed as the rollup cache packs them, sent in one write
with every reply read back; then it writes the service's answer to that request, prebuilt.
The bench writes what it knows into a JSON file named by BENCH_FLOOR_PLAN:

    gunicorn -c config/gunicorn.conf.py 'bench.floor:create_app()'
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from uuid import UUID

from config.settings import Settings
from service.adapters.postgres.administration import CREDENTIALS, ORGANISATION_KEYS
from service.adapters.postgres.pool import PooledDatabase
from service.adapters.redis.rollup_cache import redis_client
from service.domain.keys import hash_secret

PLAN_VARIABLE = "BENCH_FLOOR_PLAN"
HEALTHZ = b'{"status":"ok"}'


@dataclass(frozen=True)
class Known:
    """One request the floor answers, and the I/O the service does for it when warm."""

    organisation_id: UUID
    reads_keys: bool  # a report by key reads the organisation's keys
    packed: bytes  # the HMGETs, packed
    replies: int
    status: str
    headers: list[tuple[str, str]]
    answer: bytes


@dataclass
class FloorServices:
    """What config/gunicorn.conf.py's worker hooks open and close: the pool, and no cache
    upkeep (the floor only reads)."""

    database: PooledDatabase
    redis: object
    cache: None = None

    def close(self) -> None:
        self.database.close()
        self.redis.close()


def _known(entry: dict) -> Known:
    return Known(
        organisation_id=UUID(entry["organisation_id"]),
        reads_keys=entry["reads_keys"],
        packed=base64.b64decode(entry["packed"]),
        replies=entry["replies"],
        status=entry["status"],
        headers=[tuple(pair) for pair in entry["headers"]],
        answer=base64.b64decode(entry["answer"]),
    )


class Floor:
    def __init__(self, settings: Settings, plan: dict) -> None:
        database = PooledDatabase(
            settings.database_url,
            max_size=settings.db_pool_max_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        self.redis = redis_client(settings.redis_url, settings.redis_timeout_ms)
        self.database = database
        self.extensions = {"scrubs": FloorServices(database, self.redis)}
        self.known = {
            (entry["provider"], entry["body"].encode()): _known(entry) for entry in plan["requests"]
        }

    def _hmgets(self, packed: bytes, replies: int) -> list:
        """As the rollup cache sends them: one write, every reply read back."""
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([packed])
            return [conn.read_response() for _ in range(replies)]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [HEALTHZ]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        provider = environ.get("HTTP_X_SCRUBS_CLINIC_PROVIDER", "")
        known = self.known[(provider, body)]
        secret_hash = hash_secret(environ.get("HTTP_X_SCRUBS_CLINIC_API_KEY", ""))
        found = self.database.read(
            lambda conn: conn.execute(CREDENTIALS, (secret_hash, provider)).fetchone()
        )
        if found is None or found[1] is None:
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b"{}"]
        if known.reads_keys:
            self.database.read(
                lambda conn: conn.execute(ORGANISATION_KEYS, (known.organisation_id,)).fetchall()
            )
        self._hmgets(known.packed, known.replies)
        start_response(known.status, known.headers)
        return [known.answer]


def create_app() -> Floor:
    settings = Settings.from_env()
    with open(os.environ[PLAN_VARIABLE], "rb") as plan:
        return Floor(settings, json.load(plan))
