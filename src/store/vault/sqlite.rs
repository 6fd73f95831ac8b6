//! [`VaultStore`](super::VaultStore) on SQLite: the statements whose text
//! differs from PostgreSQL's (SQLite orders text byte-wise already). The
//! flows are in `vault::flows`; writes run in `BEGIN IMMEDIATE` like the
//! tenant store, timestamps as INTEGER microseconds.

use super::flows::{VaultBackend, VaultSql};
use crate::store::sqlite::SqliteStore;

impl VaultBackend for SqliteStore {
    const VAULT: VaultSql = VaultSql {
        list_tokens: "SELECT token, version, doc FROM token_records WHERE tenant = ?1 \
                      ORDER BY token",
        list_sealed: "SELECT owner, kind, id, envelope FROM sealed_values \
                      WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR kind = ?2) \
                      ORDER BY owner, kind, id",
        list_sealed_times: "SELECT owner, kind, id, updated_at FROM sealed_values \
                            WHERE owner = ?1 AND kind = ?2 ORDER BY id",
    };
}
