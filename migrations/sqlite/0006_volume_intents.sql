-- Volume creates are recorded as intents before the call, like every create
-- with a server-chosen identity (crate::state::IntentDetail::Volume): the
-- kind list grows by 'volume'. SQLite cannot change a CHECK, so the table is
-- rebuilt with the same columns and every row copied as it is.
CREATE TABLE intents_volume (
    tenant     TEXT    NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL
               CHECK (kind IN ('app', 'ip', 'certificate', 'secrets', 'machine', 'lease', 'volume')),
    detail     TEXT    NOT NULL CHECK (json_valid(detail) AND json_type(detail) = 'object'),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) STRICT;

INSERT INTO intents_volume (tenant, key, kind, detail, created_at)
SELECT tenant, key, kind, detail, created_at FROM intents;

DROP TABLE intents;
ALTER TABLE intents_volume RENAME TO intents;
