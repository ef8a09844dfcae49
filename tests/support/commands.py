"""Commands run in-process, as the console script runs them, on given settings."""

from __future__ import annotations

import time

import psycopg
from click.testing import CliRunner, Result

from config.settings import Settings
from service.entrypoints.cli.root import cli


def run_command(settings: Settings, *args: str, input: str | bytes | None = None) -> Result:
    """The command's Result (stdout, stderr, exit_code); its Services are closed at its end."""
    return CliRunner().invoke(cli, list(args), input=input, obj=settings)


def wait_for_a_killed_import(database_url: str, seconds: float = 30) -> None:
    """A killed import's last COMMIT may still land after its process is gone (each of its
    two connections commits its own share of a batch): wait until no statement of an
    import runs, so that what is counted then is what stays."""
    deadline = time.monotonic() + seconds
    with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
        while time.monotonic() < deadline:
            running = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                " AND datname = current_database() AND state <> 'idle'"
                " AND (query ILIKE '%staged_events%' OR query = 'COMMIT')"
            ).fetchone()[0]
            if not running:
                return
            time.sleep(0.05)
    raise AssertionError(f"the killed import's statements still run after {seconds} s")
