"""Every SQL statement of the service, as functions named for what they return or do.

Functions take an open connection; the caller owns transactions (the web pool runs in
autocommit, so a single read costs one round trip).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import NamedTuple
from uuid import UUID

import psycopg

from service.domain import ApiKeyInfo, DayUsage


class ProviderCredentials(NamedTuple):
    """What one auth query learns: the provider's organisation and the key, if any."""

    organisation_id: UUID
    api_key_id: UUID | None
    key_organisation_id: UUID | None
    is_root: bool
    revoked: bool
    cache_pending: bool  # the organisation has cache invalidations not yet delivered


def provider_credentials(
    conn: psycopg.Connection, provider_id: str, secret_hash: bytes
) -> ProviderCredentials | None:
    """None when the provider is unknown; otherwise the key is None when no key has that hash."""
    row = conn.execute(
        """
        SELECT p.organisation_id, k.id, k.organisation_id, coalesce(k.is_root, false),
               k.revoked_at IS NOT NULL,
               EXISTS (SELECT 1 FROM cache_outbox o WHERE o.organisation_id = p.organisation_id)
        FROM providers p
        LEFT JOIN api_keys k ON k.secret_hash = %s
        WHERE p.id = %s
        """,
        (secret_hash, provider_id),
    ).fetchone()
    return None if row is None else ProviderCredentials(*row)


API_KEY_COLUMNS = """
    k.id, k.organisation_id, k.name, k.prefix, k.clinic_id, c.name,
    k.is_root, k.created_at, k.revoked_at
"""


def api_key_info(conn: psycopg.Connection, api_key_id: UUID) -> ApiKeyInfo | None:
    row = conn.execute(
        f"""
        SELECT {API_KEY_COLUMNS}
        FROM api_keys k LEFT JOIN clinics c ON c.id = k.clinic_id
        WHERE k.id = %s
        """,
        (api_key_id,),
    ).fetchone()
    return None if row is None else ApiKeyInfo(*row)


def _days_condition(days: list[date]) -> tuple[str, tuple]:
    """A contiguous run of days is one range scan; scattered days are probed one by one."""
    first, last = days[0], days[-1]
    if (last - first).days + 1 == len(days):
        return "day BETWEEN %s AND %s", (first, last)
    return "day = ANY(%s)", (days,)


def organisation_daily_usage(
    conn: psycopg.Connection, organisation_id: UUID, days: list[date]
) -> list[DayUsage]:
    """Every key of the organisation summed per day, for the given (ascending, distinct)
    days; one query however many days. Days without rows are left out."""
    if not days:
        return []
    condition, params = _days_condition(days)
    rows = conn.execute(
        f"""
        SELECT day, sum(tokens), sum(usage), sum(stt_duration)
        FROM usage_daily
        WHERE organisation_id = %s AND {condition}
        GROUP BY day
        ORDER BY day
        """,
        (organisation_id, *params),
    ).fetchall()
    return [DayUsage(*row) for row in rows]


def key_daily_usage(conn: psycopg.Connection, api_key_id: UUID, days: list[date]) -> list[DayUsage]:
    """One key's rollups for the given (ascending, distinct) days, in one query."""
    if not days:
        return []
    condition, params = _days_condition(days)
    rows = conn.execute(
        f"""
        SELECT day, tokens, usage, stt_duration
        FROM usage_daily
        WHERE api_key_id = %s AND {condition}
        ORDER BY day
        """,
        (api_key_id, *params),
    ).fetchall()
    return [DayUsage(*row) for row in rows]


def organisations_daily_usage(
    conn: psycopg.Connection, organisation_ids: list[UUID], start: date, end: date
) -> dict[UUID, list[DayUsage]]:
    """Per organisation, every key summed per day over a range: one set-based query."""
    rows = conn.execute(
        """
        SELECT organisation_id, day, sum(tokens), sum(usage), sum(stt_duration)
        FROM usage_daily
        WHERE organisation_id = ANY(%s) AND day BETWEEN %s AND %s
        GROUP BY organisation_id, day
        """,
        (organisation_ids, start, end),
    ).fetchall()
    found: dict[UUID, list[DayUsage]] = {
        organisation_id: [] for organisation_id in organisation_ids
    }
    for organisation_id, *figures in rows:
        found[organisation_id].append(DayUsage(*figures))
    return found


def organisation_ids(conn: psycopg.Connection, only: UUID | None = None) -> list[UUID]:
    if only is not None:
        return [only] if organisation_exists(conn, only) else []
    return [row[0] for row in conn.execute("SELECT id FROM organisations ORDER BY id")]


# --- administration ------------------------------------------------------------------


def insert_organisation(conn: psycopg.Connection, organisation_id: UUID, name: str) -> datetime:
    row = conn.execute(
        "INSERT INTO organisations (id, name) VALUES (%s, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = organisations.name"
        " RETURNING created_at",
        (organisation_id, name),
    ).fetchone()
    assert row is not None
    return row[0]


def organisation_exists(conn: psycopg.Connection, organisation_id: UUID) -> bool:
    row = conn.execute("SELECT 1 FROM organisations WHERE id = %s", (organisation_id,))
    return row.fetchone() is not None


def insert_provider(
    conn: psycopg.Connection, provider_id: str, organisation_id: UUID, name: str | None
) -> bool:
    """False when the id is taken (by this organisation or another)."""
    cur = conn.execute(
        "INSERT INTO providers (id, organisation_id, name) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (provider_id, organisation_id, name),
    )
    return cur.rowcount == 1


def provider_organisation(conn: psycopg.Connection, provider_id: str) -> UUID | None:
    row = conn.execute("SELECT organisation_id FROM providers WHERE id = %s", (provider_id,))
    found = row.fetchone()
    return None if found is None else found[0]


def insert_clinic(
    conn: psycopg.Connection, clinic_id: UUID, organisation_id: UUID, name: str
) -> None:
    conn.execute(
        "INSERT INTO clinics (id, organisation_id, name) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (clinic_id, organisation_id, name),
    )


def clinic_organisation(conn: psycopg.Connection, clinic_id: UUID) -> UUID | None:
    row = conn.execute("SELECT organisation_id FROM clinics WHERE id = %s", (clinic_id,))
    found = row.fetchone()
    return None if found is None else found[0]


def insert_api_key(
    conn: psycopg.Connection,
    *,
    api_key_id: UUID,
    organisation_id: UUID,
    clinic_id: UUID | None,
    name: str,
    prefix: str,
    secret_hash: bytes,
    is_root: bool,
) -> ApiKeyInfo:
    conn.execute(
        "INSERT INTO api_keys (id, organisation_id, clinic_id, name, prefix, secret_hash, is_root)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (api_key_id, organisation_id, clinic_id, name, prefix, secret_hash, is_root),
    )
    info = api_key_info(conn, api_key_id)
    assert info is not None
    return info


def replace_api_key_secret(
    conn: psycopg.Connection, api_key_id: UUID, prefix: str, secret_hash: bytes
) -> bool:
    cur = conn.execute(
        "UPDATE api_keys SET prefix = %s, secret_hash = %s, revoked_at = NULL WHERE id = %s",
        (prefix, secret_hash, api_key_id),
    )
    return cur.rowcount == 1


def revoke_api_key(conn: psycopg.Connection, api_key_id: UUID) -> datetime | None:
    """The key's revocation time (kept from an earlier revoke), or None for an unknown key."""
    row = conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = %s RETURNING revoked_at",
        (api_key_id,),
    ).fetchone()
    return None if row is None else row[0]


# --- usage import --------------------------------------------------------------------

STAGED_EVENT_COLUMNS = (
    "line_no",
    "event_id",
    "api_key_id",
    "occurred_at",
    "tokens",
    "stt_duration",
    "usage",
)


def create_event_stage(conn: psycopg.Connection) -> None:
    """A per-session table that each import batch is copied into; emptied at commit."""
    conn.execute(
        """
        CREATE TEMPORARY TABLE IF NOT EXISTS staged_events (
            line_no       bigint NOT NULL,
            event_id      text NOT NULL,
            api_key_id    uuid NOT NULL,
            occurred_at   timestamptz NOT NULL,
            tokens        bigint NOT NULL,
            stt_duration  bigint NOT NULL,
            usage         integer NOT NULL
        ) ON COMMIT DELETE ROWS
        """
    )


def stage_events(conn: psycopg.Connection, rows: Iterable[tuple]) -> None:
    columns = ", ".join(STAGED_EVENT_COLUMNS)
    with conn.cursor().copy(f"COPY staged_events ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def staged_lines_with_unknown_keys(conn: psycopg.Connection) -> list[tuple[int, UUID]]:
    return conn.execute(
        """
        SELECT s.line_no, s.api_key_id
        FROM staged_events s
        WHERE NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = s.api_key_id)
        ORDER BY s.line_no
        """
    ).fetchall()


class PendingInvalidation(NamedTuple):
    """A cache_outbox row: the (key, day) pairs of one organisation a batch changed."""

    id: int
    organisation_id: UUID
    api_key_ids: list[UUID]
    days: list[date]


def commit_staged_events(conn: psycopg.Connection) -> tuple[int, list[PendingInvalidation]]:
    """Insert the staged events not seen before (first line wins within a batch), add them
    to the daily rollups in (key, day) order so that concurrent imports never deadlock,
    record the changed (key, day) pairs in the cache outbox, and return how many events
    were new and the outbox rows written."""
    rows = conn.execute(
        """
        WITH fresh AS (
            INSERT INTO usage_events
                (event_id, api_key_id, occurred_at, tokens, stt_duration, usage)
            SELECT DISTINCT ON (s.event_id)
                   s.event_id, s.api_key_id, s.occurred_at, s.tokens, s.stt_duration, s.usage
            FROM staged_events s
            JOIN api_keys k ON k.id = s.api_key_id
            ORDER BY s.event_id, s.line_no
            ON CONFLICT (event_id) DO NOTHING
            RETURNING api_key_id, occurred_at, tokens, stt_duration, usage
        ), rolled AS (
            INSERT INTO usage_daily AS d
                (api_key_id, day, organisation_id, tokens, usage, stt_duration)
            SELECT f.api_key_id, (f.occurred_at AT TIME ZONE 'UTC')::date, k.organisation_id,
                   sum(f.tokens), sum(f.usage), sum(f.stt_duration)
            FROM fresh f
            JOIN api_keys k ON k.id = f.api_key_id
            GROUP BY 1, 2, 3
            ORDER BY 1, 2
            ON CONFLICT (api_key_id, day) DO UPDATE SET
                tokens = d.tokens + excluded.tokens,
                usage = d.usage + excluded.usage,
                stt_duration = d.stt_duration + excluded.stt_duration
            RETURNING d.organisation_id, d.api_key_id, d.day
        ), marked AS (
            INSERT INTO cache_outbox (organisation_id, api_key_ids, days)
            SELECT organisation_id, array_agg(api_key_id), array_agg(day)
            FROM rolled
            GROUP BY organisation_id
            RETURNING id, organisation_id, api_key_ids, days
        )
        SELECT id, organisation_id, api_key_ids, days, (SELECT count(*) FROM fresh)
        FROM marked
        """
    ).fetchall()
    # Every new event changes some rollup, so no outbox row means no new event.
    inserted = rows[0][-1] if rows else 0
    return inserted, [PendingInvalidation(*row[:-1]) for row in rows]


def pending_invalidations(
    conn: psycopg.Connection, organisation_id: UUID | None = None, limit: int = 1000
) -> list[PendingInvalidation]:
    """The oldest outbox rows, of one organisation or of all."""
    if organisation_id is None:
        cur = conn.execute(
            "SELECT id, organisation_id, api_key_ids, days FROM cache_outbox ORDER BY id LIMIT %s",
            (limit,),
        )
    else:
        cur = conn.execute(
            "SELECT id, organisation_id, api_key_ids, days FROM cache_outbox"
            " WHERE organisation_id = %s ORDER BY id LIMIT %s",
            (organisation_id, limit),
        )
    return [PendingInvalidation(*row) for row in cur]


def pending_invalidation_ids(
    conn: psycopg.Connection, organisation_id: UUID | None = None
) -> list[int]:
    if organisation_id is None:
        return [row[0] for row in conn.execute("SELECT id FROM cache_outbox")]
    cur = conn.execute("SELECT id FROM cache_outbox WHERE organisation_id = %s", (organisation_id,))
    return [row[0] for row in cur]


def forget_invalidations(conn: psycopg.Connection, ids: list[int]) -> None:
    """Delivered: the cache has forgotten these rows' days."""
    conn.execute("DELETE FROM cache_outbox WHERE id = ANY(%s)", (ids,))
