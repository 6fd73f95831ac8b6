-- Ledgers: what flotilla owns in each tenant's app (crate::state::Ledger),
-- one strictly decoded document per tenant with a schemaVersion. Created
-- with the tenant and removed with it; a tenant without one is unreadable,
-- never "owns nothing". Until now the ledger lived inside the status
-- document, which is derived state and read leniently.
CREATE TABLE ledgers (
    tenant TEXT  PRIMARY KEY REFERENCES tenants (name) ON DELETE CASCADE,
    doc    JSONB NOT NULL
);

-- Move every existing ledger out of its status document. Missing keys take
-- the empty value (older versions omitted none, but be safe); present
-- values are copied as they are, so a garbled ledger stays visible as
-- unreadable instead of becoming an empty one. A status without a ledger
-- (never reconciled) gives an empty ledger.
INSERT INTO ledgers (tenant, doc)
SELECT name,
       CASE
           WHEN status -> 'ledger' IS NULL THEN
               '{"schemaVersion":1,"appOwned":false,"ips":[],"certificates":[],"certificateChecks":{},"secrets":[],"secretsVersion":null}'::jsonb
           WHEN jsonb_typeof(status -> 'ledger') = 'object' THEN
               '{"schemaVersion":1,"appOwned":false,"ips":[],"certificates":[],"certificateChecks":{},"secrets":[],"secretsVersion":null}'::jsonb
               || (status -> 'ledger')
           ELSE status -> 'ledger'
       END
FROM tenants;

UPDATE tenants SET status = status - 'ledger'
WHERE jsonb_typeof(status) = 'object' AND status -> 'ledger' IS NOT NULL;

-- Intents get a constrained kind (crate::state::INTENT_KINDS) and a detail
-- object of the kind's shape (crate::state::IntentDetail). The shapes that
-- changed are rewritten: an ip intent's detail was the spec itself, a
-- secrets intent's names were under "set".
UPDATE intents SET detail = jsonb_build_object('spec', detail) WHERE kind = 'ip';
UPDATE intents SET detail = jsonb_build_object('names', COALESCE(detail -> 'set', '[]'::jsonb))
WHERE kind = 'secrets';

ALTER TABLE intents
    ADD CONSTRAINT intents_kind_known
        CHECK (kind IN ('app', 'ip', 'certificate', 'secrets', 'machine', 'lease')),
    ADD CONSTRAINT intents_detail_object CHECK (jsonb_typeof(detail) = 'object');
