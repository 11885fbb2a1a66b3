-- 0009: a covering index for the verification look-up by hash.
-- Shipped migrations are never edited; add a new numbered file instead.
--
-- A key the server's cache does not hold is read by its keyed hash. Through the unique index on
-- `key_hash` that is two b-tree descents (the index, then the table by rowid), each page of
-- which a reader may have to fetch again after any commit. This index holds every column the
-- look-up reads, so it is one descent: +11 % for a verify that misses the cache. The price is
-- space (about 120 bytes a key: 12 MB for 100 000 keys) and one more index to update when a
-- key is created, revoked or expired early, which are rare.
CREATE UNIQUE INDEX api_keys_verify ON api_keys(key_hash, id, prefix, last4, user_id, tenant_id,
    mode, plan, scopes, name, created_at, expires_at, revoked_at);
