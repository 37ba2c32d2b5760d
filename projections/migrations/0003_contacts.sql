-- The contact read model (DESIGN.md, rules 11-14: ContactDetailsUpdated), from the input
-- log: each retiree's latest phone and address, as they are on the log: sealed per
-- retiree (lifecert.events.personal), never in clear. Reading them takes the key store
-- (personal.reveal); once `lifecert erase` destroyed the retiree's key they read as erased.
-- A value is null when the update had none.
CREATE TABLE retiree_contacts (
    retiree_id       text        PRIMARY KEY,
    phone_sealed     text        CHECK (phone_sealed ~ '^lcp1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+$'),
    address_sealed   text        CHECK (address_sealed ~ '^lcp1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+$'),
    channel          text        NOT NULL,
    agency_id        text        NOT NULL,
    event_id         text        NOT NULL,
    recorded_at      timestamptz NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL
);
