-- lifecert read models, fed by `lifecert projections run` from the status and output
-- topics (docs/pipeline.md). Every table can be rebuilt from the topics
-- (`lifecert projections rebuild`): the event log in Kafka is the source of truth.

-- Latest RetireeStatus per retiree and cycle (policy): the status topic is keyed by retiree
-- id, so one retiree's statuses are ordered by offset within one partition; a row is
-- replaced only by a record read later in that partition.
CREATE TABLE retiree_status (
    retiree_id       text        NOT NULL,
    policy           text        NOT NULL,
    status           text        NOT NULL,
    district         text,
    residence        text        NOT NULL,
    completed_by     text,
    completed_at     timestamptz,
    event_id         text        NOT NULL,
    recorded_at      timestamptz NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (retiree_id, policy)
);
CREATE INDEX retiree_status_by_policy ON retiree_status (policy, status);

-- Every payment instruction, alert and task, once (by event_id), with its interchange
-- JSON form (lifecert.events.interchange.to_json) as payload.
CREATE TABLE instruction_ledger (
    event_id         text        PRIMARY KEY,
    type             text        NOT NULL,
    retiree_id       text        NOT NULL,
    recorded_at      timestamptz NOT NULL,
    effective_month  text CHECK (effective_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    -- back-pay of a release, sum of an overpayment; null for the other types
    amount_fen       bigint,
    payload          jsonb       NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL
);
CREATE INDEX instruction_ledger_by_retiree ON instruction_ledger (retiree_id);

-- Holds in force: inserted by a PaymentHoldPlaced, deleted by the retiree's next
-- PaymentHoldReleased or PaymentTerminated (each applied once, when first ledgered).
CREATE TABLE open_holds (
    retiree_id      text        NOT NULL,
    effective_month text        NOT NULL CHECK (effective_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    hold_event_id   text        NOT NULL,
    placed_at       timestamptz NOT NULL,
    PRIMARY KEY (retiree_id, effective_month)
);

-- Where the projections stand in each partition they read: the offset of the next record
-- to apply. Written in the same transaction as the rows it accounts for.
CREATE TABLE projection_offsets (
    topic       text    NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint  NOT NULL CHECK (next_offset >= 0),
    PRIMARY KEY (topic, "partition")
);

-- Campaign counters, derived from retiree_status (never a second copy of the truth): one
-- row per (policy, district, residence, status, completed channel, local day of
-- completion in Asia/Shanghai) with its number of retirees. Sum over the columns you do
-- not need, e.g. certified per district and day:
--   SELECT district, completed_day, sum(retirees) FROM campaign_counters
--   WHERE channel IS NOT NULL GROUP BY 1, 2;
CREATE VIEW campaign_counters AS
SELECT policy,
       district,
       residence,
       status,
       completed_by                                          AS channel,
       (completed_at AT TIME ZONE 'Asia/Shanghai')::date     AS completed_day,
       count(*)::bigint                                      AS retirees
FROM retiree_status
GROUP BY policy, district, residence, status, completed_by,
         (completed_at AT TIME ZONE 'Asia/Shanghai')::date;
