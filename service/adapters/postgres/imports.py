"""SQL of imports and the outbox: events staged with COPY and committed set-based with
their daily and quarter-hour rollups and their cache invalidations, in one transaction a
batch."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from uuid import UUID

import psycopg
from psycopg import sql

from service.adapters.postgres.pool import Database
from service.usecases.ports import (
    BatchOutcome,
    FigureTooLarge,
    ImportConflict,
    PendingInvalidation,
)

STAGED_EVENT_COLUMNS = (
    "line_no",
    "event_id",
    "api_key_id",
    "day_number",
    "micro_of_day",
    "tokens",
    "stt_duration",
    "usage",
)

CREATE_STAGE = """
    CREATE TEMPORARY TABLE IF NOT EXISTS staged_events (
        line_no       bigint NOT NULL,
        event_id      text COLLATE "C" NOT NULL,
        api_key_id    uuid NOT NULL,
        day_number    integer NOT NULL,  -- the UTC day of occurred_at, in days since 1970
        micro_of_day  bigint NOT NULL,   -- its microsecond within that day
        tokens        bigint NOT NULL,
        stt_duration  bigint NOT NULL,
        usage         integer NOT NULL
    ) ON COMMIT DELETE ROWS
"""

# copy_text is UTF-8 whatever the connection's client encoding (DATABASE_URL may ask for
# another): the COPY says so, and Postgres converts it.
STAGE = f"COPY staged_events ({', '.join(STAGED_EVENT_COLUMNS)}) FROM STDIN (ENCODING 'UTF8')"
COPY_SPECIAL = re.compile("[\b\t\n\v\f\r\\\\]")  # as psycopg's write_row escapes them
COPY_ESCAPES = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\\": "\\\\",
}


# A moment is staged as two integers, which cost a fraction of a timestamp's text to make
# and to read: its UTC day, counted from 1970-01-01, and its microsecond within that day.
# STAGED_MOMENT makes the timestamp again, exactly (floor division: days before 1970 too),
# from the day as a date.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MICROSECONDS_A_DAY = 86_400_000_000
STAGED_MOMENT = "({day} + {micro_of_day} * interval '1 microsecond') AT TIME ZONE 'UTC'"


def copy_text(events: list[tuple]) -> bytes:
    """(line number, *UsageEvent) rows in COPY's text format, in UTF-8, as STAGE reads
    them, made in one go and in any thread. An event_id is escaped as psycopg's write_row
    would, when any of the batch's needs it."""
    escaped = _escaped if COPY_SPECIAL.search("".join([row[1] for row in events])) else str
    return "".join(
        [
            f"{number}\t{escaped(event_id)}\t{key}\t{day}\t{micro}\t{tokens}\t{stt}\t{used}\n"
            for number, event_id, key, moment, tokens, stt, used in events
            for day, micro in (divmod((moment - EPOCH) // MICROSECOND, MICROSECONDS_A_DAY),)
        ]
    ).encode()


def _escaped(text: str) -> str:
    if COPY_SPECIAL.search(text) is None:
        return text
    return COPY_SPECIAL.sub(lambda special: COPY_ESCAPES[special[0]], text)


UNKNOWN_KEYS = """
    SELECT s.line_no, s.api_key_id
    FROM staged_events s
    WHERE NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = s.api_key_id)
    ORDER BY s.line_no
"""

# Insert the staged events not seen before (the first line wins within a batch; an event_id
# once imported is never again, whatever its moment, as long as the retention window keeps
# it), add them to the daily and quarter-hour rollups, each in key order so that concurrent
# imports never deadlock, and record the changed (key, day) pairs in the cache outbox.
# Two statements differ in how they keep an id from being imported twice: COMMIT_STAGED
# inserts each id unless already there (ON CONFLICT); COMMIT_NEW inserts them all, which
# costs a sixth less when none was (a unique violation otherwise, so COMMIT_STAGED then).
_FIRSTS = """
    firsts AS (
        SELECT DISTINCT ON (s.event_id)
               s.event_id, s.api_key_id, k.organisation_id,
               date '1970-01-01' + s.day_number AS day, s.micro_of_day, s.tokens,
               s.stt_duration, s.usage
        FROM staged_events s
        JOIN api_keys k ON k.id = s.api_key_id
        -- Never an event whose id may have been forgotten: the import refuses those lines
        -- before they are staged; one let through as another import moved the day (a
        -- retention drop) changes nothing here, and counts as a duplicate.
        WHERE date '1970-01-01' + s.day_number >= ALL (SELECT day FROM event_ids_kept_from)
        ORDER BY s.event_id, s.line_no
    )"""
_MOMENT_AND_QUARTER = f"""
               {STAGED_MOMENT.format(day="f.day", micro_of_day="f.micro_of_day")} AS occurred_at,
               (f.micro_of_day / 900000000)::smallint AS quarter  -- of 15 minutes"""


def _ids_then_fresh(on_conflict: str, only_inserted: str) -> str:
    """The ids inserted (`on_conflict`: what to do with one already there), then the events
    counted (`only_inserted`: how `fresh` keeps to the events whose id went in), with the
    moment and quarter-hour of each."""
    return f"""
    unseen AS (
        INSERT INTO usage_event_ids (event_id, occurred_on)
        SELECT event_id, day
        FROM firsts
        ORDER BY event_id
        {on_conflict}
        RETURNING event_id
    ), fresh AS (
        SELECT f.*,{_MOMENT_AND_QUARTER}
        FROM firsts f
        {only_inserted}
    )"""


_UNSEEN_IDS_INSERTED = _ids_then_fresh(
    "ON CONFLICT (event_id) DO NOTHING", "JOIN unseen u ON u.event_id = f.event_id"
)
# Every id went in (or the statement fails), so every event counts. `unseen` is read once,
# before the first event: every id is in before any rollup row is touched, as in
# COMMIT_STAGED. Else two imports of the same ids deadlock, one holding an id the other
# waits for while it waits for a rollup row.
_EVERY_ID_INSERTED = _ids_then_fresh("", "WHERE (SELECT count(*) FROM unseen) >= 0")
_FRESH_COUNTED = """
    raw AS (
        INSERT INTO usage_events
            (event_id, api_key_id, occurred_at, tokens, stt_duration, usage)
        SELECT event_id, api_key_id, occurred_at, tokens, stt_duration, usage
        FROM fresh
    ), quartered AS (
        SELECT api_key_id, day, quarter, organisation_id,
               sum(tokens) AS tokens, sum(usage) AS usage, sum(stt_duration) AS stt_duration
        FROM fresh
        GROUP BY 1, 2, 3, 4
    ), rolled AS (
        INSERT INTO usage_daily AS d
            (api_key_id, day, organisation_id, tokens, usage, stt_duration)
        SELECT api_key_id, day, organisation_id, sum(tokens), sum(usage), sum(stt_duration)
        FROM quartered
        GROUP BY 1, 2, 3
        ORDER BY 1, 2
        ON CONFLICT (api_key_id, day) DO UPDATE SET
            tokens = d.tokens + excluded.tokens,
            usage = d.usage + excluded.usage,
            stt_duration = d.stt_duration + excluded.stt_duration
        RETURNING d.organisation_id, d.api_key_id, d.day
    ), key_quarters AS (
        INSERT INTO usage_quarter AS q
            (api_key_id, day, quarter, organisation_id, tokens, usage, stt_duration)
        SELECT api_key_id, day, quarter, organisation_id, tokens, usage, stt_duration
        FROM quartered
        ORDER BY 1, 2, 3
        ON CONFLICT (api_key_id, day, quarter) DO UPDATE SET
            tokens = q.tokens + excluded.tokens,
            usage = q.usage + excluded.usage,
            stt_duration = q.stt_duration + excluded.stt_duration
    ), organisation_quarters AS (
        INSERT INTO usage_quarter_org AS o
            (organisation_id, day, quarter, tokens, usage, stt_duration)
        SELECT organisation_id, day, quarter, sum(tokens), sum(usage), sum(stt_duration)
        FROM quartered
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (organisation_id, day, quarter) DO UPDATE SET
            tokens = o.tokens + excluded.tokens,
            usage = o.usage + excluded.usage,
            stt_duration = o.stt_duration + excluded.stt_duration
    ), organisation_days AS (
        INSERT INTO usage_daily_org AS o (organisation_id, day, tokens, usage, stt_duration)
        SELECT organisation_id, day, sum(tokens), sum(usage), sum(stt_duration)
        FROM quartered
        GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (organisation_id, day) DO UPDATE SET
            tokens = o.tokens + excluded.tokens,
            usage = o.usage + excluded.usage,
            stt_duration = o.stt_duration + excluded.stt_duration
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
COMMIT_STAGED = f"WITH{_FIRSTS},{_UNSEEN_IDS_INSERTED},{_FRESH_COUNTED}"
COMMIT_NEW = f"WITH{_FIRSTS},{_EVERY_ID_INSERTED},{_FRESH_COUNTED}"


# The retention window: whole months of raw events before the cutoff, and the ids that
# guard against their import twice (an event older than the window is refused anyway).
EXPIRED_PARTITIONS = """
    SELECT c.relname
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'usage_events'::regclass
      AND c.relname ~ '^usage_events_[0-9]{6}$'
      AND (to_date(right(c.relname, 6), 'YYYYMM') + interval '1 month')::date <= %s
    ORDER BY c.relname
"""


_MOMENT = itemgetter(3)  # of a staged event: (line number, *UsageEvent)


def _month_of(moment: datetime) -> datetime:
    """The first moment of the UTC month of `moment`, an aware datetime."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def months_from(first: datetime, last: datetime) -> Iterator[datetime]:
    """The first moments of the months from `first`'s to `last`'s, both months' firsts."""
    month = first
    while month <= last:
        yield month
        month = (month + timedelta(days=31)).replace(day=1)


class PostgresImportSession:
    """The ImportSession port: one connection for a whole import, with its staging table."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.months: set[datetime] = set()  # that have their partition of usage_events
        # Whether the next batch's ids are likely all new: the last batch's were.
        self.expect_new = True
        conn.execute(CREATE_STAGE)

    def _add_partitions(self, events: list[tuple]) -> None:
        """Each UTC month of the events gets its partition before the batch's transaction:
        making one locks the whole table, which must not be held for a batch. A batch
        mostly lies within months already made: its first and last moments tell."""
        first = _month_of(min(events, key=_MOMENT)[3])
        last = _month_of(max(events, key=_MOMENT)[3])
        if self.months.issuperset(months_from(first, last)):
            return
        months = {_month_of(row[3]) for row in events}
        if months - self.months:
            self.conn.execute("SELECT usage_events_add_partitions(%s)", (sorted(months),))
            self.months |= months

    def commit_batch(self, events: list[tuple], prepared: bytes | None = None) -> BatchOutcome:
        """`events`: (line number, *UsageEvent) tuples; `prepared`: their copy_text, when
        made beforehand. One transaction: rolled back whole on ImportConflict (try again)
        or FigureTooLarge."""
        self._add_partitions(events)
        try:
            with self.conn.transaction():
                with self.conn.cursor().copy(STAGE) as copy:
                    copy.write(copy_text(events) if prepared is None else prepared)
                unknown = self.conn.execute(UNKNOWN_KEYS).fetchall()
                rows = self._commit_staged()
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            raise ImportConflict() from None
        except psycopg.errors.NumericValueOutOfRange:
            raise FigureTooLarge() from None
        except psycopg.errors.CheckViolation as error:
            if "no partition" not in str(error) or not self.months:
                raise
            # Another import's retention window dropped a month this session had made: make
            # it again (the batch was rolled back whole, so nothing is counted twice).
            self.months.clear()
            return self.commit_batch(events, prepared)
        # Every new event changes some rollup, so no outbox row means no new event.
        inserted = rows[0][-1] if rows else 0
        self.expect_new = inserted + len(unknown) == len(events)
        return BatchOutcome(inserted, unknown, [PendingInvalidation(*row[:-1]) for row in rows])

    def _commit_staged(self) -> list[tuple]:
        """COMMIT_NEW when this session's last batch had no seen id, else COMMIT_STAGED;
        COMMIT_STAGED too when COMMIT_NEW fails as an event seen before would make it (its
        id is there; counted again, it would take a key's day past what is storable): the
        savepoint undoes what COMMIT_NEW did, and COMMIT_STAGED counts only what is new."""
        if self.expect_new:
            try:
                with self.conn.transaction():  # a savepoint
                    return self.conn.execute(COMMIT_NEW).fetchall()
            except (psycopg.errors.UniqueViolation, psycopg.errors.NumericValueOutOfRange):
                pass
        return self.conn.execute(COMMIT_STAGED).fetchall()


class PostgresLedger:
    """The Ledger port (service/usecases/ports.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def import_session(self) -> Iterator[PostgresImportSession]:
        with self.db.connection() as conn:
            yield PostgresImportSession(conn)

    def prepare_batch(self, events: list[tuple]) -> bytes:
        return copy_text(events)

    def pending_invalidations(
        self, organisation_id: UUID | None = None, limit: int = 1000
    ) -> list[PendingInvalidation]:
        """The oldest outbox rows, of one organisation or of all."""
        columns = "id, organisation_id, api_key_ids, days"
        with self.db.connection() as conn:
            if organisation_id is None:
                cur = conn.execute(
                    f"SELECT {columns} FROM cache_outbox ORDER BY id LIMIT %s", (limit,)
                )
            else:
                cur = conn.execute(
                    f"SELECT {columns} FROM cache_outbox"
                    " WHERE organisation_id = %s ORDER BY id LIMIT %s",
                    (organisation_id, limit),
                )
            return [PendingInvalidation(*row) for row in cur]

    def pending_invalidation_ids(self, organisation_id: UUID | None = None) -> list[int]:
        with self.db.connection() as conn:
            if organisation_id is None:
                cur = conn.execute("SELECT id FROM cache_outbox")
            else:
                cur = conn.execute(
                    "SELECT id FROM cache_outbox WHERE organisation_id = %s", (organisation_id,)
                )
            return [row[0] for row in cur]

    def drop_events_before(self, cutoff: date) -> list[str]:
        """The retention window: every month of raw events that ends by `cutoff` is dropped
        whole, and the ids of events before it are forgotten, which ids_kept_from then
        says (in the same transaction). Rollups are untouched. Returns the partitions
        dropped."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO event_ids_kept_from (day) VALUES (%s) ON CONFLICT (singleton)"
                " DO UPDATE SET day = greatest(event_ids_kept_from.day, excluded.day)",
                (cutoff,),
            )
            expired = [row[0] for row in conn.execute(EXPIRED_PARTITIONS, (cutoff,))]
            for name in expired:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute("DELETE FROM usage_event_ids WHERE occurred_on < %s", (cutoff,))
        return expired

    def ids_kept_from(self) -> date | None:
        """The UTC day from which the ids of imported events are all known: those of events
        before it were forgotten by a retention window. None when none ever was."""
        with self.db.connection() as conn:
            row = conn.execute("SELECT day FROM event_ids_kept_from").fetchone()
        return None if row is None else row[0]

    def forget_invalidations(self, ids: list[int]) -> None:
        """Delivered: the cache has forgotten these rows' days."""
        with self.db.connection() as conn:
            conn.execute("DELETE FROM cache_outbox WHERE id = ANY(%s)", (ids,))
