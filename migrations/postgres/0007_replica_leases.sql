-- Several `flotilla serve` replicas on one PostgreSQL database share the
-- work through leases (crate::replica): each live replica keeps a row in
-- `replicas`, and each shard of tenants or singleton job has at most one
-- holder in `leases`. Expiry times come from the database's clock, so the
-- replicas' clocks need not agree. `epoch` grows by one every time a lease
-- is claimed (a new holder, or the same one after it expired): the fencing
-- token that orders writers. SQLite has no such tables: it serves one
-- process at a time (crate::store::lock).
-- `instance` is random per process: a second live process with the same
-- `--replica-id` cannot take the row over until the first one's expires.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    instance TEXT NOT NULL CHECK (length(instance) BETWEEN 1 AND 64),
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE leases (
    work TEXT PRIMARY KEY CHECK (length(work) BETWEEN 1 AND 64),
    holder TEXT NOT NULL CHECK (length(holder) BETWEEN 1 AND 64),
    epoch BIGINT NOT NULL CHECK (epoch >= 1),
    expires_at TIMESTAMPTZ NOT NULL
);
