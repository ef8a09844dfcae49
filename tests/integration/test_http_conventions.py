"""What every response shares (CONTRACT §1 "Errors", §2): request ids, problem details for
routes and methods, a 500 that leaks nothing, and the health endpoints."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app import create_app
from service import repository

PATH = "/api/v1/usage-analytics"
BODY = {"start_date": "2024-01-01", "end_date": "2024-01-31"}


@pytest.mark.parametrize(
    "sent",
    ["abc-123", "x" * 128, "a b c", "~!@#$%^&*()_+{}|:<>?"],
    ids=["plain", "128", "spaces", "punct"],
)
def test_a_usable_request_id_is_echoed(client, org, sent):
    for response in (
        client.post(PATH, headers=org.headers() | {"X-Request-ID": sent}, json=BODY),
        client.post(PATH, headers={"X-Request-ID": sent}, json=BODY),
        client.get("/nowhere", headers={"X-Request-ID": sent}),
    ):
        assert response.headers["X-Request-ID"] == sent
    assert response.get_json()["request_id"] == sent


@pytest.mark.parametrize(
    "sent",
    ["", "x" * 129, "tab\there", "caf\u00e9", "bell\x07"],
    ids=["empty", "129", "tab", "latin1", "control"],
)
def test_an_unusable_request_id_is_replaced(client, org, sent):
    response = client.post(PATH, headers=org.headers() | {"X-Request-ID": sent}, json={})
    generated = response.headers["X-Request-ID"]
    assert generated != sent and 0 < len(generated) <= 128
    assert response.get_json()["request_id"] == generated


def test_every_response_has_its_own_request_id_and_no_store(client, org):
    ids = set()
    for response in (
        client.post(PATH, headers=org.headers(), json=BODY),
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/nowhere"),
    ):
        ids.add(response.headers["X-Request-ID"])
        assert response.headers["Cache-Control"] == "no-store"
    assert len(ids) == 4


@pytest.mark.parametrize(
    "path", ["/", "/api/v1", "/api/v1/usage-analytics/", "/api/v2/usage-analytics", "/%00"]
)
def test_an_unknown_route_gets_a_404_problem(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 404 and body["code"] == "not_found" and body["type"] == "about:blank"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", PATH),
        ("PUT", PATH),
        ("DELETE", PATH),
        ("PATCH", PATH),
        ("POST", "/healthz"),
        ("DELETE", "/readyz"),
    ],
)
def test_a_wrong_method_gets_a_405_problem_with_allow(client, method, path):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["code"] == "method_not_allowed"
    assert response.headers["Allow"]
    assert method not in response.headers["Allow"]


def test_an_unexpected_failure_is_a_generic_500_that_leaks_nothing(client, org, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError(f"SELECT secret_hash FROM api_keys -- {org.root.secret}")

    monkeypatch.setattr(repository, "organisation_daily_usage", explode)
    monkeypatch.setattr(repository, "key_daily_usage", explode)
    client.application.extensions["scrubs"].cache.clear()
    response = client.post(
        PATH, headers=org.headers(), json={"start_date": "1999-01-01", "end_date": "1999-01-02"}
    )
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "internal_error"
    assert body["title"] == "Unexpected server failure."
    assert body["request_id"] == response.headers["X-Request-ID"]
    raw = response.get_data(as_text=True) + str(response.headers)
    for leak in ("SELECT", "api_keys", "Traceback", "RuntimeError", org.root.secret):
        assert leak not in raw


def test_no_response_carries_the_callers_secret(client, org):
    secret = org.root.secret
    responses = [
        client.post(PATH, headers=org.headers(), json=BODY),
        client.post(PATH, headers=org.headers(), json={"start_date": secret, "end_date": "x"}),
        client.post(PATH, headers=org.headers(), json={**BODY, "api_key_id": secret}),
        client.post(PATH, headers=org.headers() | {"X-Scrubs-Clinic-Provider": "nope"}, json=BODY),
        client.post(PATH, headers=org.headers(org.clinic_keys[0]), json=BODY),
    ]
    for response in responses:
        assert secret not in response.get_data(as_text=True)
        assert secret not in str(response.headers)


def test_healthz_answers_ok_without_touching_anything(settings):
    app = create_app(
        replace(settings, database_url="postgresql://127.0.0.1:1/nowhere", redis_url="")
    )
    try:
        response = app.test_client().get("/healthz")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}
    finally:
        app.extensions["scrubs"].close()


def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    for dependency in ("postgres", "redis"):
        assert body[dependency]["ok"] is True
        assert body[dependency]["latency_ms"] >= 0


def test_readyz_is_unavailable_quickly_when_postgres_does_not_answer(settings):
    app = create_app(replace(settings, database_url="postgresql://127.0.0.1:1/nowhere"))
    try:
        began = time.perf_counter()
        response = app.test_client().get("/readyz")
        took = time.perf_counter() - began
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unavailable"
        assert body["postgres"] == {"ok": False, "latency_ms": None}
        assert took < 1.5
    finally:
        app.extensions["scrubs"].close()


def test_readyz_is_degraded_when_redis_does_not_answer(settings):
    app = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 200
        assert response.get_json()["status"] == "degraded"
        assert response.get_json()["redis"]["ok"] is False
    finally:
        app.extensions["scrubs"].close()


def test_a_postgres_outage_is_a_500_problem_not_a_hang(settings, org):
    app = create_app(replace(settings, database_url="postgresql://127.0.0.1:1/nowhere"))
    try:
        response = app.test_client().post(PATH, headers=org.headers(), json=BODY)
        assert response.status_code == 500
        assert response.get_json()["code"] == "internal_error"
    finally:
        app.extensions["scrubs"].close()
