-- API credentials: only an HMAC-SHA256 of each credential under the server
-- key is kept (`mac`), with the id of that key (`key_id`), never the
-- credential itself. A tenant credential acts on its own tenant only; an
-- admin credential (tenant NULL) on every tenant. Timestamps are INTEGER
-- microseconds since the Unix epoch (UTC).
CREATE TABLE credentials (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant      TEXT,
    mac         TEXT    NOT NULL,
    key_id      TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
) STRICT;

-- At most one live credential per tenant: re-issuing revokes the old one in
-- the same transaction, never silently beside it.
CREATE UNIQUE INDEX credentials_one_live_per_tenant
    ON credentials (tenant) WHERE revoked_at IS NULL AND tenant IS NOT NULL;

-- Audit: who asked for a write (actor kind and id), from where, in which
-- request. NULL on the controller's own events.
ALTER TABLE events ADD COLUMN actor_kind TEXT;
ALTER TABLE events ADD COLUMN actor_id   TEXT;
ALTER TABLE events ADD COLUMN source     TEXT;
ALTER TABLE events ADD COLUMN request_id TEXT;
