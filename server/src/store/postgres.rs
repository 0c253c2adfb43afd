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

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str { "postgres" }
    async fn ping(&self) -> StoreResult<()> { todo!() }
    async fn find_key(&self, _: &str) -> StoreResult<Option<KeyRecord>> { todo!() }
    async fn create_key(&self, _: &str, _: Option<&str>, _: &str, _: &str) -> StoreResult<KeyInfo> { todo!() }
    async fn list_keys(&self) -> StoreResult<Vec<KeyInfo>> { todo!() }
    async fn revoke_key(&self, _: &str) -> StoreResult<bool> { todo!() }
    async fn count_keys(&self) -> StoreResult<i64> { todo!() }
    async fn find_org(&self, _: &str) -> StoreResult<Option<String>> { todo!() }
    async fn insert_response(&self, _: NewResponse) -> StoreResult<()> { todo!() }
    async fn get_response(&self, _: &str, _: &str) -> StoreResult<Option<StoredResponse>> { todo!() }
    async fn delete_response(&self, _: &str, _: &str) -> StoreResult<bool> { todo!() }
    async fn chain_items(&self, _: &str, _: &str) -> StoreResult<Option<Items>> { todo!() }
    async fn own_input_items(&self, _: &str) -> StoreResult<Items> { todo!() }
    async fn find_item(&self, _: &str, _: &str) -> StoreResult<Option<String>> { todo!() }
    async fn claim_next(&self, _: &str, _: i64, _: i64) -> StoreResult<Option<ClaimedRun>> { todo!() }
    async fn renew_lease(&self, _: &str, _: &str, _: i64) -> StoreResult<bool> { todo!() }
    async fn append_events(&self, _: &str, _: &str, _: &[EventRow], _: Option<&str>) -> StoreResult<bool> { todo!() }
    async fn finish_run(&self, _: &str, _: &str, _: RunEnd) -> StoreResult<bool> { todo!() }
    async fn cancel_queued(&self, _: &str, _: &str, _: RunEnd) -> StoreResult<bool> { todo!() }
    async fn request_cancel(&self, _: &str, _: &str) -> StoreResult<()> { todo!() }
    async fn cancel_requested(&self, _: &str) -> StoreResult<bool> { todo!() }
    async fn expired_runs(&self, _: i64) -> StoreResult<Vec<ExpiredRun>> { todo!() }
    async fn events_after(&self, _: &str, _: i64, _: i64) -> StoreResult<Vec<EventRow>> { todo!() }
    async fn prune_events(&self, _: i64) -> StoreResult<u64> { todo!() }
}
