//! Persistence behind one `Store` trait, with a SQLite (embedded default)
//! and a PostgreSQL (several replicas) implementation of the same schema.
//! Every read of a response is scoped to an organization; background runs
//! are claimed under a lease so that any number of gateway processes can
//! share one queue.

pub mod counters;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

/// Store failures. `Unavailable` means the database could not be reached
/// and the caller should answer 503; anything else is a bug or corruption.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(String),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// A unique constraint was violated.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // A broken stream (EOF mid-handshake behind a proxy, a crashed
            // worker) is the database being away, not a bad query.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            _ => StoreError::Query(e.to_string()),
        }
    }
}

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// An API key as the store knows it (never the key itself).
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// Key id, `key_…`.
    pub key_id: String,
    /// Owning organization id.
    pub org_id: String,
    /// Owning organization name.
    pub org_name: String,
    /// Whether the key was revoked.
    pub revoked: bool,
}

/// A key as listed to operators.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Key id.
    pub key_id: String,
    /// Organization name.
    pub org_name: String,
    /// Label.
    pub name: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Revocation time (ms).
    pub revoked_at: Option<i64>,
}

/// An item to store: its id and JSON (`ItemResource`).
#[derive(Clone, Debug)]
pub struct ItemRow {
    /// Item id.
    pub id: String,
    /// The `ItemResource` JSON.
    pub body: String,
}

/// A stream event to store: sequence number and JSON.
#[derive(Clone, Debug)]
pub struct EventRow {
    /// `sequence_number`.
    pub seq: i64,
    /// The event JSON.
    pub body: String,
}

/// A response to insert, with everything written in one transaction.
#[derive(Clone, Debug)]
pub struct NewResponse {
    /// Response id.
    pub id: String,
    /// Organization id.
    pub org_id: String,
    /// Chained predecessor.
    pub previous_response_id: Option<String>,
    /// Status (wire name).
    pub status: &'static str,
    /// Background run.
    pub background: bool,
    /// The `Response` JSON.
    pub body: String,
    /// For background runs: what the worker needs to run it.
    pub run_request: Option<String>,
    /// The response's own input items.
    pub input_items: Vec<ItemRow>,
    /// Output items.
    pub output_items: Vec<ItemRow>,
    /// Initial stream events (background runs).
    pub events: Vec<EventRow>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A stored response as read back.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    /// The `Response` JSON.
    pub body: String,
    /// Status (wire name).
    pub status: String,
    /// Background run.
    pub background: bool,
    /// Replica holding the run's lease, if running.
    pub lease_owner: Option<String>,
}

/// A background run claimed by a worker.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    /// Response id.
    pub id: String,
    /// Organization id.
    pub org_id: String,
    /// The queued `Response` JSON.
    pub body: String,
    /// The run request JSON.
    pub run_request: String,
    /// Next free sequence number in the event log.
    pub next_seq: i64,
}

/// A run whose lease expired (its worker died).
#[derive(Clone, Debug)]
pub struct ExpiredRun {
    /// Response id.
    pub id: String,
    /// The stale lease owner.
    pub lease_owner: String,
    /// Latest `Response` snapshot JSON.
    pub body: String,
    /// Next free sequence number in the event log.
    pub next_seq: i64,
}

/// The end of a run, written in one transaction guarded by the lease.
#[derive(Clone, Debug)]
pub struct RunEnd {
    /// Final status (wire name).
    pub status: &'static str,
    /// Final `Response` JSON.
    pub body: String,
    /// Output items.
    pub output_items: Vec<ItemRow>,
    /// Remaining events, terminal one last.
    pub events: Vec<EventRow>,
}

/// A wake-up from another gateway process sharing the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A background run was queued.
    Queued,
    /// A run appended events (or ended).
    Events(String),
    /// Cancellation of a run was requested.
    Cancel(String),
}

/// Page of a response's input items, in transcript order.
pub type Items = Vec<ItemRow>;

/// Everything the gateway keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Backend name for logs (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Wake-ups published by other processes (PostgreSQL LISTEN/NOTIFY).
    /// None for a backend used by one process only (SQLite). Implementations
    /// publish them from `insert_response` (background), `append_events`,
    /// `finish_run`, `cancel_queued` and `request_cancel`.
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        None
    }

    // --- keys and organizations ---

    /// Looks up a key by its SHA-256 hash (hex).
    async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyRecord>>;
    /// Creates a key (and its organization if needed).
    async fn create_key(
        &self,
        org_name: &str,
        label: Option<&str>,
        key_id: &str,
        key_hash: &str,
    ) -> StoreResult<KeyInfo>;
    /// Lists all keys.
    async fn list_keys(&self) -> StoreResult<Vec<KeyInfo>>;
    /// Revokes a key; false if there is no such key.
    async fn revoke_key(&self, key_id: &str) -> StoreResult<bool>;
    /// Number of keys, revoked ones included.
    async fn count_keys(&self) -> StoreResult<i64>;
    /// An organization id by id or name.
    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<String>>;

    // --- responses ---

    /// Inserts a response with its items and events in one transaction.
    async fn insert_response(&self, r: NewResponse) -> StoreResult<()>;
    /// Reads a response of `org`.
    async fn get_response(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<StoredResponse>>;
    /// Deletes a response of `org` with its items and events.
    async fn delete_response(&self, org: &str, id: &str) -> StoreResult<bool>;
    /// The transcript a chained turn inherits from `id`: the input and
    /// output items of `id` and its predecessors, oldest first, read with
    /// one recursive query. None if `id` is not a response of `org`.
    async fn chain_items(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<Items>>;
    /// The response's own input items, in order.
    async fn own_input_items(&self, id: &str) -> StoreResult<Items>;
    /// A stored item of `org` by item id.
    async fn find_item(
        &self,
        org: &str,
        item_id: &str,
    ) -> StoreResult<Option<String>>;

    // --- background runs ---

    /// Claims the oldest queued run under a lease for `owner`.
    async fn claim_next(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> StoreResult<Option<ClaimedRun>>;
    /// Extends the lease; false when the run is no longer ours.
    async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        until: i64,
    ) -> StoreResult<bool>;
    /// Appends events (and updates the snapshot) while `owner` holds the
    /// lease; false when the run is no longer ours.
    async fn append_events(
        &self,
        id: &str,
        owner: &str,
        events: &[EventRow],
        snapshot: Option<&str>,
    ) -> StoreResult<bool>;
    /// Ends a run held by `owner`; false when it is no longer ours.
    async fn finish_run(
        &self,
        id: &str,
        owner: &str,
        end: RunEnd,
    ) -> StoreResult<bool>;
    /// Cancels a run that is still queued; false if it was claimed or ended.
    async fn cancel_queued(
        &self,
        org: &str,
        id: &str,
        end: RunEnd,
    ) -> StoreResult<bool>;
    /// Flags a running run for cancellation (seen by its worker).
    async fn request_cancel(&self, org: &str, id: &str) -> StoreResult<()>;
    /// Whether cancellation was requested.
    async fn cancel_requested(&self, id: &str) -> StoreResult<bool>;
    /// Runs whose lease expired before `now`.
    async fn expired_runs(&self, now: i64) -> StoreResult<Vec<ExpiredRun>>;
    /// Events of a response of `org` with `seq > after`, in order.
    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>>;
    /// Deletes event logs of finished runs older than `before`.
    async fn prune_events(&self, before: i64) -> StoreResult<u64>;
}

/// A shared store.
pub type SharedStore = Arc<dyn Store>;

/// Opens the store named by a database URL (`sqlite://…` or
/// `postgres://…`) and applies migrations.
pub async fn open(url: &str, opts: &PoolOptions) -> StoreResult<SharedStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, opts).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::open(url, opts).await?))
    } else {
        Err(StoreError::Unavailable(
            "database URL must start with sqlite:// or postgres://".into(),
        ))
    }
}

/// Pool settings shared by both backends.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Maximum connections.
    pub max_connections: u32,
    /// How long to wait for a connection before answering 503 (ms).
    pub acquire_timeout_ms: u64,
    /// PostgreSQL `statement_timeout` (ms).
    pub statement_timeout_ms: u64,
    /// SQLite: fsync the log at every commit (`synchronous = FULL`), so an
    /// acknowledged response survives a power cut, not only a crash.
    pub sqlite_fsync_commits: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            sqlite_fsync_commits: true,
        }
    }
}

pub use crate::ids::now_ms;
