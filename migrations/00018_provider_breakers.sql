-- +goose Up

-- The circuit breakers of the providers of every worker process, as each last wrote them: a
-- breaker lives in its process's memory, and `herald providers status` reads them all here. A
-- worker writes its rows every --breaker-publish-interval and at each change of state, and
-- deletes them when it stops; rows of a process that stopped without doing so show as stale, and
-- go after a day. This is a view of live processes, not a fact: the event log records, in each
-- attempt's outcome, which providers it went through.
CREATE TABLE provider_breakers (
    process              TEXT        NOT NULL,
    channel              TEXT        NOT NULL,
    provider             TEXT        NOT NULL,
    state                TEXT        NOT NULL CHECK (state IN ('closed', 'half-open', 'open')),
    consecutive_failures INTEGER     NOT NULL CHECK (consecutive_failures >= 0),
    -- The provider's latest transient error, with secrets masked as the provider returned it.
    last_error           TEXT        NOT NULL DEFAULT '',
    changed_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (process, channel, provider)
);

-- +goose Down
DROP TABLE provider_breakers;
