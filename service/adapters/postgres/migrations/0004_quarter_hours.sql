-- Rollups at UTC quarter-hour grain, so that figures are exact in every time zone: every
-- offset in use since 1980 is a multiple of 15 minutes, so every local day, week, month and
-- hour begins on a UTC quarter-hour. `quarter` is 0-95 within the UTC day. Written by imports
-- in the transaction that writes usage_daily; a cached day's invalidation covers both.
-- fillfactor leaves room on each page, so that an upsert of an existing row stays on its
-- page (a HOT update: the primary key's index is not touched).
CREATE TABLE usage_quarter (
    api_key_id       uuid NOT NULL,
    day              date NOT NULL,
    quarter          smallint NOT NULL CHECK (quarter BETWEEN 0 AND 95),
    organisation_id  uuid NOT NULL,
    tokens           bigint NOT NULL CHECK (tokens >= 0),
    usage            bigint NOT NULL CHECK (usage >= 0),
    stt_duration     bigint NOT NULL CHECK (stt_duration >= 0),
    PRIMARY KEY (api_key_id, day, quarter)
) WITH (fillfactor = 70);

-- The same summed over an organisation's keys, so that an organisation-wide question in a
-- time zone reads one row per quarter-hour, not one per key and quarter-hour. numeric: the
-- sum of many keys' figures may pass what one key's bigint holds.
CREATE TABLE usage_quarter_org (
    organisation_id  uuid NOT NULL,
    day              date NOT NULL,
    quarter          smallint NOT NULL CHECK (quarter BETWEEN 0 AND 95),
    tokens           numeric NOT NULL,
    usage            numeric NOT NULL,
    stt_duration     numeric NOT NULL,
    PRIMARY KEY (organisation_id, day, quarter)
) WITH (fillfactor = 70);

INSERT INTO usage_quarter (api_key_id, day, quarter, organisation_id, tokens, usage, stt_duration)
SELECT e.api_key_id,
       (e.occurred_at AT TIME ZONE 'UTC')::date,
       (extract(hour FROM e.occurred_at AT TIME ZONE 'UTC') * 4
        + extract(minute FROM e.occurred_at AT TIME ZONE 'UTC')::int / 15)::smallint,
       k.organisation_id, sum(e.tokens), sum(e.usage), sum(e.stt_duration)
FROM usage_events e
JOIN api_keys k ON k.id = e.api_key_id
GROUP BY 1, 2, 3, 4;

INSERT INTO usage_quarter_org (organisation_id, day, quarter, tokens, usage, stt_duration)
SELECT organisation_id, day, quarter, sum(tokens), sum(usage), sum(stt_duration)
FROM usage_quarter
GROUP BY 1, 2, 3;

ANALYZE usage_quarter;
ANALYZE usage_quarter_org;
