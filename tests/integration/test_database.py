"""A command's connections (no pool): one kept for the command's steps, never one that a
step left in a transaction, and a connection of its own for a nested use; a server's pool
read from several threads at once."""

from __future__ import annotations

import threading
import time

import pytest
from psycopg.conninfo import make_conninfo

from service.adapters.postgres.pool import CommandDatabase, PooledDatabase

SLOW_SECONDS = 0.4
SLOW_READ = f"SELECT pg_sleep({SLOW_SECONDS})"


@pytest.fixture()
def database(database_url):
    db = CommandDatabase(database_url)
    yield db
    db.close()


def backend(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_steps_one_after_another_share_one_connection(database):
    with database.connection() as conn:
        first = backend(conn)
    with database.connection() as conn:
        assert backend(conn) == first


def test_a_nested_step_gets_a_connection_of_its_own(database):
    with database.connection() as outer, database.connection() as inner:
        assert backend(outer) != backend(inner)


def test_connections_of_steps_that_ran_at_once_are_kept_for_later_steps(database):
    with database.connection() as outer, database.connection() as inner:
        both = {backend(outer), backend(inner)}
    with database.connection() as outer, database.connection() as inner:
        assert {backend(outer), backend(inner)} == both


def test_a_connection_left_in_a_transaction_is_not_kept(database):
    with database.connection() as conn:
        left = backend(conn)
        conn.execute("BEGIN")
    with database.connection() as conn:
        assert backend(conn) != left


def test_a_step_that_failed_does_not_pass_its_connection_on(database):
    with pytest.raises(RuntimeError), database.connection() as conn:
        failed = backend(conn)
        raise RuntimeError("the step failed")
    with database.connection() as conn:
        assert backend(conn) != failed


def test_close_closes_the_kept_connections(database):
    with database.connection() as outer, database.connection() as inner:
        pass
    database.close()
    assert outer.closed and inner.closed


def test_reads_of_one_pool_from_several_threads_run_at_once(database_url):
    """A server's threads share its pool and its breaker: a slow SQL read must not hold up
    the others (each request's key check goes through the same breaker)."""
    pooled = PooledDatabase(database_url, max_size=4)
    try:
        pooled.read(lambda conn: conn.execute("SELECT 1"))  # the pool opened
        threads = [
            threading.Thread(target=pooled.read, args=(lambda conn: conn.execute(SLOW_READ),))
            for _ in range(3)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        pooled.close()
    # One after another they take 3 x 0.4 s at least; the slack is for a busy machine.
    assert elapsed < 2.5 * SLOW_SECONDS, f"3 reads of {SLOW_SECONDS} s took {elapsed:.2f} s"


def settings_of(conn) -> tuple[str, str, str]:
    row = conn.execute(
        "SELECT current_setting('jit'), current_setting('search_path'),"
        " current_setting('statement_timeout')"
    ).fetchone()
    return tuple(row)


@pytest.mark.parametrize("kind", ["command", "pool"])
def test_every_connection_runs_without_jit_and_keeps_the_url_s_own_options(database_url, kind):
    """Compiling short statements costs more than running them (LLVM took a quarter of
    Postgres's CPU in an import); options of DATABASE_URL are kept beside ours."""
    url = make_conninfo(database_url, options="-c search_path=public,pg_catalog")
    if kind == "command":
        db = CommandDatabase(url)
    else:
        db = PooledDatabase(url, statement_timeout_ms=4321)
    try:
        jit, search_path, timeout = db.read(settings_of)
    finally:
        db.close()
    assert jit == "off"
    assert search_path.replace(" ", "") == "public,pg_catalog"
    if kind == "pool":
        assert timeout == "4321ms"
