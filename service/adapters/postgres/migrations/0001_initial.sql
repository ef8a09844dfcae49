-- Organisations, their providers, clinics and API keys; usage events and their daily rollup.

CREATE TABLE organisations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The id is what clients send in X-Scrubs-Clinic-Provider.
CREATE TABLE providers (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    organisation_id  uuid NOT NULL REFERENCES organisations (id),
    name             text CHECK (length(name) BETWEEN 1 AND 200),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX providers_organisation ON providers (organisation_id);

CREATE TABLE clinics (
    id               uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL REFERENCES organisations (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, organisation_id)
);
CREATE INDEX clinics_organisation ON clinics (organisation_id);

-- secret_hash is the SHA-256 of the secret; the secret itself is never stored.
-- A key's clinic must belong to the key's organisation.
CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL REFERENCES organisations (id),
    clinic_id        uuid,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix           text NOT NULL,
    secret_hash      bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    is_root          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    UNIQUE (id, organisation_id),
    FOREIGN KEY (clinic_id, organisation_id) REFERENCES clinics (id, organisation_id)
);
CREATE INDEX api_keys_organisation ON api_keys (organisation_id);

-- One row per imported event; event_id is the dedupe key. Imports check api_key_id
-- against api_keys set-based per batch (keys are never deleted), so no per-row foreign key.
CREATE TABLE usage_events (
    event_id      text PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 200),
    api_key_id    uuid NOT NULL,
    occurred_at   timestamptz NOT NULL,
    tokens        bigint NOT NULL CHECK (tokens >= 0),
    stt_duration  bigint NOT NULL CHECK (stt_duration >= 0),
    usage         integer NOT NULL CHECK (usage >= 0),
    imported_at   timestamptz NOT NULL DEFAULT now()
);

-- The exact rollup per key and UTC day, written in the transaction that inserts the events.
CREATE TABLE usage_daily (
    api_key_id       uuid NOT NULL,
    day              date NOT NULL,
    organisation_id  uuid NOT NULL,
    tokens           bigint NOT NULL CHECK (tokens >= 0),
    usage            bigint NOT NULL CHECK (usage >= 0),
    stt_duration     bigint NOT NULL CHECK (stt_duration >= 0),
    PRIMARY KEY (api_key_id, day),
    FOREIGN KEY (api_key_id, organisation_id) REFERENCES api_keys (id, organisation_id)
);
-- Org-wide ranges read from the index alone.
CREATE INDEX usage_daily_organisation_day
    ON usage_daily (organisation_id, day) INCLUDE (tokens, usage, stt_duration);
