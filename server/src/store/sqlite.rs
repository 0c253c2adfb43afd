//! SQLite store: one file, WAL, zero setup. Writes go through a single
//! connection (SQLite has one writer anyway, and this avoids lock-upgrade
//! failures); concurrent response inserts are batched into one transaction.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::*;

/// Most inserts committed in one transaction.
const MAX_BATCH: usize = 256;

struct InsertJob {
    response: NewResponse,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    inserts: mpsc::Sender<InsertJob>,
    /// Stops the checkpointer when the store is dropped.
    _checkpoints: tokio_util::sync::DropGuard,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`.
    pub async fn open(url: &str, opts: &PoolOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let acquire = Duration::from_millis(opts.acquire_timeout_ms);
        // The writer never checkpoints: that would stall every insert
        // queued behind it on the checkpoint's fsyncs (measured: ~20 ms a
        // few times a second under load). A separate connection does it.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire)
            .connect_with(
                connect
                    .clone()
                    .pragma("wal_autocheckpoint", "0")
                    .synchronous(if opts.sqlite_fsync_commits {
                        SqliteSynchronous::Full
                    } else {
                        SqliteSynchronous::Normal
                    })
                    // When the log restarts, its file shrinks back to this.
                    .pragma("journal_size_limit", (32 << 20).to_string()),
            )
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire)
            .connect_with(connect.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(acquire)
            .connect_with(connect.read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(insert_writer(write.clone(), rx));
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(checkpoint_loop(checkpointer, stop.clone()));
        Ok(SqliteStore {
            read,
            write,
            inserts: tx,
            _checkpoints: stop.drop_guard(),
        })
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the WAL beside the writer. PASSIVE never blocks readers or
/// the writer; frames written meanwhile wait for the next round. Ends when
/// the store is dropped.
async fn checkpoint_loop(
    pool: SqlitePool,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = checkpoint(&pool).await {
            tracing::warn!(error = %e, "SQLite WAL checkpoint failed; will retry");
        }
    }
    pool.close().await;
}

/// WAL frames (pages) after which the log is restarted from its start.
const WAL_RESTART_FRAMES: i64 = 8192;

/// Copies the WAL into the database without blocking anyone. Under
/// steady writes the log never drains by itself, so once it holds more
/// than [`WAL_RESTART_FRAMES`] a RESTART checkpoint (by then with almost
/// nothing left to copy) waits for the writer's current transaction and
/// makes the next one start the log over.
async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let (_, log, _): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    if log > WAL_RESTART_FRAMES {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(pool).await?;
    }
    Ok(())
}

/// Commits queued inserts in batches; a failing batch is retried row by row
/// so one bad response never fails its neighbours.
async fn insert_writer(pool: SqlitePool, mut rx: mpsc::Receiver<InsertJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<&NewResponse> =
            batch.iter().map(|j| &j.response).collect();
        let result = insert_batch(&pool, &rows).await;
        drop(rows);
        match result {
            Ok(()) => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.done.send(Err(e));
                }
            }
            Err(_) => {
                for job in batch.drain(..) {
                    let r = insert_batch(&pool, &[&job.response]).await;
                    let _ = job.done.send(r);
                }
            }
        }
    }
}

/// Rows per multi-row `INSERT`: a batch is cut greedily into these sizes,
/// so only a few statement shapes are ever prepared (and then cached).
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Splits `rows` into slices of the sizes in [`CHUNKS`].
fn chunked<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let n = CHUNKS.into_iter().find(|&c| c <= rows.len())?;
        let (head, tail) = rows.split_at(n);
        rows = tail;
        Some(head)
    })
}

/// Inserts a batch in one transaction with multi-row `INSERT … VALUES`
/// statements whose values are bound parameters. (An earlier version
/// passed rows as one JSON array through `json_each`: callgrind put
/// SQLite's JSON functions at ~45% of the writer's time.)
async fn insert_batch(
    pool: &SqlitePool,
    rows: &[&NewResponse],
) -> StoreResult<()> {
    let items: Vec<(&str, i64, i64, &ItemRow)> = rows
        .iter()
        .flat_map(|r| {
            let inputs = r
                .input_items
                .iter()
                .enumerate()
                .map(move |(p, it)| (r.id.as_str(), 0, p as i64, it));
            let outputs = r
                .output_items
                .iter()
                .enumerate()
                .map(move |(p, it)| (r.id.as_str(), 1, p as i64, it));
            inputs.chain(outputs)
        })
        .collect();
    let events: Vec<(&str, &EventRow)> = rows
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r.id.as_str(), e)))
        .collect();
    let now = now_ms();
    let mut tx = pool.begin().await?;
    for chunk in chunked(rows) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO responses (id, org_id, previous_response_id, \
             status, background, body, run_request, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(r.org_id.as_str())
                .push_bind(r.previous_response_id.as_deref())
                .push_bind(r.status)
                .push_bind(i64::from(r.background))
                .push_bind(r.body.as_str())
                .push_bind(r.run_request.as_deref())
                .push_bind(r.created_at)
                .push_bind(r.created_at);
        });
        q.build().execute(&mut *tx).await?;
    }
    for chunk in chunked(&items) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO response_items (response_id, kind, position, \
             item_id, body) ",
        );
        q.push_values(chunk, |mut b, (id, kind, pos, it)| {
            b.push_bind(*id)
                .push_bind(*kind)
                .push_bind(*pos)
                .push_bind(it.id.as_str())
                .push_bind(it.body.as_str());
        });
        q.build().execute(&mut *tx).await?;
    }
    for chunk in chunked(&events) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO response_events (response_id, seq, body, \
             created_at) ",
        );
        q.push_values(chunk, |mut b, (id, e)| {
            b.push_bind(*id)
                .push_bind(e.seq)
                .push_bind(e.body.as_str())
                .push_bind(now);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_items(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    kind: i64,
    items: &[ItemRow],
) -> StoreResult<()> {
    for (pos, item) in items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO response_items (response_id, kind, position, \
             item_id, body) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(kind)
        .bind(pos as i64)
        .bind(&item.id)
        .bind(&item.body)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_events(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    events: &[EventRow],
) -> StoreResult<()> {
    let now = now_ms();
    for e in events {
        sqlx::query(
            "INSERT INTO response_events (response_id, seq, body, \
             created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(e.seq)
        .bind(&e.body)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn key_info(row: &sqlx::sqlite::SqliteRow) -> StoreResult<KeyInfo> {
    Ok(KeyInfo {
        key_id: row.try_get("id")?,
        org_name: row.try_get("org_name")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn items(rows: Vec<sqlx::sqlite::SqliteRow>) -> StoreResult<Items> {
    rows.iter()
        .filter_map(|row| {
            let body: Option<String> = match row.try_get("body") {
                Ok(b) => b,
                Err(e) => return Some(Err(e.into())),
            };
            let id: Option<String> = row.try_get("item_id").ok().flatten();
            Some(Ok(ItemRow { id: id?, body: body? }))
        })
        .collect()
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyRecord>> {
        let row = sqlx::query(
            "SELECT k.id, k.org_id, o.name AS org_name, k.revoked_at \
             FROM api_keys k JOIN organizations o ON o.id = k.org_id \
             WHERE k.key_hash = ?",
        )
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(KeyRecord {
                key_id: row.try_get("id")?,
                org_id: row.try_get("org_id")?,
                org_name: row.try_get("org_name")?,
                revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            })
        })
        .transpose()
    }

    async fn create_key(
        &self,
        org_name: &str,
        label: Option<&str>,
        key_id: &str,
        key_hash: &str,
    ) -> StoreResult<KeyInfo> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let new_org = format!("org_{}", crate::ids::random_hex(12));
        sqlx::query(
            "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&new_org)
        .bind(org_name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, name, key_hash, created_at) \
             SELECT ?, id, ?, ?, ? FROM organizations WHERE name = ?",
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
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyInfo>> {
        let rows = sqlx::query(
            "SELECT k.id, o.name AS org_name, k.name, k.created_at, \
             k.revoked_at FROM api_keys k JOIN organizations o \
             ON o.id = k.org_id ORDER BY k.created_at, k.id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(key_info).collect()
    }

    async fn revoke_key(&self, key_id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) \
             WHERE id = ?",
        )
        .bind(now_ms())
        .bind(key_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_keys(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM organizations WHERE id = ? OR name = ? LIMIT 1",
        )
        .bind(id_or_name)
        .bind(id_or_name)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    async fn insert_response(&self, r: NewResponse) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        self.inserts
            .send(InsertJob { response: r, done })
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    async fn get_response(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<StoredResponse>> {
        super::counters::bump(&super::counters::COUNTERS.response_reads);
        let row = sqlx::query(
            "SELECT body, status, background, lease_owner FROM responses \
             WHERE id = ? AND org_id = ?",
        )
        .bind(id)
        .bind(org)
        .fetch_optional(&self.read)
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
    }

    async fn delete_response(&self, org: &str, id: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM responses WHERE id = ? AND org_id = ?")
                .bind(id)
                .bind(org)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn chain_items(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<Items>> {
        let rows = sqlx::query(
            "WITH RECURSIVE chain (id, prev, depth) AS ( \
               SELECT id, previous_response_id, 0 FROM responses \
               WHERE id = ?1 AND org_id = ?2 \
               UNION ALL \
               SELECT r.id, r.previous_response_id, c.depth + 1 \
               FROM responses r JOIN chain c ON r.id = c.prev \
               WHERE r.org_id = ?2 AND c.depth < 10000 \
             ) \
             SELECT c.depth, i.kind, i.position, i.item_id, i.body \
             FROM chain c LEFT JOIN response_items i \
               ON i.response_id = c.id \
             ORDER BY c.depth DESC, i.kind, i.position",
        )
        .bind(id)
        .bind(org)
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        items(rows).map(Some)
    }

    async fn own_input_items(&self, id: &str) -> StoreResult<Items> {
        let rows = sqlx::query(
            "SELECT item_id, body FROM response_items \
             WHERE response_id = ? AND kind = 0 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        items(rows)
    }

    async fn find_item(
        &self,
        org: &str,
        item_id: &str,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT i.body FROM response_items i JOIN responses r \
             ON r.id = i.response_id WHERE i.item_id = ? AND r.org_id = ? \
             LIMIT 1",
        )
        .bind(item_id)
        .bind(org)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.try_get("body")).transpose()?)
    }

    async fn claim_next(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> StoreResult<Option<ClaimedRun>> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE responses SET status = 'in_progress', lease_owner = ?, \
             lease_expires_at = ?, updated_at = ? \
             WHERE id = (SELECT id FROM responses WHERE status = 'queued' \
               AND background = 1 ORDER BY created_at, id LIMIT 1) \
             RETURNING id, org_id, body, run_request",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let seq = sqlx::query(
            "SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM response_events \
             WHERE response_id = ?",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let claimed = ClaimedRun {
            org_id: row.try_get("org_id")?,
            body: row.try_get("body")?,
            run_request: row
                .try_get::<Option<String>, _>("run_request")?
                .unwrap_or_default(),
            next_seq: seq.try_get("next")?,
            id,
        };
        tx.commit().await?;
        Ok(Some(claimed))
    }

    async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        until: i64,
    ) -> StoreResult<bool> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        let done = sqlx::query(
            "UPDATE responses SET lease_expires_at = ? WHERE id = ? \
             AND lease_owner = ? AND status = 'in_progress'",
        )
        .bind(until)
        .bind(id)
        .bind(owner)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn append_events(
        &self,
        id: &str,
        owner: &str,
        events: &[EventRow],
        snapshot: Option<&str>,
    ) -> StoreResult<bool> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE responses SET body = COALESCE(?, body), updated_at = ? \
             WHERE id = ? AND lease_owner = ? AND status = 'in_progress'",
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
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_run(
        &self,
        id: &str,
        owner: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE responses SET status = ?, body = ?, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = ? WHERE id = ? \
             AND lease_owner = ? AND status = 'in_progress'",
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
        insert_items(&mut tx, id, 1, &end.output_items).await?;
        insert_events(&mut tx, id, &end.events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn cancel_queued(
        &self,
        org: &str,
        id: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE responses SET status = ?, body = ?, updated_at = ? \
             WHERE id = ? AND org_id = ? AND status = 'queued'",
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
        tx.commit().await?;
        Ok(true)
    }

    async fn request_cancel(&self, org: &str, id: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE responses SET cancel_requested = 1 WHERE id = ? \
             AND org_id = ?",
        )
        .bind(id)
        .bind(org)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn cancel_requested(&self, id: &str) -> StoreResult<bool> {
        let row =
            sqlx::query("SELECT cancel_requested FROM responses WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(match row {
            Some(r) => r.try_get::<bool, _>("cancel_requested")?,
            None => true,
        })
    }

    async fn expired_runs(&self, now: i64) -> StoreResult<Vec<ExpiredRun>> {
        let rows = sqlx::query(
            "SELECT r.id, r.lease_owner, r.body, \
               (SELECT COALESCE(MAX(seq) + 1, 0) FROM response_events e \
                WHERE e.response_id = r.id) AS next \
             FROM responses r WHERE r.status = 'in_progress' \
             AND r.background = 1 AND r.lease_expires_at < ?",
        )
        .bind(now)
        .fetch_all(&self.read)
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
    }

    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        super::counters::bump(&super::counters::COUNTERS.event_reads);
        let rows = sqlx::query(
            "SELECT seq, body FROM response_events WHERE response_id = ? \
             AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get("seq")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM response_events WHERE created_at < ? AND \
             response_id IN (SELECT id FROM responses WHERE status NOT IN \
             ('queued', 'in_progress'))",
        )
        .bind(before)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under steady writes the writer never checkpoints, so only the
    /// checkpointer keeps the WAL bounded: 48 MiB of responses go in, the
    /// log file ends at most at its 32 MiB cap, and every row reads back.
    #[tokio::test]
    async fn the_wal_stays_bounded_while_the_writer_never_checkpoints() {
        let dir = std::env::temp_dir()
            .join(format!("maniac-wal-{}", crate::ids::random_hex(6)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = SqliteStore::open(&url, &PoolOptions::default())
            .await
            .expect("open");
        store.create_key("o", None, "key_t", "h").await.expect("org");
        let org = store.find_org("o").await.expect("find").expect("org id");
        let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
        let mut peak = 0;
        for i in 0..48 {
            store
                .insert_response(NewResponse {
                    id: format!("resp_{i:04}"),
                    org_id: org.clone(),
                    previous_response_id: None,
                    status: "completed",
                    background: false,
                    body: body.clone(),
                    run_request: None,
                    input_items: Vec::new(),
                    output_items: Vec::new(),
                    events: Vec::new(),
                    created_at: now_ms(),
                })
                .await
                .expect("insert");
            tokio::time::sleep(Duration::from_millis(40)).await;
            let wal =
                std::fs::metadata(dir.join("t.db-wal")).map_or(0, |m| m.len());
            peak = peak.max(wal);
        }
        assert!(peak > 0, "the database is in WAL mode");
        assert!(peak <= 40 << 20, "WAL grew to {peak} bytes");
        let wal =
            std::fs::metadata(dir.join("t.db-wal")).map_or(0, |m| m.len());
        assert!(wal <= 32 << 20, "WAL left at {wal} bytes");
        for i in [0, 47] {
            let r = store.get_response(&org, &format!("resp_{i:04}")).await;
            assert_eq!(r.expect("read").expect("row").body.len(), body.len());
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn batches_are_cut_into_the_prepared_sizes_in_order() {
        let rows: Vec<u32> = (0..87).collect();
        let sizes: Vec<usize> = chunked(&rows).map(<[u32]>::len).collect();
        assert_eq!(sizes, [64, 16, 4, 1, 1, 1]);
        let again: Vec<u32> = chunked(&rows).flatten().copied().collect();
        assert_eq!(again, rows);
        assert_eq!(chunked::<u32>(&[]).count(), 0);
    }
}
