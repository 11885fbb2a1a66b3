-- 0001: users, tenants, memberships, sessions (every kind, one table) and the audit log.
-- Shipped migrations are never edited; add a new numbered file instead.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    username        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    email           TEXT    UNIQUE COLLATE NOCASE,
    password_hash   TEXT,
    is_admin        INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    permissions     TEXT    NOT NULL DEFAULT '[]',
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_login_at   INTEGER
) STRICT;

CREATE TABLE tenants (
    id                  TEXT    PRIMARY KEY,
    name                TEXT    NOT NULL,
    slug                TEXT    NOT NULL UNIQUE,
    static_public_key   BLOB,
    wrapped_dek         BLOB,
    created_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE memberships (
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT    NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, tenant_id)
) STRICT;
CREATE INDEX memberships_tenant ON memberships(tenant_id);

-- Browser, handshake and run sessions. The token is stored only as a keyed hash.
CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    token_hash       BLOB    NOT NULL UNIQUE,
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
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX sessions_idle ON sessions(idle_expires_at);
CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    outcome     TEXT    NOT NULL DEFAULT 'success',
    actor       TEXT,
    tenant_id   TEXT,
    ip          TEXT,
    detail      TEXT
) STRICT;
CREATE INDEX audit_events_at ON audit_events(at);

INSERT INTO tenants (id, name, slug, created_at)
VALUES ('ten_' || lower(hex(randomblob(8))), 'Default', 'default', unixepoch());
