"""What only a real HTTP server shows: chunked bodies and their size limit, answers to HTTP
the server cannot parse, and how long a client connection is kept."""

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


def raw_exchange(server, payload: bytes) -> bytes:
    import socket

    address = urlsplit(server["base_url"])
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % n for n in range(60))
            + b"\r\n",
            b"431",
        ),
    ],
    ids=["request-line", "header-size", "uri-length", "header-count"],
)
def test_http_the_server_cannot_parse_still_gets_a_problem(server, payload, status):
    answer = raw_exchange(server, payload)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == status
    assert b"Content-Type: application/problem+json" in head
    problem = json.loads(body)
    assert str(problem["status"]).encode() == status
    assert b"X-Request-ID: " + problem["request_id"].encode() in head


def test_a_kept_alive_connection_is_closed_after_100_requests(server):
    """So that clients holding connections open spread over the workers again."""
    address = urlsplit(server["base_url"])
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        answers = []
        for _ in range(100):
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            answers.append((response.status, response.getheader("Connection")))
    finally:
        conn.close()
    assert all(status == 200 for status, _ in answers)
    assert [header for _, header in answers[:99]] == ["keep-alive"] * 99
    assert answers[99][1] == "close"
