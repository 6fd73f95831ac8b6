-- Token records: one strictly decoded document per (tenant, token)
-- (crate::state::token_to_json, a rotation::TokenRecord with a
-- schemaVersion). `version` is bumped on every write: writers say which
-- version they read, so an operator's rotate request and a reconcile step
-- never overwrite each other. Ids, fingerprints and times only; values are
-- sealed in `sealed_values`.
CREATE TABLE token_records (
    tenant  TEXT   NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    token   TEXT   NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    doc     TEXT   NOT NULL,
    PRIMARY KEY (tenant, token)
);

-- Sealed values: AES-256-GCM envelopes (crate::crypto::Envelope text), never
-- plaintext. A row is named like its associated data (crate::crypto::Aad):
-- owner (a tenant name, or '' for the controller), kind and id, so a
-- ciphertext moved to another row fails to open. Tenant rows go with their
-- tenant.
CREATE TABLE sealed_values (
    owner      TEXT        NOT NULL,
    tenant     TEXT        REFERENCES tenants (name) ON DELETE CASCADE,
    kind       TEXT        NOT NULL
               CHECK (kind IN ('deploy_token', 'org_token', 'external_secret')),
    id         TEXT        NOT NULL CHECK (length(id) BETWEEN 1 AND 256),
    envelope   TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, kind, id),
    CONSTRAINT sealed_values_owner CHECK (owner = COALESCE(tenant, '')),
    CONSTRAINT sealed_values_controller CHECK ((tenant IS NULL) = (kind = 'org_token'))
);
