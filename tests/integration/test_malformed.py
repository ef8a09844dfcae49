"""Check 5 of the API (README, "The API"): every malformed body or body header, sent by an
authenticated root caller, is 400 invalid_request with an `errors` object (never a 500),
and changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest

PATH = "/api/v1/usage-analytics"
JSON = "application/json"
MAX_BODY_BYTES = 16 * 1024
VALID = {"start_date": "2024-01-01", "end_date": "2024-01-31"}


def encoded(value) -> bytes:
    return json.dumps(value).encode()


def valid_with(**fields) -> bytes:
    return encoded(VALID | fields)


def valid_without(name: str) -> bytes:
    return encoded({field: value for field, value in VALID.items() if field != name})


def padded_to(raw: bytes, size: int) -> bytes:
    """`raw` followed by JSON whitespace up to `size` bytes: still one valid object."""
    return raw + b" " * (size - len(raw))


def object_of_size(size: int) -> bytes:
    """A valid-looking object whose api_key_id string brings the body to `size` bytes."""
    empty = valid_with(api_key_id="")
    return valid_with(api_key_id="k" * (size - len(empty)))


ARABIC_INDIC = "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0665"  # 2024-01-05
FULLWIDTH = "\uff12\uff10\uff12\uff14-\uff10\uff11-\uff10\uff15"  # 2024-01-05

MALFORMED = [
    # the body is not one JSON object
    pytest.param(b"start_date=2024-01-01&end_date=2024-01-31", JSON, id="not-json"),
    pytest.param(b"", JSON, id="empty-body"),
    pytest.param(b'{"start_date": "2024-01-01", "end_date": "2024-01-31"', JSON, id="truncated"),
    pytest.param(
        b'{"start_date": "2024-01-01", "end_date": "2024-01-31"} {}', JSON, id="two-objects"
    ),
    pytest.param(b'["2024-01-01", "2024-01-31"]', JSON, id="json-array"),
    pytest.param(b'"2024-01-01"', JSON, id="json-string"),
    pytest.param(b"20240101", JSON, id="json-number"),
    pytest.param(b"null", JSON, id="json-null"),
    pytest.param(b"true", JSON, id="json-true"),
    # dates missing
    pytest.param(valid_without("start_date"), JSON, id="missing-start-date"),
    pytest.param(valid_without("end_date"), JSON, id="missing-end-date"),
    pytest.param(b"{}", JSON, id="empty-object"),
    # dates not written YYYY-MM-DD
    pytest.param(valid_with(start_date="2024-1-05"), JSON, id="month-not-zero-padded"),
    pytest.param(valid_with(end_date="2024-01-5"), JSON, id="day-not-zero-padded"),
    pytest.param(valid_with(start_date="20240105"), JSON, id="iso-basic-format"),
    pytest.param(valid_with(start_date="2024-W01-1"), JSON, id="iso-week-date"),
    pytest.param(valid_with(start_date="2024-01-05T00:00:00"), JSON, id="datetime"),
    pytest.param(valid_with(start_date="2024-005"), JSON, id="ordinal-date"),
    pytest.param(valid_with(start_date="2024/01/05"), JSON, id="slashes"),
    pytest.param(valid_with(start_date="+2024-01-05"), JSON, id="signed-year"),
    pytest.param(valid_with(start_date=ARABIC_INDIC), JSON, id="arabic-indic-digits"),
    pytest.param(valid_with(start_date=FULLWIDTH), JSON, id="fullwidth-digits"),
    pytest.param(valid_with(start_date=" 2024-01-05"), JSON, id="leading-space"),
    pytest.param(valid_with(end_date="2024-01-31 "), JSON, id="trailing-space"),
    pytest.param(valid_with(end_date="2024-01-31\n"), JSON, id="trailing-newline"),
    # dates that name no real calendar day
    pytest.param(
        valid_with(start_date="2023-02-29", end_date="2023-03-01"), JSON, id="feb-29-2023"
    ),
    pytest.param(valid_with(start_date="2024-13-01", end_date="2024-12-31"), JSON, id="month-13"),
    pytest.param(valid_with(start_date="2024-00-10"), JSON, id="month-00"),
    pytest.param(valid_with(start_date="2024-01-00"), JSON, id="day-00"),
    pytest.param(valid_with(end_date="2024-04-31"), JSON, id="april-31"),
    pytest.param(valid_with(start_date="0000-01-01"), JSON, id="year-0000"),
    # dates of the wrong JSON type
    pytest.param(valid_with(start_date=20240105), JSON, id="date-as-number"),
    pytest.param(valid_with(start_date=True), JSON, id="date-as-bool"),
    pytest.param(valid_with(start_date={"year": 2024}), JSON, id="date-as-object"),
    pytest.param(valid_with(start_date=["2024-01-05"]), JSON, id="date-as-list"),
    pytest.param(valid_with(start_date=None), JSON, id="start-date-null"),
    pytest.param(valid_with(end_date=None), JSON, id="end-date-null"),
    # the range
    pytest.param(
        valid_with(start_date="2024-02-01", end_date="2024-01-31"), JSON, id="start-after-end"
    ),
    # api_key_id
    pytest.param(valid_with(api_key_id=42), JSON, id="api-key-id-number"),
    pytest.param(valid_with(api_key_id=True), JSON, id="api-key-id-bool"),
    pytest.param(valid_with(api_key_id=[str(uuid.uuid4())]), JSON, id="api-key-id-list"),
    pytest.param(valid_with(api_key_id={"id": "x"}), JSON, id="api-key-id-object"),
    pytest.param(valid_with(api_key_id=""), JSON, id="api-key-id-empty"),
    pytest.param(valid_with(api_key_id="k" * 129), JSON, id="api-key-id-129-chars"),
    # fields the contract does not know, or knows twice
    pytest.param(valid_with(organisation_id="x"), JSON, id="unknown-field"),
    pytest.param(
        encoded({"startDate": "2024-01-01", "endDate": "2024-01-31"}), JSON, id="camel-case"
    ),
    pytest.param(
        b'{"start_date": "2024-01-01", "start_date": "2024-01-02", "end_date": "2024-01-31"}',
        JSON,
        id="duplicate-field",
    ),
    # literals that are not JSON
    pytest.param(
        b'{"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": NaN}',
        JSON,
        id="nan-literal",
    ),
    pytest.param(
        b'{"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": Infinity}',
        JSON,
        id="infinity-literal",
    ),
    pytest.param(
        b'{"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": -Infinity}',
        JSON,
        id="minus-infinity-literal",
    ),
    # too large
    pytest.param(
        padded_to(encoded(VALID), MAX_BODY_BYTES + 1), JSON, id="valid-object-padded-16385"
    ),
    pytest.param(object_of_size(MAX_BODY_BYTES + 1), JSON, id="long-field-16385"),
    pytest.param(padded_to(encoded(VALID), 1024 * 1024), JSON, id="one-mebibyte"),
    # bytes that are not UTF-8 JSON
    pytest.param(
        b'{"start_date": "2024-01-01", "end_date": "2024-01-31", "api_key_id": "\xff\xfe"}',
        JSON,
        id="invalid-utf8",
    ),
    pytest.param(
        b'{"start_date": "2024-01-01\xc3", "end_date": "2024-01-31"}', JSON, id="cut-utf8"
    ),
    pytest.param(encoded(VALID).decode().encode("utf-16"), JSON, id="utf16-bytes"),
    # nesting deep enough to break a recursive parser, each within the size limit
    pytest.param(b"[" * 10_000, JSON, id="10000-unclosed-arrays"),
    pytest.param(b"[" * 8_000 + b"]" * 8_000, JSON, id="8000-nested-arrays"),
    pytest.param(b'{"a":' * 2_500 + b"1" + b"}" * 2_500, JSON, id="2500-nested-objects"),
    pytest.param(
        valid_with(x=0).replace(b"0}", b"[" * 7_000 + b"]" * 7_000 + b"}"),
        JSON,
        id="7000-nested-arrays-in-a-field",
    ),
    # the Content-Type header
    pytest.param(encoded(VALID), None, id="content-type-missing"),
    pytest.param(encoded(VALID), "text/plain", id="content-type-text-plain"),
    pytest.param(
        b"start_date=2024-01-01&end_date=2024-01-31",
        "application/x-www-form-urlencoded",
        id="content-type-form-urlencoded",
    ),
    pytest.param(
        b'--x\r\nContent-Disposition: form-data; name="start_date"\r\n\r\n2024-01-01\r\n'
        b'--x\r\nContent-Disposition: form-data; name="end_date"\r\n\r\n2024-01-31\r\n--x--\r\n',
        "multipart/form-data; boundary=x",
        id="content-type-multipart",
    ),
    pytest.param(encoded(VALID), "application/xml", id="content-type-xml"),
    pytest.param(encoded(VALID), "application/jsonx", id="content-type-jsonx"),
    pytest.param(encoded(VALID), "application/json; charset=iso-8859-1", id="charset-latin1"),
    pytest.param(
        encoded(VALID).decode().encode("utf-16"),
        "application/json; charset=utf-16",
        id="charset-utf16",
    ),
    pytest.param(encoded(VALID), "application/json; charset=ascii", id="charset-ascii"),
]


def send(client, org, raw: bytes, content_type: str | None):
    headers = org.headers()
    del headers["Content-Type"]
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post(PATH, headers=headers, data=raw)


def assert_invalid_request(response) -> None:
    body = response.get_json(silent=True)
    assert response.status_code == 400, (response.status_code, body)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    assert body["type"] == "about:blank"
    assert body["title"] == "Request body is invalid."
    assert body["status"] == 400
    assert body["code"] == "invalid_request"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], dict) and body["errors"]
    for messages in body["errors"].values():
        assert isinstance(messages, list) and messages
        assert all(isinstance(message, str) and message for message in messages)


def test_the_malformed_list_holds_at_least_35_distinct_requests():
    requests = {(param.values[0], param.values[1]) for param in MALFORMED}
    assert len(requests) == len(MALFORMED) >= 35


@pytest.mark.parametrize(("raw", "content_type"), MALFORMED)
def test_a_malformed_body_or_body_header_gets_400_invalid_request(client, org, raw, content_type):
    assert_invalid_request(send(client, org, raw, content_type))


def range_of(days: int) -> dict:
    start = date(2024, 1, 1)
    return {"start_date": start.isoformat(), "end_date": (start + timedelta(days - 1)).isoformat()}


def test_a_range_of_exactly_max_range_days_is_accepted(client, org, settings):
    response = send(client, org, encoded(range_of(settings.max_range_days)), JSON)
    assert response.status_code == 200, response.get_json()


def test_a_range_one_day_over_max_range_days_gets_400_invalid_request(client, org, settings):
    response = send(client, org, encoded(range_of(settings.max_range_days + 1)), JSON)
    assert_invalid_request(response)
    assert "end_date" in response.get_json()["errors"]


def test_a_valid_body_of_exactly_16_kib_is_accepted(client, org):
    raw = padded_to(encoded(VALID), MAX_BODY_BYTES)
    assert len(raw) == MAX_BODY_BYTES
    response = send(client, org, raw, JSON)
    assert response.status_code == 200, response.get_json()


def test_a_body_of_exactly_16_kib_is_judged_on_its_fields_not_its_size(client, org):
    raw = object_of_size(MAX_BODY_BYTES)
    assert len(raw) == MAX_BODY_BYTES
    response = send(client, org, raw, JSON)
    assert_invalid_request(response)
    assert list(response.get_json()["errors"]) == ["api_key_id"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8"],
)
def test_a_json_content_type_with_or_without_utf8_charset_is_accepted(client, org, content_type):
    assert send(client, org, encoded(VALID), content_type).status_code == 200


@pytest.fixture()
def imported_usage(org, cli):
    """A few events of the org's clinic keys, imported through `usage import`."""
    first, second = org.clinic_keys
    records = [
        (first.id, "2024-01-03T10:00:00Z", 1200, 40, 2),
        (first.id, "2024-01-03T23:00:00-02:00", 300, 3, 1),  # 4 January in UTC
        (second.id, "2024-01-20T12:00:00+05:30", 77, 0, 5),
    ]
    lines = "".join(
        json.dumps(
            {
                "event_id": f"malformed-{uuid.uuid4()}",
                "api_key_id": key,
                "occurred_at": at,
                "tokens": tokens,
                "stt_duration": stt,
                "usage": usage,
            }
        )
        + "\n"
        for key, at, tokens, stt, usage in records
    )
    result = cli("usage", "import", "-", input=lines)
    assert result.exit_code == 0, result.output
    return {
        "2024-01-03": {"tokens": 1200, "usage": 2, "stt_duration": 40},
        "2024-01-04": {"tokens": 300, "usage": 1, "stt_duration": 3},
        "2024-01-20": {"tokens": 77, "usage": 5, "stt_duration": 0},
    }


def test_malformed_requests_change_nothing(client, org, imported_usage):
    org_wide = encoded(VALID)
    one_key = valid_with(api_key_id=org.clinic_keys[0].id)
    before = [send(client, org, raw, JSON) for raw in (org_wide, one_key)]
    assert [response.status_code for response in before] == [200, 200]
    assert before[0].get_json()["deltas"] == imported_usage

    for param in MALFORMED:
        assert send(client, org, *param.values).status_code == 400, param.id

    after = [send(client, org, raw, JSON) for raw in (org_wide, one_key)]
    assert [response.get_json() for response in after] == [r.get_json() for r in before]
    assert [response.get_data() for response in after] == [r.get_data() for r in before]


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        pytest.param(
            len(encoded(VALID)) + 10, "could not be read", id="body-shorter-than-declared"
        ),
        pytest.param(MAX_BODY_BYTES + 1, "larger than", id="declared-over-the-limit"),
        pytest.param(10**12, "larger than", id="declared-far-over-the-limit"),
    ],
)
def test_a_content_length_the_body_does_not_match_gets_400_invalid_request(
    client, org, declared, reason
):
    headers = org.headers()
    response = client.post(
        PATH,
        headers=headers,
        data=encoded(VALID),
        environ_overrides={"CONTENT_LENGTH": str(declared)},
    )
    assert_invalid_request(response)
    assert reason in response.get_json()["detail"]


@pytest.mark.parametrize("digits", ["9" * 5000, "-" + "9" * 5000, "1" + "0" * 400])
def test_an_integer_of_any_size_is_judged_as_a_value_not_as_json(client, org, digits):
    raw = b'{"start_date": %s, "end_date": "2024-01-31"}' % digits.encode()
    response = send(client, org, raw, JSON)
    assert_invalid_request(response)
    body = response.get_json()
    assert "not valid JSON" not in body["detail"], body
    assert "start_date" in body["errors"], body
