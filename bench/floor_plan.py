"""What the I/O floor (bench/floor.py) must do for each request of the bench: the Redis
pipeline of a warm query, packed from the service's own layout of the cache, and the
service's own answer, fetched once."""

from __future__ import annotations

import base64
import json
import urllib.request
from datetime import date
from pathlib import Path

import redis

from bench import wrk
from service.adapters.redis.layout import Layout, shared_buckets
from service.domain.figures import Scope
from service.domain.reports import cells_for
from service.domain.time_buckets import plan
from service.usecases.ports import Services

# Set by gunicorn itself on every answer, the floor's included.
SERVER_HEADERS = {"server", "date", "connection", "transfer-encoding", "keep-alive"}


def _packed(key: bytes, fields: list[bytes]) -> bytes:
    """HMGET key fields… in the Redis protocol, as the rollup cache packs it."""
    head = b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n" % (len(fields) + 2, len(key), key)
    return head + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)


def packed_reads(
    namespace: str, scopes: list[Scope], days: list[date], points: list, today: date
) -> tuple[bytes, int, int]:
    """The HMGETs a warm read of these scopes' days and running sums sends, packed, with
    how many replies and fields they have."""
    shared = shared_buckets(days, points, today)
    prefixes = Layout(namespace).scope_prefixes(scopes)
    packed = b"".join(
        _packed((prefix + bucket.suffix).encode(), bucket.fields)
        for prefix in prefixes
        for bucket in shared
    )
    fields = sum(len(bucket.fields) for bucket in shared) * len(prefixes)
    return packed, len(prefixes) * len(shared), fields


def _answer(base: str, request: wrk.Request) -> tuple[str, list[tuple[str, str]], bytes]:
    sent = urllib.request.Request(
        base + request.path, data=request.body.encode(), headers=request.headers, method="POST"
    )
    with urllib.request.urlopen(sent, timeout=30) as response:
        body = response.read()
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in SERVER_HEADERS]
        return f"{response.status} {response.reason}", headers, body


def entry(
    services: Services,
    namespace: str,
    organisation_id,
    request: wrk.Request,
    base: str,
    today: date,
) -> dict:
    """The floor's part of one request of the service at `base` (warm already)."""
    body = json.loads(request.body)
    start, end = date.fromisoformat(body["start_date"]), date.fromisoformat(body["end_date"])
    cells = cells_for(plan(start, end, body.get("time_zone", "UTC"), "day"))
    reads_keys = body.get("group_by") is not None
    if reads_keys:
        keys = services.directory.organisation_keys(organisation_id)
        scopes = [Scope(organisation_id, key.id) for key in keys]
    elif "api_key_id" in body:
        scopes = [Scope(organisation_id, body["api_key_id"])]
    else:
        scopes = [Scope(organisation_id)]
    packed, replies, fields = packed_reads(namespace, scopes, cells.days, cells.points, today)
    status, headers, answer = _answer(base, request)
    return {
        "provider": request.headers["X-Scrubs-Clinic-Provider"],
        "body": request.body,
        "organisation_id": str(organisation_id),
        "reads_keys": reads_keys,
        "packed": base64.b64encode(packed).decode(),
        "replies": replies,
        "fields": fields,
        "status": status,
        "headers": headers,
        "answer": base64.b64encode(answer).decode(),
    }


def missing_fields(client: redis.Redis, entries: list[dict]) -> int:
    """How many of the fields the floor would read are not in the cache: none, when the
    floor reads what a warm query reads."""
    missing = 0
    conn = client.connection_pool.get_connection()
    try:
        for e in entries:
            conn.send_packed_command([base64.b64decode(e["packed"])])
            for _ in range(e["replies"]):
                missing += sum(value is None for value in conn.read_response())
    finally:
        client.connection_pool.release(conn)
    return missing


def write(path: Path, entries: list[dict]) -> None:
    path.write_text(json.dumps({"requests": entries}))
