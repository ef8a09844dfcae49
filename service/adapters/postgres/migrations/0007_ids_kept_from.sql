-- How far back the ids of imported events are still known. A retention window
-- (EVENT_RETENTION_DAYS) drops raw events and forgets their ids; an event from before the
-- latest such cutoff could not be told from a resend, so every import refuses it, whatever
-- its own window: a later import with a wider window, or none, would otherwise count it a
-- second time. No row: no id was ever forgotten.
CREATE TABLE event_ids_kept_from (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    day        date NOT NULL
);
