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

// --- notices ---

/// Encodes a notice as a NOTIFY payload: `q`, `e:<id>` or `c:<id>`.
fn encode_notice(notice: &Notice) -> String {
    match notice {
        Notice::Queued => "q".to_string(),
        Notice::Events(id) => format!("e:{id}"),
        Notice::Cancel(id) => format!("c:{id}"),
    }
}

/// Decodes a NOTIFY payload; None for one this version does not know.
fn decode_notice(payload: &str) -> Option<Notice> {
    if payload == "q" {
        return Some(Notice::Queued);
    }
    if let Some(id) = payload.strip_prefix("e:") {
        return Some(Notice::Events(id.to_string()));
    }
    payload.strip_prefix("c:").map(|id| Notice::Cancel(id.to_string()))
}

/// Publishes a notice; delivered when the surrounding transaction commits.
async fn notify(
    conn: &mut PgConnection,
    notice: &Notice,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(encode_notice(notice))
        .execute(conn)
        .await?;
    Ok(())
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Forwards notifications to the broadcast channel for as long as the
/// store lives. `PgListener` re-establishes a connection that died with an
/// I/O error by itself (`try_recv` then answers `Ok(None)`); any other
/// failure (server shutdown message, database down while reconnecting)
/// drops the listener and subscribes again with a backoff. Notifications
/// sent while disconnected are lost, so every reconnection also wakes the
/// local dispatcher (`Queued`); event readers poll anyway.
async fn relay(
    pool: PgPool,
    listener: PgListener,
    tx: broadcast::Sender<Notice>,
) {
    let mut listener = Some(listener);
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        let mut current = match listener.take() {
            Some(l) => l,
            None => match subscribe(&pool).await {
                Ok(l) => {
                    tracing::info!("LISTEN connection re-established");
                    let _ = tx.send(Notice::Queued);
                    l
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot re-establish the LISTEN connection; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                    continue;
                }
            },
        };
        loop {
            match current.try_recv().await {
                Ok(Some(n)) => {
                    backoff = LISTEN_BACKOFF_MIN;
                    match decode_notice(n.payload()) {
                        Some(notice) => {
                            let _ = tx.send(notice);
                        }
                        None => {
                            tracing::debug!(
                                payload = n.payload(),
                                "unknown notification"
                            )
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost and re-established");
                    let _ = tx.send(Notice::Queued);
                }
                Err(error) => {
                    tracing::warn!(%error, "LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
        drop(current);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
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
            let new_org = format!("org_{}", crate::engine::ids::random_hex(12));
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
mod tests {
    use std::collections::HashSet;
    use std::panic::AssertUnwindSafe;
    use std::sync::Arc;

    use futures::FutureExt;

    use super::*;

    /// Server used by the integration test (trust auth).
    const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

    #[test]
    fn notice_payloads_round_trip() {
        for notice in [
            Notice::Queued,
            Notice::Events("resp_1".into()),
            Notice::Cancel("resp_2".into()),
        ] {
            assert_eq!(decode_notice(&encode_notice(&notice)), Some(notice));
        }
        assert_eq!(decode_notice("x:1"), None);
    }

    #[test]
    fn server_going_away_is_unavailable() {
        for code in ["08006", "53300", "57P01", "57P03", "57014", "25006"] {
            assert!(unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!unavailable_code(code), "{code}");
        }
    }

    #[tokio::test]
    async fn unreachable_database_is_unavailable_quickly() {
        let opts = PoolOptions {
            max_connections: 2,
            acquire_timeout_ms: 500,
            statement_timeout_ms: 1_000,
        };
        let started = std::time::Instant::now();
        let result =
            PgStore::open("postgres://postgres@127.0.0.1:1/none", &opts).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    /// A connection to the `test` database, or None (skip) when there is no
    /// PostgreSQL server, unless MANIAC_REQUIRE_POSTGRES=1.
    async fn admin() -> Option<PgConnection> {
        let url = format!("{SERVER}/test");
        let connect = async {
            let opts = PgConnectOptions::from_str(&url)?;
            PgConnection::connect_with(&opts).await
        };
        let error =
            match tokio::time::timeout(Duration::from_secs(3), connect).await {
                Ok(Ok(conn)) => return Some(conn),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".to_string(),
            };
        if std::env::var("MANIAC_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!(
                "no PostgreSQL at {url} ({error}) and MANIAC_REQUIRE_POSTGRES=1"
            );
        }
        println!("skipped: no PostgreSQL at {url} ({error})");
        None
    }

    fn item(id: &str) -> ItemRow {
        ItemRow { id: id.to_string(), body: format!(r#"{{"id":"{id}"}}"#) }
    }

    fn stored(
        id: &str,
        org: &str,
        prev: Option<&str>,
        created_at: i64,
        input: &[&str],
        output: &[&str],
    ) -> NewResponse {
        NewResponse {
            id: id.to_string(),
            org_id: org.to_string(),
            previous_response_id: prev.map(str::to_string),
            status: "completed",
            background: false,
            body: format!(r#"{{"id":"{id}"}}"#),
            run_request: None,
            input_items: input.iter().map(|i| item(i)).collect(),
            output_items: output.iter().map(|i| item(i)).collect(),
            events: vec![],
            created_at,
        }
    }

    fn queued(id: &str, org: &str, created_at: i64) -> NewResponse {
        NewResponse {
            status: "queued",
            background: true,
            run_request: Some(format!(r#"{{"run":"{id}"}}"#)),
            events: vec![EventRow { seq: 0, body: "created".into() }],
            ..stored(id, org, None, created_at, &["in"], &[])
        }
    }

    fn end(status: &'static str, seq: i64) -> RunEnd {
        RunEnd {
            status,
            body: format!(r#"{{"status":"{status}"}}"#),
            output_items: vec![item(&format!("out_{seq}"))],
            events: vec![EventRow { seq, body: status.into() }],
        }
    }

    fn ids(items: &Items) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    async fn expect_notice(rx: &mut broadcast::Receiver<Notice>, want: Notice) {
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(n) if n == want => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("notices closed: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| panic!("no {want:?} notice within 5 s"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_store() {
        let Some(mut admin) = admin().await else { return };
        let name =
            format!("maniac_store_test_{}", crate::engine::ids::random_hex(6));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let url = format!("{SERVER}/{name}");
        let outcome = AssertUnwindSafe(exercise(&url)).catch_unwind().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .expect("drop database");
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    async fn exercise(url: &str) {
        let opts = PoolOptions {
            max_connections: 8,
            acquire_timeout_ms: 3_000,
            statement_timeout_ms: 5_000,
        };
        let store = Arc::new(PgStore::open(url, &opts).await.expect("open"));
        // A second open runs the (already applied) migrations again.
        drop(PgStore::open(url, &opts).await.expect("reopen"));
        store.ping().await.unwrap();
        let timeout: String = sqlx::query("SHOW statement_timeout")
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(timeout, "5s");

        // Keys and organizations.
        let k1 = store
            .create_key("acme", Some("ci"), "key_1", "hash_1")
            .await
            .unwrap();
        assert_eq!(
            (k1.key_id.as_str(), k1.name.as_deref()),
            ("key_1", Some("ci"))
        );
        store.create_key("acme", None, "key_2", "hash_2").await.unwrap();
        store.create_key("other", None, "key_3", "hash_3").await.unwrap();
        let found = store.find_key("hash_1").await.unwrap().expect("key");
        assert_eq!(
            (found.key_id.as_str(), found.org_name.as_str()),
            ("key_1", "acme")
        );
        assert!(!found.revoked);
        let org = found.org_id.clone();
        assert_eq!(
            store.find_key("hash_2").await.unwrap().unwrap().org_id,
            org
        );
        let other = store.find_key("hash_3").await.unwrap().unwrap().org_id;
        assert_ne!(other, org);
        assert!(store.find_key("nope").await.unwrap().is_none());
        assert_eq!(
            store.find_org("acme").await.unwrap().as_deref(),
            Some(org.as_str())
        );
        assert_eq!(
            store.find_org(&org).await.unwrap().as_deref(),
            Some(org.as_str())
        );
        assert!(store.find_org("nobody").await.unwrap().is_none());
        assert_eq!(store.count_keys().await.unwrap(), 3);
        assert!(store.revoke_key("key_1").await.unwrap());
        assert!(!store.revoke_key("key_404").await.unwrap());
        assert!(store.find_key("hash_1").await.unwrap().unwrap().revoked);
        let listed = store.list_keys().await.unwrap();
        assert_eq!(listed.len(), 3);
        assert!(
            listed
                .iter()
                .any(|k| k.key_id == "key_1" && k.revoked_at.is_some())
        );
        assert!(matches!(
            store.create_key("acme", None, "key_4", "hash_1").await,
            Err(StoreError::Conflict(_))
        ));

        // A three-turn chain.
        store
            .insert_response(stored(
                "resp_1",
                &org,
                None,
                1,
                &["in_1"],
                &["out_1"],
            ))
            .await
            .unwrap();
        store
            .insert_response(stored(
                "resp_2",
                &org,
                Some("resp_1"),
                2,
                &["in_2a", "in_2b"],
                &["out_2"],
            ))
            .await
            .unwrap();
        store
            .insert_response(stored(
                "resp_3",
                &org,
                Some("resp_2"),
                3,
                &["in_3"],
                &["out_3a", "out_3b"],
            ))
            .await
            .unwrap();
        store
            .insert_response(stored("resp_empty", &org, None, 4, &[], &[]))
            .await
            .unwrap();
        let chain =
            store.chain_items(&org, "resp_3").await.unwrap().expect("chain");
        assert_eq!(
            ids(&chain),
            [
                "in_1", "out_1", "in_2a", "in_2b", "out_2", "in_3", "out_3a",
                "out_3b"
            ]
        );
        assert_eq!(chain[0].body, r#"{"id":"in_1"}"#);
        let chain = store.chain_items(&org, "resp_1").await.unwrap().unwrap();
        assert_eq!(ids(&chain), ["in_1", "out_1"]);
        assert_eq!(
            store.chain_items(&org, "resp_empty").await.unwrap().unwrap().len(),
            0
        );
        assert!(store.chain_items(&other, "resp_3").await.unwrap().is_none());
        assert!(store.chain_items(&org, "resp_404").await.unwrap().is_none());
        assert_eq!(
            ids(&store.own_input_items("resp_2").await.unwrap()),
            ["in_2a", "in_2b"]
        );
        assert_eq!(
            store.find_item(&org, "out_2").await.unwrap().as_deref(),
            Some(r#"{"id":"out_2"}"#)
        );
        assert!(store.find_item(&other, "out_2").await.unwrap().is_none());
        let got = store
            .get_response(&org, "resp_2")
            .await
            .unwrap()
            .expect("response");
        assert_eq!((got.status.as_str(), got.background), ("completed", false));
        assert!(store.get_response(&other, "resp_2").await.unwrap().is_none());
        assert!(!store.delete_response(&other, "resp_3").await.unwrap());
        assert!(store.delete_response(&org, "resp_3").await.unwrap());
        assert!(store.get_response(&org, "resp_3").await.unwrap().is_none());
        assert!(store.find_item(&org, "out_3a").await.unwrap().is_none());
        assert!(!store.delete_response(&org, "resp_3").await.unwrap());

        // The background queue, claimed by four replicas at once.
        let mut notices = store.notices().expect("notices");
        let queued_ids: Vec<String> =
            (0..20).map(|i| format!("resp_q{i:02}")).collect();
        for (i, id) in queued_ids.iter().enumerate() {
            store
                .insert_response(queued(id, &org, 100 + i as i64))
                .await
                .unwrap();
        }
        expect_notice(&mut notices, Notice::Queued).await;
        let claimers = (0..4).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let owner = format!("replica_{w}");
                let mut claimed = Vec::new();
                while let Some(run) =
                    store.claim_next(&owner, 30_000, now_ms()).await.unwrap()
                {
                    claimed.push((owner.clone(), run));
                }
                claimed
            })
        });
        let mut claims = Vec::new();
        for task in claimers.collect::<Vec<_>>() {
            claims.extend(task.await.unwrap());
        }
        let claimed_ids: HashSet<&str> =
            claims.iter().map(|(_, r)| r.id.as_str()).collect();
        assert_eq!(claims.len(), 20, "each run claimed exactly once");
        assert_eq!(
            claimed_ids,
            queued_ids.iter().map(String::as_str).collect()
        );
        for (_, run) in &claims {
            assert_eq!(run.next_seq, 1);
            assert_eq!(run.org_id, org);
            assert_eq!(run.run_request, format!(r#"{{"run":"{}"}}"#, run.id));
        }
        assert!(
            store
                .claim_next("replica_x", 30_000, now_ms())
                .await
                .unwrap()
                .is_none()
        );

        // Events and the end of a run, guarded by the lease.
        let (owner, run) = &claims[0];
        let id = run.id.as_str();
        let stored_run = store.get_response(&org, id).await.unwrap().unwrap();
        assert_eq!(stored_run.status, "in_progress");
        assert_eq!(stored_run.lease_owner.as_deref(), Some(owner.as_str()));
        let more = [EventRow { seq: 1, body: "delta".into() }];
        assert!(
            store
                .append_events(id, owner, &more, Some(r#"{"snap":1}"#))
                .await
                .unwrap()
        );
        expect_notice(&mut notices, Notice::Events(id.to_string())).await;
        assert!(
            !store.append_events(id, "intruder", &more, None).await.unwrap()
        );
        assert!(store.renew_lease(id, owner, now_ms() + 60_000).await.unwrap());
        assert!(
            !store
                .renew_lease(id, "intruder", now_ms() + 60_000)
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_response(&org, id).await.unwrap().unwrap().body,
            r#"{"snap":1}"#
        );
        let page = store.events_after(id, -1, 1).await.unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [0]);
        assert!(!store.cancel_requested(id).await.unwrap());
        store.request_cancel(&other, id).await.unwrap();
        assert!(!store.cancel_requested(id).await.unwrap());
        store.request_cancel(&org, id).await.unwrap();
        assert!(store.cancel_requested(id).await.unwrap());
        expect_notice(&mut notices, Notice::Cancel(id.to_string())).await;
        assert!(store.cancel_requested("resp_404").await.unwrap());
        assert!(
            !store
                .finish_run(id, "intruder", end("completed", 2))
                .await
                .unwrap()
        );
        assert!(
            store.finish_run(id, owner, end("completed", 2)).await.unwrap()
        );
        assert!(
            !store.finish_run(id, owner, end("completed", 3)).await.unwrap()
        );
        assert!(!store.append_events(id, owner, &more, None).await.unwrap());
        let done = store.get_response(&org, id).await.unwrap().unwrap();
        assert_eq!(
            (done.status.as_str(), done.lease_owner),
            ("completed", None)
        );
        let all = store.events_after(id, -1, 100).await.unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(
            store.events_after(id, 1, 100).await.unwrap()[0].body,
            "completed"
        );
        let transcript = store.chain_items(&org, id).await.unwrap().unwrap();
        assert_eq!(ids(&transcript), ["in", "out_2"]);

        // A lease in the past is reported as expired, with its owner.
        let now = now_ms();
        assert!(store.expired_runs(now).await.unwrap().is_empty());
        store.insert_response(queued("resp_stale", &org, 1_000)).await.unwrap();
        let stale = store
            .claim_next("replica_dead", -1_000, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stale.id, "resp_stale");
        let expired = store.expired_runs(now).await.unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (
                expired[0].id.as_str(),
                expired[0].lease_owner.as_str(),
                expired[0].next_seq
            ),
            ("resp_stale", "replica_dead", 1)
        );
        // 19 claimed runs still hold 30 s leases.
        assert_eq!(
            store.expired_runs(now + 3_600_000).await.unwrap().len(),
            20
        );

        // Cancelling a queued run, not a claimed one.
        store.insert_response(queued("resp_cq", &org, 2_000)).await.unwrap();
        assert!(
            !store
                .cancel_queued(&other, "resp_cq", end("cancelled", 1))
                .await
                .unwrap()
        );
        assert!(
            store
                .cancel_queued(&org, "resp_cq", end("cancelled", 1))
                .await
                .unwrap()
        );
        expect_notice(&mut notices, Notice::Events("resp_cq".into())).await;
        assert!(
            !store
                .cancel_queued(&org, "resp_cq", end("cancelled", 2))
                .await
                .unwrap()
        );
        assert!(
            !store
                .cancel_queued(&org, &claims[1].1.id, end("cancelled", 1))
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_response(&org, "resp_cq").await.unwrap().unwrap().status,
            "cancelled"
        );
        assert!(
            store
                .claim_next("replica_x", 30_000, now_ms())
                .await
                .unwrap()
                .is_none()
        );

        // Pruning drops the logs of finished runs only.
        assert_eq!(store.prune_events(now_ms() + 60_000).await.unwrap(), 5);
        assert!(store.events_after(id, -1, 100).await.unwrap().is_empty());
        assert_eq!(
            store.events_after(&claims[1].1.id, -1, 100).await.unwrap().len(),
            1
        );

        // The LISTEN connection comes back after its backend is killed.
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(killed, [true]);
        let target = claims[1].1.id.clone();
        let recovered = async {
            loop {
                store.request_cancel(&org, &target).await.unwrap();
                let wait =
                    expect_notice(&mut notices, Notice::Cancel(target.clone()));
                if tokio::time::timeout(Duration::from_millis(300), wait)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), recovered)
            .await
            .expect("notices resume after the LISTEN connection is lost");
    }
}
