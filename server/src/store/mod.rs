//! Persistence behind the `Store` traits (keys, responses, the run queue,
//! stored chat completions), with a SQLite (embedded default) and a
//! PostgreSQL (several replicas) implementation of the same schema. Every
//! read of a response or a chat completion is scoped to an organization;
//! background runs are claimed under a lease so that any number of gateway
//! processes can share one queue.

#[cfg(test)]
mod chat_tests;
pub mod counters;
mod error;
mod migrations;
pub mod postgres;
mod records;
mod rows;
pub mod sqlite;
mod traits;

use std::sync::Arc;

use migrations::{APPLIED_MIGRATIONS, all_applied};

pub use error::{StoreError, StoreResult};
pub use records::*;
pub use rows::parse_status;
pub use traits::{ChatStore, KeyStore, ResponseStore, RunQueue, Store};

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
