-- Maniac gateway schema (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    previous_response_id TEXT,
    status TEXT NOT NULL,
    background BOOLEAN NOT NULL,
    body TEXT NOT NULL,
    run_request TEXT,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX responses_queue ON responses (status, created_at)
    WHERE background;

CREATE TABLE response_items (
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    kind SMALLINT NOT NULL, -- 0 input, 1 output
    position INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (response_id, kind, position)
);

CREATE INDEX response_items_by_id ON response_items (item_id);

CREATE TABLE response_events (
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (response_id, seq)
);
