-- Tenants: desired state as submitted (yaml), its meaning (spec_json), and
-- the controller's view of it (observed_generation, status).
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC).
CREATE TABLE tenants (
    name                  TEXT    NOT NULL PRIMARY KEY,
    -- Fly app names share one global namespace: two tenants claiming the same
    -- app would fight over it, so the database refuses the second one.
    app_name              TEXT    NOT NULL,
    -- The YAML text exactly as submitted (comments and all), for export.
    yaml                  TEXT    NOT NULL,
    -- The canonical JSON of the validated model (`Tenant::canonical_json`).
    spec_json             TEXT    NOT NULL CHECK (json_valid(spec_json)),
    -- metadata.labels, copied out for label-selector listing.
    labels                TEXT    NOT NULL DEFAULT '{}'
                                  CHECK (json_valid(labels) AND json_type(labels) = 'object'),
    -- Bumped only when the meaning (spec_json) changes.
    generation            INTEGER NOT NULL CHECK (generation >= 1),
    -- The generation the controller last reconciled; 0 = never.
    observed_generation   INTEGER NOT NULL DEFAULT 0 CHECK (observed_generation >= 0),
    status                TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(status)),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    deletion_requested_at INTEGER,
    CONSTRAINT tenants_app_name_key UNIQUE (app_name)
) STRICT;
