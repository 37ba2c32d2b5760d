-- The paper-forms read model (issue 14, the mailroom), from the input log: which
-- certifications still wait for their paper form, per agency and since when, and which
-- returned forms match no certification yet (the unmatched-forms queue). The fold decides
-- what a form does (docs/rules.md: a form that arrives before its certification is kept and
-- completes it when it is recorded); these tables only show the mailroom's side of it.

-- Certifications through a channel that needs the form back (the document channels of the
-- policies: ASSISTED_OFFICE, ASSISTING_AGENCY, CONSULATE, HK_AGENCY), the first recording
-- of each (agency, certification) pair (rule 11).
CREATE TABLE form_certifications (
    agency_id        text        NOT NULL,
    certification_id text        NOT NULL,
    retiree_id       text        NOT NULL,
    channel          text        NOT NULL,
    performed_at     timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL,
    event_id         text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (agency_id, certification_id)
);
CREATE INDEX form_certifications_by_ref ON form_certifications (retiree_id, certification_id);

-- Every returned form (CertificationDocumentsReceived), once by event id. Only the hash of
-- the scan; the scan lies in the mailroom's document folder.
CREATE TABLE paper_forms (
    event_id         text        PRIMARY KEY,
    retiree_id       text        NOT NULL,
    certification_id text        NOT NULL,
    agency_id        text,
    form_number      integer,
    postmarked_on    date,
    received_at      timestamptz NOT NULL,
    scan_sha256      text CHECK (scan_sha256 ~ '^[0-9a-f]{64}$'),
    recorded_at      timestamptz NOT NULL,
    source_agency    text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL
);
CREATE INDEX paper_forms_by_ref ON paper_forms (retiree_id, certification_id);

-- A form matches a certification of its retiree with its reference: of its agency when it
-- names one, else of any agency (the fold completes the earliest-recorded one).
CREATE VIEW forms_outstanding AS
SELECT c.*
FROM form_certifications c
WHERE NOT EXISTS (
    SELECT 1 FROM paper_forms f
    WHERE f.retiree_id = c.retiree_id AND f.certification_id = c.certification_id
      AND (f.agency_id IS NULL OR f.agency_id = c.agency_id));

CREATE VIEW forms_unmatched AS
SELECT f.*
FROM paper_forms f
WHERE NOT EXISTS (
    SELECT 1 FROM form_certifications c
    WHERE c.retiree_id = f.retiree_id AND c.certification_id = f.certification_id
      AND (f.agency_id IS NULL OR f.agency_id = c.agency_id));

-- Per agency: how many forms are outstanding and since when (the oldest recording); the
-- age is counted at query time: now() - oldest_recorded_at.
CREATE VIEW forms_outstanding_by_agency AS
SELECT agency_id, channel, count(*)::bigint AS forms, min(recorded_at) AS oldest_recorded_at
FROM forms_outstanding
GROUP BY agency_id, channel;
