-- Fly's rate limits that count against the organization (app creation,
-- the org's machine list, token verification with the org token) are
-- shared by every `flotilla serve` replica of the org: one GCRA bucket per
-- (org, action) here, so the replicas together keep to the limit instead
-- of each keeping to a fraction of it (crate::fly::shared_bucket).
--
-- `tat` is the bucket's theoretical arrival time: a reservation at time t
-- (the database's clock, read after the row lock is taken) departs at
-- max(t, tat - tolerance) and moves `tat` to max(tat, t) + period.
-- `reserved_at` is the t of the last reservation. `org` is the org the
-- calls name ('' for the client's own). A lost row only means a full
-- bucket; rows are never read by anything else. SQLite has no such table:
-- it serves one process (crate::store::lock).
CREATE TABLE org_buckets (
    org TEXT NOT NULL CHECK (length(org) <= 64),
    action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    tat TIMESTAMPTZ NOT NULL,
    reserved_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org, action)
);
