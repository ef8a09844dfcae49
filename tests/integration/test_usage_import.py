"""`usage import` (docs/operations.md, "Usage import, in full"): JSONL and CSV, files and
stdin, duplicates, rejected lines, and an interrupted import run again to exact totals."""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import hypothesis
import psycopg
import pytest
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from service.adapters.postgres.imports import (
    CREATE_STAGE,
    STAGE,
    STAGED_MOMENT,
    copy_text,
    months_from,
)
from tests.support.api import deltas
from tests.support.commands import run_command, wait_for_a_killed_import
from tests.support.events import expected_deltas, make_events, write_jsonl

DAYS = [date(2024, 3, d) for d in range(1, 11)]
START, END = DAYS[0], DAYS[-1]
FIELDS = ["event_id", "api_key_id", "occurred_at", "tokens", "stt_duration", "usage"]


def report(result) -> dict:
    return json.loads(result.stdout)


def write_csv(path: Path, rows: list[dict], fields=FIELDS) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_jsonl_file_is_imported_exactly(client, org, cli, tmp_path):
    events = make_events(random.Random(1), [k.id for k in org.clinic_keys], DAYS, 500)
    result = cli("usage", "import", str(write_jsonl(tmp_path / "e.jsonl", events)))
    assert result.exit_code == 0, result.output
    assert report(result) == {"read": 500, "inserted": 500, "duplicates": 0, "rejected": 0}
    assert deltas(client, org, START, END) == expected_deltas(events, START, END)


def test_a_csv_file_is_imported_exactly_whatever_its_column_order(client, org, cli, tmp_path):
    events = make_events(random.Random(2), [k.id for k in org.clinic_keys], DAYS, 300)
    columns = list(reversed(FIELDS))
    path = write_csv(tmp_path / "e.csv", [e.record for e in events], columns)
    result = cli("usage", "import", str(path))
    assert result.exit_code == 0, result.output
    assert report(result)["inserted"] == 300
    assert deltas(client, org, START, END) == expected_deltas(events, START, END)


def test_csv_quoting_an_empty_usage_cell_and_a_byte_order_mark(client, org, cli, tmp_path):
    key = org.clinic_keys[0].id
    prefix = uuid.uuid4().hex
    text = (
        "\ufeffevent_id,api_key_id,occurred_at,tokens,stt_duration,usage\r\n"
        f'"{prefix}-a, with comma",{key},2024-03-02T23:30:00-05:00,100,10,\r\n'
        f'"{prefix}-b ""quoted""",{key},2024-03-02T12:00:00Z,5,1,3\r\n'
    )
    path = tmp_path / "quoted.csv"
    path.write_bytes(text.encode("utf-8"))
    result = cli("usage", "import", str(path))
    assert result.exit_code == 0, result.output
    assert report(result) == {"read": 2, "inserted": 2, "duplicates": 0, "rejected": 0}
    assert deltas(client, org, START, END, key) == {
        "2024-03-02": {"tokens": 5, "usage": 3, "stt_duration": 1},
        "2024-03-03": {"tokens": 100, "usage": 1, "stt_duration": 10},
    }


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_stdin_is_imported_with_dash(client, org, console, fmt):
    events = make_events(random.Random(3), [k.id for k in org.clinic_keys], DAYS, 100)
    if fmt == "jsonl":
        data = "".join(json.dumps(e.record) + "\n" for e in events)
        args = ["usage", "import", "-"]
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(e.record for e in events)
        data = buffer.getvalue()
        args = ["usage", "import", "-", "--format", "csv"]
    ran = console(*args, input=data.encode())
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"read": 100, "inserted": 100, "duplicates": 0, "rejected": 0}
    assert deltas(client, org, START, END) == expected_deltas(events, START, END)


def test_usage_defaults_to_one_when_absent(client, org, cli, tmp_path):
    key = org.clinic_keys[0].id
    record = {
        "event_id": uuid.uuid4().hex,
        "api_key_id": key,
        "occurred_at": "2024-03-05T10:00:00Z",
        "tokens": 7,
        "stt_duration": 3,
    }
    (tmp_path / "one.jsonl").write_text(json.dumps(record) + "\n")
    assert cli("usage", "import", str(tmp_path / "one.jsonl")).exit_code == 0
    assert deltas(client, org, START, END, key) == {
        "2024-03-05": {"tokens": 7, "usage": 1, "stt_duration": 3}
    }


def test_re_importing_a_file_changes_nothing(client, org, cli, tmp_path):
    events = make_events(random.Random(4), [k.id for k in org.clinic_keys], DAYS, 200)
    path = write_jsonl(tmp_path / "e.jsonl", events)
    assert cli("usage", "import", str(path)).exit_code == 0
    again = cli("usage", "import", str(path), "--batch-size", "7")
    assert again.exit_code == 0
    assert report(again) == {"read": 200, "inserted": 0, "duplicates": 200, "rejected": 0}
    assert deltas(client, org, START, END) == expected_deltas(events, START, END)


@pytest.mark.parametrize("batch_size", ["3", "10000"])
def test_a_duplicate_inside_one_file_counts_once_and_the_first_wins(
    client, org, cli, tmp_path, batch_size
):
    events = make_events(random.Random(5), [k.id for k in org.clinic_keys], DAYS, 10)
    twin = dict(events[1].record, tokens=999_999, stt_duration=999)  # same event_id
    lines = [json.dumps(e.record) for e in events] + [json.dumps(twin)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    result = cli("usage", "import", str(tmp_path / "d.jsonl"), "--batch-size", batch_size)
    assert result.exit_code == 0, result.output
    assert report(result) == {"read": 11, "inserted": 10, "duplicates": 1, "rejected": 0}
    assert deltas(client, org, START, END) == expected_deltas(events, START, END)


def good(org, **changes) -> dict:
    record = {
        "event_id": uuid.uuid4().hex,
        "api_key_id": org.clinic_keys[0].id,
        "occurred_at": "2024-03-04T08:00:00+02:00",
        "tokens": 10,
        "stt_duration": 5,
        "usage": 2,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


BAD_LINES = {
    "not json": lambda org: "{oops",
    "not an object": lambda org: "[1, 2, 3]",
    "no event_id": lambda org: json.dumps(good(org, event_id=...)),
    "no api_key_id": lambda org: json.dumps(good(org, api_key_id=...)),
    "no occurred_at": lambda org: json.dumps(good(org, occurred_at=...)),
    "no tokens": lambda org: json.dumps(good(org, tokens=...)),
    "no stt_duration": lambda org: json.dumps(good(org, stt_duration=...)),
    "unknown field": lambda org: json.dumps(good(org, usgae=3)),
    "tokens float": lambda org: json.dumps(good(org, tokens=1.5)),
    "tokens string": lambda org: json.dumps(good(org, tokens="10")),
    "tokens bool": lambda org: json.dumps(good(org, tokens=True)),
    "tokens negative": lambda org: json.dumps(good(org, tokens=-1)),
    "tokens 2^53": lambda org: json.dumps(good(org, tokens=2**53)),
    "stt 2^53": lambda org: json.dumps(good(org, stt_duration=2**53)),
    "usage 2^31": lambda org: json.dumps(good(org, usage=2**31)),
    "event_id empty": lambda org: json.dumps(good(org, event_id="")),
    "event_id 201": lambda org: json.dumps(good(org, event_id="e" * 201)),
    "event_id number": lambda org: json.dumps(good(org, event_id=12345)),
    "api_key_id not uuid": lambda org: json.dumps(good(org, api_key_id="key-1")),
    "api_key_id of no key": lambda org: json.dumps(good(org, api_key_id=str(uuid.uuid4()))),
    "no offset": lambda org: json.dumps(good(org, occurred_at="2024-03-04T08:00:00")),
    "date only": lambda org: json.dumps(good(org, occurred_at="2024-03-04")),
    "impossible date": lambda org: json.dumps(good(org, occurred_at="2024-02-30T08:00:00Z")),
    "hour 24": lambda org: json.dumps(good(org, occurred_at="2024-03-04T24:00:00Z")),
    "epoch seconds": lambda org: json.dumps(good(org, occurred_at=1709539200)),
    "usage null": lambda org: json.dumps(good(org, usage=None)),
    "a field twice": lambda org: json.dumps(good(org))[:-1] + ', "tokens": 99999}',
    "a field twice, escaped": lambda org: json.dumps(good(org))[:-1] + ', "\\u0075sage": 7}',
    "in the future": lambda org: json.dumps(
        good(org, occurred_at=(datetime.now(UTC) + timedelta(minutes=10)).isoformat())
    ),
}


def test_rejected_lines_are_named_and_the_valid_ones_imported(client, org, console, tmp_path):
    valid = [good(org, tokens=100 + n) for n in range(5)]
    lines: list[tuple[bytes, str]] = [
        (make(org).encode(), name) for name, make in BAD_LINES.items()
    ]
    lines += [(json.dumps(record).encode(), "valid") for record in valid]
    lines.insert(3, (b"", "blank"))  # skipped, and not counted as read
    lines.insert(9, (b'{"event_id": "\xff"}', "invalid UTF-8"))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(content for content, _ in lines) + b"\n")
    ran = console("usage", "import", str(path))

    assert ran.returncode == 1
    stderr = ran.stderr.decode()
    assert "Traceback" not in stderr
    rejected_lines = {n for n, (_, kind) in enumerate(lines, 1) if kind not in ("valid", "blank")}
    named = {
        int(line.split(":")[0].removeprefix("line "))
        for line in stderr.splitlines()
        if line.startswith("line ")
    }
    assert named == rejected_lines
    assert json.loads(ran.stdout) == {
        "read": len(lines) - 1,
        "inserted": len(valid),
        "duplicates": 0,
        "rejected": len(rejected_lines),
    }
    unknown_key = next(n for n, (_, kind) in enumerate(lines, 1) if kind == "api_key_id of no key")
    assert f"line {unknown_key}: api_key_id" in stderr
    assert deltas(client, org, START, END) == {
        "2024-03-04": {"tokens": sum(r["tokens"] for r in valid), "usage": 10, "stt_duration": 25}
    }


def test_revoked_keys_events_are_imported(client, org, cli, tmp_path, services):
    from service.usecases import admin

    key = org.clinic_keys[1]
    admin.revoke_api_key(services.directory, uuid.UUID(key.id))
    events = make_events(random.Random(6), [key.id], DAYS, 40)
    assert cli("usage", "import", str(write_jsonl(tmp_path / "r.jsonl", events))).exit_code == 0
    assert deltas(client, org, START, END) == expected_deltas(events, START, END)
    assert deltas(client, org, START, END, key.id) == expected_deltas(events, START, END)


def test_each_event_lands_on_its_own_organisation(client, make_org, cli, tmp_path):
    a, b = make_org(), make_org()
    rng = random.Random(7)
    events = make_events(rng, [a.clinic_keys[0].id, b.clinic_keys[0].id, b.root.id], DAYS, 300)
    assert cli("usage", "import", str(write_jsonl(tmp_path / "ab.jsonl", events))).exit_code == 0
    of_a = [e for e in events if e.api_key_id == a.clinic_keys[0].id]
    of_b = [e for e in events if e not in of_a]
    assert deltas(client, a, START, END) == expected_deltas(of_a, START, END)
    assert deltas(client, b, START, END) == expected_deltas(of_b, START, END)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("event_id,api_key_id,occurred_at,tokens,stt_duration,usage,extra", "unknown field"),
        ("event_id,api_key_id,occurred_at,tokens", "missing required field"),
        ("", "no header"),
        ("event_id,event_id,api_key_id,occurred_at,tokens,stt_duration", "twice"),
    ],
)
def test_a_csv_with_a_bad_header_imports_nothing(console, org, tmp_path, header, reason):
    row = f"{uuid.uuid4().hex},{org.clinic_keys[0].id},2024-03-01T00:00:00Z,1,1,1,1"
    path = tmp_path / "bad.csv"
    path.write_text(f"{header}\n{row}\n" if header else "")
    ran = console("usage", "import", str(path))
    assert ran.returncode == 1
    stderr = ran.stderr.decode().strip()
    assert reason in stderr and "\n" not in stderr and "Traceback" not in stderr


def test_a_missing_file_is_bad_usage(console, tmp_path):
    ran = console("usage", "import", str(tmp_path / "nope.jsonl"))
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr.decode()


def test_an_interrupted_import_leaves_whole_shares_and_a_re_run_finishes_exactly(
    client, org, services, settings, tmp_path
):
    prefix = uuid.uuid4().hex
    events = make_events(random.Random(8), [k.id for k in org.clinic_keys], DAYS, 60_000, prefix)
    path = write_jsonl(tmp_path / "big.jsonl", events)
    script = Path(sys.executable).with_name("scrubs-analytics")
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
    }
    args = [str(script), "usage", "import", str(path), "--batch-size", "1000"]

    def committed() -> int:
        with services.database.connection() as conn:
            return conn.execute(
                "SELECT count(*) FROM usage_events WHERE event_id LIKE %s", (prefix + "-%",)
            ).fetchone()[0]

    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while committed() < 3000 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    wait_for_a_killed_import(settings.database_url)
    partial = committed()
    assert 0 < partial < len(events), "killed mid-import"
    # Each of the import's two connections commits its share of a batch whole: the re-run
    # finds exactly what was committed, and the figures count every event once.

    rerun = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()
    summary = json.loads(rerun.stdout)
    assert summary["read"] == len(events)
    assert summary["duplicates"] == partial
    assert summary["inserted"] == len(events) - partial
    assert deltas(client, org, START, END) == expected_deltas(events, START, END)


# --- the line's rules -------------------------------------------------------------------


def test_an_import_stopped_by_an_error_prints_what_it_committed_first(org, cli, database_url):
    """Reading stdin fails after about 4/5 of it: the command names the error, exits 1, and
    first prints its report, which counts exactly the events the database holds."""
    events = make_events(random.Random(12), [k.id for k in org.clinic_keys], DAYS, 2500)
    data = "".join(json.dumps(e.record) + "\n" for e in events).encode()

    class FailingStdin(io.BytesIO):
        def readline(self, size: int | None = -1) -> bytes:
            if self.tell() > len(data) * 4 // 5:
                raise OSError(5, "Input/output error")
            return super().readline(size)

    result = cli("usage", "import", "--batch-size", "300", "-", input=FailingStdin(data))
    assert result.exit_code == 1
    assert "Input/output error" in result.stderr and "Traceback" not in result.output
    counted = json.loads(result.stdout)
    ids = [e.record["event_id"] for e in events]
    with psycopg.connect(database_url) as conn:
        held = conn.execute(
            "SELECT count(*) FROM usage_event_ids WHERE event_id = ANY(%s)", (ids,)
        ).fetchone()[0]
    assert counted["inserted"] == held >= 1500
    assert counted["read"] == counted["inserted"] + counted["duplicates"] + counted["rejected"]


def test_a_byte_order_mark_before_the_first_jsonl_line_is_ignored(client, org, cli, tmp_path):
    records = [good(org, tokens=7), good(org, tokens=8)]
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in records).encode())
    result = cli("usage", "import", str(path))
    assert result.exit_code == 0, result.output
    assert report(result) == {"read": 2, "inserted": 2, "duplicates": 0, "rejected": 0}


def peak_memory_kib(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, int]:
    """Run `command` alone under a small parent that reports its child's peak resident size."""
    probe = (
        "import resource, subprocess, sys\n"
        "ran = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "sys.stdout.buffer.write(ran.stdout)\n"
        "sys.stderr.buffer.write(ran.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(ran.returncode)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, env=env, timeout=300
    )
    return ran, int(ran.stderr.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_line_over_64_kib_is_rejected_without_being_held_whole(
    client, org, console, settings, tmp_path, fmt
):
    """A 100 MB line: one rejection, the lines around it imported, and the import's memory
    far below the line's size."""
    before, after = good(org, tokens=3), good(org, tokens=4)
    huge = "x" * 100_000_000
    path = tmp_path / f"huge.{fmt}"
    with path.open("w") as out:
        if fmt == "jsonl":
            out.write(json.dumps(before) + "\n")
            out.write(json.dumps(good(org, event_id=huge)) + "\n")
            out.write(json.dumps(after) + "\n")
        else:
            writer = csv.DictWriter(out, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows([before, good(org, event_id=huge), after])
    script = str(Path(sys.executable).with_name("scrubs-analytics"))
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    ran, peak_kib = peak_memory_kib([script, "usage", "import", str(path)], env)
    assert ran.returncode == 1, ran.stderr.decode()[-2000:]
    huge_line = 2 if fmt == "jsonl" else 3
    assert f"line {huge_line}: the line is longer than 64 KiB" in ran.stderr.decode()
    assert json.loads(ran.stdout) == {"read": 3, "inserted": 2, "duplicates": 0, "rejected": 1}
    assert peak_kib < 100_000, f"the import held {peak_kib} KiB for a 100 MB line"


def test_a_line_that_would_take_a_keys_day_past_2_63_is_one_rejection(client, org, cli, tmp_path):
    """1,024 events of 2^53 - 1 tokens fit in a day's bigint; a 1,025th would not. Every
    run imports what fits and rejects the two lines that do not, the same two each time
    (which two is the order the import's connections committed in)."""
    prefix = uuid.uuid4().hex
    records = [
        good(org, event_id=f"{prefix}-{n}", tokens=2**53 - 1, occurred_at="2024-03-05T10:00:00Z")
        for n in range(1026)
    ]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    rejected_each_run = []
    for run, inserted in ((1, 1024), (2, 0)):
        result = cli("usage", "import", str(path))
        assert result.exit_code == 1, (run, result.output)
        assert report(result) == {
            "read": 1026,
            "inserted": inserted,
            "duplicates": 1024 - inserted,
            "rejected": 2,
        }
        rejected_each_run.append(
            {
                line.split(":")[0]
                for line in result.stderr.splitlines()
                if "would pass the largest storable (2^63-1)" in line
            }
        )
    assert len(rejected_each_run[0]) == 2 and rejected_each_run[0] == rejected_each_run[1]
    day = date(2024, 3, 5)
    assert deltas(client, org, day, day)["2024-03-05"]["tokens"] == 1024 * (2**53 - 1)


STAGED = (
    "line_no bigint, event_id text, api_key_id uuid, occurred_at timestamptz, tokens bigint,"
    " stt_duration bigint, usage integer"
)
EVENT_IDS = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=200,
)
MOMENTS = st.datetimes(  # days before 1970 and microseconds in the year 9999 too
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
FIGURES = st.integers(0, 2**53 - 1)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(
    st.lists(
        st.tuples(
            EVENT_IDS, st.uuids().map(str), MOMENTS, FIGURES, FIGURES, st.integers(0, 2**31 - 1)
        ),
        min_size=1,
        max_size=20,
    )
)
def test_a_prepared_batch_stages_what_write_row_stages(database_url, events):
    """The COPY text a batch is prepared as, off the connection's thread (copy_text), holds
    the same rows as psycopg's own write_row: escapes, figures, and each moment exactly
    (staged as a day and a microsecond, made a timestamp again by STAGED_MOMENT)."""
    rows = [(number, *event) for number, event in enumerate(events, start=1)]
    moment = STAGED_MOMENT.format(day="date '1970-01-01' + day_number", micro_of_day="micro_of_day")
    with psycopg.connect(database_url) as conn:
        conn.execute(f"CREATE TEMPORARY TABLE by_rows ({STAGED})")
        conn.execute(CREATE_STAGE)
        with conn.cursor().copy("COPY by_rows FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        with conn.cursor().copy(STAGE) as copy:
            copy.write(copy_text(rows))
        by_rows = conn.execute("SELECT * FROM by_rows ORDER BY line_no").fetchall()
        by_text = conn.execute(
            f"SELECT line_no, event_id, api_key_id, {moment}, tokens, stt_duration, usage"
            " FROM staged_events ORDER BY line_no"
        ).fetchall()
        conn.rollback()
    assert by_text == by_rows
    assert [row[1] for row in by_text] == [event[0] for event in events]
    assert [row[3] for row in by_text] == [event[2] for event in events]


def test_an_import_leaves_the_interpreter_as_it_found_it(org, cli, tmp_path):
    """The command tunes the collector and the GIL's hand-over for its threads while it
    runs; a process that imports in passing (a test, a shell) gets its own settings back."""
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    events = make_events(random.Random(3), [k.id for k in org.clinic_keys], DAYS, 50)
    result = cli("usage", "import", str(write_jsonl(tmp_path / "e.jsonl", events)))
    assert result.exit_code == 0, result.output
    assert (gc.get_threshold(), sys.getswitchinterval()) == (threshold, interval)


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ((2024, 1), (2024, 1)),
        ((2024, 1), (2024, 3)),
        ((2023, 11), (2024, 2)),
        ((2019, 7), (2026, 11)),
    ],
)
def test_a_batch_checks_every_month_from_its_first_to_its_last(first, last):
    """The months whose partitions a batch needs, when it comes to know them from its first
    and last moments alone: every month between, none twice, none left out."""
    start, end = (datetime(*month, 1, tzinfo=UTC) for month in (first, last))
    count = (last[0] - first[0]) * 12 + last[1] - first[1] + 1
    expected = [
        datetime(first[0] + (first[1] - 1 + n) // 12, (first[1] - 1 + n) % 12 + 1, 1, tzinfo=UTC)
        for n in range(count)
    ]
    assert list(months_from(start, end)) == expected


def test_an_event_id_is_the_same_whatever_the_connections_client_encoding(org, settings, tmp_path):
    """The batch is sent as UTF-8 and says so: a DATABASE_URL asking for another client
    encoding neither changes the ids stored nor lets a resend through as new."""
    marker = uuid.uuid4().hex[:8]
    ids = [f"café-{marker}", f"emoji-😀-{marker}"]
    events = [
        {
            "event_id": event_id,
            "api_key_id": str(org.clinic_keys[0].id),
            "occurred_at": "2024-03-01T10:00:00Z",
            "tokens": 5,
            "stt_duration": 1,
        }
        for event_id in ids
    ]
    file = tmp_path / "e.jsonl"
    file.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
    latin1 = dataclasses.replace(
        settings, database_url=make_conninfo(settings.database_url, client_encoding="LATIN1")
    )
    first = run_command(latin1, "usage", "import", str(file))
    assert first.exit_code == 0, (first.output, first.exception)
    assert report(first)["inserted"] == 2
    again = run_command(settings, "usage", "import", str(file))
    assert report(again) == {"read": 2, "inserted": 0, "duplicates": 2, "rejected": 0}
    with psycopg.connect(settings.database_url) as conn:
        stored = conn.execute(
            "SELECT event_id FROM usage_events WHERE event_id LIKE %s ORDER BY event_id",
            (f"%-{marker}",),
        ).fetchall()
    assert [row[0] for row in stored] == sorted(ids)
