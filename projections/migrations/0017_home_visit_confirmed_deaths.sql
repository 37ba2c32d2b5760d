-- A death a home-visit team reported and staff confirmed (the death review's DeathRecorded,
-- source HOME_VISIT), or any death recorded since: the retiree's status is DECEASED and the
-- task is closed as DECEASED. Before this the view showed DECEASED_REVIEW for ever after
-- the confirmation (it looked only at the team's report and the dismissals).

-- As 0016, with one more state, first: DECEASED (the retiree's latest status is DECEASED,
-- whatever the team reported); DECEASED_REVIEW only while the review is open.
CREATE OR REPLACE VIEW home_visit_tasks AS
SELECT t.retiree_id,
       t.event_id                            AS task_event_id,
       (t.payload ->> 'due_date')::date      AS due_date,
       t.recorded_at                         AS assigned_at,
       s.district,
       coalesce(tm.team_id, 'HV-UNASSIGNED') AS team_id,
       r.visit_id,
       r.visited_on,
       r.outcome,
       CASE WHEN s.status = 'DECEASED' THEN 'DECEASED'
            WHEN s.completed_at IS NOT NULL THEN 'CERTIFIED'
            WHEN r.outcome = 'ALIVE' THEN 'CERTIFIED'
            WHEN r.outcome = 'DECEASED' AND r.dismissed THEN 'DEATH_DISMISSED'
            WHEN r.outcome = 'DECEASED' THEN 'DECEASED_REVIEW'
            WHEN r.outcome = 'NOT_FOUND' THEN 'NOT_FOUND'
            ELSE 'OPEN' END                  AS state
FROM instruction_ledger t
LEFT JOIN LATERAL (
    SELECT district, completed_at, status FROM retiree_status rs
    WHERE rs.retiree_id = t.retiree_id ORDER BY rs.recorded_at DESC LIMIT 1) s ON true
LEFT JOIN home_visit_teams tm ON tm.district = s.district
LEFT JOIN LATERAL (
    SELECT hr.visit_id, hr.visited_on, hr.outcome,
           EXISTS (SELECT 1 FROM home_visit_dismissals d
                   WHERE d.team_id = hr.team_id AND d.visit_id = hr.visit_id) AS dismissed
    FROM home_visit_reports hr
    WHERE hr.retiree_id = t.retiree_id
      AND hr.visited_on >= (t.recorded_at AT TIME ZONE 'Asia/Shanghai')::date
    ORDER BY hr.visited_on DESC, hr.recorded_at DESC LIMIT 1) r ON true
WHERE t.type = 'HomeVisitDue';
