-- The campaign's counters kept as a table (issue 15 item 4: the dashboard's first view
-- under 1 s with 1,000,000 retirees). The view campaign_counters grouped every
-- retiree_status row of the cycle at each read (about 3.5 s at 1M); it now reads this
-- table, which holds one row per group (policy, district, residence, status, channel,
-- local completion day) with its number of retirees: a few hundred rows per cycle.
--
-- The table is kept by triggers on retiree_status, so it changes in the very transaction
-- that changes the statuses (the projections' batch, with its offsets: as an event
-- store's tracking record is written in the projection's own transaction), whoever
-- writes them: the projections' merge, `projections rebuild`, erasure, seeding tools.
-- A group whose count falls to 0 keeps its row at 0 until the next reset; the view
-- hides it, as a GROUP BY over the rows never shows an empty group.
CREATE TABLE campaign_counts (
    policy        text   NOT NULL,
    district      text,
    residence     text   NOT NULL,
    status        text   NOT NULL,
    channel       text,
    completed_day date,
    retirees      bigint NOT NULL,
    CONSTRAINT campaign_counts_group UNIQUE NULLS NOT DISTINCT
        (policy, district, residence, status, channel, completed_day)
);

-- Each trigger adds its statement's rows to their groups (+1 each row after, -1 each row
-- before), in the order of the groups' key, so that two writers at once take the
-- counters' row locks in the same order (no deadlock). (A transition table is seen only
-- by its trigger's own function: hence one statement in each.)
CREATE FUNCTION campaign_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_counts AS c
        (policy, district, residence, status, channel, completed_day, retirees)
    SELECT policy, district, residence, status, completed_by,
           (completed_at AT TIME ZONE 'Asia/Shanghai')::date, count(*)
    FROM status_new
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ON CONSTRAINT campaign_counts_group
    DO UPDATE SET retirees = c.retirees + excluded.retirees;
    RETURN NULL;
END
$$;

CREATE FUNCTION campaign_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_counts AS c
        (policy, district, residence, status, channel, completed_day, retirees)
    SELECT policy, district, residence, status, completed_by,
           (completed_at AT TIME ZONE 'Asia/Shanghai')::date, sum(n)
    FROM (SELECT policy, district, residence, status, completed_by, completed_at, 1 AS n
          FROM status_new
          UNION ALL
          SELECT policy, district, residence, status, completed_by, completed_at, -1
          FROM status_old) AS rows
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ON CONSTRAINT campaign_counts_group
    DO UPDATE SET retirees = c.retirees + excluded.retirees;
    RETURN NULL;
END
$$;

CREATE FUNCTION campaign_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_counts AS c
        (policy, district, residence, status, channel, completed_day, retirees)
    SELECT policy, district, residence, status, completed_by,
           (completed_at AT TIME ZONE 'Asia/Shanghai')::date, -count(*)
    FROM status_old
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ON CONSTRAINT campaign_counts_group
    DO UPDATE SET retirees = c.retirees + excluded.retirees;
    RETURN NULL;
END
$$;

CREATE FUNCTION campaign_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaign_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER campaign_counts_on_insert AFTER INSERT ON retiree_status
    REFERENCING NEW TABLE AS status_new
    FOR EACH STATEMENT EXECUTE FUNCTION campaign_counts_inserted();
CREATE TRIGGER campaign_counts_on_update AFTER UPDATE ON retiree_status
    REFERENCING OLD TABLE AS status_old NEW TABLE AS status_new
    FOR EACH STATEMENT EXECUTE FUNCTION campaign_counts_updated();
CREATE TRIGGER campaign_counts_on_delete AFTER DELETE ON retiree_status
    REFERENCING OLD TABLE AS status_old
    FOR EACH STATEMENT EXECUTE FUNCTION campaign_counts_deleted();
CREATE TRIGGER campaign_counts_on_truncate AFTER TRUNCATE ON retiree_status
    FOR EACH STATEMENT EXECUTE FUNCTION campaign_counts_truncated();

-- What the read models hold already.
INSERT INTO campaign_counts
    (policy, district, residence, status, channel, completed_day, retirees)
SELECT policy, district, residence, status, completed_by,
       (completed_at AT TIME ZONE 'Asia/Shanghai')::date, count(*)
FROM retiree_status
GROUP BY 1, 2, 3, 4, 5, 6;

-- The same columns, types and rows as before (0001), read from the counters.
CREATE OR REPLACE VIEW campaign_counters AS
SELECT policy,
       district,
       residence,
       status,
       channel,
       completed_day,
       retirees
FROM campaign_counts
WHERE retirees <> 0;
