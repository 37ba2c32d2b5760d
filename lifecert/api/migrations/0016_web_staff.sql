-- The people's web pages (lifecert web serve, lifecert/web/): the bureau's staff accounts
-- and their sessions. Passwords are argon2id hashes (argon2-cffi); a session is known by
-- the SHA-256 of its cookie's token (a copy of this table opens no session) and carries
-- its CSRF token. Views of a retiree's detail are audited in api_audit (method
-- web.RetireeDetail, the staff account as peer, the retiree as keyed subject).
CREATE TABLE api_web_staff (
    username      text        PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2%'),
    role          text        NOT NULL CHECK (role IN ('CITY', 'DISTRICT')),
    district      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'DISTRICT') = (district IS NOT NULL))
);

CREATE TABLE api_web_sessions (
    token_hash  text        PRIMARY KEY,
    username    text        NOT NULL REFERENCES api_web_staff (username) ON DELETE CASCADE,
    csrf        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX api_web_sessions_by_expiry ON api_web_sessions (expires_at);
