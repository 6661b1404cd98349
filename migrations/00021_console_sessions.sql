-- +goose Up

-- The operator console's sessions: one row per signed-in browser, shared by every serve process.
-- Only a SHA-256 of the session token is kept (the token is 32 random bytes, as an API key's
-- secret is), so a lost table lets no one in. A session belongs to the API key that opened it and
-- ends with the key: the console checks the key on every request.
CREATE TABLE console_sessions (
    token_hash   BYTEA       PRIMARY KEY,
    api_key_id   UUID        NOT NULL,
    -- csrf_token is the secret every state-changing form of this session must carry back.
    csrf_token   TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX console_sessions_last_seen_idx ON console_sessions (last_seen_at);

-- +goose Down
DROP TABLE console_sessions;
