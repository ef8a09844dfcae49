"""The listing commands and `usage report` (README, "Command line"): exact output, oldest
first, no secrets, the API's own answer in JSON and CSV, a table for a terminal, and the
same rules and exit statuses as the other commands."""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import date, timedelta

import pytest

from service.usecases import admin
from tests.support.api import api_request
from tests.support.events import make_events, write_jsonl


def ok(result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line(result, status: int) -> str:
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1]


def test_org_list_holds_every_organisation_oldest_first(cli, make_org):
    first, second = make_org(name="First"), make_org(name="Second")
    listed = ok(cli("org", "list"))
    ours = [entry for entry in listed if entry["id"] in (first.id, second.id)]
    assert [entry["id"] for entry in ours] == [first.id, second.id]
    assert ours[0]["name"] == "First" and set(ours[0]) == {"id", "name", "created_at"}
    assert [entry["created_at"] for entry in listed] == sorted(e["created_at"] for e in listed)


def test_provider_list_of_every_organisation_or_one(cli, make_org, services):
    org = make_org()
    extra = admin.create_provider(services.directory, uuid.UUID(org.id), f"p-{uuid.uuid4().hex}")
    mine = ok(cli("provider", "list", "--org", org.id))
    assert [entry["id"] for entry in mine] == [org.provider_id, extra["id"]]
    assert mine[0]["organisation_id"] == org.id and set(mine[0]) == {
        "id",
        "organisation_id",
        "name",
        "created_at",
    }
    every = ok(cli("provider", "list"))
    assert {org.provider_id, extra["id"]} <= {entry["id"] for entry in every}


def test_clinic_list_of_an_organisation(cli, make_org):
    org = make_org(clinic_keys=3)
    listed = ok(cli("clinic", "list", "--org", org.id))
    assert [(entry["id"], entry["name"]) for entry in listed] == list(org.clinics.items())
    assert all(entry["organisation_id"] == org.id for entry in listed)


def test_key_list_shows_no_secret_and_the_revoked_ones(cli, make_org, services):
    org = make_org(clinic_keys=2)
    admin.revoke_api_key(services.directory, uuid.UUID(org.clinic_keys[1].id))
    listed = ok(cli("key", "list", "--org", org.id))
    assert [entry["id"] for entry in listed] == [org.root.id, *(k.id for k in org.clinic_keys)]
    text = json.dumps(listed)
    assert "secret" not in text
    assert all(key.secret not in text for key in [org.root, *org.clinic_keys])
    assert listed[0]["is_root"] is True and listed[0]["clinic_id"] is None
    assert listed[2]["revoked_at"] is not None and listed[1]["revoked_at"] is None


@pytest.mark.parametrize("group", ["clinic", "key"])
def test_listing_an_unknown_organisation_is_one_line_and_exit_1(cli, group):
    assert "no organisation has id" in one_line(cli(group, "list", "--org", str(uuid.uuid4())), 1)


@pytest.mark.parametrize("group", ["clinic", "key"])
def test_listing_without_an_organisation_is_bad_usage(cli, group):
    assert cli(group, "list").exit_code == 2


# --- usage report ---------------------------------------------------------------------

DAYS = [date(2024, 3, 1) + timedelta(days=n) for n in range(20)]


@pytest.fixture()
def reported(make_org, cli, tmp_path):
    org = make_org(clinic_keys=3)
    events = make_events(random.Random(21), [k.id for k in org.clinic_keys], DAYS, 300)
    assert cli("usage", "import", str(write_jsonl(tmp_path / "e.jsonl", events))).exit_code == 0
    return org


RANGE = ["--start", "2024-03-01", "--end", "2024-03-20"]
BODY = {"start_date": "2024-03-01", "end_date": "2024-03-20"}


@pytest.mark.parametrize(
    ("options", "body"),
    [
        ([], {}),
        (["--time-zone", "Asia/Kolkata"], {"time_zone": "Asia/Kolkata"}),
        (["--granularity", "week"], {"granularity": "week"}),
        (
            ["--group-by", "clinic", "--time-zone", "America/New_York"],
            {"group_by": "clinic", "time_zone": "America/New_York", "limit": 1000},
        ),
    ],
)
def test_a_json_report_is_the_apis_answer(client, cli, reported, options, body):
    printed = cli("usage", "report", "--org", reported.id, *RANGE, *options)
    answered = api_request(client, reported, BODY | body)
    assert answered.status_code == 200 and json.loads(answered.data)["deltas"]
    assert printed.exit_code == 0 and printed.stdout_bytes == answered.data + b"\n"


def test_a_report_of_one_key_is_the_apis_answer(client, cli, reported):
    key = reported.clinic_keys[1].id
    printed = cli("usage", "report", "--org", reported.id, *RANGE, "--key", key)
    answered = api_request(client, reported, BODY | {"api_key_id": key})
    assert answered.status_code == 200 and json.loads(answered.data)["deltas"]
    assert printed.exit_code == 0 and printed.stdout_bytes == answered.data + b"\n"


def test_a_csv_report_is_the_apis_csv(client, cli, reported):
    options = ["--group-by", "api_key", "--granularity", "month"]
    printed = cli("usage", "report", "--org", reported.id, *RANGE, *options, "--format", "csv")
    assert printed.exit_code == 0, printed.output
    answered = api_request(
        client,
        reported,
        BODY | {"group_by": "api_key", "granularity": "month"},
        headers={"Accept": "text/csv"},
    )
    # Byte for byte: click's `Result.stdout` would turn the CSV's CRLF line ends into LF.
    assert printed.stdout_bytes == answered.get_data()


def test_a_table_report_lines_up_and_ends_with_the_total(client, cli, reported):
    printed = cli("usage", "report", "--org", reported.id, *RANGE, "--format", "table")
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert lines[0].split() == ["bucket", "tokens", "usage", "stt_duration"]
    answered = api_request(client, reported, BODY).get_json()
    assert [line.split()[0] for line in lines[1:-1]] == list(answered["deltas"])
    assert lines[-1].split() == [
        "total",
        *(str(answered["total"][m]) for m in ("tokens", "usage", "stt_duration")),
    ]
    ends = {len(line) for line in lines}
    assert len(ends) == 1, "the figures' column ends line up"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--time-zone", "IST"], "--time-zone"),
        (["--end", "2024-02-01"], "--end"),
        (["--start", "2024-3-1"], "--start"),
        (["--granularity", "hour", "--end", "2024-05-01"], "--granularity"),
        # Rules checked once the zone's dates are worked out: bad usage all the same.
        (
            ["--time-zone", "Asia/Kolkata", "--start", "1900-01-01", "--end", "1900-01-02"],
            "--start",
        ),
        (["--time-zone", "UTC", "--end", "9999-12-31", "--start", "9999-12-31"], "--end"),
        (["--key", "k" * 129], "--key"),
    ],
)
def test_a_report_that_breaks_a_rule_is_bad_usage_in_one_line(cli, reported, options, named):
    """Named by its option, as the command is used, never by the API's field."""
    given = ["--start", "2024-03-01", "--end", "2024-03-20", *options]
    ran = cli("usage", "report", "--org", reported.id, *given)
    assert ran.exit_code == 2, ran.output
    assert named in ran.stderr
    api_field = r"(?<!-)\b(start_date|end_date|api_key_id|time_zone|granularity|group_by)\b"
    assert re.search(api_field, ran.stderr) is None, ran.stderr


def test_a_report_of_a_key_of_another_organisation_or_none_is_one_line_and_exit_1(
    cli, reported, make_org
):
    foreign = make_org().clinic_keys[0].id
    line = one_line(cli("usage", "report", "--org", reported.id, *RANGE, "--key", foreign), 1)
    assert "different organisation" in line
    line = one_line(cli("usage", "report", "--org", str(uuid.uuid4()), *RANGE), 1)
    assert "no organisation has id" in line


# --- messages, each specific to its fault ------------------------------------------------


def test_a_blank_name_is_called_blank(cli):
    ran = cli("org", "create", "--name", "   ")
    assert ran.exit_code == 2 and "must not be blank" in ran.stderr
    ran = cli("org", "create", "--name", "n" * 201)
    assert ran.exit_code == 2 and "201 characters long; at most 200" in ran.stderr


def test_key_create_reminds_that_the_secret_is_shown_once(cli, org):
    ran = cli("key", "create", "--org", org.id, "--name", "reminded")
    assert ran.exit_code == 0 and "shown this once" in ran.stderr


def test_a_csv_file_imported_as_jsonl_gets_a_hint_and_no_false_comfort(cli, org):
    text = "event_id,api_key_id,occurred_at,tokens,stt_duration\n"
    text += f"e-{uuid.uuid4()},{org.clinic_keys[0].id},2024-01-01T00:00:00Z,1,1\n"
    ran = cli("usage", "import", "-", input=text)
    assert ran.exit_code == 1
    assert "line 1: not valid JSON: this looks like a CSV header; import CSV with --format csv" in (
        ran.stderr
    )
    assert "no line was imported" in ran.stderr and "the others" not in ran.stderr


def test_an_import_the_cache_did_not_hear_of_says_so(settings, org):
    from dataclasses import replace

    from tests.support.commands import run_command

    line = json.dumps(
        {
            "event_id": f"e-{uuid.uuid4()}",
            "api_key_id": org.clinic_keys[0].id,
            "occurred_at": "2024-01-01T00:00:00Z",
            "tokens": 1,
            "stt_duration": 1,
        }
    )
    ran = run_command(replace(settings, redis_url=""), "usage", "import", "-", input=line)
    assert ran.exit_code == 0
    assert "The cache has not been told of these events yet" in ran.stderr


def test_an_invalid_body_says_what_is_wrong_and_only_that(client, org):
    problem = api_request(client, org, {"start_date": "2024-01-01", "end_date": "2024-13-01"})
    detail = problem.get_json()["detail"]
    assert detail.startswith("end_date:") and "start_date and end_date are required" not in detail
