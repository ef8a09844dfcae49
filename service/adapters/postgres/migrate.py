"""`db upgrade`: create the database when it is missing, then apply pending migrations."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.adapters.postgres.pool import connect

MIGRATIONS_PACKAGE = "service.adapters.postgres.migrations"
# Any fixed number: serialises concurrent `db upgrade` runs against one database.
UPGRADE_LOCK = 0x5C2B5A11


def available_migrations() -> list[tuple[str, str]]:
    """(version, sql) for every numbered .sql file, in order."""
    files = resources.files(MIGRATIONS_PACKAGE).iterdir()
    found = sorted(f for f in files if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in found]


def create_database_if_missing(url: str) -> bool:
    """True when the database had to be created."""
    params = conninfo_to_dict(url)
    name = params.get("dbname")
    if not name:
        return False  # libpq's default database: the user's own, which must exist
    maintenance = make_conninfo(url, dbname="postgres")
    with connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # another upgrade created it meanwhile
        return True


def upgrade_database(url: str) -> dict:
    """Idempotent; returns {"database_created": bool, "applied": [...], "current": version}."""
    created = create_database_if_missing(url)
    applied_now = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (UPGRADE_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, script in available_migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(script.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
                done.add(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (UPGRADE_LOCK,))
    return {
        "database_created": created,
        "applied": applied_now,
        "current": max(done) if done else None,
    }
