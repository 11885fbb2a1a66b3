-- 0005: handshake sign-in data. Pending handshakes (60 s, single use) live in memory only.
-- Shipped migrations are never edited; add a new numbered file instead.

-- When the tenant's static key was registered or last rotated.
ALTER TABLE tenants ADD COLUMN key_updated_at INTEGER;

-- Secrets, encrypted with the tenant data key; tenant, mode and name are the associated data.
CREATE TABLE secrets (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT    NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode        TEXT    NOT NULL CHECK (mode IN ('live', 'test')),
    name        TEXT    NOT NULL,
    ciphertext  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, mode, name)
) STRICT;

-- Runs started by a signed-in tenant; each has one `run` session (the dst_run_ token).
CREATE TABLE runs (
    id          TEXT    PRIMARY KEY,
    tenant_id   TEXT    NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode        TEXT    NOT NULL CHECK (mode IN ('live', 'test')),
    workflow    TEXT    NOT NULL,
    session_id  INTEGER UNIQUE REFERENCES sessions(id) ON DELETE SET NULL,
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX runs_tenant ON runs(tenant_id, mode, created_at);
CREATE INDEX runs_expires ON runs(expires_at);

-- Webhook callbacks received for a run, encrypted with the tenant data key.
CREATE TABLE run_events (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    received_at   INTEGER NOT NULL,
    content_type  TEXT,
    ciphertext    BLOB    NOT NULL
) STRICT;
CREATE INDEX run_events_run ON run_events(run_id, id);
