-- 0008: a key's last use moves out of `api_keys` into a narrow table of its own.
-- Shipped migrations are never edited; add a new numbered file instead.
--
-- The server records each busy key's use about once a minute (`keys.last_used_resolution_secs`)
-- and writes the records in batches. In `api_keys` each record rewrote a whole ~150-byte row
-- (hash, prefix, tenant, name…), so a batch dirtied nearly every page of the table: with
-- 100 000 busy keys that was ~15 MB of WAL every 10 s, copied again into the file by the
-- checkpoint. Here a record is ~10 bytes, ~350 to a page: the same batch writes a tenth of it.
-- Only keys that were ever used have a row.
CREATE TABLE api_key_usage (
    key_id        INTEGER PRIMARY KEY REFERENCES api_keys(id) ON DELETE CASCADE,
    last_used_at  INTEGER NOT NULL
) STRICT;

INSERT INTO api_key_usage (key_id, last_used_at)
    SELECT id, last_used_at FROM api_keys WHERE last_used_at IS NOT NULL;

ALTER TABLE api_keys DROP COLUMN last_used_at;
