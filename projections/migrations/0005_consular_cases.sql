-- The consular cases read model (issue 13): each case the consular system pushed
-- (ConsularCaseReceived on lifecert.consular-cases), the first delivery of a case number
-- kept (a case pushed again only counts its deliveries), and its review
-- (ConsularCaseReviewed: who, when, why). The review is due by the 10th working day after
-- the case arrived; `lifecert review consular list` and the API flag the open ones past it
-- as overdue, computing the due day with the policy's calendar (lifecert.domain.consular).
CREATE TABLE consular_cases (
    case_id                  text        PRIMARY KEY,
    retiree_id               text        NOT NULL,
    mission_id               text        NOT NULL,
    mission_kind             text        NOT NULL,
    country                  text        NOT NULL,
    passport_checked         boolean     NOT NULL,
    residence_permit_checked boolean     NOT NULL,
    face_checked             boolean     NOT NULL,
    performed_at             timestamptz NOT NULL,
    received_at              timestamptz NOT NULL,
    deliveries               integer     NOT NULL DEFAULT 1,
    event_id                 text        NOT NULL,
    decision                 text        CHECK (decision IN ('APPROVED', 'REJECTED')),
    reason                   text,
    reviewer                 text,
    reviewed_at              timestamptz,
    due_on                   date,
    overdue_review           boolean,
    review_event_id          text,
    source_topic             text        NOT NULL,
    source_partition         integer     NOT NULL,
    source_offset            bigint      NOT NULL
);
CREATE INDEX consular_cases_open ON consular_cases (received_at) WHERE decision IS NULL;
CREATE INDEX consular_cases_retiree ON consular_cases (retiree_id);
