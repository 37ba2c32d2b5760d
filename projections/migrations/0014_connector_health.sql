-- The staff dashboard's connectors panel (issue 15): each connector instance's latest
-- heartbeat (the connector_status topic: the lag it last measured, and when) and an index
-- of the dead letters (the dead-letter topic: who set each aside, and when). Nothing a
-- person could be found by: no position, no payload, no reason text.

CREATE TABLE connector_health (
    connector   text        PRIMARY KEY,  -- the instance name (connectors.toml)
    kind        text        NOT NULL,
    lag         bigint      CHECK (lag >= 0),  -- records known to wait; null: cannot tell
    measured_at timestamptz NOT NULL
);

CREATE TABLE dead_letter_index (
    letter_id    text        PRIMARY KEY,  -- the DeadLetter's event id
    stage        text        NOT NULL,     -- worker, projections, publish, connector:NAME
    source_topic text,
    recorded_at  timestamptz
);
CREATE INDEX dead_letter_index_by_stage ON dead_letter_index (stage, recorded_at);
