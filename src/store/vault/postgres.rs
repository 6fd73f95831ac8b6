//! [`VaultStore`](super::VaultStore) on PostgreSQL: the statements whose
//! text differs from SQLite's (names order byte-wise with `COLLATE "C"`,
//! NULL parameters are typed). The flows are in `vault::flows`.

use super::flows::{VaultBackend, VaultSql};
use crate::store::postgres::PgStore;

impl VaultBackend for PgStore {
    const VAULT: VaultSql = VaultSql {
        list_tokens: "SELECT token, version, doc FROM token_records WHERE tenant = $1 \
                      ORDER BY token COLLATE \"C\"",
        list_sealed: "SELECT owner, kind, id, envelope FROM sealed_values \
                      WHERE ($1::text IS NULL OR owner = $1) AND ($2::text IS NULL OR kind = $2) \
                      ORDER BY owner COLLATE \"C\", kind, id COLLATE \"C\"",
        list_sealed_times: "SELECT owner, kind, id, updated_at FROM sealed_values \
                            WHERE owner = $1 AND kind = $2 ORDER BY id COLLATE \"C\"",
    };
}
