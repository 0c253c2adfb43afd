//! The store's one error enum and its result alias. sqlx errors are
//! sorted once, here, into "the database is away" (answered 503) and
//! everything else; the PostgreSQL store refines that with SQLSTATEs.

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
