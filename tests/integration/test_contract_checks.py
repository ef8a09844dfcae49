"""CONTRACT §1 "Checks, in this order": every row, the order when several things are wrong,
and malformed bodies and headers, each with its documented problem and nothing else."""

from __future__ import annotations

import uuid

import pytest

from service import admin

PATH = "/api/v1/usage-analytics"
BODY = {"start_date": "2024-01-01", "end_date": "2024-01-31"}
KEY_HEADER = "X-Scrubs-Clinic-Api-Key"
PROVIDER_HEADER = "X-Scrubs-Clinic-Provider"

TITLES = {
    "authentication_failed": (401, "API key authentication failed."),
    "invalid_provider": (400, "Provider ID is invalid."),
    "root_key_required": (403, "Root API key is required."),
    "invalid_request": (400, "Request body is invalid."),
    "api_key_outside_organisation": (403, "Target API key is outside the organisation."),
    "api_key_not_found": (404, "Target API key or clinic was not found."),
}


def assert_problem(response, code: str) -> dict:
    status, title = TITLES[code]
    body = response.get_json()
    assert response.status_code == status, body
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    assert body["type"] == "about:blank"
    assert body["title"] == title
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    if code == "invalid_request":
        assert isinstance(body["errors"], dict) and body["errors"]
        assert all(isinstance(m, list) and m for m in body["errors"].values())
    else:
        assert "errors" not in body
    return body


def post(client, headers: dict, body=BODY, **kwargs):
    if "data" in kwargs:
        return client.post(PATH, headers=headers, **kwargs)
    return client.post(PATH, headers=headers, json=body)


def revoke(services, key_id: str) -> None:
    admin.revoke_api_key(services.db, uuid.UUID(key_id))


# --- check 1: headers absent, empty or blank -------------------------------------------


@pytest.mark.parametrize("header", [KEY_HEADER, PROVIDER_HEADER])
@pytest.mark.parametrize("value", [None, "", "   ", "\t"], ids=["absent", "empty", "spaces", "tab"])
def test_a_missing_or_blank_header_gets_401_authentication_failed(client, org, header, value):
    headers = org.headers()
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    assert_problem(post(client, headers), "authentication_failed")


# --- check 2: provider ---------------------------------------------------------------


@pytest.mark.parametrize(
    "provider", ["no-such-provider", "bad provider id!", "x" * 65, "ünïcode", "' OR 1=1 --"]
)
def test_a_provider_that_maps_to_no_organisation_gets_400_invalid_provider(client, org, provider):
    headers = org.headers() | {PROVIDER_HEADER: provider}
    assert_problem(post(client, headers), "invalid_provider")


# --- check 3: the key ----------------------------------------------------------------


def test_an_unknown_key_gets_401(client, org):
    headers = org.headers() | {KEY_HEADER: "scrubs_not-a-real-key"}
    assert_problem(post(client, headers), "authentication_failed")


def test_a_revoked_key_gets_401_at_once(client, org, services):
    assert post(client, org.headers()).status_code == 200
    revoke(services, org.root.id)
    assert_problem(post(client, org.headers()), "authentication_failed")


def test_a_key_of_another_organisation_gets_401(client, org, make_org):
    other = make_org()
    headers = org.headers() | {KEY_HEADER: other.root.secret}
    assert_problem(post(client, headers), "authentication_failed")


# --- check 4: root -------------------------------------------------------------------


def test_a_clinic_key_gets_403_root_key_required(client, org):
    assert_problem(post(client, org.headers(org.clinic_keys[0])), "root_key_required")


# --- checks 6 and 7: the target key ----------------------------------------------------


def test_a_target_key_of_another_organisation_gets_403(client, org, make_org):
    other = make_org()
    response = post(client, org.headers(), BODY | {"api_key_id": other.clinic_keys[0].id})
    assert_problem(response, "api_key_outside_organisation")


@pytest.mark.parametrize(
    "target",
    [str(uuid.uuid4()), "not-a-uuid", " ", "0" * 128, "{" + str(uuid.uuid4()) + "}"],
    ids=["unknown-uuid", "not-uuid", "blank", "128-chars", "braced"],
)
def test_a_target_that_names_no_key_gets_404(client, org, target):
    assert_problem(post(client, org.headers(), BODY | {"api_key_id": target}), "api_key_not_found")


def test_a_target_key_without_a_clinic_gets_404(client, org):
    response = post(client, org.headers(), BODY | {"api_key_id": org.root.id})
    assert_problem(response, "api_key_not_found")


def test_a_revoked_target_key_is_still_reported(client, org, services):
    target = org.clinic_keys[0]
    revoke(services, target.id)
    response = post(client, org.headers(), BODY | {"api_key_id": target.id})
    assert response.status_code == 200
    described = response.get_json()["api_key"]
    assert described["id"] == target.id
    assert described["revoked_at"] is not None and described["revoked_at"].endswith("Z")


def test_a_revoked_target_key_of_another_organisation_is_still_outside(
    client, org, make_org, services
):
    other = make_org()
    revoke(services, other.clinic_keys[0].id)
    response = post(client, org.headers(), BODY | {"api_key_id": other.clinic_keys[0].id})
    assert_problem(response, "api_key_outside_organisation")


# --- the order of checks ------------------------------------------------------------


BAD_BODY = {"start_date": "2024-02-01", "end_date": "2024-01-01", "extra": 1}


def test_missing_key_header_comes_before_a_bad_provider_and_body(client, org):
    headers = {PROVIDER_HEADER: "no-such-provider", "Content-Type": "application/json"}
    assert_problem(post(client, headers, BAD_BODY), "authentication_failed")


def test_missing_provider_header_comes_before_a_bad_key(client, org):
    headers = {KEY_HEADER: "wrong", "Content-Type": "application/json"}
    assert_problem(post(client, headers, BAD_BODY), "authentication_failed")


def test_an_unknown_provider_comes_before_a_bad_key(client, org):
    headers = org.headers() | {PROVIDER_HEADER: "no-such-provider", KEY_HEADER: "wrong"}
    assert_problem(post(client, headers, BAD_BODY), "invalid_provider")


def test_a_bad_key_comes_before_a_bad_body(client, org):
    headers = org.headers() | {KEY_HEADER: "wrong"}
    assert_problem(post(client, headers, data=b"not json"), "authentication_failed")


def test_a_non_root_key_comes_before_a_bad_body(client, org):
    response = post(client, org.headers(org.clinic_keys[0]), data=b"{")
    assert_problem(response, "root_key_required")


def test_a_non_root_key_comes_before_a_foreign_target(client, org, make_org):
    other = make_org()
    response = post(client, org.headers(org.clinic_keys[0]), BODY | {"api_key_id": other.root.id})
    assert_problem(response, "root_key_required")


def test_a_bad_body_comes_before_a_foreign_target(client, org, make_org):
    other = make_org()
    body = {
        "start_date": "2024-02-01",
        "end_date": "2024-01-01",
        "api_key_id": other.clinic_keys[0].id,
    }
    assert_problem(post(client, org.headers(), body), "invalid_request")


def test_a_bad_body_comes_before_an_unknown_target(client, org):
    body = {"start_date": "2024-13-01", "end_date": "2024-01-01", "api_key_id": "nope"}
    assert_problem(post(client, org.headers(), body), "invalid_request")


def test_a_wrong_content_type_with_no_credentials_is_401(client):
    response = client.post(PATH, data="start_date=2024-01-01", content_type="text/plain")
    assert_problem(response, "authentication_failed")


# --- check 5: malformed bodies and headers -------------------------------------------------

LONG_ID = "k" * 129
MALFORMED = {
    # the body is not one JSON object
    "not-json": b"start_date=2024-01-01",
    "empty": b"",
    "truncated": b'{"start_date": "2024-01-01"',
    "array": b'["2024-01-01", "2024-01-31"]',
    "string": b'"2024-01-01"',
    "number": b"42",
    "null": b"null",
    "nan": b'{"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": NaN}',
    "infinity": b'{"start_date": "2024-01-01", "end_date": "2024-01-31", "x": Infinity}',
    "duplicate-field": b'{"start_date": "2024-01-01", "start_date": "2024-01-02", '
    b'"end_date": "2024-01-31"}',
    "invalid-utf8": b'{"start_date": "2024-01-01", "end_date": "2024-01-31", '
    b'"api_key_id": "\xff\xfe"}',
    "utf16": '{"start_date": "2024-01-01", "end_date": "2024-01-31"}'.encode("utf-16"),
    "deep-nesting": b"[" * 10_000 + b"]" * 10_000,
    "too-large": b'{"start_date": "2024-01-01", "end_date": "2024-01-31"}' + b" " * 16_400,
    "too-large-field": b'{"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": "'
    + b"a" * 16_400
    + b'"}',
    # fields
    "missing-start": {"end_date": "2024-01-31"},
    "missing-end": {"start_date": "2024-01-01"},
    "missing-both": {},
    "not-zero-padded": {"start_date": "2024-1-05", "end_date": "2024-01-31"},
    "basic-format": {"start_date": "20240105", "end_date": "2024-01-31"},
    "week-date": {"start_date": "2024-W01-1", "end_date": "2024-01-31"},
    "datetime": {"start_date": "2024-01-05T00:00:00", "end_date": "2024-01-31"},
    "feb-29-not-leap": {"start_date": "2023-02-29", "end_date": "2023-03-01"},
    "month-13": {"start_date": "2024-13-01", "end_date": "2024-12-31"},
    "month-00": {"start_date": "2024-00-10", "end_date": "2024-01-31"},
    "day-32": {"start_date": "2024-01-01", "end_date": "2024-01-32"},
    "year-0000": {"start_date": "0000-01-01", "end_date": "2024-01-31"},
    "arabic-indic-digits": {
        "start_date": "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661",
        "end_date": "2024-01-31",
    },
    "leading-space": {"start_date": " 2024-01-01", "end_date": "2024-01-31"},
    "trailing-newline": {"start_date": "2024-01-01", "end_date": "2024-01-31\n"},
    "slashes": {"start_date": "2024/01/01", "end_date": "2024/01/31"},
    "date-as-number": {"start_date": 20240101, "end_date": "2024-01-31"},
    "date-as-bool": {"start_date": True, "end_date": "2024-01-31"},
    "date-as-null": {"start_date": None, "end_date": "2024-01-31"},
    "date-as-object": {"start_date": {"y": 2024}, "end_date": "2024-01-31"},
    "date-as-list": {"start_date": ["2024-01-01"], "end_date": "2024-01-31"},
    "start-after-end": {"start_date": "2024-02-01", "end_date": "2024-01-31"},
    "range-367-days": {"start_date": "2024-01-01", "end_date": "2025-01-01"},
    "key-as-number": {"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": 7},
    "key-as-bool": {"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": False},
    "key-as-list": {"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": ["x"]},
    "key-as-object": {"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": {}},
    "key-empty": {"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": ""},
    "key-129-chars": {"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": LONG_ID},
    "unknown-field": {"start_date": "2024-01-01", "end_date": "2024-01-31", "organisation": "x"},
    "camel-case": {"startDate": "2024-01-01", "endDate": "2024-01-31"},
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_body_gets_400_invalid_request(client, org, name):
    body = MALFORMED[name]
    if isinstance(body, bytes):
        response = post(client, org.headers(), data=body)
    else:
        response = post(client, org.headers(), body)
    assert_problem(response, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "application/jsonx",
    ],
)
def test_a_wrong_content_type_gets_400_invalid_request(client, org, content_type):
    headers = org.headers()
    del headers["Content-Type"]
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = post(client, headers, data=b'{"start_date": "2024-01-01", "end_date": "2024-01-31"}')
    assert_problem(response, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"],
)
def test_json_content_types_are_accepted(client, org, content_type):
    headers = org.headers() | {"Content-Type": content_type}
    assert (
        post(
            client, headers, data=b'{"start_date": "2024-01-01", "end_date": "2024-01-31"}'
        ).status_code
        == 200
    )


def test_the_errors_name_the_field_and_the_detail_says_what_was_wrong(client, org):
    response = post(client, org.headers(), {"start_date": "2024-02-30", "end_date": "2024-03-01"})
    body = assert_problem(response, "invalid_request")
    assert list(body["errors"]) == ["start_date"]
    assert "start_date" in body["detail"]


def test_a_body_of_exactly_16_kib_is_accepted(client, org):
    raw = b'{"start_date": "2024-01-01", "end_date": "2024-01-31"}'
    raw += b" " * (16 * 1024 - len(raw))
    assert len(raw) == 16 * 1024
    assert post(client, org.headers(), data=raw).status_code == 200


def test_a_range_of_exactly_max_range_days_is_accepted(client, org, settings):
    from datetime import date, timedelta

    start = date(2024, 1, 1)
    end = start + timedelta(days=settings.max_range_days - 1)
    body = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    assert post(client, org.headers(), body).status_code == 200
    body["end_date"] = (end + timedelta(days=1)).isoformat()
    assert_problem(post(client, org.headers(), body), "invalid_request")


def test_null_api_key_id_means_every_key(client, org):
    response = post(client, org.headers(), BODY | {"api_key_id": None})
    assert response.status_code == 200
    assert response.get_json()["api_key"] is None


def test_rejected_requests_change_nothing(client, org, cli, tmp_path):
    import json

    record = {
        "event_id": f"unchanged-{uuid.uuid4()}",
        "api_key_id": org.clinic_keys[0].id,
        "occurred_at": "2024-01-10T10:00:00Z",
        "tokens": 10,
        "stt_duration": 2,
    }
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert cli("usage", "import", str(path)).exit_code == 0
    before = post(client, org.headers()).get_json()
    for name, body in MALFORMED.items():
        if isinstance(body, bytes):
            assert post(client, org.headers(), data=body).status_code == 400, name
        else:
            assert post(client, org.headers(), body).status_code == 400, name
    after = post(client, org.headers()).get_json()
    assert before == after
    assert after["deltas"] == {"2024-01-10": {"tokens": 10, "usage": 1, "stt_duration": 2}}
