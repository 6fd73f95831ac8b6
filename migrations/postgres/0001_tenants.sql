-- Tenants: desired state as submitted (yaml), its meaning (spec_json), and
-- the controller's view of it (observed_generation, status).
CREATE TABLE tenants (
    name                  TEXT        PRIMARY KEY,
    -- Fly app names share one global namespace: two tenants claiming the same
    -- app would fight over it, so the database refuses the second one.
    app_name              TEXT        NOT NULL,
    -- The YAML text exactly as submitted (comments and all), for export.
    yaml                  TEXT        NOT NULL,
    -- The canonical JSON of the validated model (`Tenant::canonical_json`).
    spec_json             JSONB       NOT NULL,
    -- metadata.labels, copied out for label-selector listing.
    labels                JSONB       NOT NULL DEFAULT '{}'::jsonb,
    -- Bumped only when the meaning (spec_json) changes.
    generation            BIGINT      NOT NULL CHECK (generation >= 1),
    -- The generation the controller last reconciled; 0 = never.
    observed_generation   BIGINT      NOT NULL DEFAULT 0 CHECK (observed_generation >= 0),
    status                JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    deletion_requested_at TIMESTAMPTZ,
    CONSTRAINT tenants_app_name_key UNIQUE (app_name),
    CONSTRAINT tenants_labels_object CHECK (jsonb_typeof(labels) = 'object')
);

CREATE INDEX tenants_labels_idx ON tenants USING GIN (labels jsonb_path_ops);
