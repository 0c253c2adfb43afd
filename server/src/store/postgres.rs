//! PostgreSQL store: several gateway replicas share one database. Same
//! schema and semantics as the SQLite store; background runs are claimed
//! with `FOR UPDATE SKIP LOCKED`, and replicas wake each other with
//! LISTEN/NOTIFY (published inside the writing transaction, so a notice is
//! only ever delivered for a committed write).

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow,
};
use sqlx::{Connection, Row};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::*;

mod notify;

use notify::{notify, relay, subscribe};

/// The LISTEN/NOTIFY channel shared by all replicas.
const CHANNEL: &str = "maniac";

/// `response_items.kind` of input items.
const INPUT: i16 = 0;
/// `response_items.kind` of output items.
const OUTPUT: i16 = 1;

/// Slack on top of acquire + statement timeouts before a call that got no
/// answer at all (half-open TCP connection) is given up as unavailable.
const CLIENT_SLACK: Duration = Duration::from_secs(5);

/// Backoff of the LISTEN connection while the database is unreachable.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(200);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: PgPool,
    /// Client-side bound of one store call; None when `statement_timeout`
    /// is disabled.
    deadline: Option<Duration>,
    notices: broadcast::Sender<Notice>,
    listener: JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

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

    /// Runs one store call: maps its errors and bounds it in time, so that
    /// a database that vanished without closing the connection answers
    /// `Unavailable` instead of hanging.
    async fn db<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> StoreResult<T> {
        let result = match self.deadline {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "no answer from the database within {} ms",
                        limit.as_millis()
                    )));
                }
            },
            None => work.await,
        };
        result.map_err(pg)
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
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || code.starts_with("57P") // shutdown, crash, cannot connect now
        || code == "57014" // statement_timeout
        || code == "25006" // read-only transaction
}

/// Maps a sqlx error, treating PostgreSQL's "server going away" errors as
/// `Unavailable`; everything else goes through `From<sqlx::Error>`.
fn pg(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.code().is_some_and(|c| unavailable_code(&c))
    {
        return StoreError::Unavailable(e.to_string());
    }
    e.into()
}

// --- writes shared by several methods ---

/// Inserts input and output items with one multi-row statement; positions
/// count from 0 per kind, as in SQLite.
async fn insert_items(
    conn: &mut PgConnection,
    id: &str,
    input: &[ItemRow],
    output: &[ItemRow],
) -> Result<(), sqlx::Error> {
    if input.is_empty() && output.is_empty() {
        return Ok(());
    }
    let rows =
        input.iter().enumerate().map(|(pos, item)| (INPUT, pos, item)).chain(
            output.iter().enumerate().map(|(pos, item)| (OUTPUT, pos, item)),
        );
    let n = input.len() + output.len();
    let (mut kinds, mut positions, mut ids, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (kind, pos, item) in rows {
        kinds.push(kind);
        positions.push(pos as i32);
        ids.push(item.id.as_str());
        bodies.push(item.body.as_str());
    }
    sqlx::query(
        "INSERT INTO response_items (response_id, kind, position, item_id, \
         body) SELECT $1, t.kind, t.position, t.item_id, t.body \
         FROM UNNEST($2::SMALLINT[], $3::INTEGER[], $4::TEXT[], $5::TEXT[]) \
         AS t (kind, position, item_id, body)",
    )
    .bind(id)
    .bind(kinds)
    .bind(positions)
    .bind(ids)
    .bind(bodies)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts events with one multi-row statement.
async fn insert_events(
    conn: &mut PgConnection,
    id: &str,
    events: &[EventRow],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    sqlx::query(
        "INSERT INTO response_events (response_id, seq, body, created_at) \
         SELECT $1, t.seq, t.body, $4 \
         FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS t (seq, body)",
    )
    .bind(id)
    .bind(seqs)
    .bind(bodies)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

fn key_info(row: &PgRow) -> Result<KeyInfo, sqlx::Error> {
    Ok(KeyInfo {
        key_id: row.try_get("id")?,
        org_name: row.try_get("org_name")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Item rows; rows with NULL columns (a chained response without items,
/// from the LEFT JOIN) are skipped.
fn items(rows: Vec<PgRow>) -> Result<Items, sqlx::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Option<String> = row.try_get("item_id")?;
        let body: Option<String> = row.try_get("body")?;
        if let (Some(id), Some(body)) = (id, body) {
            out.push(ItemRow { id, body });
        }
    }
    Ok(out)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db(async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.notices.subscribe())
    }

    async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyRecord>> {
        self.db(async {
            let row = sqlx::query(
                "SELECT k.id, k.org_id, o.name AS org_name, k.revoked_at \
                 FROM api_keys k JOIN organizations o ON o.id = k.org_id \
                 WHERE k.key_hash = $1",
            )
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(KeyRecord {
                    key_id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    org_name: row.try_get("org_name")?,
                    revoked: row
                        .try_get::<Option<i64>, _>("revoked_at")?
                        .is_some(),
                })
            })
            .transpose()
        })
        .await
    }

    async fn create_key(
        &self,
        org_name: &str,
        label: Option<&str>,
        key_id: &str,
        key_hash: &str,
    ) -> StoreResult<KeyInfo> {
        self.db(async {
            let now = now_ms();
            let mut tx = self.pool.begin().await?;
            let new_org = format!("org_{}", crate::ids::random_hex(12));
            // A concurrent creator of the same organization makes this wait
            // for its commit and do nothing; the next statement sees it.
            sqlx::query(
                "INSERT INTO organizations (id, name, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&new_org)
            .bind(org_name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO api_keys (id, org_id, name, key_hash, created_at) \
                 SELECT $1, id, $2, $3, $4 FROM organizations WHERE name = $5",
            )
            .bind(key_id)
            .bind(label)
            .bind(key_hash)
            .bind(now)
            .bind(org_name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(KeyInfo {
                key_id: key_id.to_string(),
                org_name: org_name.to_string(),
                name: label.map(str::to_string),
                created_at: now,
                revoked_at: None,
            })
        })
        .await
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyInfo>> {
        self.db(async {
            let rows = sqlx::query(
                "SELECT k.id, o.name AS org_name, k.name, k.created_at, \
                 k.revoked_at FROM api_keys k JOIN organizations o \
                 ON o.id = k.org_id ORDER BY k.created_at, k.id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(key_info).collect()
        })
        .await
    }

    async fn revoke_key(&self, key_id: &str) -> StoreResult<bool> {
        self.db(async {
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
                 WHERE id = $2",
            )
            .bind(now_ms())
            .bind(key_id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn count_keys(&self) -> StoreResult<i64> {
        self.db(async {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
                .fetch_one(&self.pool)
                .await?;
            row.try_get("n")
        })
        .await
    }

    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<String>> {
        self.db(async {
            let row = sqlx::query(
                "SELECT id FROM organizations WHERE id = $1 OR name = $1 \
                 LIMIT 1",
            )
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| r.try_get("id")).transpose()
        })
        .await
    }

    async fn insert_response(&self, r: NewResponse) -> StoreResult<()> {
        self.db(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO responses (id, org_id, previous_response_id, \
                 status, background, body, run_request, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&r.id)
            .bind(&r.org_id)
            .bind(&r.previous_response_id)
            .bind(r.status)
            .bind(r.background)
            .bind(&r.body)
            .bind(&r.run_request)
            .bind(r.created_at)
            .execute(&mut *tx)
            .await?;
            insert_items(&mut tx, &r.id, &r.input_items, &r.output_items)
                .await?;
            insert_events(&mut tx, &r.id, &r.events).await?;
            if r.background && r.status == "queued" {
                notify(&mut tx, &Notice::Queued).await?;
            }
            tx.commit().await
        })
        .await
    }

    async fn get_response(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<StoredResponse>> {
        super::counters::bump(&super::counters::COUNTERS.response_reads);
        self.db(async {
            let row = sqlx::query(
                "SELECT body, status, background, lease_owner FROM responses \
                 WHERE id = $1 AND org_id = $2",
            )
            .bind(id)
            .bind(org)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(StoredResponse {
                    body: row.try_get("body")?,
                    status: row.try_get("status")?,
                    background: row.try_get("background")?,
                    lease_owner: row.try_get("lease_owner")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_response(&self, org: &str, id: &str) -> StoreResult<bool> {
        self.db(async {
            let done = sqlx::query(
                "DELETE FROM responses WHERE id = $1 AND org_id = $2",
            )
            .bind(id)
            .bind(org)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn chain_items(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<Items>> {
        self.db(async {
            let rows = sqlx::query(
                "WITH RECURSIVE chain (id, prev, depth) AS ( \
                   SELECT id, previous_response_id, 0 FROM responses \
                   WHERE id = $1 AND org_id = $2 \
                   UNION ALL \
                   SELECT r.id, r.previous_response_id, c.depth + 1 \
                   FROM responses r JOIN chain c ON r.id = c.prev \
                   WHERE r.org_id = $2 AND c.depth < 10000 \
                 ) \
                 SELECT c.depth, i.kind, i.position, i.item_id, i.body \
                 FROM chain c LEFT JOIN response_items i \
                   ON i.response_id = c.id \
                 ORDER BY c.depth DESC, i.kind, i.position",
            )
            .bind(id)
            .bind(org)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            items(rows).map(Some)
        })
        .await
    }

    async fn own_input_items(&self, id: &str) -> StoreResult<Items> {
        self.db(async {
            let rows = sqlx::query(
                "SELECT item_id, body FROM response_items \
                 WHERE response_id = $1 AND kind = 0 ORDER BY position",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            items(rows)
        })
        .await
    }

    async fn find_item(
        &self,
        org: &str,
        item_id: &str,
    ) -> StoreResult<Option<String>> {
        self.db(async {
            let row = sqlx::query(
                "SELECT i.body FROM response_items i JOIN responses r \
                 ON r.id = i.response_id WHERE i.item_id = $1 \
                 AND r.org_id = $2 LIMIT 1",
            )
            .bind(item_id)
            .bind(org)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| r.try_get("body")).transpose()
        })
        .await
    }

    async fn claim_next(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> StoreResult<Option<ClaimedRun>> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        // One statement (so one transaction): the oldest queued run not
        // locked by another replica's claim is locked, leased and read with
        // its next sequence number. A row that another claim updated first
        // is re-checked against `status = 'queued'` and skipped.
        self.db(async {
            let row = sqlx::query(
                "WITH claimed AS ( \
                   UPDATE responses SET status = 'in_progress', \
                   lease_owner = $1, lease_expires_at = $2, updated_at = $3 \
                   WHERE id = (SELECT id FROM responses \
                     WHERE status = 'queued' AND background \
                     ORDER BY created_at, id LIMIT 1 \
                     FOR UPDATE SKIP LOCKED) \
                   RETURNING id, org_id, body, run_request \
                 ) \
                 SELECT c.id, c.org_id, c.body, c.run_request, \
                   (SELECT COALESCE(MAX(e.seq) + 1, 0) FROM response_events e \
                    WHERE e.response_id = c.id) AS next \
                 FROM claimed c",
            )
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(ClaimedRun {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    body: row.try_get("body")?,
                    run_request: row
                        .try_get::<Option<String>, _>("run_request")?
                        .unwrap_or_default(),
                    next_seq: row.try_get("next")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        until: i64,
    ) -> StoreResult<bool> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        self.db(async {
            let done = sqlx::query(
                "UPDATE responses SET lease_expires_at = $1 WHERE id = $2 \
                 AND lease_owner = $3 AND status = 'in_progress'",
            )
            .bind(until)
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn append_events(
        &self,
        id: &str,
        owner: &str,
        events: &[EventRow],
        snapshot: Option<&str>,
    ) -> StoreResult<bool> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        self.db(async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE responses SET body = COALESCE($1, body), \
                 updated_at = $2 WHERE id = $3 AND lease_owner = $4 \
                 AND status = 'in_progress'",
            )
            .bind(snapshot)
            .bind(now_ms())
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_events(&mut tx, id, events).await?;
            notify(&mut tx, &Notice::Events(id.to_string())).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn finish_run(
        &self,
        id: &str,
        owner: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        self.db(async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE responses SET status = $1, body = $2, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
                 WHERE id = $4 AND lease_owner = $5 AND status = 'in_progress'",
            )
            .bind(end.status)
            .bind(&end.body)
            .bind(now_ms())
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_items(&mut tx, id, &[], &end.output_items).await?;
            insert_events(&mut tx, id, &end.events).await?;
            notify(&mut tx, &Notice::Events(id.to_string())).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn cancel_queued(
        &self,
        org: &str,
        id: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        self.db(async {
            let mut tx = self.pool.begin().await?;
            // Waits for a claim holding the row, then sees it in progress.
            let done = sqlx::query(
                "UPDATE responses SET status = $1, body = $2, updated_at = $3 \
                 WHERE id = $4 AND org_id = $5 AND status = 'queued'",
            )
            .bind(end.status)
            .bind(&end.body)
            .bind(now_ms())
            .bind(id)
            .bind(org)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_events(&mut tx, id, &end.events).await?;
            notify(&mut tx, &Notice::Events(id.to_string())).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn request_cancel(&self, org: &str, id: &str) -> StoreResult<()> {
        self.db(async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE responses SET cancel_requested = TRUE WHERE id = $1 \
                 AND org_id = $2",
            )
            .bind(id)
            .bind(org)
            .execute(&mut *tx)
            .await?;
            // Only for a response of `org`: a notice names the run to stop.
            if done.rows_affected() == 1 {
                notify(&mut tx, &Notice::Cancel(id.to_string())).await?;
            }
            tx.commit().await
        })
        .await
    }

    async fn cancel_requested(&self, id: &str) -> StoreResult<bool> {
        self.db(async {
            let row = sqlx::query(
                "SELECT cancel_requested FROM responses WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(match row {
                Some(r) => r.try_get::<bool, _>("cancel_requested")?,
                None => true,
            })
        })
        .await
    }

    async fn expired_runs(&self, now: i64) -> StoreResult<Vec<ExpiredRun>> {
        self.db(async {
            let rows = sqlx::query(
                "SELECT r.id, r.lease_owner, r.body, \
                   (SELECT COALESCE(MAX(seq) + 1, 0) FROM response_events e \
                    WHERE e.response_id = r.id) AS next \
                 FROM responses r WHERE r.status = 'in_progress' \
                 AND r.background AND r.lease_expires_at < $1",
            )
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(ExpiredRun {
                        id: row.try_get("id")?,
                        lease_owner: row
                            .try_get::<Option<String>, _>("lease_owner")?
                            .unwrap_or_default(),
                        body: row.try_get("body")?,
                        next_seq: row.try_get("next")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        super::counters::bump(&super::counters::COUNTERS.event_reads);
        self.db(async {
            let rows = sqlx::query(
                "SELECT seq, body FROM response_events WHERE response_id = $1 \
                 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(EventRow {
                        seq: r.try_get("seq")?,
                        body: r.try_get("body")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        self.db(async {
            let done = sqlx::query(
                "DELETE FROM response_events WHERE created_at < $1 AND \
                 response_id IN (SELECT id FROM responses WHERE status NOT IN \
                 ('queued', 'in_progress'))",
            )
            .bind(before)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
