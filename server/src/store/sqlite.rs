//! SQLite store: one file, WAL, zero setup. Writes go through a single
//! connection (SQLite has one writer anyway, and this avoids lock-upgrade
//! failures); concurrent inserts (responses, stored chat completions) are
//! batched into one transaction.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use super::rows::*;
use super::*;
use crate::api::ResponseStatus;

mod chat;
mod checkpoint;
mod writer;

use checkpoint::checkpoint_loop;
use writer::{
    EventOf, Insert, InsertJob, ItemAt, insert_events, insert_items,
    insert_writer,
};

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

impl SqliteStore {
    /// Hands `insert` to the single writer and waits until its batch is
    /// committed (or failed).
    async fn enqueue(&self, insert: Insert) -> StoreResult<()> {
        let stopped = || StoreError::Unavailable("writer stopped".into());
        let (done, wait) = oneshot::channel();
        self.inserts
            .send(InsertJob { insert, done })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// Runs `update`, a write to run `id` guarded by its lease or status,
    /// and only when it matched the row appends output `items` and
    /// `events` in the same transaction; false when the run was not in the
    /// expected state.
    async fn guarded_write(
        &self,
        update: Query<'_, Sqlite, SqliteArguments>,
        id: &str,
        items: &[ItemRow],
        events: &[EventRow],
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        if update.execute(&mut *tx).await?.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let items: Vec<ItemAt> = positioned(&[], items)
            .map(|(kind, pos, it)| (id, kind, pos, it))
            .collect();
        insert_items(&mut tx, &items).await?;
        let events: Vec<EventOf> = events.iter().map(|e| (id, e)).collect();
        insert_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(true)
    }
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

    async fn migrations_applied(&self) -> StoreResult<bool> {
        let applied: Vec<i64> = sqlx::query_scalar(super::APPLIED_MIGRATIONS)
            .fetch_all(&self.read)
            .await?;
        Ok(super::all_applied(&sqlx::migrate!("./migrations/sqlite"), &applied))
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyRecord>> {
        let row = sqlx::query(
            "SELECT k.id, k.org_id, o.name AS org_name, k.revoked_at \
             FROM api_keys k JOIN organizations o ON o.id = k.org_id \
             WHERE k.key_hash = ?",
        )
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(key_record).transpose()?)
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
        sqlx::query(
            "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(new_org_id())
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
        Ok(created_key(org_name, label, key_id, now))
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyInfo>> {
        let rows = sqlx::query(
            "SELECT k.id, o.name AS org_name, k.name, k.created_at, \
             k.revoked_at FROM api_keys k JOIN organizations o \
             ON o.id = k.org_id ORDER BY k.created_at, k.id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(all(&rows, key_info)?)
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
        Ok(row.int("n")?)
    }

    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM organizations WHERE id = ? OR name = ? LIMIT 1",
        )
        .bind(id_or_name)
        .bind(id_or_name)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.text("id")).transpose()?)
    }

    async fn server_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) \
             VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        let row =
            sqlx::query("SELECT value FROM server_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&self.write)
                .await?;
        Ok(row.text("value")?)
    }
}

#[async_trait]
impl ResponseStore for SqliteStore {
    async fn insert_response(&self, r: NewResponse) -> StoreResult<()> {
        self.enqueue(Insert::Response(r)).await
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
        Ok(row.as_ref().map(stored_response).transpose()?)
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
        Ok(Some(items(&rows)?))
    }

    async fn own_input_items(&self, id: &str) -> StoreResult<Items> {
        let rows = sqlx::query(
            "SELECT item_id, body FROM response_items \
             WHERE response_id = ? AND kind = ? ORDER BY position",
        )
        .bind(id)
        .bind(INPUT)
        .fetch_all(&self.read)
        .await?;
        Ok(items(&rows)?)
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
        Ok(row.map(|r| r.text("body")).transpose()?)
    }
}

#[async_trait]
impl RunQueue for SqliteStore {
    async fn claim_next(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> StoreResult<Option<ClaimedRun>> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE responses SET status = ?, lease_owner = ?, \
             lease_expires_at = ?, updated_at = ? \
             WHERE id = (SELECT id FROM responses WHERE status = ? \
               AND background = 1 ORDER BY created_at, id LIMIT 1) \
             RETURNING id, org_id, body, run_request",
        )
        .bind(ResponseStatus::InProgress.as_str())
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(ResponseStatus::Queued.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let next = sqlx::query(
            "SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM response_events \
             WHERE response_id = ?",
        )
        .bind(row.text("id")?)
        .fetch_one(&mut *tx)
        .await?;
        let claimed = claimed_run(&row, next.int("next")?)?;
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
             AND lease_owner = ? AND status = ?",
        )
        .bind(until)
        .bind(id)
        .bind(owner)
        .bind(ResponseStatus::InProgress.as_str())
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
        let update = sqlx::query(
            "UPDATE responses SET body = COALESCE(?, body), updated_at = ? \
             WHERE id = ? AND lease_owner = ? AND status = ?",
        )
        .bind(snapshot)
        .bind(now_ms())
        .bind(id)
        .bind(owner)
        .bind(ResponseStatus::InProgress.as_str());
        self.guarded_write(update, id, &[], events).await
    }

    async fn finish_run(
        &self,
        id: &str,
        owner: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        super::counters::bump(&super::counters::COUNTERS.run_writes);
        let update = sqlx::query(
            "UPDATE responses SET status = ?, body = ?, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = ? WHERE id = ? \
             AND lease_owner = ? AND status = ?",
        )
        .bind(end.status.as_str())
        .bind(&end.body)
        .bind(now_ms())
        .bind(id)
        .bind(owner)
        .bind(ResponseStatus::InProgress.as_str());
        self.guarded_write(update, id, &end.output_items, &end.events).await
    }

    async fn cancel_queued(
        &self,
        org: &str,
        id: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        let update = sqlx::query(
            "UPDATE responses SET status = ?, body = ?, updated_at = ? \
             WHERE id = ? AND org_id = ? AND status = ?",
        )
        .bind(end.status.as_str())
        .bind(&end.body)
        .bind(now_ms())
        .bind(id)
        .bind(org)
        .bind(ResponseStatus::Queued.as_str());
        self.guarded_write(update, id, &[], &end.events).await
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
        Ok(row.map_or(Ok(true), |r| r.flag("cancel_requested"))?)
    }

    async fn expired_runs(&self, now: i64) -> StoreResult<Vec<ExpiredRun>> {
        let rows = sqlx::query(
            "SELECT r.id, r.lease_owner, r.body, \
               (SELECT COALESCE(MAX(seq) + 1, 0) FROM response_events e \
                WHERE e.response_id = r.id) AS next \
             FROM responses r WHERE r.status = ? \
             AND r.background = 1 AND r.lease_expires_at < ?",
        )
        .bind(ResponseStatus::InProgress.as_str())
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        Ok(all(&rows, expired_run)?)
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
        Ok(all(&rows, event_row)?)
    }

    async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM response_events WHERE created_at < ? AND \
             response_id IN (SELECT id FROM responses WHERE status NOT IN \
             (?, ?))",
        )
        .bind(before)
        .bind(ResponseStatus::Queued.as_str())
        .bind(ResponseStatus::InProgress.as_str())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests;
