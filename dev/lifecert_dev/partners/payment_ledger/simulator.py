"""The payment system's ledger, simulated by a PostgreSQL database of its own: the tables
and the intake function ``apply_instructions`` as a payment system would implement the
contract of :mod:`connectors.payment_ledger.intake` (its terms, what it refuses and why),
with reports and outages for the tests and the demo.

Command line (``--dsn`` names the ledger database)::

    python -m lifecert_dev.partners.payment_ledger.simulator init --dsn DSN [--create]
    python -m lifecert_dev.partners.payment_ledger.simulator summary --dsn DSN [--json]
    python -m lifecert_dev.partners.payment_ledger.simulator show --dsn DSN [--retiree ID] \
        [--limit N]
    python -m lifecert_dev.partners.payment_ledger.simulator refuse-connections --dsn DSN
    python -m lifecert_dev.partners.payment_ledger.simulator allow-connections --dsn DSN
    python -m lifecert_dev.partners.payment_ledger.simulator drop --dsn DSN
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from connectors.payment_ledger.intake import (
    KINDS,
    STATES,
    connect,
    public_dsn,
)
from lifecert.summary import yuan

SCHEMA = r"""
-- (PL/pgSQL rather than SQL: a SQL function in a CHECK is planned on every call.)
CREATE OR REPLACE FUNCTION are_periods(periods date[]) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    p date;
BEGIN
    FOREACH p IN ARRAY periods LOOP
        IF extract(day FROM p) <> 1 THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END $$;

-- Every instruction applied, once (event_id is the sender's idempotency key); seq is the
-- order of application.
CREATE TABLE IF NOT EXISTS instruction (
    event_id          text        PRIMARY KEY,
    seq               bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    retiree_id        text        NOT NULL CHECK (retiree_id <> ''),
    kind              text        NOT NULL CHECK (kind IN ('SUSPEND','RESUME','STOP','RECOVER',
                                      'REINSTATE','CANCEL_RECOVERY','SETTLE_ESTATE')),
    effective_period  date        CHECK (extract(day FROM effective_period) = 1),
    reason_code       text,
    backpay_periods   date[]      NOT NULL DEFAULT '{}' CHECK (are_periods(backpay_periods)),
    backpay_fen       bigint      NOT NULL DEFAULT 0 CHECK (backpay_fen >= 0),
    overpaid_periods  date[]      NOT NULL DEFAULT '{}' CHECK (are_periods(overpaid_periods)),
    overpaid_fen      bigint      NOT NULL DEFAULT 0 CHECK (overpaid_fen >= 0),
    instructed_at     timestamptz NOT NULL,
    applied_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    consumer          text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  integer     NOT NULL,
    source_offset     bigint      NOT NULL,
    CHECK ((kind IN ('RECOVER','CANCEL_RECOVERY','SETTLE_ESTATE')) = (effective_period IS NULL))
);
CREATE INDEX IF NOT EXISTS instruction_by_retiree ON instruction (retiree_id, seq);

-- The account the payment system keeps per retiree, derived from its instructions.
-- suspended_from: first period unpaid by the open suspension (on a STOPPED account, by the
-- suspension open when it stopped); resumed_from: first period paid again after the last
-- suspension; stopped_from: first period never paid. backpay_due_fen: back pay to pay;
-- recovery_due_fen: overpayment to recover, for recovery_periods. estate_due_fen: what the
-- estate is owed, for estate_periods. owed_from: after a REINSTATE, the first period the
-- stop had left unpaid (a later RESUME may back-pay those the REINSTATE did not:
-- reinstated_periods).
CREATE TABLE IF NOT EXISTS account (
    retiree_id        text        PRIMARY KEY,
    state             text        NOT NULL CHECK (state IN ('PAYING','SUSPENDED','STOPPED')),
    suspended_from    date,
    resumed_from      date,
    stopped_from      date,
    backpay_due_fen   bigint      NOT NULL DEFAULT 0,
    backpay_periods   integer     NOT NULL DEFAULT 0,
    recovery_due_fen  bigint      NOT NULL DEFAULT 0,
    recovery_periods  date[]      NOT NULL DEFAULT '{}',
    instructions      integer     NOT NULL DEFAULT 0,
    last_event_id     text        NOT NULL,
    opened_at         timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    estate_due_fen    bigint      NOT NULL DEFAULT 0,
    estate_periods    date[]      NOT NULL DEFAULT '{}',
    owed_from         date,
    reinstated_periods date[]     NOT NULL DEFAULT '{}'
);

-- Instructions refused for good, with the payment system's reason.
CREATE TABLE IF NOT EXISTS refusal (
    event_id          text        PRIMARY KEY,
    retiree_id        text        NOT NULL,
    kind              text        NOT NULL,
    code              text        NOT NULL,
    detail            text        NOT NULL,
    consumer          text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  integer     NOT NULL,
    source_offset     bigint      NOT NULL,
    first_refused_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_refused_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    times             integer     NOT NULL DEFAULT 1
);

-- How far each consumer has read each source partition: the offset of the next record,
-- written in the transaction of the instructions it accounts for.
CREATE TABLE IF NOT EXISTS intake_position (
    consumer          text        NOT NULL,
    topic             text        NOT NULL,
    "partition"       integer     NOT NULL,
    next_offset       bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (consumer, topic, "partition")
);

CREATE OR REPLACE FUNCTION period_text(periods date[]) RETURNS text
    LANGUAGE sql IMMUTABLE AS
    $$ SELECT coalesce(string_agg(to_char(p, 'YYYY-MM'), ',' ORDER BY p), '')
         FROM unnest(periods) p $$;

CREATE OR REPLACE FUNCTION apply_instructions(p_consumer text, p_batch jsonb, p_positions jsonb)
RETURNS TABLE (event_id text, outcome text, code text, detail text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    r         record;
    prior     instruction%ROWTYPE;
    acct      account%ROWTYPE;
    consumed  bigint;
    expected  date[];
    bad       date[];
    periods   date[];
    amount    bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('payment-intake/' || p_consumer));
    FOR r IN
        SELECT * FROM jsonb_to_recordset(p_batch) AS x(
            n integer, event_id text, retiree_id text, kind text, effective date,
            reason text, periods date[], amount_fen bigint, instructed_at timestamptz,
            topic text, "partition" integer, "offset" bigint)
        ORDER BY x.n
    LOOP
        event_id := r.event_id; outcome := NULL; code := NULL; detail := NULL;
        periods := coalesce(r.periods, '{}'); amount := coalesce(r.amount_fen, 0);

        SELECT ip.next_offset INTO consumed FROM intake_position ip
         WHERE ip.consumer = p_consumer AND ip.topic = r.topic AND ip."partition" = r."partition";
        IF consumed IS NOT NULL AND r."offset" < consumed THEN
            outcome := 'CONSUMED';
            RETURN NEXT;
            CONTINUE;
        END IF;

        SELECT * INTO prior FROM instruction i WHERE i.event_id = r.event_id;
        IF FOUND THEN
            IF prior.retiree_id = r.retiree_id AND prior.kind = r.kind
               AND prior.effective_period IS NOT DISTINCT FROM r.effective
               AND prior.reason_code IS NOT DISTINCT FROM r.reason
               AND (CASE WHEN r.kind IN ('RECOVER', 'CANCEL_RECOVERY')
                         THEN prior.overpaid_periods = periods AND prior.overpaid_fen = amount
                         ELSE prior.backpay_periods = periods AND prior.backpay_fen = amount END)
            THEN
                outcome := 'DUPLICATE';
            ELSE
                code := 'CONFLICTING_DUPLICATE';
                detail := format(
                    'event %s was applied on %s as %s of %s effective %s (periods [%s], %s fen); '
                    'this one is %s of %s effective %s (periods [%s], %s fen)',
                    r.event_id, prior.applied_at, prior.kind, prior.retiree_id,
                    coalesce(to_char(prior.effective_period, 'YYYY-MM'), '-'),
                    period_text(prior.backpay_periods || prior.overpaid_periods),
                    prior.backpay_fen + prior.overpaid_fen, r.kind, r.retiree_id,
                    coalesce(to_char(r.effective, 'YYYY-MM'), '-'), period_text(periods), amount);
            END IF;
        END IF;

        IF outcome IS NULL AND code IS NULL THEN
            SELECT * INTO acct FROM account a WHERE a.retiree_id = r.retiree_id FOR UPDATE;
            IF NOT FOUND THEN
                acct.retiree_id := r.retiree_id; acct.state := 'PAYING';
                acct.backpay_due_fen := 0; acct.backpay_periods := 0;
                acct.recovery_due_fen := 0; acct.recovery_periods := '{}';
                acct.instructions := 0; acct.opened_at := clock_timestamp();
                acct.estate_due_fen := 0; acct.estate_periods := '{}';
                acct.reinstated_periods := '{}';
            END IF;
            IF acct.state = 'STOPPED' AND r.kind IN ('SUSPEND', 'RESUME', 'STOP') THEN
                code := 'ACCOUNT_STOPPED';
                detail := format('the account of %s is stopped from %s (last instruction %s); '
                    'a stopped pension takes no %s (it is re-opened by REINSTATE only)',
                    r.retiree_id, to_char(acct.stopped_from, 'YYYY-MM'),
                    acct.last_event_id, r.kind);
            ELSIF r.kind IN ('REINSTATE', 'CANCEL_RECOVERY', 'SETTLE_ESTATE')
                  AND acct.state <> 'STOPPED' THEN
                code := 'NOT_STOPPED';
                detail := format('the account of %s is %s, not stopped: %s corrects a stop',
                    r.retiree_id, acct.state, r.kind);
            ELSIF r.kind = 'REINSTATE' THEN
                bad := ARRAY(SELECT p FROM unnest(periods) p
                    WHERE p < least(acct.owed_from,
                                    coalesce(acct.suspended_from, acct.stopped_from))
                       OR p >= r.effective OR p = ANY (acct.estate_periods)
                       OR p = ANY (acct.reinstated_periods) ORDER BY p);
                IF cardinality(bad) > 0 THEN
                    code := 'BACKPAY_PERIODS_MISMATCH';
                    detail := format('back pay for periods [%s] reinstating %s from %s, but '
                        'the stop left unpaid only periods from %s, before %s, and not [%s] '
                        '(paid to the estate)', period_text(bad), r.retiree_id,
                        to_char(r.effective, 'YYYY-MM'),
                        to_char(least(acct.owed_from,
                            coalesce(acct.suspended_from, acct.stopped_from)), 'YYYY-MM'),
                        to_char(r.effective, 'YYYY-MM'), period_text(acct.estate_periods));
                END IF;
            ELSIF r.kind = 'CANCEL_RECOVERY' THEN
                bad := ARRAY(SELECT p FROM unnest(periods) p
                    WHERE NOT p = ANY (acct.recovery_periods) ORDER BY p);
                IF cardinality(bad) > 0 THEN
                    code := 'NOT_RECOVERING';
                    detail := format('periods [%s] of %s are not being recovered '
                        '(recovering [%s])', period_text(bad), r.retiree_id,
                        period_text(acct.recovery_periods));
                END IF;
            ELSIF r.kind = 'SETTLE_ESTATE' THEN
                bad := ARRAY(SELECT p FROM unnest(periods) p
                    WHERE p >= acct.stopped_from OR p = ANY (acct.estate_periods)
                       OR NOT (coalesce(p >= acct.suspended_from, false)
                               OR coalesce(p >= acct.owed_from, false)
                                  AND NOT p = ANY (acct.reinstated_periods))
                    ORDER BY p);
                IF cardinality(bad) > 0 THEN
                    code := 'NOT_OWED_TO_ESTATE';
                    detail := format('periods [%s] of %s are not owed to the estate: the '
                        'account is stopped from %s, suspended from %s, settled [%s] already',
                        period_text(bad), r.retiree_id, to_char(acct.stopped_from, 'YYYY-MM'),
                        coalesce(to_char(acct.suspended_from, 'YYYY-MM'), '-'),
                        period_text(acct.estate_periods));
                END IF;
            ELSIF r.kind = 'SUSPEND' AND acct.state = 'SUSPENDED' THEN
                code := 'ALREADY_SUSPENDED';
                detail := format('the account of %s is suspended from %s already '
                    '(last instruction %s)', r.retiree_id,
                    to_char(acct.suspended_from, 'YYYY-MM'), acct.last_event_id);
            ELSIF r.kind = 'RESUME' AND acct.state <> 'SUSPENDED' THEN
                code := 'NOT_SUSPENDED';
                detail := format('the account of %s is %s, not suspended: its back pay would '
                    'pay periods [%s] that were not held', r.retiree_id, acct.state,
                    period_text(periods));
            ELSIF r.kind = 'RESUME' THEN
                expected := ARRAY(SELECT d::date FROM generate_series(
                    acct.suspended_from::timestamp, r.effective - interval '1 month',
                    interval '1 month') d);
                -- after a REINSTATE, periods the stop left unpaid that it did not pay
                bad := ARRAY(SELECT p FROM unnest(periods) p WHERE NOT p = ANY (expected)
                    AND (acct.owed_from IS NULL OR p < acct.owed_from
                         OR p >= acct.suspended_from OR p = ANY (acct.reinstated_periods)
                         OR p = ANY (acct.estate_periods)));
                IF r.effective < acct.suspended_from OR NOT periods @> expected
                   OR cardinality(bad) > 0 THEN
                    code := 'BACKPAY_PERIODS_MISMATCH';
                    detail := format('back pay for periods [%s] resuming from %s, but the account '
                        'of %s is suspended from %s: the suspended periods are [%s]',
                        period_text(periods), to_char(r.effective, 'YYYY-MM'), r.retiree_id,
                        to_char(acct.suspended_from, 'YYYY-MM'), period_text(expected));
                END IF;
            ELSIF r.kind = 'RECOVER' AND acct.state <> 'STOPPED' THEN
                code := 'NOT_STOPPED';
                detail := format('the account of %s is %s, not stopped: nothing was paid after '
                    'an entitlement ended', r.retiree_id, acct.state);
            ELSIF r.kind = 'RECOVER' THEN
                bad := ARRAY(SELECT p FROM unnest(periods) p
                    WHERE p < acct.stopped_from
                       OR (acct.suspended_from IS NOT NULL AND p >= acct.suspended_from)
                       OR p = ANY (acct.recovery_periods) ORDER BY p);
                IF cardinality(bad) > 0 THEN
                    code := 'NOT_OVERPAID';
                    detail := format('periods [%s] of %s were not overpaid: the account is stopped '
                        'from %s, suspended from %s, recovering [%s] already', period_text(bad),
                        r.retiree_id, to_char(acct.stopped_from, 'YYYY-MM'),
                        coalesce(to_char(acct.suspended_from, 'YYYY-MM'), '-'),
                        period_text(acct.recovery_periods));
                END IF;
            END IF;
        END IF;

        IF code IS NOT NULL THEN
            outcome := 'REFUSED';
            INSERT INTO refusal AS f (event_id, retiree_id, kind, code, detail, consumer,
                                      source_topic, source_partition, source_offset)
            VALUES (r.event_id, r.retiree_id, r.kind, code, detail, p_consumer,
                    r.topic, r."partition", r."offset")
            ON CONFLICT (event_id) DO UPDATE SET
                code = excluded.code, detail = excluded.detail,
                last_refused_at = clock_timestamp(), times = f.times + 1;
        ELSIF outcome IS NULL THEN
            INSERT INTO instruction (event_id, retiree_id, kind, effective_period, reason_code,
                backpay_periods, backpay_fen, overpaid_periods, overpaid_fen, instructed_at,
                consumer, source_topic, source_partition, source_offset)
            VALUES (r.event_id, r.retiree_id, r.kind, r.effective, r.reason,
                CASE WHEN r.kind IN ('RECOVER', 'CANCEL_RECOVERY') THEN '{}' ELSE periods END,
                CASE WHEN r.kind IN ('RECOVER', 'CANCEL_RECOVERY') THEN 0 ELSE amount END,
                CASE WHEN r.kind IN ('RECOVER', 'CANCEL_RECOVERY') THEN periods ELSE '{}' END,
                CASE WHEN r.kind IN ('RECOVER', 'CANCEL_RECOVERY') THEN amount ELSE 0 END,
                r.instructed_at, p_consumer, r.topic, r."partition", r."offset");
            CASE r.kind
                WHEN 'SUSPEND' THEN
                    acct.state := 'SUSPENDED'; acct.suspended_from := r.effective;
                WHEN 'RESUME' THEN
                    acct.state := 'PAYING'; acct.suspended_from := NULL;
                    acct.resumed_from := r.effective; acct.owed_from := NULL;
                    acct.backpay_due_fen := acct.backpay_due_fen + amount;
                    acct.backpay_periods := acct.backpay_periods + cardinality(periods);
                WHEN 'REINSTATE' THEN
                    acct.owed_from := least(acct.owed_from,
                                            coalesce(acct.suspended_from, acct.stopped_from));
                    acct.state := 'PAYING'; acct.suspended_from := NULL;
                    acct.stopped_from := NULL; acct.resumed_from := r.effective;
                    acct.reinstated_periods := ARRAY(
                        SELECT DISTINCT p FROM unnest(acct.reinstated_periods || periods) p
                        ORDER BY p);
                    acct.backpay_due_fen := acct.backpay_due_fen + amount;
                    acct.backpay_periods := acct.backpay_periods + cardinality(periods);
                WHEN 'CANCEL_RECOVERY' THEN
                    acct.recovery_due_fen := acct.recovery_due_fen - amount;
                    acct.recovery_periods := ARRAY(
                        SELECT p FROM unnest(acct.recovery_periods) p
                        WHERE NOT p = ANY (periods) ORDER BY p);
                WHEN 'SETTLE_ESTATE' THEN
                    acct.estate_due_fen := acct.estate_due_fen + amount;
                    acct.estate_periods := ARRAY(
                        SELECT DISTINCT p FROM unnest(acct.estate_periods || periods) p
                        ORDER BY p);
                WHEN 'STOP' THEN
                    acct.state := 'STOPPED'; acct.stopped_from := r.effective;
                WHEN 'RECOVER' THEN
                    acct.recovery_due_fen := acct.recovery_due_fen + amount;
                    acct.recovery_periods := ARRAY(
                        SELECT DISTINCT p FROM unnest(acct.recovery_periods || periods) p
                        ORDER BY p);
            END CASE;
            acct.instructions := acct.instructions + 1;
            acct.last_event_id := r.event_id;
            acct.updated_at := clock_timestamp();
            INSERT INTO account AS a VALUES (acct.*)
            ON CONFLICT (retiree_id) DO UPDATE SET
                state = excluded.state, suspended_from = excluded.suspended_from,
                resumed_from = excluded.resumed_from, stopped_from = excluded.stopped_from,
                backpay_due_fen = excluded.backpay_due_fen,
                backpay_periods = excluded.backpay_periods,
                recovery_due_fen = excluded.recovery_due_fen,
                recovery_periods = excluded.recovery_periods,
                instructions = excluded.instructions, last_event_id = excluded.last_event_id,
                updated_at = excluded.updated_at, estate_due_fen = excluded.estate_due_fen,
                estate_periods = excluded.estate_periods, owed_from = excluded.owed_from,
                reinstated_periods = excluded.reinstated_periods;
            outcome := 'APPLIED';
        END IF;
        RETURN NEXT;
    END LOOP;

    INSERT INTO intake_position AS ip (consumer, topic, "partition", next_offset, updated_at)
    SELECT p_consumer, x.topic, x."partition", x.next_offset, clock_timestamp()
      FROM jsonb_to_recordset(p_positions) AS x(topic text, "partition" integer, next_offset bigint)
    ON CONFLICT (consumer, topic, "partition") DO UPDATE SET
        next_offset = greatest(ip.next_offset, excluded.next_offset),
        updated_at = excluded.updated_at;
END
$fn$;
"""

class LedgerError(RuntimeError):
    """The ledger database cannot be reached or set up; the message says what to do."""


def database_name(dsn: str) -> str:
    name = psycopg2.extensions.parse_dsn(dsn).get("dbname")
    if not name:
        raise LedgerError(f"the ledger DSN names no database (dbname): {public_dsn(dsn)}")
    return name


def _maintenance(dsn: str) -> psycopg2.extensions.connection:
    """An autocommit connection to the server's ``postgres`` database (CREATE/DROP/ALTER
    DATABASE cannot run inside the database they change)."""
    conn = connect(psycopg2.extensions.make_dsn(dsn, dbname="postgres"))
    conn.autocommit = True
    return conn


def _admin(dsn: str, *statements: sql.Composable) -> None:
    try:
        conn = _maintenance(dsn)
    except psycopg2.Error as exc:
        raise LedgerError(f"cannot reach the PostgreSQL server of {public_dsn(dsn)}: "
                          f"{str(exc).strip()}") from exc
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def create_database(dsn: str) -> bool:
    """Create the ledger's database if it does not exist; True when created."""
    name = database_name(dsn)
    conn = _maintenance(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        conn.close()


def drop_database(dsn: str) -> None:
    """Drop the ledger's database (its connections are ended first); no error when absent."""
    _admin(dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(database_name(dsn))))


def set_connections(dsn: str, allowed: bool) -> None:
    """Refuse (``allowed=False``: an outage, sessions in it are ended) or allow connections
    to the ledger's database. Only this database is affected, never the server."""
    name = sql.Identifier(database_name(dsn))
    statements = [sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        name, sql.SQL("true" if allowed else "false"))]
    if not allowed:
        statements.append(sql.SQL(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = {} AND pid <> pg_backend_pid()").format(
                sql.Literal(database_name(dsn))))
    _admin(dsn, *statements)


def init_ledger(dsn: str, *, create: bool = False, connector_role: str | None = None) -> None:
    """Create the ledger's tables and intake function (idempotent). With
    ``connector_role``, close the database to PUBLIC and let that role (lifecert's sink)
    connect and run the intake: the rows the intake function reads and writes, no DELETE,
    no DDL, nothing else."""
    if create:
        create_database(dsn)
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('payment-ledger/init'))")
            cur.execute(SCHEMA)
            if connector_role is not None:
                role = sql.Identifier(connector_role)
                db = sql.Identifier(database_name(dsn))
                for statement in (
                    "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
                    "GRANT CONNECT ON DATABASE {db} TO {role}",
                    "GRANT SELECT, INSERT, UPDATE ON instruction, account, refusal, "
                    "intake_position TO {role}",
                ):
                    cur.execute(sql.SQL(statement).format(db=db, role=role))
    finally:
        conn.close()


# ------------------------------------------------------------------------ reports


def summary(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    """The ledger in figures: instructions per kind, accounts per state, what is due,
    refusals per code, intake positions."""
    with conn.cursor() as cur:
        cur.execute("""
            SELECT kind, count(*), coalesce(sum(backpay_fen), 0),
                   coalesce(sum(overpaid_fen), 0),
                   coalesce(sum(cardinality(backpay_periods) + cardinality(overpaid_periods)), 0)
              FROM instruction GROUP BY kind""")
        kinds = {k: {"count": n, "backpay_fen": int(b), "overpaid_fen": int(o),
                     "periods": int(p)} for k, n, b, o, p in cur.fetchall()}
        cur.execute("""
            SELECT state, count(*), coalesce(sum(backpay_due_fen), 0),
                   coalesce(sum(recovery_due_fen), 0), coalesce(sum(estate_due_fen), 0)
              FROM account GROUP BY state""")
        states = {s: {"accounts": n, "backpay_due_fen": int(b), "recovery_due_fen": int(r),
                      "estate_due_fen": int(e)}
                  for s, n, b, r, e in cur.fetchall()}
        cur.execute("SELECT code, count(*) FROM refusal GROUP BY code ORDER BY code")
        refusals = dict(cur.fetchall())
        cur.execute('SELECT consumer, topic, "partition", next_offset FROM intake_position '
                    'ORDER BY 1, 2, 3')
        positions = [{"consumer": c, "topic": t, "partition": p, "next_offset": o}
                     for c, t, p, o in cur.fetchall()]
    conn.rollback()
    return {
        "instructions": {k: kinds.get(k, {"count": 0, "backpay_fen": 0, "overpaid_fen": 0,
                                           "periods": 0}) for k in KINDS},
        "accounts": {s: states.get(s, {"accounts": 0, "backpay_due_fen": 0,
                                       "recovery_due_fen": 0, "estate_due_fen": 0})
                     for s in STATES},
        "refusals": refusals,
        "positions": positions,
    }


def render_summary(data: dict[str, Any]) -> str:
    lines = ["instructions applied", f"  {'kind':<15} {'count':>9} {'paid (yuan)':>18} "
             f"{'overpaid (yuan)':>18}"]
    for kind, row in data["instructions"].items():
        lines.append(f"  {kind:<15} {row['count']:>9,} {yuan(row['backpay_fen']):>18} "
                     f"{yuan(row['overpaid_fen']):>18}")
    lines += ["accounts", f"  {'state':<10} {'accounts':>9} {'back pay due':>18} "
              f"{'to recover':>18} {'estate due':>18}"]
    for state, row in data["accounts"].items():
        lines.append(f"  {state:<10} {row['accounts']:>9,} {yuan(row['backpay_due_fen']):>18} "
                     f"{yuan(row['recovery_due_fen']):>18} {yuan(row['estate_due_fen']):>18}")
    refused = ", ".join(f"{code} {n:,}" for code, n in data["refusals"].items()) or "none"
    lines.append(f"refusals: {refused}")
    for p in data["positions"]:
        lines.append(f"intake {p['consumer']}: {p['topic']}[{p['partition']}] next offset "
                     f"{p['next_offset']:,}")
    return "\n".join(lines)


def _period(value: date | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m")


def _periods(values: Sequence[date]) -> str:
    return ",".join(v.strftime("%Y-%m") for v in values)


def show(conn: psycopg2.extensions.connection, retiree: str | None, limit: int) -> str:
    """One retiree's account, instructions and refusals; or the latest instructions and
    refusals of the whole ledger."""
    where, params = ("WHERE retiree_id = %s", (retiree,)) if retiree else ("", ())
    lines: list[str] = []
    with conn.cursor() as cur:
        if retiree:
            cur.execute("SELECT state, suspended_from, resumed_from, stopped_from, "
                        "backpay_due_fen, recovery_due_fen, recovery_periods, instructions "
                        "FROM account WHERE retiree_id = %s", (retiree,))
            row = cur.fetchone()
            if row is None:
                lines.append(f"account {retiree}: none (no instruction applied)")
            else:
                lines.append(
                    f"account {retiree}: {row[0]}, suspended from {_period(row[1])}, resumed "
                    f"from {_period(row[2])}, stopped from {_period(row[3])}, back pay due "
                    f"{yuan(row[4])} yuan, to recover {yuan(row[5])} yuan "
                    f"[{_periods(row[6])}], {row[7]} instructions")
        cur.execute(
            "SELECT seq, event_id, retiree_id, kind, effective_period, backpay_periods, "
            "backpay_fen, overpaid_periods, overpaid_fen, applied_at FROM instruction "
            f"{where} ORDER BY seq DESC LIMIT %s", (*params, limit))
        rows = cur.fetchall()
        lines.append(f"instructions ({len(rows)} latest first)")
        for seq, eid, rid, kind, eff, bp, bf, op, of, at in rows:
            money = (f" back pay [{_periods(bp)}] {yuan(bf)} yuan" if kind == "RESUME" else
                     f" overpaid [{_periods(op)}] {yuan(of)} yuan" if kind == "RECOVER" else "")
            lines.append(f"  #{seq} {at:%Y-%m-%d %H:%M:%S} {kind:<7} {rid} from "
                         f"{_period(eff)}{money}  ({eid})")
        cur.execute(f"SELECT event_id, retiree_id, kind, code, detail, times FROM refusal "
                    f"{where} ORDER BY last_refused_at DESC LIMIT %s", (*params, limit))
        refused = cur.fetchall()
        lines.append(f"refusals ({len(refused)})")
        for eid, rid, kind, code, detail, times in refused:
            lines.append(f"  {kind} {rid} {code} x{times}: {detail}  ({eid})")
    conn.rollback()
    return "\n".join(lines)


# --------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lifecert_dev.partners.payment_ledger.simulator",
        description="The payment system's ledger (a PostgreSQL database), simulated.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text)
        p.add_argument("--dsn", required=True, help="the ledger database, e.g. "
                       "postgresql://lifecert@127.0.0.1:15432/payledger")
        return p

    init = action("init", "create the ledger's tables and intake function (idempotent)")
    init.add_argument("--create", action="store_true",
                      help="create the database first when it does not exist")
    init.add_argument("--connector-role", help="the PostgreSQL role of lifecert's sink: may "
                      "connect and run the intake, nothing else")
    action("summary", "instructions, accounts, refusals and intake positions").add_argument(
        "--json", action="store_true", help="machine-readable output")
    shown = action("show", "one retiree's account, or the latest instructions and refusals")
    shown.add_argument("--retiree", help="retiree id")
    shown.add_argument("--limit", type=int, default=20, help="rows per list (default 20)")
    action("refuse-connections", "an outage: refuse connections, end the open sessions")
    action("allow-connections", "end the outage")
    action("drop", "drop the ledger's database")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "init":
            init_ledger(args.dsn, create=args.create, connector_role=args.connector_role)
            print(f"payment ledger ready in {public_dsn(args.dsn)}", file=sys.stderr)
        elif args.action == "refuse-connections":
            set_connections(args.dsn, False)
        elif args.action == "allow-connections":
            set_connections(args.dsn, True)
        elif args.action == "drop":
            drop_database(args.dsn)
        else:
            conn = connect(args.dsn)
            try:
                if args.action == "summary":
                    data = summary(conn)
                    print(json.dumps(data, indent=2) if args.json else render_summary(data))
                else:
                    print(show(conn, args.retiree, args.limit))
            finally:
                conn.close()
    except (LedgerError, psycopg2.Error) as exc:
        text = str(exc).strip()
        print(f"payment ledger ({public_dsn(args.dsn)}): {text}", file=sys.stderr)
        if "does not exist" in text and args.action != "init":
            print("  create it with: python -m lifecert_dev.partners.payment_ledger.simulator init "
                  "--create --dsn DSN", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
