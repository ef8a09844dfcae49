-- Cache invalidations an import has committed but not yet delivered to Redis: one row per
-- (batch, organisation) with the (key, day) pairs it changed. Rows are deleted once the
-- cache has forgotten those days; readers distrust an organisation's cached days while it
-- has rows here (the auth query checks, at no extra round trip).
CREATE TABLE cache_outbox (
    id               bigserial PRIMARY KEY,
    organisation_id  uuid NOT NULL,
    api_key_ids      uuid[] NOT NULL,
    days             date[] NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(api_key_ids) = cardinality(days))
);
CREATE INDEX cache_outbox_organisation ON cache_outbox (organisation_id);
