//! [`AccessStore`](super::AccessStore) on SQLite: the statements whose
//! text differs from PostgreSQL's. Writes run in `BEGIN IMMEDIATE` like the
//! tenant store, which already serializes issuers (no lock statement), and
//! a revoke reads the row back in its transaction. The flows are in
//! `access::flows`.

use super::flows::{AccessBackend, AccessSql};
use crate::store::sqlite::SqliteStore;

impl AccessBackend for SqliteStore {
    const ACCESS: AccessSql = AccessSql {
        lock_tenant: None,
        revoke_returning: None,
        list_audited: "SELECT id, tenant, actor, action, reason, result, at, \
                         actor_kind, actor_id, source, request_id FROM events \
                       WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id DESC LIMIT ?2",
    };
}
