-- Events: what flotilla did (or tried) per tenant. Kept after the tenant row
-- is removed (no foreign key) and pruned to the newest N per tenant on insert.
-- AUTOINCREMENT so ids are never reused after pruning.
CREATE TABLE events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT    NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    reason TEXT    NOT NULL,
    result TEXT    NOT NULL,
    at     INTEGER NOT NULL
) STRICT;

CREATE INDEX events_tenant_id_idx ON events (tenant, id DESC);

-- Intents: a create is recorded before the call, removed once its result is
-- recorded. They belong to the tenant row and go with it.
CREATE TABLE intents (
    tenant     TEXT    NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    detail     TEXT    NOT NULL CHECK (json_valid(detail)),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) STRICT;
