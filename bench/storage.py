"""Issue 13's storage figures after the bench's import: HOT updates of the rollups, each
rollup table against a compacted copy of itself, what every table weighs (each monthly
partition of the raw events included), and the plan of the 366-day organisation-wide read."""

from __future__ import annotations

import time
from datetime import date
from uuid import UUID

import psycopg
from psycopg import sql

from service.adapters.postgres.rollups import PostgresRollups

ROLLUPS = ("usage_daily", "usage_daily_org", "usage_quarter", "usage_quarter_org")
EVENT_TABLES = ("usage_events", "usage_event_ids")


def hot_updates(database_url: str, settle_seconds: float = 30) -> dict:
    """n_tup_upd and n_tup_hot_upd of each rollup table. A backend sends its counts when it
    exits (or now and then while it runs): the figures are read until two reads a second
    apart agree, the import's backends having exited by then."""
    query = (
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
        " WHERE relname = ANY(%s)"
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = None
        deadline = time.monotonic() + settle_seconds
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            rows = {r[0]: r[1:] for r in conn.execute(query, (list(ROLLUPS),))}
            if rows == before or time.monotonic() > deadline:
                break
            before = rows
            time.sleep(1)
    found = {}
    for table in ROLLUPS:
        inserted, updated, hot = rows.get(table, (0, 0, 0))
        found[table] = {
            "inserts": inserted,
            "updates": updated,
            "hot_updates": hot,
            "hot_share": round(hot / updated, 4) if updated else None,
        }
    return found


def compaction(database_url: str) -> dict:
    """Each rollup table's bytes (its rows and index entries) against a copy of it rewritten
    compact, with the same storage parameters (fillfactor) and indexes: what VACUUM FULL
    would leave."""
    found = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in ROLLUPS:
            copy = f"bench_compact_{table}"
            options = conn.execute(
                "SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class"
                " WHERE oid = %s::regclass",
                (table,),
            ).fetchone()[0]
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(copy)))
            conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL){}").format(
                    sql.Identifier(copy),
                    sql.Identifier(table),
                    sql.SQL(f" WITH ({options})" if options else ""),
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                    sql.Identifier(copy), sql.Identifier(table)
                )
            )
            conn.execute(sql.SQL("VACUUM FULL {}").format(sql.Identifier(copy)))
            size, heap = _main_forks(conn, table)
            copy_size, copy_heap = _main_forks(conn, copy)
            rows = conn.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", (copy,)
            ).fetchone()[0]
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(copy)))
            found[table] = {
                "bytes": size,
                "compacted_bytes": copy_size,
                "table_bytes": heap,
                "compacted_table_bytes": copy_heap,
                "rows": rows,
                "vs_compacted": round(size / copy_size, 3) if copy_size else None,
                "fillfactor": options or "default",
            }
    return found


def _main_forks(conn: psycopg.Connection, table: str) -> tuple[int, int]:
    """Bytes of the table's rows and of its indexes' entries, and of its rows alone: the
    free-space and visibility maps, which a fresh copy has not made yet, left out."""
    return conn.execute(
        "SELECT pg_relation_size(c.oid) + coalesce((SELECT sum(pg_relation_size(i.indexrelid))"
        " FROM pg_index i WHERE i.indrelid = c.oid), 0)::bigint, pg_relation_size(c.oid)"
        " FROM pg_class c WHERE c.oid = %s::regclass",
        (table,),
    ).fetchone()


def table_sizes(database_url: str, events: int) -> dict:
    """Bytes of every table with its indexes (each partition of usage_events on its own),
    and what an event and a rollup row cost."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        partitions = conn.execute(
            "SELECT relid::regclass::text, pg_total_relation_size(relid),"
            " pg_relation_size(relid), pg_indexes_size(relid)"
            " FROM pg_partition_tree('usage_events') WHERE isleaf ORDER BY relid::regclass::text"
        ).fetchall()
        tables = {}
        for table in (*EVENT_TABLES[1:], *ROLLUPS):
            size, heap, indexes, rows = conn.execute(
                sql.SQL(
                    "SELECT pg_total_relation_size({t}::regclass), pg_relation_size({t}::regclass),"
                    " pg_indexes_size({t}::regclass), (SELECT count(*) FROM {i})"
                ).format(t=sql.Literal(table), i=sql.Identifier(table)),
            ).fetchone()
            tables[table] = {
                "rows": rows,
                "bytes": size,
                "table_bytes": heap,
                "index_bytes": indexes,
            }
        event_rows = conn.execute("SELECT count(*) FROM usage_events").fetchone()[0]
    event_bytes = sum(p[1] for p in partitions)
    tables["usage_events"] = {
        "rows": event_rows,
        "bytes": event_bytes,
        "table_bytes": sum(p[2] for p in partitions),
        "index_bytes": sum(p[3] for p in partitions),
        "partitions": {name: size for name, size, _, _ in partitions},
    }
    for found in tables.values():
        found["bytes_per_row"] = round(found["bytes"] / found["rows"], 1) if found["rows"] else None
        found["mb_per_million_events"] = round(found["bytes"] / events, 1)
    per_event = (event_bytes + tables["usage_event_ids"]["bytes"]) / event_rows
    return {
        "tables": tables,
        "bytes_per_event": round(per_event, 1),
        "bytes_per_event_detail": {
            "usage_events": round(event_bytes / event_rows, 1),
            "usage_event_ids": round(tables["usage_event_ids"]["bytes"] / event_rows, 1),
        },
        "rollup_bytes_per_event": round(sum(tables[t]["bytes"] for t in ROLLUPS) / event_rows, 1),
    }


class _Explaining:
    """A connection that answers each statement with its plan, ran for real, and no rows:
    the rollups adapter's own SQL, explained as it sends it."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.plans: list[str] = []

    def execute(self, query, params=None):
        rows = self.conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params).fetchall()
        self.plans.append("\n".join(row[0] for row in rows))
        return self

    def fetchall(self):
        return []

    def fetchone(self):
        return None

    def __iter__(self):
        return iter(())


class _ExplainingDatabase:
    def __init__(self, url: str) -> None:
        self.url = url
        self.plans: list[str] = []

    def read(self, query, *args):
        with psycopg.connect(self.url, autocommit=True) as conn:
            explaining = _Explaining(conn)
            query(explaining, *args)
            self.plans += explaining.plans


def explain_organisation_days(database_url: str, organisation_id: UUID, days: list[date]) -> dict:
    """The plan of the service's SQL read of an organisation's days (the cache's fill and the
    cache-less path), and whether it reads through an index."""
    database = _ExplainingDatabase(database_url)
    PostgresRollups(database).organisation_days(organisation_id, days)
    text = "\n".join(database.plans)
    return {
        "days": len(days),
        "plan": text.splitlines(),
        "index_scan": "Index" in text and "Seq Scan" not in text,
    }
