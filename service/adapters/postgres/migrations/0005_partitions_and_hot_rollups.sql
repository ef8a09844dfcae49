-- Storage that stays small and fast as events pile up.
--
-- 1. Rollup upserts are HOT updates (the row is rewritten on its own page and no index is
--    touched): no index holds a column an upsert changes, and every page keeps room.
--    usage_daily's covering index held tokens/usage/stt_duration, so every upsert wrote
--    a new index entry and the table bloated tenfold; organisation-wide days now come from
--    their own rollup, usage_daily_org, as quarter-hours already do.
--    The room a page needs: an import's batch may update every row of a page (rows are
--    written in time order, and a batch covers a stretch of time), each row from both of
--    the import's connections (a key's events are shared between them by event_id), and an
--    old version can only be pruned once no transaction may still see it: a page must hold
--    two more versions of each of its rows (fillfactor 30-35). usage_quarter rows are
--    rarely updated twice in a batch; they keep 70. Measured on 600,000 time-ordered
--    events of 400 keys, HOT share at fillfactor 70 / 50 / 35 or 30: usage_daily 75% / 95%
--    / 100%, usage_quarter_org 61% / 75% / 100%.
-- 2. Raw events are partitioned by month of occurred_at, so that a retention window
--    (EVENT_RETENTION_DAYS) drops old months whole. A unique index of a partitioned table
--    must hold the partition key, so "an event_id is imported once" is kept by a table of
--    its own: usage_event_ids, one narrow row per event, pruned with the window.

-- 1. Rollups ----------------------------------------------------------------------------

CREATE TABLE usage_daily_org (
    organisation_id  uuid NOT NULL,
    day              date NOT NULL,
    tokens           numeric NOT NULL,
    usage            numeric NOT NULL,
    stt_duration     numeric NOT NULL,
    PRIMARY KEY (organisation_id, day)
) WITH (fillfactor = 30);

INSERT INTO usage_daily_org (organisation_id, day, tokens, usage, stt_duration)
SELECT organisation_id, day, sum(tokens), sum(usage), sum(stt_duration)
FROM usage_daily
GROUP BY 1, 2;

DROP INDEX usage_daily_organisation_day;
ALTER TABLE usage_daily SET (fillfactor = 35);
CLUSTER usage_daily USING usage_daily_pkey;  -- rewrites the table with the room left free
ALTER TABLE usage_quarter_org SET (fillfactor = 30);
CLUSTER usage_quarter_org USING usage_quarter_org_pkey;

-- 2. Raw events ---------------------------------------------------------------------------

ALTER TABLE usage_events RENAME TO usage_events_unpartitioned;
ALTER TABLE usage_events_unpartitioned RENAME CONSTRAINT usage_events_pkey
    TO usage_events_unpartitioned_pkey;

CREATE TABLE usage_events (
    event_id      text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    api_key_id    uuid NOT NULL,
    occurred_at   timestamptz NOT NULL,
    tokens        bigint NOT NULL CHECK (tokens >= 0),
    stt_duration  bigint NOT NULL CHECK (stt_duration >= 0),
    usage         integer NOT NULL CHECK (usage >= 0),
    imported_at   timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (occurred_at);

-- The monthly partitions (UTC months, named usage_events_YYYYMM) that hold the given
-- moments, made when missing. Imports call it before a batch, outside the batch's
-- transaction; two imports making the same month at once are both fine.
CREATE FUNCTION usage_events_add_partitions(moments timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamp;
    made integer := 0;
BEGIN
    FOR month_start IN
        SELECT DISTINCT date_trunc('month', m AT TIME ZONE 'UTC') FROM unnest(moments) AS m
    LOOP
        IF to_regclass(format('usage_events_%s', to_char(month_start, 'YYYYMM'))) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                    'usage_events_' || to_char(month_start, 'YYYYMM'),
                    month_start AT TIME ZONE 'UTC',
                    (month_start + interval '1 month') AT TIME ZONE 'UTC');
                made := made + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL;  -- made meanwhile by another import
            END;
        END IF;
    END LOOP;
    RETURN made;
END
$$;

SELECT usage_events_add_partitions(array_agg(DISTINCT date_trunc('month', occurred_at, 'UTC')))
FROM usage_events_unpartitioned;

INSERT INTO usage_events SELECT * FROM usage_events_unpartitioned;

-- "Imported once": the first occurrence of each event_id, and the UTC day of its moment,
-- by which the retention window prunes it (a BRIN index: rows arrive roughly in order).
CREATE TABLE usage_event_ids (
    event_id     text PRIMARY KEY,
    occurred_on  date NOT NULL
);
INSERT INTO usage_event_ids (event_id, occurred_on)
SELECT event_id, (occurred_at AT TIME ZONE 'UTC')::date FROM usage_events_unpartitioned;
CREATE INDEX usage_event_ids_occurred_on ON usage_event_ids USING brin (occurred_on);

DROP TABLE usage_events_unpartitioned;

ANALYZE usage_daily;
ANALYZE usage_daily_org;
ANALYZE usage_events;
ANALYZE usage_event_ids;
