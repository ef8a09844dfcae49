"""What only a real HTTP server shows: chunked bodies and their size limit."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.e2e

BODY = b'{"start_date": "2024-01-01", "end_date": "2024-01-31"}'


def post_chunked(server, org, body: bytes) -> tuple[int, dict]:
    address = urlsplit(server["base_url"])
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
        conn.request(
            "POST",
            "/api/v1/usage-analytics",
            body=chunks,
            headers=org.headers(),
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_chunked_body_of_exactly_16_kib_is_read_whole(server, org):
    status, body = post_chunked(server, org, BODY + b" " * (16 * 1024 - len(BODY)))
    assert status == 200, body


def test_a_chunked_body_over_16_kib_is_invalid_request(server, org):
    status, body = post_chunked(server, org, BODY + b" " * (16 * 1024 - len(BODY) + 1))
    assert status == 400
    assert body["code"] == "invalid_request"
    assert "16384" in body["detail"]
