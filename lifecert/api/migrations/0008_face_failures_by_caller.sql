-- A failed face verification counts against the caller that made it, not against the
-- retiree (issue 11 item 3's rule, as for second-factor lockouts): the daily failure count
-- is keyed by retiree (subject), calling agency and, for roles that act for the public
-- (the app), the client address it names (keyed hash, lifecert.api.lockouts.Caller; ''
-- when none). Another agency's failures never close face verification for this one.
ALTER TABLE api_face_decisions ADD COLUMN client text NOT NULL DEFAULT '';
CREATE INDEX api_face_decisions_by_caller ON api_face_decisions (subject, agency, client, at);
