//! PostgreSQL store (several replicas sharing one queue). Not built yet.

use super::*;

/// The PostgreSQL implementation of [`Store`] (placeholder).
pub struct PgStore;

impl PgStore {
    /// Opens the database.
    pub async fn open(_url: &str, _opts: &PoolOptions) -> StoreResult<Self> {
        Err(StoreError::Unavailable("PostgreSQL support is not built yet".into()))
    }
}
