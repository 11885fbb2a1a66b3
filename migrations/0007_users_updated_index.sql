-- 0007: an index on `users.updated_at`, for the server's change poll.
-- Shipped migrations are never edited; add a new numbered file instead.
--
-- Once a second the server asks which users changed since its last look (disabled, re-enabled,
-- password or rights changed, by the CLI in another process too) and drops their cached API
-- keys. Without the index that question scans the whole table.
CREATE INDEX users_updated ON users(updated_at);
