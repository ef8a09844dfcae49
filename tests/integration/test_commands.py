"""Every command (README, "Command line") through the installed `scrubs-analytics` script:
its JSON on stdout, one line on stderr when it fails, and its exit status (0, 1 handled,
2 usage)."""

from __future__ import annotations

import json
import re
import shlex
import uuid
from datetime import date

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.support.api import api_request, body_for

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def ok(ran) -> dict:
    assert ran.returncode == 0, ran.stderr.decode()
    return json.loads(ran.stdout)


def failed(ran, status: int = 1) -> str:
    """The one-line reason of a handled failure (or the usage message of a bad call)."""
    stdout, stderr = ran.stdout.decode(), ran.stderr.decode()
    assert ran.returncode == status, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    if status == 1:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr
        return lines[0]
    return stderr


def test_db_upgrade_creates_a_missing_database_and_is_idempotent(console, settings):
    name = f"scrubs_cli_{uuid.uuid4().hex[:10]}"
    url = make_conninfo(settings.database_url, dbname=name)
    try:
        first = ok(console("db", "upgrade", extra_env={"DATABASE_URL": url}))
        assert first["database_created"] is True
        assert first["applied"] == sorted(first["applied"]) and first["applied"]
        second = ok(console("db", "upgrade", extra_env={"DATABASE_URL": url}))
        assert second == {"database_created": False, "applied": [], "current": first["current"]}
    finally:
        server = make_conninfo(settings.database_url, dbname="postgres")
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_org_create_prints_its_id(console):
    created = ok(console("org", "create", "--name", "Acme Health"))
    assert UUID_RE.fullmatch(created["id"]) and created["name"] == "Acme Health"


def test_provider_create_with_and_without_an_id(console):
    org = ok(console("org", "create", "--name", "P"))["id"]
    given = f"acme-ehr.{uuid.uuid4().hex[:8]}"
    made = ok(console("provider", "create", "--org", org, "--id", given, "--name", "Acme EHR"))
    assert made["id"] == given and made["organisation_id"] == org
    generated = ok(console("provider", "create", "--org", org))
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", generated["id"])
    assert "taken" in failed(console("provider", "create", "--org", org, "--id", given))


@pytest.mark.parametrize("bad_id", ["bad id!", "x" * 65, "", "slash/y"])
def test_provider_create_refuses_an_impossible_id(console, bad_id):
    org = ok(console("org", "create", "--name", "P"))["id"]
    usage = failed(console("provider", "create", "--org", org, "--id", bad_id), status=2)
    assert "--id" in usage and "A-Z a-z 0-9" in usage


def test_clinic_create(console):
    org = ok(console("org", "create", "--name", "C"))["id"]
    clinic = ok(console("clinic", "create", "--org", org, "--name", "Northside"))
    assert UUID_RE.fullmatch(clinic["id"]) and clinic["name"] == "Northside"


def test_key_create_shows_the_secret_once_and_stores_only_its_hash(console, services):
    org = ok(console("org", "create", "--name", "K"))["id"]
    clinic = ok(console("clinic", "create", "--org", org, "--name", "North"))["id"]
    key = ok(console("key", "create", "--org", org, "--name", "North key", "--clinic", clinic))
    root = ok(console("key", "create", "--org", org, "--name", "Finance", "--root"))
    assert key["is_root"] is False and root["is_root"] is True
    assert key["clinic_id"] == clinic and root["clinic_id"] is None
    for made in (key, root):
        assert UUID_RE.fullmatch(made["id"])
        assert made["secret"].startswith(made["prefix"]) and len(made["secret"]) >= 40
        with services.database.connection() as conn:
            row = conn.execute("SELECT * FROM api_keys WHERE id = %s", (made["id"],)).fetchone()
        assert made["secret"] not in repr(row)
        assert made["secret"].encode() not in b"".join(v for v in row if isinstance(v, bytes))


def test_a_new_root_key_works_with_a_new_provider(console, client):
    org = ok(console("org", "create", "--name", "Works"))["id"]
    provider = ok(console("provider", "create", "--org", org))["id"]
    root = ok(console("key", "create", "--org", org, "--name", "Finance", "--root"))
    response = client.post(
        "/api/v1/usage-analytics",
        headers={
            "X-Scrubs-Clinic-Api-Key": root["secret"],
            "X-Scrubs-Clinic-Provider": provider,
        },
        json={"start_date": "2024-01-01", "end_date": "2024-01-02"},
    )
    assert response.status_code == 200


def test_key_create_refuses_a_clinic_of_another_organisation(console):
    org = ok(console("org", "create", "--name", "A"))["id"]
    other = ok(console("org", "create", "--name", "B"))["id"]
    clinic = ok(console("clinic", "create", "--org", other, "--name", "Theirs"))["id"]
    reason = failed(console("key", "create", "--org", org, "--name", "k", "--clinic", clinic))
    assert clinic in reason


def test_key_revoke_stops_the_key_at_once(console, client, org):
    day = date(2024, 1, 1)
    assert api_request(client, org, body_for(day, day)).status_code == 200
    revoked = ok(console("key", "revoke", org.root.id))
    assert revoked["id"] == org.root.id and revoked["revoked_at"].endswith("Z")
    again = ok(console("key", "revoke", org.root.id))
    assert again["revoked_at"] == revoked["revoked_at"]
    assert api_request(client, org, body_for(day, day)).status_code == 401


@pytest.mark.parametrize(
    "args",
    [
        ["clinic", "create", "--org", "{unknown}", "--name", "C"],
        ["provider", "create", "--org", "{unknown}"],
        ["key", "create", "--org", "{unknown}", "--name", "k"],
        ["key", "revoke", "{unknown}"],
    ],
)
def test_handled_failures_are_one_line_and_exit_1(console, args):
    org = ok(console("org", "create", "--name", "F"))["id"]
    filled = [a.format(org=org, unknown=uuid.uuid4(), uuid=uuid.uuid4().hex[:6]) for a in args]
    failed(console(*filled))


@pytest.mark.parametrize(
    "args",
    [
        ["org", "create"],
        ["org", "create", "--name"],
        ["org", "create", "--name", ""],
        ["org", "create", "--name", "n" * 201],
        ["provider", "create", "--org", "{org}", "--id", "x-{uuid}", "--name", " "],
        ["clinic", "create", "--org", "{org}", "--name", "\t"],
        ["key", "create", "--org", "{org}", "--name", ""],
        ["clinic", "create", "--org", "not-a-uuid", "--name", "C"],
        ["key", "create", "--name", "k"],
        ["key", "revoke"],
        ["key", "revoke", "not-a-uuid"],
        ["usage", "import"],
        ["usage", "import", "-", "--format", "xml"],
        ["usage", "import", "-", "--batch-size", "0"],
        ["nonsense"],
        ["org", "delete"],
    ],
)
def test_bad_usage_exits_2(console, args):
    org = ok(console("org", "create", "--name", "U"))["id"]
    filled = [a.format(org=org, uuid=uuid.uuid4().hex[:6]) for a in args]
    failed(console(*filled), status=2)


@pytest.mark.parametrize(
    "group", ["", "db", "org", "provider", "clinic", "key", "usage", "cache", "demo"]
)
def test_help_of_every_group(console, group):
    ran = console(*([group] if group else []), "--help")
    assert ran.returncode == 0
    assert b"Usage:" in ran.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["org", "create", "--name", "x"],
        ["usage", "import", "-"],
        ["db", "upgrade"],
        ["demo", "seed"],
    ],
)
def test_an_unreachable_postgres_is_one_line_and_exit_1(console, args):
    ran = console(*args, input=b"", extra_env={"DATABASE_URL": "postgresql://127.0.0.1:1/nowhere"})
    assert "Postgres" in failed(ran)


def test_a_bad_setting_is_one_line_and_exit_1(console):
    ran = console("org", "create", "--name", "x", extra_env={"MAX_RANGE_DAYS": "abc"})
    assert "MAX_RANGE_DAYS" in failed(ran)


def test_usage_import_exit_statuses(console, org, tmp_path):
    good = {
        "event_id": uuid.uuid4().hex,
        "api_key_id": org.clinic_keys[0].id,
        "occurred_at": "2024-01-01T00:00:00Z",
        "tokens": 1,
        "stt_duration": 1,
    }
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(good) + "\n")
    assert ok(console("usage", "import", str(path)))["inserted"] == 1
    path.write_text(json.dumps(good) + "\nnot json\n")
    ran = console("usage", "import", str(path))
    assert ran.returncode == 1
    assert json.loads(ran.stdout) == {"read": 2, "inserted": 0, "duplicates": 1, "rejected": 1}


def test_demo_seed_is_idempotent_and_never_breaks_a_curl_line_it_printed(console, client, services):
    def counts() -> tuple:
        with services.database.connection() as conn:
            return conn.execute(
                "SELECT (SELECT count(*) FROM usage_events), (SELECT count(*) FROM api_keys),"
                " (SELECT count(*) FROM organisations)"
            ).fetchone()

    first = ok(console("demo", "seed"))
    events, keys, organisations = counts()
    second = ok(console("demo", "seed"))
    assert counts() == (events, keys + 1, organisations), "a root key of the run's own"
    assert second["events"]["inserted"] == 0
    assert second["organisation_id"] == first["organisation_id"]
    assert second["provider_id"] == "demo-provider"
    assert second["root_key_secret"] in second["curl"] and "demo-provider" in second["curl"]

    def ask(secret: str):
        return client.post(
            "/api/v1/usage-analytics",
            headers={
                "X-Scrubs-Clinic-Api-Key": secret,
                "X-Scrubs-Clinic-Provider": "demo-provider",
            },
            json={"start_date": second["usage_days"][:10], "end_date": second["usage_days"][-10:]},
        )

    earlier, later = ask(first["root_key_secret"]), ask(second["root_key_secret"])
    assert earlier.status_code == later.status_code == 200
    assert earlier.get_json() == later.get_json() and later.get_json()["total"]["usage"] > 0


def test_demo_seed_shows_its_ids_and_a_report_command_that_works(console, client):
    seeded = console("demo", "seed")
    assert seeded.returncode == 0
    told = seeded.stderr.decode()
    ids = ok(seeded)
    for key in (ids["organisation_id"], ids["root_key_id"], *ids["clinic_key_ids"]):
        assert key in told
    assert ids["curl"] in told.splitlines()
    assert ids["root_key_secret"] not in told.replace(ids["curl"], "")
    [line] = [line for line in told.splitlines() if " usage report " in line]
    program, *arguments = shlex.split(line)
    assert program.endswith("scrubs-analytics")  # as it was run: on the PATH or not
    table = console(*arguments)
    assert table.returncode == 0, table.stderr
    start, end = ids["usage_days"].split("..")
    answered = client.post(
        "/api/v1/usage-analytics",
        headers={
            "X-Scrubs-Clinic-Api-Key": ids["root_key_secret"],
            "X-Scrubs-Clinic-Provider": ids["provider_id"],
        },
        json={"start_date": start, "end_date": end},
    ).get_json()["total"]
    *_, total = table.stdout.decode().splitlines()
    assert total.split() == [
        "total",
        str(answered["tokens"]),
        str(answered["usage"]),
        str(answered["stt_duration"]),
    ]


def test_commands_leave_a_json_log_line_at_debug_and_keep_stderr_human_otherwise(console):
    quiet = console("org", "create", "--name", "Logged")
    assert quiet.returncode == 0 and quiet.stderr == b""
    loud = console("org", "create", "--name", "Logged", extra_env={"LOG_LEVEL": "DEBUG"})
    assert loud.returncode == 0
    entries = [
        json.loads(line) for line in loud.stderr.decode().splitlines() if line.startswith("{")
    ]
    command = [e for e in entries if e.get("logger") == "scrubs.command"]
    assert command and command[0]["command"] == "org create" and command[0]["outcome"] == "ok"
    created = console(
        "key", "create", "--org", ok(loud)["id"], "--name", "k", extra_env={"LOG_LEVEL": "DEBUG"}
    )
    assert json.loads(created.stdout)["secret"] not in created.stderr.decode()
