"""This database's identity in the rollup cache (migration 0003): made once, and made anew
in a copy of the database, so that a copy never shares cached figures with its original."""

from __future__ import annotations

from service.adapters.postgres.pool import Database

# Where this database lives: the cluster (its system identifier; a streaming replica shares
# it, so a failover keeps the identity) and the database's oid within it.
HERE = """
    (SELECT system_identifier FROM pg_control_system())::text || ':'
    || (SELECT oid FROM pg_database WHERE datname = current_database())::text
"""
REMAKE_IF_MOVED = f"""
    UPDATE cache_identity SET id = gen_random_uuid(), made_in = {HERE}
    WHERE made_in IS DISTINCT FROM {HERE}
"""


def cache_identity(db: Database) -> str:
    """The identity, as 32 hex digits; made anew first when the database was copied."""
    with db.connection() as conn, conn.transaction():
        conn.execute(REMAKE_IF_MOVED)
        row = conn.execute("SELECT id FROM cache_identity").fetchone()
    assert row is not None, "migration 0003 makes the row"
    return row[0].hex
