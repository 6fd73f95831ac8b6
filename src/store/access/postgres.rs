//! [`AccessStore`](super::AccessStore) on PostgreSQL: the statements whose
//! text differs from SQLite's. Issuing a tenant credential takes a
//! transaction-scoped advisory lock on the tenant's name, so two issuers of
//! one tenant are serialized (the unique index backs it up). The flows are
//! in `access::flows`.

use super::flows::{AccessBackend, AccessSql, credential_cols};
use crate::store::postgres::PgStore;

impl AccessBackend for PgStore {
    const ACCESS: AccessSql = AccessSql {
        lock_tenant: Some("SELECT pg_advisory_xact_lock(hashtext('flotilla-credential:' || $1))"),
        revoke_returning: Some(concat!(
            "UPDATE credentials SET revoked_at = $2, revoked_by = $3 \
             WHERE id = $1 AND revoked_at IS NULL RETURNING ",
            credential_cols!()
        )),
        list_audited: "SELECT id, tenant, actor, action, reason, result, at, \
                         actor_kind, actor_id, source, request_id FROM events \
                       WHERE ($1::text IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2",
    };
}
