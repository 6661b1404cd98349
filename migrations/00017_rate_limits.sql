-- +goose Up

-- One token bucket per provider, shared by every worker process: tokens is what was left at
-- updated_at, and what the rate adds since then is counted when tokens are next taken (one
-- UPDATE, under the row's lock). updated_at is the database's clock, so workers' clocks play no
-- part. The rows are state, not history: a lost row only starts its bucket full again.
CREATE TABLE rate_limits (
    provider   TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- +goose Down
DROP TABLE rate_limits;
