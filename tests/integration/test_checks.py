"""The API's checks, in their order (README, "The API"): one test per row, then the order
itself when several things are wrong at once (the first failing check answers), and
revocation taking effect."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import pytest

from service.usecases import admin
from tests.support.api import (
    KEY_HEADER,
    PROVIDER_HEADER,
    VALID_BODY,
    api_request,
    assert_problem,
)

BAD_BODY = {"start_date": "2024-02-01", "end_date": "2024-01-01", "unexpected": 1}
NOT_JSON = b"{this is not json"


def revoke(services, key_id: str) -> None:
    admin.revoke_api_key(services.directory, uuid.UUID(key_id))


@pytest.fixture()
def import_usage(cli):
    """import_usage(records): the records imported through `usage import`, as users do."""

    def run(records: list[dict]) -> None:
        lines = "".join(json.dumps(record) + "\n" for record in records)
        result = cli("usage", "import", "-", input=lines)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["inserted"] == len(records)

    return run


def usage_event(api_key_id: str, occurred_at: str, tokens: int, stt: int, usage: int) -> dict:
    return {
        "event_id": f"checks-{uuid.uuid4()}",
        "api_key_id": api_key_id,
        "occurred_at": occurred_at,
        "tokens": tokens,
        "stt_duration": stt,
        "usage": usage,
    }


# --- check 1: either header absent, empty or only whitespace --------------------------------


@pytest.mark.parametrize("header", [KEY_HEADER, PROVIDER_HEADER])
@pytest.mark.parametrize(
    "value",
    [None, "", " ", "   ", "\t", " \t "],
    ids=["absent", "empty", "one-space", "spaces", "tab", "mixed-whitespace"],
)
def test_a_missing_empty_or_blank_header_gets_401_authentication_failed(client, org, header, value):
    headers = org.headers()
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    assert_problem(api_request(client, None, headers=headers), "authentication_failed")


def test_no_credential_headers_at_all_gets_401_authentication_failed(client, org):
    assert_problem(
        api_request(client, None, headers={"Content-Type": "application/json"}),
        "authentication_failed",
    )


# --- check 2: the provider id maps to no organisation --------------------------------------


@pytest.mark.parametrize(
    "provider",
    [
        "prv-no-such-provider",
        "x" * 64,
        "has space",
        "semi;colon",
        "' OR 1=1 --",
        "../../etc/passwd",
        "ünïcode",
        "x" * 65,
        "%00",
    ],
    ids=[
        "unknown",
        "unknown-64-chars",
        "impossible-space",
        "impossible-semicolon",
        "impossible-sql",
        "impossible-path",
        "impossible-non-ascii",
        "impossible-65-chars",
        "impossible-percent",
    ],
)
def test_a_provider_that_maps_to_no_organisation_gets_400_invalid_provider(client, org, provider):
    headers = org.headers() | {PROVIDER_HEADER: provider}
    assert_problem(api_request(client, None, headers=headers), "invalid_provider")


# --- check 3: the key is unknown, revoked, or of another organisation -----------------------


@pytest.mark.parametrize(
    "secret",
    ["scrubs_this-key-was-never-issued", "x", "' OR ''='"],
    ids=["well-formed", "short", "sql"],
)
def test_an_unknown_key_gets_401_authentication_failed(client, org, secret):
    assert_problem(
        api_request(client, None, headers=org.headers() | {KEY_HEADER: secret}),
        "authentication_failed",
    )


@pytest.mark.parametrize("around", ["\u00a0", "\u0085", "\x0b", "\x0c"])
def test_only_space_and_tab_around_a_header_value_are_ignored(client, org, around):
    """HTTP's optional whitespace is space and tab: a key or provider id with anything
    else around it is another value (str.strip would take NBSP and NEL off too)."""
    assert (
        api_request(client, org, headers={KEY_HEADER: f" \t{org.root.secret}\t "}).status_code
        == 200
    )
    for header, value in ((KEY_HEADER, org.root.secret), (PROVIDER_HEADER, org.provider_id)):
        sent = org.headers() | {header: value + around}
        expected = "authentication_failed" if header == KEY_HEADER else "invalid_provider"
        assert_problem(api_request(client, None, headers=sent), expected)


def test_a_revoked_key_gets_401_authentication_failed(client, org, services):
    revoke(services, org.root.id)
    assert_problem(api_request(client, None, headers=org.headers()), "authentication_failed")


@pytest.mark.parametrize("whose", ["root", "clinic"])
def test_a_valid_key_of_another_organisation_gets_401_authentication_failed(
    client, org, make_org, whose
):
    other = make_org()
    secret = other.root.secret if whose == "root" else other.clinic_keys[0].secret
    assert (
        api_request(client, None, headers=other.headers()).status_code == 200
    )  # the key itself is valid
    assert_problem(
        api_request(client, None, headers=org.headers() | {KEY_HEADER: secret}),
        "authentication_failed",
    )


# --- check 4: the key is valid but not a root key -----------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_non_root_key_gets_403_root_key_required(client, org, index):
    assert_problem(
        api_request(client, None, headers=org.headers(org.clinic_keys[index])), "root_key_required"
    )


# --- check 5: the body breaks a rule (test_malformed.py has the full list) -----------------


def test_an_invalid_body_gets_400_invalid_request_naming_the_field(client, org):
    body = assert_problem(
        api_request(
            client,
            None,
            {"start_date": "2024-02-30", "end_date": "2024-03-01"},
            headers=org.headers(),
        ),
        "invalid_request",
    )
    assert list(body["errors"]) == ["start_date"]


# --- check 6: api_key_id names a key of another organisation -------------------------------


@pytest.mark.parametrize("whose", ["clinic", "root"], ids=["clinic-key", "root-key-no-clinic"])
def test_a_target_key_of_another_organisation_gets_403_api_key_outside_organisation(
    client, org, make_org, whose
):
    other = make_org()
    target = other.clinic_keys[0].id if whose == "clinic" else other.root.id
    response = api_request(client, None, VALID_BODY | {"api_key_id": target}, headers=org.headers())
    assert_problem(response, "api_key_outside_organisation")


# --- check 7: api_key_id names no key, or a key with no linked clinic ----------------------


@pytest.mark.parametrize(
    "target",
    [
        lambda org: str(uuid.uuid4()),
        lambda org: "not-a-uuid",
        lambda org: org.root.id,
    ],
    ids=["unknown-uuid", "not-a-uuid-string", "own-root-key-has-no-clinic"],
)
def test_a_target_that_names_no_key_or_no_clinic_gets_404_api_key_not_found(client, org, target):
    response = api_request(
        client, None, VALID_BODY | {"api_key_id": target(org)}, headers=org.headers()
    )
    assert_problem(response, "api_key_not_found")


# --- the order: the first failing check answers ------------------------------------------


@dataclass(frozen=True)
class Wrong:
    """What a request gets wrong, named after the checks."""

    key: str = "root"  # root | clinic | absent | unknown | revoked | revoked_clinic | foreign
    provider: str = "own"  # own | absent | unknown | impossible
    body: str = "valid"  # valid | bad | not_json
    # api_key_id: None (absent) | foreign | foreign_revoked | foreign_root | unknown
    target: str | None = None


ORDER = [
    pytest.param(Wrong(key="absent", body="bad"), "authentication_failed", id="1-no-key+bad-body"),
    pytest.param(
        Wrong(key="absent", provider="unknown", body="not_json"),
        "authentication_failed",
        id="1-no-key+unknown-provider+not-json",
    ),
    pytest.param(
        Wrong(key="unknown", provider="absent", body="bad"),
        "authentication_failed",
        id="1-no-provider+unknown-key+bad-body",
    ),
    pytest.param(
        Wrong(key="unknown", provider="unknown", body="bad"),
        "invalid_provider",
        id="2-unknown-provider+unknown-key",
    ),
    pytest.param(
        Wrong(key="revoked", provider="impossible", body="bad"),
        "invalid_provider",
        id="2-impossible-provider+revoked-key",
    ),
    pytest.param(
        Wrong(key="clinic", provider="unknown"),
        "invalid_provider",
        id="2-unknown-provider+clinic-key",
    ),
    pytest.param(
        Wrong(key="unknown", body="not_json"), "authentication_failed", id="3-unknown-key+not-json"
    ),
    pytest.param(
        Wrong(key="unknown", body="bad"), "authentication_failed", id="3-unknown-key+bad-body"
    ),
    pytest.param(
        Wrong(key="revoked", body="bad"), "authentication_failed", id="3-revoked-key+bad-body"
    ),
    pytest.param(
        Wrong(key="foreign", body="bad"), "authentication_failed", id="3-foreign-key+bad-body"
    ),
    pytest.param(
        Wrong(key="revoked_clinic"), "authentication_failed", id="3-revoked-clinic-key-not-403"
    ),
    pytest.param(Wrong(key="clinic", body="bad"), "root_key_required", id="4-clinic-key+bad-body"),
    pytest.param(
        Wrong(key="clinic", body="not_json"), "root_key_required", id="4-clinic-key+not-json"
    ),
    pytest.param(
        Wrong(key="clinic", target="foreign"),
        "root_key_required",
        id="4-clinic-key+foreign-target",
    ),
    pytest.param(
        Wrong(key="clinic", target="unknown"),
        "root_key_required",
        id="4-clinic-key+unknown-target",
    ),
    pytest.param(
        Wrong(body="bad", target="foreign"), "invalid_request", id="5-bad-body+foreign-target"
    ),
    pytest.param(
        Wrong(body="bad", target="unknown"), "invalid_request", id="5-bad-body+unknown-target"
    ),
    pytest.param(
        Wrong(target="foreign_revoked"),
        "api_key_outside_organisation",
        id="6-foreign-revoked-target",
    ),
    pytest.param(
        Wrong(target="foreign_root"),
        "api_key_outside_organisation",
        id="6-foreign-target-without-clinic-not-404",
    ),
]


@pytest.fixture()
def world(org, make_org, services):
    """This organisation (clinic key 1 revoked, plus a revoked root key) and another one
    (its clinic key 1 revoked)."""
    revoked_root, revoked_secret = admin.create_api_key(
        services.directory, uuid.UUID(org.id), "revoked root", is_root=True
    )
    revoke(services, str(revoked_root.id))
    revoke(services, org.clinic_keys[1].id)
    other = make_org()
    revoke(services, other.clinic_keys[1].id)
    return org, other, revoked_secret


def request_for(wrong: Wrong, world) -> tuple[dict, dict | bytes]:
    org, other, revoked_secret = world
    keys = {
        "root": org.root.secret,
        "clinic": org.clinic_keys[0].secret,
        "unknown": "scrubs_this-key-was-never-issued",
        "revoked": revoked_secret,
        "revoked_clinic": org.clinic_keys[1].secret,
        "foreign": other.root.secret,
    }
    providers = {"own": org.provider_id, "unknown": "prv-no-such-provider", "impossible": "no way!"}
    targets = {
        "foreign": other.clinic_keys[0].id,
        "foreign_revoked": other.clinic_keys[1].id,
        "foreign_root": other.root.id,
        "unknown": str(uuid.uuid4()),
    }
    headers = {"Content-Type": "application/json"}
    if wrong.key != "absent":
        headers[KEY_HEADER] = keys[wrong.key]
    if wrong.provider != "absent":
        headers[PROVIDER_HEADER] = providers[wrong.provider]
    body = {"valid": VALID_BODY, "bad": BAD_BODY, "not_json": NOT_JSON}[wrong.body]
    if wrong.target is not None:
        body = body | {"api_key_id": targets[wrong.target]}
    return headers, body


@pytest.mark.parametrize(("wrong", "code"), ORDER)
def test_when_several_things_are_wrong_the_first_failing_check_answers(client, world, wrong, code):
    headers, body = request_for(wrong, world)
    assert_problem(api_request(client, None, body, headers=headers), code)


def test_the_order_cases_break_only_what_they_claim(client, world):
    """Fixing the first fault makes each piece work: live keys authenticate, and the
    foreign targets are real keys their own organisation can read."""
    org, other, _ = world
    assert api_request(client, None, headers=org.headers()).status_code == 200
    assert (
        api_request(client, None, NOT_JSON, headers=org.headers(org.clinic_keys[0])).status_code
        == 403
    )
    for target in (other.clinic_keys[0].id, other.clinic_keys[1].id):
        response = api_request(
            client, None, VALID_BODY | {"api_key_id": target}, headers=other.headers()
        )
        assert response.status_code == 200, response.get_json()


# --- revocation --------------------------------------------------------------------------


def test_a_revoked_caller_key_stops_authenticating_at_once(client, org, services):
    assert api_request(client, None, headers=org.headers()).status_code == 200
    revoke(services, org.root.id)
    assert_problem(api_request(client, None, headers=org.headers()), "authentication_failed")
    assert_problem(
        api_request(client, None, BAD_BODY, headers=org.headers()), "authentication_failed"
    )


def test_a_revoked_target_key_of_the_organisation_is_still_reported(
    client, org, services, import_usage
):
    target, sibling = org.clinic_keys
    import_usage(
        [
            usage_event(target.id, "2024-01-10T08:00:00Z", 1000, 30, 2),
            usage_event(target.id, "2024-01-10T23:59:59+00:00", 500, 5, 1),
            usage_event(target.id, "2024-01-12T00:30:00+01:00", 70, 7, 3),  # 11 Jan in UTC
            usage_event(sibling.id, "2024-01-10T12:00:00Z", 999_999, 999, 99),
        ]
    )
    before = api_request(
        client, None, VALID_BODY | {"api_key_id": target.id}, headers=org.headers()
    )
    assert before.status_code == 200
    assert before.get_json()["api_key"]["revoked_at"] is None

    revoke(services, target.id)
    response = api_request(
        client, None, VALID_BODY | {"api_key_id": target.id}, headers=org.headers()
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    described = body["api_key"]
    assert described["id"] == target.id
    assert described["name"] == "clinic key 0"
    assert described["clinic_id"] == target.clinic_id
    assert described["clinic_name"] == org.clinics[target.clinic_id]
    assert described["is_root"] is False
    assert target.secret.startswith(described["prefix"])
    assert described["created_at"] == before.get_json()["api_key"]["created_at"]
    assert described["revoked_at"].endswith("Z")
    revoked_at = datetime.fromisoformat(described["revoked_at"])
    assert revoked_at >= datetime.fromisoformat(described["created_at"])
    assert body["deltas"] == {
        "2024-01-10": {"tokens": 1500, "usage": 3, "stt_duration": 35},
        "2024-01-11": {"tokens": 70, "usage": 3, "stt_duration": 7},
    }
    assert body["total"] == {"tokens": 1570, "usage": 6, "stt_duration": 42}


def test_a_revoked_target_key_of_another_organisation_is_still_outside(
    client, org, make_org, services
):
    other = make_org()
    revoke(services, other.clinic_keys[0].id)
    response = api_request(
        client, None, VALID_BODY | {"api_key_id": other.clinic_keys[0].id}, headers=org.headers()
    )
    assert_problem(response, "api_key_outside_organisation")
