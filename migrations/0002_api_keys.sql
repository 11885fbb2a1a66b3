-- 0002: API keys. The key itself is stored only as a keyed BLAKE2b-256 hash (server pepper);
-- `prefix` and `last4` are kept only to show the masked form (`sk_live_…wxyz`).
-- Shipped migrations are never edited; add a new numbered file instead.

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    key_hash      BLOB    NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL CHECK (prefix IN ('sk_live_', 'sk_test_', 'pk_live_', 'pk_test_')),
    last4         TEXT    NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id     TEXT    NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode          TEXT    NOT NULL CHECK (mode IN ('live', 'test')),
    plan          TEXT    NOT NULL,
    scopes        TEXT    NOT NULL DEFAULT '[]',
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;
CREATE INDEX api_keys_user ON api_keys(user_id, mode);
CREATE INDEX api_keys_revoked ON api_keys(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_expires ON api_keys(expires_at) WHERE expires_at IS NOT NULL;
