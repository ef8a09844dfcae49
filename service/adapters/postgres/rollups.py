"""SQL of the figures: the exact daily rollups, per key (`usage_daily`) or summed over an
organisation's keys (`usage_daily_org`), and the quarter-hour ones likewise; one statement
per range however many days."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import psycopg

from service.adapters.postgres.pool import Database
from service.domain.figures import DayUsage
from service.domain.reports import Figures, Point

# C(day, quarter) of each asked point: the figures of the day before that quarter-hour.
ORGANISATION_POINTS = """
    SELECT p.day, p.quarter, sum(u.tokens), sum(u.usage), sum(u.stt_duration)
    FROM unnest(%s::date[], %s::smallint[]) AS p (day, quarter)
    JOIN usage_quarter_org u
      ON u.organisation_id = %s AND u.day = p.day AND u.quarter < p.quarter
    GROUP BY p.day, p.quarter
"""
KEY_POINTS = """
    SELECT u.api_key_id, p.day, p.quarter, sum(u.tokens), sum(u.usage), sum(u.stt_duration)
    FROM unnest(%s::date[], %s::smallint[]) AS p (day, quarter)
    JOIN usage_quarter u
      ON u.api_key_id = ANY(%s) AND u.day = p.day AND u.quarter < p.quarter
    GROUP BY u.api_key_id, p.day, p.quarter
"""


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
        SELECT day, tokens, usage, stt_duration
        FROM usage_daily_org
        WHERE organisation_id = %s AND {condition}
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


def _keys_days(
    conn: psycopg.Connection, api_key_ids: list[UUID], days: list[date]
) -> dict[UUID, list[DayUsage]]:
    condition, params = _days_condition(days)
    rows = conn.execute(
        f"""
        SELECT api_key_id, day, tokens, usage, stt_duration
        FROM usage_daily
        WHERE api_key_id = ANY(%s) AND {condition}
        ORDER BY api_key_id, day
        """,
        (api_key_ids, *params),
    ).fetchall()
    found: dict[UUID, list[DayUsage]] = {key: [] for key in api_key_ids}
    for key, *figures in rows:
        found[key].append(DayUsage(*figures))
    return found


def _organisation_points(
    conn: psycopg.Connection, organisation_id: UUID, points: list[Point]
) -> dict[Point, Figures]:
    days, quarters = [day for day, _ in points], [quarter for _, quarter in points]
    rows = conn.execute(ORGANISATION_POINTS, (days, quarters, organisation_id)).fetchall()
    return {(day, quarter): Figures(*figures) for day, quarter, *figures in rows}


def _keys_points(
    conn: psycopg.Connection, api_key_ids: list[UUID], points: list[Point]
) -> dict[UUID, dict[Point, Figures]]:
    days, quarters = [day for day, _ in points], [quarter for _, quarter in points]
    rows = conn.execute(KEY_POINTS, (days, quarters, api_key_ids)).fetchall()
    found: dict[UUID, dict[Point, Figures]] = {key: {} for key in api_key_ids}
    for key, day, quarter, *figures in rows:
        found[key][(day, quarter)] = Figures(*figures)
    return found


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

    def keys_days(self, api_key_ids: list[UUID], days: list[date]) -> dict[UUID, list[DayUsage]]:
        """Each key's rollups for the given (ascending, distinct) days, in one query."""
        if not days or not api_key_ids:
            return {key: [] for key in api_key_ids}
        return self.db.read(_keys_days, api_key_ids, days)

    def organisation_points(
        self, organisation_id: UUID, points: list[Point]
    ) -> dict[Point, Figures]:
        """C(day, quarter) of the organisation at each point (points without usage left
        out), from the quarter-hour rollups, in one query."""
        if not points:
            return {}
        return self.db.read(_organisation_points, organisation_id, points)

    def keys_points(
        self, api_key_ids: list[UUID], points: list[Point]
    ) -> dict[UUID, dict[Point, Figures]]:
        """The same for each key."""
        if not points or not api_key_ids:
            return {key: {} for key in api_key_ids}
        return self.db.read(_keys_points, api_key_ids, points)

    def organisations_days_text(
        self, organisation_ids: list[UUID], start: date, end: date
    ) -> dict[UUID, dict[date, bytes]]:
        """Per organisation, every key summed per day over a range, each day's figures as
        `figures_text`, made by Postgres: a row an organisation, its days and their texts
        in one string, so that a bulk read (cache warm) decodes no figure at all. The two
        aggregates see the rows in the same order, whichever it is: nothing to sort."""
        with self.db.connection() as conn:
            rows = conn.execute(
                """
                SELECT organisation_id,
                       array_agg(day),
                       string_agg(concat_ws(' ', tokens, usage, stt_duration), ',')
                FROM usage_daily_org
                WHERE organisation_id = ANY(%s) AND day BETWEEN %s AND %s
                GROUP BY organisation_id
                """,
                (organisation_ids, start, end),
            ).fetchall()
        found: dict[UUID, dict[date, bytes]] = {org: {} for org in organisation_ids}
        for organisation_id, days, texts in rows:
            found[organisation_id] = dict(zip(days, texts.encode().split(b","), strict=True))
        return found
