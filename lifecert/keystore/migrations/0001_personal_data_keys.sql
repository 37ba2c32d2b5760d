-- The key store of personal data (lifecert/keystore/, docs/personal-data.md): one AES-256
-- data key per subject (a retiree id, or a month of dead letters), wrapped with the master
-- key kept outside the database ($LIFECERT_PERSONAL_KEY, else data/keys/personal-data.key).
-- Destroying a key (`lifecert erase`) clears `wrapped` and keeps the row: the key id stays
-- known as destroyed, so readers show the erased marker instead of failing.
CREATE TABLE personal_data_keys (
    subject      text        NOT NULL,
    key_id       text        NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
    wrapped      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    PRIMARY KEY (subject, key_id),
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);
-- At most one live key per subject: the one personal fields are sealed with.
CREATE UNIQUE INDEX personal_data_keys_live ON personal_data_keys (subject)
    WHERE wrapped IS NOT NULL;

-- The erasures done, for the audit: who asked, when, what it destroyed and scrubbed. The
-- subject is the retiree id (the erasure itself must stay provable); no name is kept.
CREATE TABLE personal_data_erasures (
    id             bigserial   PRIMARY KEY,
    subject        text        NOT NULL,
    erased_at      timestamptz NOT NULL DEFAULT now(),
    requested_by   text        NOT NULL,
    keys_destroyed integer     NOT NULL,
    rows_scrubbed  integer     NOT NULL,
    outcome        text        NOT NULL
);
CREATE INDEX personal_data_erasures_by_subject ON personal_data_erasures (subject);
