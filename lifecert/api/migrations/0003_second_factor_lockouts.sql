-- Wrong second factors of the status query (lifecert/api/lockouts.py), shared by every API
-- process and kept across restarts. The status statement (lifecert/api/db.py) reads both
-- tables in its one round trip; a wrong factor writes both in one call of
-- api_second_factor_failed. Rows are deleted only once neither their window nor their
-- lock is in force (lockouts.purge): never while locked.

-- Per caller that guessed: the retiree (a keyed hash of the id, as in api_audit: a guessed
-- id may be anything a person typed), the calling agency, and, for callers that act for
-- the public behind them (the portal), a keyed hash of the client address ('' otherwise).
-- Another agency, or another address behind the portal, is never locked out by these.
CREATE TABLE api_second_factor_lockouts (
    subject         text        NOT NULL,
    agency          text        NOT NULL,
    client          text        NOT NULL DEFAULT '',
    failures        integer     NOT NULL CHECK (failures > 0),
    first_failed_at timestamptz NOT NULL,
    locked_until    timestamptz,
    PRIMARY KEY (subject, agency, client)
);

-- Per agency: wrong second factors in the current window; once `budget` of them are spent,
-- the agency's status queries are refused until refused_until (and one SecurityAlert is
-- published on lifecert.alerts).
CREATE TABLE api_agency_failure_budgets (
    agency         text        PRIMARY KEY,
    failures       integer     NOT NULL CHECK (failures > 0),
    window_started timestamptz NOT NULL,
    refused_until  timestamptz
);

-- One wrong second factor: counts it for the caller's key (locking the key for lock_seconds
-- when `attempts` failures fall within lock_seconds) and against the agency's budget
-- (`budget` failures within window_seconds refuse the agency for window_seconds).
-- budget_spent is true for exactly one call per spent budget: the one whose failure spent
-- it (the row lock of ON CONFLICT DO UPDATE orders concurrent calls of every process).
CREATE FUNCTION api_second_factor_failed(
    p_subject text, p_agency text, p_client text,
    p_attempts integer, p_lock_seconds double precision,
    p_budget integer, p_window_seconds double precision,
    OUT o_key_failures integer, OUT o_locked_until timestamptz,
    OUT o_budget_failures integer, OUT o_window_started timestamptz,
    OUT o_refused_until timestamptz, OUT o_budget_spent boolean
) LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := now();
    lock_span interval := make_interval(secs => p_lock_seconds);
    window_span interval := make_interval(secs => p_window_seconds);
BEGIN
    INSERT INTO api_second_factor_lockouts AS l
        (subject, agency, client, failures, first_failed_at, locked_until)
    VALUES (p_subject, p_agency, p_client, 1, t,
            CASE WHEN p_attempts <= 1 THEN t + lock_span END)
    ON CONFLICT (subject, agency, client) DO UPDATE SET
        failures = CASE WHEN l.first_failed_at <= t - lock_span THEN 1
                        ELSE l.failures + 1 END,
        first_failed_at = CASE WHEN l.first_failed_at <= t - lock_span THEN t
                               ELSE l.first_failed_at END,
        locked_until = CASE
            WHEN l.first_failed_at <= t - lock_span THEN
                CASE WHEN p_attempts <= 1 THEN t + lock_span END
            WHEN l.failures + 1 >= p_attempts THEN t + lock_span
            ELSE l.locked_until END
    RETURNING l.failures, l.locked_until INTO o_key_failures, o_locked_until;

    INSERT INTO api_agency_failure_budgets AS b (agency, failures, window_started, refused_until)
    VALUES (p_agency, 1, t, CASE WHEN p_budget <= 1 THEN t + window_span END)
    ON CONFLICT (agency) DO UPDATE SET
        failures = CASE
            WHEN b.window_started <= t - window_span AND coalesce(b.refused_until <= t, true)
            THEN 1 ELSE b.failures + 1 END,
        window_started = CASE
            WHEN b.window_started <= t - window_span AND coalesce(b.refused_until <= t, true)
            THEN t ELSE b.window_started END,
        refused_until = CASE
            WHEN b.window_started <= t - window_span AND coalesce(b.refused_until <= t, true)
            THEN CASE WHEN p_budget <= 1 THEN t + window_span END
            WHEN b.failures + 1 >= p_budget AND b.refused_until IS NULL THEN t + window_span
            ELSE b.refused_until END
    RETURNING b.failures, b.window_started, b.refused_until, b.failures = p_budget
        INTO o_budget_failures, o_window_started, o_refused_until, o_budget_spent;
END
$$;
