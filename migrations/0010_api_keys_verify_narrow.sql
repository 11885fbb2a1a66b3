-- 0010: the verification index holds only what a verification reads.
-- Shipped migrations are never edited; add a new numbered file instead.
--
-- 0009's covering index also held the key's display name, prefix, last four characters and
-- creation time, which a verification never reads. An index b-tree keeps whole entries in its
-- inner pages too, so those columns cost space at every level. Without them an entry is about
-- 80 bytes instead of 130: for 100 000 keys, 2 183 leaf pages instead of 2 901 and 55 inner
-- pages instead of 89 (still four levels), so the pages a cache miss walks are more often in
-- the readers' page caches, and a miss decodes four columns fewer. +4.5 % measured.
DROP INDEX api_keys_verify;
CREATE UNIQUE INDEX api_keys_verify ON api_keys(key_hash, id, user_id, tenant_id, mode, plan,
    scopes, expires_at, revoked_at);
