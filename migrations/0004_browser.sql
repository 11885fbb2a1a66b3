-- 0004: browser sign-in — magic links, brands and customer portal tokens.
-- Sessions of every kind already live in `sessions` (0001). Tokens are stored only as keyed hashes.

CREATE TABLE magic_links (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB    NOT NULL UNIQUE,
    email       TEXT    NOT NULL COLLATE NOCASE,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    ip          TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
CREATE INDEX magic_links_email ON magic_links(email);
CREATE INDEX magic_links_expires ON magic_links(expires_at);

-- A workspace inside a tenant (the tickets contract's "brand").
CREATE TABLE brands (
    id          TEXT    PRIMARY KEY,
    tenant_id   TEXT    NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    slug        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, slug)
) STRICT;

-- A customer of a brand, signed in to the app's portal by a `pt_` token.
CREATE TABLE portal_tokens (
    id              INTEGER PRIMARY KEY,
    token_hash      BLOB    NOT NULL UNIQUE,
    brand_id        TEXT    NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    tenant_id       TEXT    NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode            TEXT    NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test')),
    customer_email  TEXT    NOT NULL,
    customer_name   TEXT,
    issued_by       TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
) STRICT;
CREATE INDEX portal_tokens_expires ON portal_tokens(expires_at);
CREATE INDEX portal_tokens_brand ON portal_tokens(brand_id);
