//! Connecting to PostgreSQL: the pool with its `statement_timeout`,
//! migrations serialized across replicas, the LISTEN relay, and which
//! errors mean that the database is away rather than that a query is wrong.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::broadcast;

use super::notify::{relay, subscribe};
use super::{PgStore, PoolOptions, StoreError, StoreResult};

/// Slack on top of acquire + statement timeouts before a call that got no
/// answer at all (half-open TCP connection) is given up as unavailable.
const CLIENT_SLACK: Duration = Duration::from_secs(5);

impl PgStore {
    /// Connects to the database at `url`, applies migrations and starts
    /// listening for other replicas' notices.
    pub async fn open(url: &str, opts: &PoolOptions) -> StoreResult<Self> {
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("maniac");
        }
        let acquire = Duration::from_millis(opts.acquire_timeout_ms);
        let statement_timeout = format!("{}ms", opts.statement_timeout_ms);
        // The pool reconnects by itself; every wait for a connection
        // (including connecting and the liveness check) is bounded by
        // `acquire`, after which the caller gets `Unavailable`.
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(acquire)
            .after_connect(move |conn, _meta| {
                let value = statement_timeout.clone();
                Box::pin(async move {
                    sqlx::query(
                        "SELECT set_config('statement_timeout', $1, false)",
                    )
                    .bind(value)
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(pg)?;
        migrate(&pool).await?;
        // LISTEN holds its connection for good: give it a pool of its own
        // so it never takes a connection away from queries.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(connect);
        // Subscribe before returning, so no write made after `open` can be
        // missed.
        let listener = subscribe(&listen_pool).await.map_err(pg)?;
        let (notices, _) = broadcast::channel(1024);
        let listener =
            tokio::spawn(relay(listen_pool, listener, notices.clone()));
        let deadline = (opts.statement_timeout_ms > 0).then(|| {
            acquire
                + Duration::from_millis(opts.statement_timeout_ms)
                + CLIENT_SLACK
        });
        Ok(PgStore { pool, deadline, notices, listener })
    }
}

/// Applies migrations. sqlx's PostgreSQL migrator already serializes
/// replicas: `Migrate::lock` takes `pg_advisory_lock` (keyed by the database
/// name) on the migrating connection before reading `_sqlx_migrations`, and
/// releases it afterwards. It runs on a connection detached from the pool
/// and without `statement_timeout`, so waiting for another replica's
/// migration is not cut short, and the session lock ends with the
/// connection even if a migration fails half way.
async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(pg)?.detach();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await
        .map_err(pg)?;
    let applied = sqlx::migrate!("./migrations/postgres").run(&mut conn).await;
    let _ = conn.close().await;
    applied.map_err(|e| StoreError::Migrate(e.to_string()))
}

/// SQLSTATEs that say the server is unreachable, restarting, overloaded or
/// a read-only standby (after a failover), rather than that a query is
/// wrong: these answer 503 like a lost connection.
pub(super) fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || code.starts_with("57P") // shutdown, crash, cannot connect now
        || code == "57014" // statement_timeout
        || code == "25006" // read-only transaction
}

/// Maps a sqlx error, treating PostgreSQL's "server going away" errors as
/// `Unavailable`; everything else goes through `From<sqlx::Error>`.
pub(super) fn pg(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.code().is_some_and(|c| unavailable_code(&c))
    {
        return StoreError::Unavailable(e.to_string());
    }
    e.into()
}
