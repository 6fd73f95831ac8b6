-- Ledgers: what flotilla owns in each tenant's app (crate::state::Ledger),
-- one strictly decoded document per tenant with a schemaVersion. Created
-- with the tenant and removed with it; a tenant without one is unreadable,
-- never "owns nothing". Until now the ledger lived inside the status
-- document, which is derived state and read leniently.
CREATE TABLE ledgers (
    tenant TEXT NOT NULL PRIMARY KEY REFERENCES tenants (name) ON DELETE CASCADE,
    doc    TEXT NOT NULL CHECK (json_valid(doc))
) STRICT;

-- Move every existing ledger out of its status document. Missing keys take
-- the empty value (older versions omitted none, but be safe); present
-- values are copied as they are, so a garbled ledger stays visible as
-- unreadable instead of becoming an empty one. A status without a ledger
-- (never reconciled) gives an empty ledger.
INSERT INTO ledgers (tenant, doc)
SELECT name,
       CASE
           WHEN json_type(status, '$.ledger') IS NULL THEN
               '{"schemaVersion":1,"appOwned":false,"ips":[],"certificates":[],"certificateChecks":{},"secrets":[],"secretsVersion":null}'
           WHEN json_type(status, '$.ledger') = 'object' THEN
               json_patch(
                   '{"schemaVersion":1,"appOwned":false,"ips":[],"certificates":[],"certificateChecks":{},"secrets":[]}',
                   status -> '$.ledger')
           ELSE status -> '$.ledger'
       END
FROM tenants;

UPDATE tenants SET status = json_remove(status, '$.ledger')
WHERE json_type(status, '$.ledger') IS NOT NULL;

-- Intents get a constrained kind (crate::state::INTENT_KINDS) and a detail
-- object of the kind's shape (crate::state::IntentDetail). SQLite cannot add
-- a CHECK to a table, so the table is rebuilt; the shapes that changed are
-- rewritten on the way: an ip intent's detail was the spec itself, a
-- secrets intent's names were under "set".
CREATE TABLE intents_typed (
    tenant     TEXT    NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL
               CHECK (kind IN ('app', 'ip', 'certificate', 'secrets', 'machine', 'lease')),
    detail     TEXT    NOT NULL CHECK (json_valid(detail) AND json_type(detail) = 'object'),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) STRICT;

INSERT INTO intents_typed (tenant, key, kind, detail, created_at)
SELECT tenant, key, kind,
       CASE kind
           WHEN 'ip' THEN json_object('spec', json(detail))
           WHEN 'secrets' THEN json_object('names', json(COALESCE(detail -> '$.set', '[]')))
           ELSE detail
       END,
       created_at
FROM intents;

DROP TABLE intents;
ALTER TABLE intents_typed RENAME TO intents;
