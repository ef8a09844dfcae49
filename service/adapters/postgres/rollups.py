"""SQL of the figures: the exact daily rollups (`usage_daily`), per key or summed over an
organisation's keys, one statement per range however many days."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import psycopg

from service.adapters.postgres.pool import Database
from service.domain.figures import DayUsage


def _days_condition(days: list[date]) -> tuple[str, tuple]:
    """A contiguous run of days is one range scan; scattered days are probed one by one."""
    first, last = days[0], days[-1]
    if (last - first).days + 1 == len(days):
        return "day BETWEEN %s AND %s", (first, last)
    return "day = ANY(%s)", (days,)


def _organisation_days(
    conn: psycopg.Connection, organisation_id: UUID, days: list[date]
) -> list[DayUsage]:
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


def _key_days(conn: psycopg.Connection, api_key_id: UUID, days: list[date]) -> list[DayUsage]:
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


class PostgresRollups:
    """The Rollups port (service/usecases/ports.py). Sums are computed as numeric in SQL,
    so no total can overflow."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def organisation_days(self, organisation_id: UUID, days: list[date]) -> list[DayUsage]:
        """Every key of the organisation summed per day, for the given (ascending, distinct)
        days. Days without rows are left out."""
        if not days:
            return []
        return self.db.read(_organisation_days, organisation_id, days)

    def key_days(self, api_key_id: UUID, days: list[date]) -> list[DayUsage]:
        """One key's rollups for the given (ascending, distinct) days."""
        if not days:
            return []
        return self.db.read(_key_days, api_key_id, days)

    def organisations_days(
        self, organisation_ids: list[UUID], start: date, end: date
    ) -> dict[UUID, list[DayUsage]]:
        """Per organisation, every key summed per day over a range: one set-based query."""
        with self.db.connection() as conn:
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
