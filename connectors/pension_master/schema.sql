-- The Foshan pension master system, as far as lifecert sees it: two business tables, the
-- write functions the master's application calls, and the transactional outbox they
-- write in the same transaction as the business change. Idempotent: `simulator init`
-- runs it on every start.

CREATE SCHEMA IF NOT EXISTS master;

-- 离退休人员: one row per person drawing a pension (re-enrolment overwrites it).
CREATE TABLE IF NOT EXISTS master.retiree (
    person_no          text PRIMARY KEY,        -- 个人编号
    full_name          text NOT NULL,
    birth_date         date NOT NULL,
    insurance_type     text NOT NULL,           -- 110 / 120 / 170
    personnel_class    text NOT NULL,           -- 1 retired, 2 retired cadre
    residence_type     text NOT NULL,           -- 1..6
    district_code      text,                    -- GB/T 2260, Foshan only
    country_code       text,                    -- ISO 3166-1 alpha-2
    start_date         date NOT NULL,           -- first day paid
    monthly_amount_fen bigint NOT NULL,         -- amount at enrolment
    disability_flag    text NOT NULL,           -- 1 / 0
    unit_name          text,                    -- managing unit (government retirees)
    updated_at         timestamptz NOT NULL
);

-- 待遇调整: every change of the monthly amount. No foreign key to retiree: migrated
-- legacy data holds changes for persons enrolled later or never, and lifecert must see
-- them as the master reports them (it rejects them as UNKNOWN_RETIREE itself).
CREATE TABLE IF NOT EXISTS master.pension_amount (
    change_no           bigserial PRIMARY KEY,
    person_no           text NOT NULL,
    amount_fen          bigint NOT NULL,
    previous_amount_fen bigint,
    effective_month     char(6) NOT NULL,       -- YYYYMM
    changed_at          timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pension_amount_person ON master.pension_amount (person_no, change_no);

-- The transactional outbox. `xid` is the writing transaction's id (64-bit, never wraps):
-- readers order by (xid, id) and read only transactions older than every running one,
-- because sequence ids can commit out of order (see connector.py).
CREATE TABLE IF NOT EXISTS master.outbox (
    id           bigserial PRIMARY KEY,
    aggregate_id text NOT NULL,
    event_kind   text NOT NULL,
    payload      jsonb NOT NULL,
    occurred_at  timestamptz NOT NULL,
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS outbox_xid_id ON master.outbox (xid, id);

CREATE OR REPLACE FUNCTION master.retiree_payload(r master.retiree) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'person_no', r.person_no,
        'full_name', r.full_name,
        'birth_date', to_char(r.birth_date, 'YYYYMMDD'),
        'insurance_type', r.insurance_type,
        'personnel_class', r.personnel_class,
        'residence_type', r.residence_type,
        'district_code', r.district_code,
        'country_code', r.country_code,
        'start_date', to_char(r.start_date, 'YYYYMMDD'),
        'monthly_amount_fen', r.monthly_amount_fen,
        'disability_flag', r.disability_flag,
        'unit_name', r.unit_name)
$$;

-- Enrol (or re-enrol) a person: `rec` in the master's own field names (schema as in
-- retiree_payload), `occurred` the time of the change.
CREATE OR REPLACE FUNCTION master.enroll_retiree(rec jsonb, occurred timestamptz DEFAULT now())
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r master.retiree;
    outbox_id bigint;
BEGIN
    INSERT INTO master.retiree AS t (
        person_no, full_name, birth_date, insurance_type, personnel_class, residence_type,
        district_code, country_code, start_date, monthly_amount_fen, disability_flag,
        unit_name, updated_at)
    VALUES (
        rec->>'person_no', rec->>'full_name', to_date(rec->>'birth_date', 'YYYYMMDD'),
        rec->>'insurance_type', rec->>'personnel_class', rec->>'residence_type',
        rec->>'district_code', rec->>'country_code', to_date(rec->>'start_date', 'YYYYMMDD'),
        (rec->>'monthly_amount_fen')::bigint, rec->>'disability_flag', rec->>'unit_name', occurred)
    ON CONFLICT (person_no) DO UPDATE SET
        full_name = EXCLUDED.full_name, birth_date = EXCLUDED.birth_date,
        insurance_type = EXCLUDED.insurance_type, personnel_class = EXCLUDED.personnel_class,
        residence_type = EXCLUDED.residence_type, district_code = EXCLUDED.district_code,
        country_code = EXCLUDED.country_code, start_date = EXCLUDED.start_date,
        monthly_amount_fen = EXCLUDED.monthly_amount_fen,
        disability_flag = EXCLUDED.disability_flag, unit_name = EXCLUDED.unit_name,
        updated_at = EXCLUDED.updated_at
    RETURNING * INTO r;
    INSERT INTO master.outbox (aggregate_id, event_kind, payload, occurred_at)
    VALUES (r.person_no, 'retiree.enrolled', master.retiree_payload(r), occurred)
    RETURNING id INTO outbox_id;
    -- Identical notifications of one transaction are folded into one by PostgreSQL.
    PERFORM pg_notify('master_outbox', '');
    RETURN outbox_id;
END $$;

-- Change a person's monthly amount from a month (YYYYMM) on.
CREATE OR REPLACE FUNCTION master.change_pension_amount(
    person text, amount bigint, month text, occurred timestamptz DEFAULT now())
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    previous bigint;
    outbox_id bigint;
BEGIN
    SELECT p.amount_fen INTO previous FROM master.pension_amount p
     WHERE p.person_no = person ORDER BY p.change_no DESC LIMIT 1;
    IF previous IS NULL THEN
        SELECT r.monthly_amount_fen INTO previous FROM master.retiree r
         WHERE r.person_no = person;
    END IF;
    INSERT INTO master.pension_amount (person_no, amount_fen, previous_amount_fen,
                                       effective_month, changed_at)
    VALUES (person, amount, previous, month, occurred);
    INSERT INTO master.outbox (aggregate_id, event_kind, payload, occurred_at)
    VALUES (person, 'pension.amount_changed',
            jsonb_build_object('person_no', person, 'amount_fen', amount,
                               'effective_month', month, 'previous_amount_fen', previous),
            occurred)
    RETURNING id INTO outbox_id;
    PERFORM pg_notify('master_outbox', '');
    RETURN outbox_id;
END $$;

-- A batch of changes in one transaction, in array order: each element is
-- {"op": "enroll", "at": ..., "record": {...}} or
-- {"op": "change_amount", "at": ..., "person_no": ..., "amount_fen": ..., "effective_month": ...}.
CREATE OR REPLACE FUNCTION master.apply_changes(changes jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb;
    n integer := 0;
BEGIN
    FOR c IN SELECT e.value FROM jsonb_array_elements(changes) WITH ORDINALITY AS e
              ORDER BY e.ordinality LOOP
        n := n + 1;
        CASE c->>'op'
        WHEN 'enroll' THEN
            PERFORM master.enroll_retiree(c->'record', (c->>'at')::timestamptz);
        WHEN 'change_amount' THEN
            PERFORM master.change_pension_amount(
                c->>'person_no', (c->>'amount_fen')::bigint, c->>'effective_month',
                (c->>'at')::timestamptz);
        ELSE
            RAISE EXCEPTION 'change % of the batch: unknown op %', n, c->>'op'
                USING HINT = 'op is "enroll" or "change_amount"';
        END CASE;
    END LOOP;
    RETURN n;
END $$;
