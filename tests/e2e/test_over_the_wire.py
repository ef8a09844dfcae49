"""What only a real HTTP server shows: chunked bodies and their size limit, answers to HTTP
the server cannot parse, and how long a client connection is kept."""

from __future__ import annotations

import http.client
import json
import socket
import time
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


@pytest.mark.parametrize(
    "line",
    [
        b"X-Scrubs-Clinic-Api-Key %s",  # a header line without its colon
        b"X-Scrubs-Clinic-Api-Key: %s\x00",  # a value gunicorn refuses
    ],
    ids=["no-colon", "nul-in-value"],
)
def test_gunicorn_never_logs_the_text_of_a_request_it_cannot_parse(server, org, line):
    secret = org.root.secret.encode()
    head = b"POST /api/v1/usage-analytics HTTP/1.1\r\nHost: x\r\n" + line % secret + b"\r\n\r\n"
    answer = raw_exchange(server, head)
    assert answer.split(b" ")[1] == b"400"
    bad_line = b"GET /" + secret + b"\x01 HTTP/1.1\r\n\r\n"
    assert raw_exchange(server, bad_line).split(b" ")[1] == b"400"
    time.sleep(0.5)  # the log line is written after the answer
    log = server["log"].read_bytes()
    assert b"Invalid request from ip=" in log, "gunicorn did log the event"
    assert secret not in log
    assert secret[len("scrubs_") :] not in log


@pytest.mark.parametrize(
    "target",
    [
        b"//api/v1/usage-analytics",
        b"/api%2Fv1/usage-analytics",
        b"/api%2fv1/usage-analytics",
        b"/api/v1/usage%2Danalytics",
        b"/./api/v1/usage-analytics",
        b"/api/v1/../v1/usage-analytics",
    ],
)
def test_only_the_canonical_path_reaches_the_endpoint_over_the_wire(server, org, target):
    body = BODY
    headers = "".join(f"{name}: {value}\r\n" for name, value in org.headers().items())
    request = (
        b"POST "
        + target
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + headers.encode()
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    head, _, answer = raw_exchange(server, request).partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"404", (target, head, answer)
    assert json.loads(answer)["code"] == "not_found"
