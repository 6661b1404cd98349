-- +goose Up

-- API keys. Only a SHA-256 of each token is stored: a token is 32 random bytes, so a fast hash
-- is as good as a slow one, and a lost table gives away no token.
CREATE TABLE api_keys (
    id           UUID        PRIMARY KEY,
    name         TEXT        NOT NULL UNIQUE,
    token_hash   BYTEA       NOT NULL UNIQUE,
    token_prefix TEXT        NOT NULL,
    scopes       TEXT[]      NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   TEXT        NOT NULL DEFAULT '',
    revoked_at   TIMESTAMPTZ
);

-- Idempotency keys: a POST with an Idempotency-Key the same API key used before, with the same
-- request, answers with the notification it created then.
CREATE TABLE idempotency_keys (
    api_key_id      UUID        NOT NULL,
    key             TEXT        NOT NULL,
    request_hash    BYTEA       NOT NULL,
    notification_id UUID        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE api_keys;
