"""A command's connections (no pool): one kept for the command's steps, never one that a
step left in a transaction, and a connection of its own for a nested use."""

from __future__ import annotations

import pytest

from service.adapters.postgres.pool import CommandDatabase


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
