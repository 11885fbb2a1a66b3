-- 0003: JWT signing keys, refresh-token families and the refresh tokens themselves.
-- Shipped migrations are never edited; add a new numbered file instead.

-- Ed25519 signing keys. The private key (32-byte seed) is sealed with XChaCha20-Poly1305 under
-- a key derived from the server pepper, the kid as associated data: the database alone cannot
-- sign. The newest key that is not superseded signs; older keys keep verifying (and stay in the
-- JWKS) until every token they signed has expired.
CREATE TABLE signing_keys (
    kid             TEXT    PRIMARY KEY,
    algorithm       TEXT    NOT NULL DEFAULT 'EdDSA' CHECK (algorithm = 'EdDSA'),
    public_key      BLOB    NOT NULL CHECK (length(public_key) = 32),
    sealed_seed     BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    -- When a newer key took over signing; NULL for the active key.
    superseded_at   INTEGER,
    -- When the key stops being published and accepted (set when superseded or dropped).
    retire_at       INTEGER
) STRICT;

-- One family per sign-in; every rotation stays in the family. Revoking a family ends every
-- refresh token of it and every access token that names it (`sid`).
CREATE TABLE refresh_families (
    id              TEXT    PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    -- The expiry of the newest refresh token: after it nothing of the family can be used.
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoke_reason   TEXT
) STRICT;
CREATE INDEX refresh_families_user ON refresh_families(user_id);
CREATE INDEX refresh_families_expires ON refresh_families(expires_at);

-- Refresh tokens by jti. A token is spent when rotated; `replaced_by` is its successor's jti and
-- `sealed_successor` the successor pair sealed under a pepper-derived key (AD = this jti), kept
-- so an identical retry within the grace window gets the same pair back.
CREATE TABLE refresh_tokens (
    jti              TEXT    PRIMARY KEY,
    family_id        TEXT    NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    spent_at         INTEGER,
    replaced_by      TEXT,
    sealed_successor BLOB
) STRICT;
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
CREATE INDEX refresh_tokens_replaced_by ON refresh_tokens(replaced_by) WHERE replaced_by IS NOT NULL;
