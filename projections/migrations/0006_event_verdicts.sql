-- Verdicts (issue 18): every EventRejected of lifecert.verdicts, once (by event_id): an
-- input the rules did not apply, its reason, and the agency it is addressed to. GetStatus
-- explains a retiree's latest ones; no personal field (the retiree id as every read model).
CREATE TABLE event_verdicts (
    event_id         text        PRIMARY KEY,
    retiree_id       text        NOT NULL,
    policy           text        NOT NULL,
    reason           text        NOT NULL,
    judged_type      text        NOT NULL,
    judged_event_id  text,
    reported_by      text,
    certification_id text,
    agency_id        text,
    performed_at     timestamptz,
    recorded_at      timestamptz NOT NULL,
    payload          jsonb       NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL
);
CREATE INDEX event_verdicts_by_retiree ON event_verdicts (retiree_id, policy, recorded_at);
CREATE INDEX event_verdicts_by_agency ON event_verdicts (reported_by, recorded_at);
