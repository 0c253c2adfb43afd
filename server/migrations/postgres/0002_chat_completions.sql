-- Stored chat completions (`store: true` on /v1/chat/completions) and the
-- messages of their requests. Times are Unix milliseconds.
CREATE TABLE chat_completions (
    id TEXT COLLATE "C" PRIMARY KEY, -- bytewise, as SQLite orders ties
    org_id TEXT NOT NULL,
    model TEXT NOT NULL,
    metadata TEXT NOT NULL, -- JSON object as written; filters cast it to JSONB
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Keyset pages of an organization's completions, either way, with or
-- without the `model` filter.
CREATE INDEX chat_completions_by_org
    ON chat_completions (org_id, created_at, id);
CREATE INDEX chat_completions_by_model
    ON chat_completions (org_id, model, created_at, id);

CREATE TABLE chat_completion_messages (
    completion_id TEXT COLLATE "C" NOT NULL
        REFERENCES chat_completions (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (completion_id, position)
);
