-- The retiree's name as the events topic carries it: sealed under the retiree's data key
-- (lifecert.events.personal; "lcp1.<key id>.<ciphertext>"), never in the clear. Shown only
-- through the key store (lifecert.api.directory.display_name); `lifecert erase` destroys
-- the key and clears this column. NULL for an enrollment whose name was not sealed.
ALTER TABLE api_retiree_directory ADD COLUMN name_sealed text
    CHECK (name_sealed ~ '^lcp1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+$');
