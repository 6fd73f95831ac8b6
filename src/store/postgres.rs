//! PostgreSQL implementation of the store.

use crate::clock::SharedClock;
use crate::store::StoreError;

/// Placeholder until the PostgreSQL store lands.
pub struct PgStore;

impl PgStore {
    pub async fn connect(_url: &str, _clock: SharedClock) -> Result<Self, StoreError> {
        Err(StoreError::InvalidUrl(
            "the PostgreSQL store is not built yet".into(),
        ))
    }
}
