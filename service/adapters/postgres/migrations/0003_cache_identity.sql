-- The identity of this database in the rollup cache: every key the cache writes for this
-- database carries it, so two databases never share cached figures through one Redis,
-- whatever their names and however a process spells its DATABASE_URL. `made_in` says
-- which cluster and database the identity was made in: a copy of the database (a restore,
-- a CREATE DATABASE … TEMPLATE) finds it does not match, and makes an identity of its own.
CREATE TABLE cache_identity (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id         uuid NOT NULL,
    made_in    text NOT NULL
);
INSERT INTO cache_identity (id, made_in) VALUES (gen_random_uuid(), '');
