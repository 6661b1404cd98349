-- +goose Up

-- Mail that arrived at the bounce listener: delivery status notifications (RFC 3464), feedback
-- reports (RFC 5965) and whatever else was sent to the bounce domain, kept for operators for
-- HERALD_BOUNCE_RETENTION. A report that became an event is named by it (report_id = id); the
-- event and this row's outcome are written in one transaction.
CREATE TABLE inbound_reports (
    id              BIGSERIAL   PRIMARY KEY,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    remote_addr     TEXT        NOT NULL DEFAULT '',
    -- The SMTP envelope: MAIL FROM (usually empty for a bounce) and the accepted RCPT TOs.
    envelope_from   TEXT        NOT NULL DEFAULT '',
    envelope_to     TEXT[]      NOT NULL DEFAULT '{}',
    -- The size of the message as received, and its first bytes (all of it unless truncated).
    size            BIGINT      NOT NULL,
    raw             BYTEA       NOT NULL,
    truncated       BOOLEAN     NOT NULL DEFAULT false,
    -- The report's own Message-ID: a report sent twice is recorded once.
    message_id      TEXT        NOT NULL DEFAULT '',
    -- received (being handled), hard_bounce, soft_bounce, complaint, duplicate, ignored,
    -- unmatched, unparsable or failed.
    outcome         TEXT        NOT NULL DEFAULT 'received',
    notification_id UUID,
    detail          TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX inbound_reports_received_at_idx ON inbound_reports (received_at);
CREATE INDEX inbound_reports_outcome_idx ON inbound_reports (outcome, id);
CREATE INDEX inbound_reports_message_id_idx ON inbound_reports (message_id) WHERE message_id <> '';

-- +goose Down
DROP TABLE inbound_reports;
