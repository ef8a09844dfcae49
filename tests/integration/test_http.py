"""What every response shares (README, "The API"; docs/operations.md):
request ids, problem details for unknown routes and wrong methods, a 500 that leaks nothing,
and the liveness and readiness endpoints, Postgres or Redis up or not."""

from __future__ import annotations

import string
import time
import uuid

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from config.settings import Settings
from service.entrypoints.http.conventions import services_of
from tests.support.api import assert_problem

PATH = "/api/v1/usage-analytics"
KEY_HEADER = "X-Scrubs-Clinic-Api-Key"
BODY = {"start_date": "2024-01-01", "end_date": "2024-01-31"}
PRINTABLE_ASCII = set(string.printable) - set(string.whitespace) | {" "}


class SecretGuardingClient(FlaskClient):
    """A test client that fails any response carrying the secret its request was sent with."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        secret = (response.request.headers.get(KEY_HEADER) or "").strip()
        if secret:
            assert secret not in response.get_data(as_text=True)
            assert secret not in str(response.headers)
        return response


@pytest.fixture()
def client(app):
    """Every request of this file: no response ever contains the caller's secret."""
    return SecretGuardingClient(app, app.response_class, use_cookies=True)


@pytest.fixture()
def app_with(settings):
    """app_with(database_url=..., redis_url=...) -> a second app on those stores, closed after."""
    made = []

    def make(**overrides):
        fields = {"database_url": settings.database_url, "redis_url": settings.redis_url}
        application = create_app(Settings(**(fields | overrides)))
        made.append(application)
        return application

    yield make
    for application in made:
        services_of(application).close()


# --- X-Request-ID -------------------------------------------------------------------------

RESPONSES = {
    "200": lambda client, org, extra: client.post(PATH, headers=org.headers() | extra, json=BODY),
    "400": lambda client, org, extra: client.post(PATH, headers=org.headers() | extra, json={}),
    "401": lambda client, org, extra: client.post(PATH, headers=extra, json=BODY),
    "403": lambda client, org, extra: client.post(
        PATH, headers=org.headers(org.clinic_keys[0]) | extra, json=BODY
    ),
    "404": lambda client, org, extra: client.get("/no/such/route", headers=extra),
    "405": lambda client, org, extra: client.get(PATH, headers=extra),
    "healthz": lambda client, org, extra: client.get("/healthz", headers=extra),
}
EXPECTED_STATUS = {"200": 200, "400": 400, "401": 401, "403": 403, "404": 404, "405": 405}


def answer(kind: str, client, org, request_id: str | None):
    response = RESPONSES[kind](
        client, org, {} if request_id is None else {"X-Request-ID": request_id}
    )
    assert response.status_code == EXPECTED_STATUS.get(kind, 200)
    return response


def assert_body_carries(response, request_id: str) -> None:
    """Problem bodies carry the request id; success bodies have no such field."""
    if response.status_code >= 400:
        assert response.get_json()["request_id"] == request_id


@pytest.mark.parametrize("kind", list(RESPONSES))
@pytest.mark.parametrize(
    "sent",
    [
        "a",
        "x" * 128,
        "3f0c1d2e-4b5a-6978-8796-a5b4c3d2e1f0",
        "with spaces inside",
        "~!@#$%^&*()_+{}|:<>?`-=[]\\;',./\"",
    ],
    ids=["one-char", "128-chars", "uuid", "spaces", "punctuation"],
)
def test_a_request_id_of_1_to_128_printable_ascii_characters_is_echoed(client, org, kind, sent):
    response = answer(kind, client, org, sent)
    assert response.headers["X-Request-ID"] == sent
    assert_body_carries(response, sent)


@pytest.mark.parametrize("kind", list(RESPONSES))
@pytest.mark.parametrize(
    "sent",
    [None, "", "x" * 129, "tab\there", "bell\x07", "delete\x7f", "caf\u00e9", "nbsp\u00a0"],
    ids=["absent", "empty", "129-chars", "tab", "control", "del", "non-ascii", "nbsp"],
)
def test_a_missing_or_unusable_request_id_is_replaced_by_a_generated_one(client, org, kind, sent):
    first, second = answer(kind, client, org, sent), answer(kind, client, org, sent)
    for response in (first, second):
        generated = response.headers["X-Request-ID"]
        assert generated != sent
        assert 1 <= len(generated) <= 128
        assert set(generated) <= PRINTABLE_ASCII
        assert_body_carries(response, generated)
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


# --- unknown routes and wrong methods -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/v1"),
        ("POST", "/api/v1/usage-analytics/"),
        ("POST", "/api/v2/usage-analytics"),
        ("POST", "/API/V1/USAGE-ANALYTICS"),
        ("GET", "/healthz/extra"),
        ("DELETE", "/no/such/route"),
    ],
)
def test_an_unknown_route_gets_404_problem_not_found(client, org, method, path):
    response = client.open(path, method=method, headers=org.headers(), json=BODY)
    assert_problem(response, "not_found", 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", PATH, "POST"),
        ("PUT", PATH, "POST"),
        ("PATCH", PATH, "POST"),
        ("DELETE", PATH, "POST"),
        ("OPTIONS", PATH, "POST"),
        ("POST", "/healthz", "GET"),
        ("PUT", "/healthz", "GET"),
        ("DELETE", "/healthz", "GET"),
        ("POST", "/readyz", "GET"),
        ("OPTIONS", "/healthz", "GET"),
    ],
)
def test_a_wrong_method_gets_405_problem_with_an_allow_header(client, org, method, path, allowed):
    response = client.open(path, method=method, headers=org.headers(), json=BODY)
    assert_problem(response, "method_not_allowed", 405)
    methods = {name.strip() for name in response.headers["Allow"].split(",")}
    assert allowed in methods
    assert method not in methods


@pytest.mark.parametrize(
    "path",
    [
        "//api/v1/usage-analytics",
        "/api%2Fv1/usage-analytics",
        "/api/v1%2Fusage-analytics",
        "/api/v1/usage%2Danalytics",
        "/api/v1//usage-analytics",
    ],
)
def test_only_the_canonical_path_reaches_the_endpoint(client, org, path):
    """A path rule in front of the service (a proxy, a firewall) sees these as other
    resources: the service must too."""
    response = client.open(path, method="POST", headers=org.headers(), json=BODY)
    assert_problem(response, "not_found", 404)
    assert client.post(PATH, headers=org.headers(), json=BODY).status_code == 200


def metric_samples(client, name: str) -> list[tuple[dict, float]]:
    text = client.get("/metrics").get_data(as_text=True)
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_request_metrics_have_a_bounded_set_of_methods(client):
    invented = [f"X{n:04d}{uuid.uuid4().hex[:6].upper()}" for n in range(200)]
    for method in invented:
        assert client.open("/healthz", method=method).status_code == 405
    methods = {
        labels["method"] for labels, _ in metric_samples(client, "scrubs_http_requests_total")
    }
    assert not methods & set(invented)
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    other = [
        value
        for labels, value in metric_samples(client, "scrubs_http_requests_total")
        if labels == {"route": "/healthz", "method": "other", "status": "405"}
    ]
    assert other and other[0] >= 200


def test_a_wrong_method_on_a_route_is_counted_under_that_route(client):
    def counted() -> float:
        return sum(
            value
            for labels, value in metric_samples(client, "scrubs_http_requests_total")
            if labels == {"route": PATH, "method": "GET", "status": "405"}
        )

    before = counted()
    assert client.get(PATH).status_code == 405
    assert counted() == before + 1


# --- the unexpected ----------------------------------------------------------------------


FAKE_SECRET = "pg-password-hunter2-FAKE"
LEAKED_SQL = "SELECT secret_hash FROM api_keys WHERE organisation_id = %s"


def test_an_unexpected_failure_gets_a_generic_500_that_leaks_nothing(client, org, monkeypatch):
    message = f"{LEAKED_SQL} -- password={FAKE_SECRET} caller={org.root.secret}"

    def fail(*args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(services_of(client.application).rollups, "organisation_days", fail)
    response = client.post(
        PATH, headers=org.headers(), json={"start_date": "1999-01-01", "end_date": "1999-01-31"}
    )

    body = assert_problem(response, "internal_error", 500)
    assert body["title"] == "Unexpected server failure."
    assert response.headers["Cache-Control"] == "no-store"
    sent_back = response.get_data(as_text=True) + str(response.headers)
    for leak in (message, FAKE_SECRET, "Traceback", "SELECT", "api_keys", "RuntimeError"):
        assert leak not in sent_back
    assert org.root.secret not in sent_back


def test_the_500_is_only_for_that_request(client, org, monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(services_of(client.application).rollups, "organisation_days", _always_fails)
        assert client.post(PATH, headers=org.headers(), json=BODY).status_code == 500
    assert client.post(PATH, headers=org.headers(), json=BODY).status_code == 200


def _always_fails(*args, **kwargs):
    raise RuntimeError(f"boom {FAKE_SECRET}")


def test_no_response_carries_the_callers_secret(client, org, make_org):
    secret = org.root.secret
    other = make_org()
    responses = [
        client.post(PATH, headers=org.headers(), json=BODY),
        client.post(PATH, headers=org.headers(), json={"start_date": secret, "end_date": secret}),
        client.post(PATH, headers=org.headers(), json=BODY | {"api_key_id": secret}),
        client.post(PATH, headers=org.headers(), data=secret.encode()),
        client.post(PATH, headers=org.headers() | {"X-Scrubs-Clinic-Provider": "nope"}, json=BODY),
        client.post(PATH, headers=other.headers() | {KEY_HEADER: secret}, json=BODY),
        client.post(PATH, headers=org.headers() | {KEY_HEADER: secret + "x"}, json=BODY),
        client.get(PATH, headers=org.headers()),
    ]
    assert [response.status_code for response in responses] == [
        200, 400, 404, 400, 400, 401, 401, 405
    ]  # fmt: skip
    for response in responses:
        assert secret not in response.get_data(as_text=True)
        assert secret not in str(response.headers)


# --- liveness and readiness -------------------------------------------------------------


def test_healthz_answers_200_status_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]


def test_healthz_touches_no_dependency(app_with):
    application = app_with(database_url="postgresql://127.0.0.1:1/nope", redis_url="")
    response = application.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def assert_dependency(report: dict, ok: bool) -> None:
    assert report["ok"] is ok
    if ok:
        assert isinstance(report["latency_ms"], int | float) and report["latency_ms"] >= 0
    else:
        assert "latency_ms" in report


def test_readyz_answers_200_ok_naming_postgres_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["status"] == "ok"
    assert_dependency(body["postgres"], ok=True)
    assert_dependency(body["redis"], ok=True)


def ready_report(application) -> tuple[int, dict, float]:
    began = time.perf_counter()
    response = application.test_client().get("/readyz")
    return response.status_code, response.get_json(), time.perf_counter() - began


def test_readyz_is_503_unavailable_quickly_when_postgres_is_unreachable(app_with):
    status, body, seconds = ready_report(app_with(database_url="postgresql://127.0.0.1:1/nope"))
    assert status == 503
    assert body["status"] == "unavailable"
    assert_dependency(body["postgres"], ok=False)
    assert_dependency(body["redis"], ok=True)
    assert seconds < 1.0


def test_readyz_is_200_degraded_when_redis_is_unreachable(app_with):
    status, body, seconds = ready_report(app_with(redis_url="redis://127.0.0.1:1/0"))
    assert status == 200
    assert body["status"] == "degraded"
    assert_dependency(body["postgres"], ok=True)
    assert_dependency(body["redis"], ok=False)
    assert seconds < 1.0


def test_readyz_is_ok_and_reports_redis_not_configured_without_redis_url(app_with):
    status, body, _ = ready_report(app_with(redis_url=""))
    assert status == 200
    assert body["status"] == "ok"
    assert_dependency(body["postgres"], ok=True)
    assert body["redis"]["configured"] is False
    assert "ok" in body["redis"] and "latency_ms" in body["redis"]


def test_a_postgres_outage_is_a_500_problem_not_a_hang(app_with, org):
    application = app_with(database_url="postgresql://127.0.0.1:1/nope")
    began = time.perf_counter()
    response = application.test_client().post(PATH, headers=org.headers(), json=BODY)
    assert time.perf_counter() - began < 5
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "internal_error"
    assert body["title"] == "Unexpected server failure."
    assert "127.0.0.1:1" not in response.get_data(as_text=True)
