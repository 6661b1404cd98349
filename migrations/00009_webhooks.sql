-- +goose Up

-- Webhook endpoints: where to post which events of the log. An endpoint's changes are events of
-- its own stream in event_log (WebhookEndpointCreated, …), appended in the transaction that
-- writes this row; the row is the endpoint's state, with what the log must never hold (its
-- signing secrets) and its place in the log as a consumer.
CREATE TABLE webhook_endpoints (
    id                    UUID        PRIMARY KEY,
    -- The version of the endpoint's stream this row reflects.
    version               BIGINT      NOT NULL,
    url                   TEXT        NOT NULL,
    description           TEXT        NOT NULL DEFAULT '',
    -- The notification event types posted; empty: all of them.
    event_types           TEXT[]      NOT NULL DEFAULT '{}',
    -- The signing secret (whsec_…), and the one it replaced, which signs too until
    -- previous_secret_until. HMAC needs the secret itself: this is the least that signs.
    secret                TEXT        NOT NULL,
    previous_secret       TEXT,
    previous_secret_until TIMESTAMPTZ,
    enabled               BOOLEAN     NOT NULL DEFAULT true,
    disabled_reason       TEXT        NOT NULL DEFAULT '',
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by            TEXT        NOT NULL DEFAULT '',
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at            TIMESTAMPTZ,
    -- The live consumer: the endpoint's offset in the log's delivery order (transaction id,
    -- position), and which dispatcher holds it until when.
    cursor_transaction_id xid8        NOT NULL,
    cursor_position       BIGINT      NOT NULL,
    lease_owner           TEXT,
    lease_until           TIMESTAMPTZ,
    -- Health: the first failure since the last success (NULL while it succeeds).
    failing_since         TIMESTAMPTZ,
    last_success_at       TIMESTAMPTZ
);
-- One live endpoint per URL: a second would receive everything twice.
CREATE UNIQUE INDEX webhook_endpoints_url_key ON webhook_endpoints (url) WHERE deleted_at IS NULL;

-- Every request Herald made to an endpoint, kept: live deliveries, retries and replays.
CREATE TABLE webhook_attempts (
    id               BIGSERIAL        PRIMARY KEY,
    endpoint_id      UUID             NOT NULL REFERENCES webhook_endpoints (id),
    event_id         UUID             NOT NULL,
    event_position   BIGINT           NOT NULL,
    event_type       TEXT             NOT NULL,
    notification_id  UUID             NOT NULL,
    -- 1 for the first request of this event to this endpoint by this trigger, then 2, …
    attempt          INT              NOT NULL,
    -- live, retry or replay
    trigger          TEXT             NOT NULL,
    attempted_at     TIMESTAMPTZ      NOT NULL,
    duration_seconds DOUBLE PRECISION NOT NULL,
    -- NULL when no answer came (refused, timed out, connection error).
    status_code      INT,
    succeeded        BOOLEAN          NOT NULL,
    error            TEXT             NOT NULL DEFAULT '',
    -- The first KiB of the answer.
    response         TEXT             NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, id);

-- Deliveries that failed and wait for their next try. Any dispatcher takes the due ones, under
-- a lease, so that several share them without two sending the same one.
CREATE TABLE webhook_retries (
    endpoint_id    UUID        NOT NULL REFERENCES webhook_endpoints (id),
    event_position BIGINT      NOT NULL,
    -- The attempt this try will be.
    attempt        INT         NOT NULL,
    trigger        TEXT        NOT NULL,
    due_at         TIMESTAMPTZ NOT NULL,
    lease_until    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, event_position)
);
-- An endpoint's due retries in due order: what a dispatcher takes.
CREATE INDEX webhook_retries_endpoint_due_idx ON webhook_retries (endpoint_id, due_at);

-- +goose Down
DROP TABLE webhook_retries;
DROP TABLE webhook_attempts;
DROP TABLE webhook_endpoints;
