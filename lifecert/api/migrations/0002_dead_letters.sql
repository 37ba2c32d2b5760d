-- What the API could not store where it belongs is set aside here with the reason, never
-- retried in a loop and never silently dropped (lifecert/api/db.py, directory.py).

-- Audit rows the database refused (a COPY of a batch failed for its content, not for an
-- outage): the refused row as JSON of escaped text, and the error.
CREATE TABLE api_audit_dead_letters (
    id           bigserial   PRIMARY KEY,
    set_aside_at timestamptz NOT NULL DEFAULT now(),
    sqlstate     text,
    error        text        NOT NULL,
    row          jsonb       NOT NULL
);

-- Records of the events topic that the retiree directory could not take: not a
-- decodable event, or an enrollment whose fields cannot be stored. The reason says what
-- was wrong and where (no field values: they may be personal data); the record stays on
-- the topic at this offset.
CREATE TABLE api_directory_dead_letters (
    topic        text        NOT NULL,
    "partition"  integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    reason       text        NOT NULL,
    set_aside_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", "offset")
);
