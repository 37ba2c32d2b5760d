-- Issue 11 item 3, second look (lifecert/api/lockouts.py):
--
-- 1. A role that acts for the public (the portal) has a failure budget per client address
--    (agency, client) that refuses only that address once spent; its agency-wide count
--    (client '') never refuses (any visitor could otherwise shut the portal for everyone)
--    and only raises the SecurityAlert, once per window, when it reaches its threshold.
--    A partner's budget stays agency-wide (client '') and refuses the agency.
-- 2. The SecurityAlert is recorded in api_pending_alerts by the same transaction that
--    spent the budget, and deleted only once the broker acknowledged it
--    (lockouts.publish_pending), so that a broker away at that moment loses no alert.

ALTER TABLE api_agency_failure_budgets ADD COLUMN client text NOT NULL DEFAULT '';
ALTER TABLE api_agency_failure_budgets DROP CONSTRAINT api_agency_failure_budgets_pkey;
ALTER TABLE api_agency_failure_budgets ADD PRIMARY KEY (agency, client);

CREATE TABLE api_pending_alerts (
    agency         text        NOT NULL,
    window_started timestamptz NOT NULL,
    window_seconds double precision NOT NULL,
    failures       integer     NOT NULL,
    budget         integer     NOT NULL,
    refused_until  timestamptz,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency, window_started)
);

DROP FUNCTION api_second_factor_failed(text, text, text, integer, double precision, integer,
                                       double precision);

-- One wrong second factor: counts it for the caller's key (as in 0003), and against the
-- budget of (agency, client): `budget` failures within window_seconds refuse that key for
-- window_seconds. With a client (a public-front role), it is also counted agency-wide
-- (client ''), where reaching p_alert_at raises the alert and refuses nothing.
-- o_budget_spent is true for exactly one call per window that raises the alert (the
-- partner's spent budget, or the public agency-wide threshold reached), and that call's
-- transaction records the pending alert.
CREATE FUNCTION api_second_factor_failed(
    p_subject text, p_agency text, p_client text,
    p_attempts integer, p_lock_seconds double precision,
    p_budget integer, p_window_seconds double precision, p_alert_at integer,
    OUT o_key_failures integer, OUT o_locked_until timestamptz,
    OUT o_budget_failures integer, OUT o_window_started timestamptz,
    OUT o_refused_until timestamptz, OUT o_budget_spent boolean
) LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := now();
    lock_span interval := make_interval(secs => p_lock_seconds);
    window_span interval := make_interval(secs => p_window_seconds);
    a_failures integer;
    a_started timestamptz;
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

    INSERT INTO api_agency_failure_budgets AS b
        (agency, client, failures, window_started, refused_until)
    VALUES (p_agency, p_client, 1, t, CASE WHEN p_budget <= 1 THEN t + window_span END)
    ON CONFLICT (agency, client) DO UPDATE SET
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

    IF p_client <> '' THEN
        -- Agency-wide, behind a public front: counted, never refused.
        INSERT INTO api_agency_failure_budgets AS b
            (agency, client, failures, window_started, refused_until)
        VALUES (p_agency, '', 1, t, NULL)
        ON CONFLICT (agency, client) DO UPDATE SET
            failures = CASE WHEN b.window_started <= t - window_span THEN 1
                            ELSE b.failures + 1 END,
            window_started = CASE WHEN b.window_started <= t - window_span THEN t
                                  ELSE b.window_started END,
            refused_until = NULL
        RETURNING b.failures, b.window_started INTO a_failures, a_started;
        o_budget_spent := a_failures = p_alert_at;
        IF o_budget_spent THEN
            INSERT INTO api_pending_alerts
                (agency, window_started, window_seconds, failures, budget, refused_until)
            VALUES (p_agency, a_started, p_window_seconds, a_failures, p_alert_at, NULL)
            ON CONFLICT DO NOTHING;
        END IF;
    ELSIF o_budget_spent THEN
        INSERT INTO api_pending_alerts
            (agency, window_started, window_seconds, failures, budget, refused_until)
        VALUES (p_agency, o_window_started, p_window_seconds, o_budget_failures, p_budget,
                o_refused_until)
        ON CONFLICT DO NOTHING;
    END IF;
END
$$;
