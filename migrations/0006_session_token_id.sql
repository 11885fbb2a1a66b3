-- 0006: session tokens carry their row id; `token_hash` loses its UNIQUE index.
-- Shipped migrations are never edited; add a new numbered file instead.
--
-- A session token is now `dst_sess_`/`dst_run_` + 11 base62 characters of the row id + 32 random
-- ones. A look-up reads the row by primary key and compares the keyed hash of the whole token,
-- so the UNIQUE index on `token_hash` (random keys: deleting expired rows in expiry order dirtied
-- one different index page per row) is no longer needed.
--
-- SQLite cannot drop a UNIQUE constraint, so the table is rebuilt by the procedure of
-- https://www.sqlite.org/lang_altertable.html#otheralter: foreign keys are off while migrations
-- run and are checked before the migration commits (`runs.session_id` points here; rows keep
-- their ids, so it stays valid). No trigger or view refers to `sessions`.
--
-- Sessions made before this migration keep working: their ids are below 2^40 and their tokens do
-- not carry them, so a partial index still finds them by hash. Every new session gets an id of
-- 2^40 or more (the store picks it), stays out of that index, and costs it nothing to insert or
-- delete. The index empties as the old sessions expire and are cleaned up.
--
-- AUTOINCREMENT: an id is never given twice, even after the newest session is deleted (ids
-- also key in-memory state, such as a handshake session's live keys, until a sweep drops it).

CREATE TABLE new_sessions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash       BLOB    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('browser', 'handshake', 'run')),
    user_id          INTEGER REFERENCES users(id) ON DELETE CASCADE,
    tenant_id        TEXT    REFERENCES tenants(id) ON DELETE CASCADE,
    mode             TEXT    NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test')),
    sealed_key       BLOB,
    user_agent       TEXT,
    ip               TEXT,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    idle_expires_at  INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER
) STRICT;

INSERT INTO new_sessions (id, token_hash, kind, user_id, tenant_id, mode, sealed_key, user_agent,
                          ip, created_at, last_seen_at, idle_expires_at, expires_at, revoked_at)
SELECT id, token_hash, kind, user_id, tenant_id, mode, sealed_key, user_agent,
       ip, created_at, last_seen_at, idle_expires_at, expires_at, revoked_at
FROM sessions;

DROP TABLE sessions;
ALTER TABLE new_sessions RENAME TO sessions;

CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX sessions_idle ON sessions(idle_expires_at);
CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
-- Tokens issued before 0006 (ids below 2^40 = 1099511627776) are found by hash.
CREATE INDEX sessions_legacy_token ON sessions(token_hash) WHERE id < 1099511627776;
