-- Events: what flotilla did (or tried) per tenant. Kept after the tenant row
-- is removed (no foreign key) and pruned to the newest N per tenant on insert.
CREATE TABLE events (
    id     BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT        NOT NULL,
    actor  TEXT        NOT NULL,
    action TEXT        NOT NULL,
    reason TEXT        NOT NULL,
    result TEXT        NOT NULL,
    at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX events_tenant_id_idx ON events (tenant, id DESC);

-- Intents: a create is recorded before the call, removed once its result is
-- recorded. They belong to the tenant row and go with it.
CREATE TABLE intents (
    tenant     TEXT        NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    key        TEXT        NOT NULL,
    kind       TEXT        NOT NULL,
    detail     JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, key)
);
