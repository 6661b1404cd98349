-- +goose Up

-- Stored templates. Each change is an event of a stream per template name in event_log
-- (TemplateVersionCreated, TemplateArchived, TemplateRestored), appended with the stream's
-- expected version in the transaction that writes these rows.

-- A template as its name resolves now: the latest version, and whether it is archived.
CREATE TABLE templates (
    name            TEXT        PRIMARY KEY,
    -- The stream of its events (a UUID v5 of the name), and the version of it this row reflects:
    -- archiving and restoring move the stream on without making a template version.
    stream_id       UUID        NOT NULL UNIQUE,
    stream_version  BIGINT      NOT NULL,
    -- The latest template version, 1, 2, …
    version         INT         NOT NULL,
    channel         TEXT        NOT NULL,
    description     TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      TEXT        NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    updated_by      TEXT        NOT NULL,
    -- Set while the template is archived: its name resolves to nothing for new sends.
    archived_at     TIMESTAMPTZ,
    archived_by     TEXT,
    archived_reason TEXT
);
CREATE INDEX templates_channel ON templates (channel, name);

-- Every version of every template, whole and never changed: what a send by name@version reads.
CREATE TABLE template_versions (
    name        TEXT        NOT NULL REFERENCES templates (name),
    version     INT         NOT NULL CHECK (version > 0),
    channel     TEXT        NOT NULL,
    subject     TEXT        NOT NULL DEFAULT '',
    content     TEXT        NOT NULL DEFAULT '',
    html        TEXT        NOT NULL DEFAULT '',
    -- [{"name": "...", "default": "..."}]: every variable the parts use, and their defaults.
    variables   JSONB       NOT NULL DEFAULT '[]',
    description TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT        NOT NULL,
    PRIMARY KEY (name, version)
);

-- +goose Down
DROP TABLE template_versions;
DROP TABLE templates;
