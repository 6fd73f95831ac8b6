//! SQLite implementation of the store (the embedded default).

use crate::clock::SharedClock;
use crate::store::StoreError;

/// Placeholder until the SQLite store lands.
pub struct SqliteStore;

impl SqliteStore {
    pub async fn connect(_url: &str, _clock: SharedClock) -> Result<Self, StoreError> {
        Err(StoreError::InvalidUrl(
            "the SQLite store is not built yet".into(),
        ))
    }
}
