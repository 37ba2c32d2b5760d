-- Which register (or report) found each death: the RetireeStatus of a deceased retiree
-- carries the source of the DeathRecorded that stands and when the hub recorded it (null
-- for the living, and in statuses written before the fields existed). The report splits
-- the deaths by it ("deaths found through the registers").
ALTER TABLE retiree_status
    ADD COLUMN death_source text,
    ADD COLUMN death_recorded_at timestamptz;
