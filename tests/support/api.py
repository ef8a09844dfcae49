"""Requests to the API through Flask's test client, and what every answer must hold."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.support.events import METRICS
from tests.support.orgs import Key, Org

PATH = "/api/v1/usage-analytics"
KEY_HEADER = "X-Scrubs-Clinic-Api-Key"
PROVIDER_HEADER = "X-Scrubs-Clinic-Provider"
VALID_BODY = {"start_date": "2024-01-01", "end_date": "2024-01-31"}

# code -> (status, exact title) of every problem the service writes itself.
PROBLEMS = {
    "authentication_failed": (401, "API key authentication failed."),
    "invalid_provider": (400, "Provider ID is invalid."),
    "root_key_required": (403, "Root API key is required."),
    "invalid_request": (400, "Request body is invalid."),
    "api_key_outside_organisation": (403, "Target API key is outside the organisation."),
    "api_key_not_found": (404, "Target API key or clinic was not found."),
    "not_found": (404, "Resource not found."),
    "method_not_allowed": (405, "Method not allowed."),
    "internal_error": (500, "Unexpected server failure."),
}


def body_for(start: date, end: date, api_key_id: str | None = None, **options: Any) -> dict:
    body: dict[str, Any] = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    if api_key_id is not None:
        body["api_key_id"] = api_key_id
    return body | options


def api_request(
    client,
    org: Org | None,
    body: dict | bytes = VALID_BODY,
    *,
    key: Key | None = None,
    headers: dict[str, str] | None = None,
):
    """POST the body (a dict as JSON, bytes as they are) with the organisation's headers
    (its root key unless `key` is given; none without an organisation), then `headers`."""
    sent = (org.headers(key) if org is not None else {}) | (headers or {})
    if isinstance(body, bytes):
        return client.post(PATH, headers=sent, data=body)
    return client.post(PATH, headers=sent, json=body)


def figures(
    client, org: Org, start: date, end: date, api_key_id: str | None = None, **options: Any
) -> dict:
    """The 200 answer for the range, its total checked against its deltas."""
    response = api_request(client, org, body_for(start, end, api_key_id, **options))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["total"] == {
        metric: sum(day[metric] for day in body["deltas"].values()) for metric in METRICS
    }
    return body


def deltas(client, org: Org, start: date, end: date, api_key_id: str | None = None) -> dict:
    return figures(client, org, start, end, api_key_id)["deltas"]


def assert_problem(response, code: str, status: int | None = None) -> dict:
    """The problem details of `code` in every part the API fixes: status and exact title
    (from PROBLEMS unless given), type, a detail, the request id of the header, and
    `errors` on invalid_request alone."""
    expected_status, title = PROBLEMS.get(code, (status, None))
    body = response.get_json(silent=True)
    assert response.status_code == (status or expected_status), body
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    assert body["type"] == "about:blank"
    assert body["status"] == response.status_code
    assert body["code"] == code
    if title is not None:
        assert body["title"] == title
    else:
        assert isinstance(body["title"], str) and body["title"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code == "invalid_request":
        assert isinstance(body["errors"], dict) and body["errors"]
        for messages in body["errors"].values():
            assert isinstance(messages, list) and messages
            assert all(isinstance(message, str) and message for message in messages)
    else:
        assert "errors" not in body
    return body
