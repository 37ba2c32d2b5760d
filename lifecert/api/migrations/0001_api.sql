-- The partner gRPC API (`lifecert api serve`, lifecert/api/), applied by lifecert/api/migrate.py
-- (its own migration set, recorded in api_schema_migrations). None of these tables holds a
-- raw ID number, a face image or a face encoding in clear.

-- Who may be reported by whom: the residence and managing unit of every enrolled retiree,
-- read from the RetireeEnrolled records of the events topic by the API server's own
-- consumer (lifecert/api/directory.py). The first enrollment wins, as in the fold.
CREATE TABLE api_retiree_directory (
    retiree_id    text        PRIMARY KEY,
    residence     text        NOT NULL,
    managing_unit text,
    scheme        text        NOT NULL,
    category      text        NOT NULL,
    event_id      text        NOT NULL,
    source_topic  text        NOT NULL,
    source_partition integer  NOT NULL,
    source_offset bigint      NOT NULL
);
CREATE INDEX api_retiree_directory_by_unit ON api_retiree_directory (managing_unit)
    WHERE managing_unit IS NOT NULL;

-- Where the directory consumer stands in each partition of the events topic (the offset
-- of the next record to read), written in the same transaction as the rows.
CREATE TABLE api_directory_offsets (
    topic       text    NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint  NOT NULL CHECK (next_offset >= 0),
    PRIMARY KEY (topic, "partition")
);

-- Idempotency of SubmitBatch and of face MATCHes: every event the API wrote to the event
-- log, once the broker acknowledged it. event_id is deterministic (uuid5 of agency, kind
-- and idempotency key), so a resubmitted item finds its row and is answered DUPLICATE.
-- content_digest (sha-256 of the item's fields) tells a true resubmission from a reused
-- key with other content.
CREATE TABLE api_accepted_events (
    event_id         text        PRIMARY KEY,
    agency           text        NOT NULL,
    type             text        NOT NULL,
    idempotency_key  text        NOT NULL,
    content_digest   text        NOT NULL,
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    recorded_at      timestamptz NOT NULL
);
CREATE INDEX api_accepted_events_by_agency ON api_accepted_events (agency, recorded_at);

-- Audit: which agency called what, when, with what outcome. subject is a keyed hash of
-- the retiree id (never the id itself, never an ID number); detail holds reason codes
-- and counts, no personal data.
CREATE TABLE api_audit (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL,
    agency      text,
    role        text,
    peer        text,
    method      text        NOT NULL,
    outcome     text        NOT NULL,
    detail      text,
    items       integer,
    accepted    integer,
    duplicates  integer,
    rejected    integer,
    subject     text,
    duration_ms real
);
CREATE INDEX api_audit_by_agency ON api_audit (agency, at);

-- Second factor of the status query: a keyed, salted hash of the last 4 characters of
-- the ID number (HMAC-SHA-256 with a server key kept outside the database).
CREATE TABLE api_second_factors (
    retiree_id text        PRIMARY KEY,
    salt       bytea       NOT NULL,
    digest     bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Subscriptions: the last cursor each agency acknowledged.
CREATE TABLE api_subscription_cursors (
    agency          text        PRIMARY KEY,
    cursor          text        NOT NULL,
    acknowledged_at timestamptz NOT NULL
);

-- Face references: only the encoding, sealed (AES-GCM, key from LIFECERT_FACE_KEY).
CREATE TABLE api_face_references (
    retiree_id  text        PRIMARY KEY,
    sealed      bytea       NOT NULL,
    model       text        NOT NULL,
    enrolled_by text        NOT NULL,
    enrolled_at timestamptz NOT NULL
);

-- Every face decision with its evidence (no image, no encoding).
CREATE TABLE api_face_decisions (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL,
    agency      text        NOT NULL,
    role        text        NOT NULL,
    subject     text        NOT NULL,
    operation   text        NOT NULL CHECK (operation IN ('ENROLL', 'VERIFY')),
    decision    text        NOT NULL,
    model       text,
    threshold   real,
    distance    real,
    live        boolean,
    evidence    jsonb,
    frames      integer,
    event_id    text
);
