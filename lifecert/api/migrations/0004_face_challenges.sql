-- Face verification by challenge-response (lifecert/api/face.py, docs/face.md).

-- Every challenge issued by BeginChallenge: bound to the agency that asked and to the
-- retiree (subject: the keyed hash of the retiree id, as in api_face_decisions), used once
-- (used_at is set by the Verify that consumes it, in one UPDATE), before its deadline.
CREATE TABLE api_face_challenges (
    challenge_id text        PRIMARY KEY,
    agency       text        NOT NULL,
    subject      text        NOT NULL,
    actions      text[]      NOT NULL,
    issued_at    timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX api_face_challenges_by_deadline ON api_face_challenges (deadline);

-- SHA-256 of every frame a Verify consumed a challenge with: a frame sent again
-- byte for byte is a replay. Only digests; no image.
CREATE TABLE api_face_frame_digests (
    digest  bytea       PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

-- The failure budgets and the NOT_LIVE-then-MATCH alert count recent decisions.
CREATE INDEX api_face_decisions_by_subject ON api_face_decisions (subject, at);
CREATE INDEX api_face_decisions_by_agency ON api_face_decisions (agency, at);
