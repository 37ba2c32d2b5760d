-- Assistance cases (lifecert.domain.assistance), from lifecert.assistance-results: one row
-- per (partner, case_id), the case as the domain's fold leaves it. Open cases by partner
-- and age: lifecert.domain.assistance.summary / projections.queries.assistance_cases (age
-- in working days needs the policy's calendar, so it is computed there, not in SQL).
-- retiree_id is the person's id in the asking system (an SSF beneficiary's MO-SSF-<n>):
-- never an identity-card number.
CREATE TABLE assistance_cases (
    partner          text        NOT NULL,
    case_id          text        NOT NULL,
    retiree_id       text        NOT NULL,
    direction        text        NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    status           text        NOT NULL
                     CHECK (status IN ('REQUESTED', 'ACKNOWLEDGED', 'ANSWERED', 'RECEIVED')),
    requested_at     timestamptz,
    due_on           date,
    acknowledged_at  timestamptz,
    answered_at      timestamptz,
    outcome          text        CHECK (outcome IN ('CERTIFIED_ALIVE', 'NOT_FOUND', 'DECEASED')),
    result_id        text,
    received_at      timestamptz,
    receipt          text,
    refused          integer     NOT NULL DEFAULT 0,  -- events the case refused (see log)
    last_event_id    text        NOT NULL,
    PRIMARY KEY (partner, case_id)
);
CREATE INDEX assistance_cases_open ON assistance_cases (partner, due_on)
    WHERE status IN ('REQUESTED', 'ACKNOWLEDGED');

-- Case events the domain refused (UNKNOWN_CASE: an acknowledgement of a case never
-- requested; CONFLICTING_REQUEST; ALREADY_ANSWERED: a second, different answer;
-- RESULT_NOT_SENT): kept with the reason for a person to look at, never silently dropped.
-- event_id once: a redelivery of a refused event adds nothing.
CREATE TABLE assistance_refusals (
    event_id     text        PRIMARY KEY,
    partner      text        NOT NULL,
    case_id      text        NOT NULL,
    event_type   text        NOT NULL,
    reason       text        NOT NULL,
    recorded_at  timestamptz NOT NULL
);
