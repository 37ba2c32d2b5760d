-- A CONFLICT names the fields that differ from the earlier submission (issue 18): each
-- accepted item keeps one short digest per field, sha-256 of the event id, the field's
-- name and its value (the values themselves are not kept; the event id salts the digests
-- so that two rows cannot be compared field by field). Rows accepted before this
-- migration have none: their CONFLICT names the key only.
ALTER TABLE api_accepted_events ADD COLUMN field_digests jsonb;
