-- Volume creates are recorded as intents before the call, like every create
-- with a server-chosen identity (crate::state::IntentDetail::Volume): the
-- kind list grows by 'volume'. Existing rows are untouched.
ALTER TABLE intents DROP CONSTRAINT intents_kind_known;
ALTER TABLE intents
    ADD CONSTRAINT intents_kind_known
        CHECK (kind IN ('app', 'ip', 'certificate', 'secrets', 'machine', 'lease', 'volume'));
