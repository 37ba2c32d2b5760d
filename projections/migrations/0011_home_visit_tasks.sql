-- The home-visit tasks read model (issue 14 item 4): the worker's HomeVisitDue tasks (in
-- instruction_ledger, from the tasks topic) assigned to the team of the retiree's district,
-- with what the team reported (HomeVisitReported, from lifecert.home-visit-reports; the
-- home-visits connector). No personal data: ids, dates and outcomes only.

-- Which team visits each district; the bureau may reassign by updating a row.
CREATE TABLE home_visit_teams (
    district text PRIMARY KEY,
    team_id  text NOT NULL
);
INSERT INTO home_visit_teams (district, team_id) VALUES
    ('CHANCHENG', 'HV-CHANCHENG'), ('NANHAI', 'HV-NANHAI'), ('SHUNDE', 'HV-SHUNDE'),
    ('GAOMING', 'HV-GAOMING'), ('SANSHUI', 'HV-SANSHUI');

-- Every visit reported, once per (team, visit id): a file delivered again, or a record
-- read again, changes nothing.
CREATE TABLE home_visit_reports (
    team_id          text        NOT NULL,
    visit_id         text        NOT NULL,
    retiree_id       text        NOT NULL,
    visited_on       date        NOT NULL,
    outcome          text        NOT NULL CHECK (outcome IN ('ALIVE', 'NOT_FOUND', 'DECEASED')),
    event_id         text        NOT NULL,
    recorded_at      timestamptz NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (team_id, visit_id)
);
CREATE INDEX home_visit_reports_by_retiree ON home_visit_reports (retiree_id, visited_on);

-- One row per task: its team (by the district of the retiree's latest status), its due
-- date, the latest visit reported for it (on or after the task) and its state:
-- CERTIFIED (the retiree's certification completed, by the visit or another channel),
-- DECEASED_REVIEW (the team found them deceased: the death review queue decides),
-- NOT_FOUND (visited, nobody found: still to do) or OPEN (not visited yet).
CREATE VIEW home_visit_tasks AS
SELECT t.retiree_id,
       t.event_id                            AS task_event_id,
       (t.payload ->> 'due_date')::date      AS due_date,
       t.recorded_at                         AS assigned_at,
       s.district,
       coalesce(tm.team_id, 'HV-UNASSIGNED') AS team_id,
       r.visit_id,
       r.visited_on,
       r.outcome,
       CASE WHEN s.completed_at IS NOT NULL THEN 'CERTIFIED'
            WHEN r.outcome = 'ALIVE' THEN 'CERTIFIED'
            WHEN r.outcome = 'DECEASED' THEN 'DECEASED_REVIEW'
            WHEN r.outcome = 'NOT_FOUND' THEN 'NOT_FOUND'
            ELSE 'OPEN' END                  AS state
FROM instruction_ledger t
LEFT JOIN LATERAL (
    SELECT district, completed_at FROM retiree_status rs
    WHERE rs.retiree_id = t.retiree_id ORDER BY rs.recorded_at DESC LIMIT 1) s ON true
LEFT JOIN home_visit_teams tm ON tm.district = s.district
LEFT JOIN LATERAL (
    SELECT visit_id, visited_on, outcome FROM home_visit_reports hr
    WHERE hr.retiree_id = t.retiree_id
      AND hr.visited_on >= (t.recorded_at AT TIME ZONE 'Asia/Shanghai')::date
    ORDER BY hr.visited_on DESC, hr.recorded_at DESC LIMIT 1) r ON true
WHERE t.type = 'HomeVisitDue';
