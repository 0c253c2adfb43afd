-- Secrets the server makes once and every replica shares (the key that
-- seals compaction items). Times are Unix milliseconds.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
