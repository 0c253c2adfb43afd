//! PostgreSQL store: several gateway replicas share one database. Same
//! schema and semantics as the SQLite store; background runs are claimed
//! with `FOR UPDATE SKIP LOCKED`, and replicas wake each other with
//! LISTEN/NOTIFY (published inside the writing transaction, so a notice is
//! only ever delivered for a committed write). Stored chat completions
//! live in `chat`.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgConnection, PgListener, PgPool};
use sqlx::query::Query;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::rows::*;
use super::*;
use crate::api::ResponseStatus;

mod chat;
mod connect;
mod notify;
mod writes;

use connect::pg;
#[cfg(test)]
use connect::unavailable_code;
use notify::notify;
use writes::{insert_events, insert_items};

/// The LISTEN/NOTIFY channel shared by all replicas.
const CHANNEL: &str = "maniac";

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

    /// Runs `update`, a write to run `id` guarded by its lease or status,
    /// and only when it matched the row appends output `items` and
    /// `events` and tells other replicas, in the same transaction; false
    /// when the run was not in the expected state.
    async fn guarded_write(
        &self,
        update: Query<'_, Postgres, PgArguments>,
        id: &str,
        items: &[ItemRow],
        events: &[EventRow],
    ) -> StoreResult<bool> {
        self.db(async {
            let mut tx = self.pool.begin().await?;
            if update.execute(&mut *tx).await?.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_items(&mut tx, id, &[], items).await?;
            insert_events(&mut tx, id, events).await?;
            notify(&mut tx, &Notice::Events(id.to_string())).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
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

    async fn migrations_applied(&self) -> StoreResult<bool> {
        let applied: Vec<i64> = self
            .db(sqlx::query_scalar(super::APPLIED_MIGRATIONS)
                .fetch_all(&self.pool))
            .await?;
        Ok(super::all_applied(
            &sqlx::migrate!("./migrations/postgres"),
            &applied,
        ))
    }
}

#[async_trait]
impl KeyStore for PgStore {
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
            row.as_ref().map(key_record).transpose()
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
            // A concurrent creator of the same organization makes this wait
            // for its commit and do nothing; the next statement sees it.
            sqlx::query(
                "INSERT INTO organizations (id, name, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            )
            .bind(new_org_id())
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
            Ok(created_key(org_name, label, key_id, now))
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
            all(&rows, key_info)
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
            row.int("n")
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
            row.map(|r| r.text("id")).transpose()
        })
        .await
    }

    async fn server_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> StoreResult<String> {
        self.db(async {
            // Concurrent first starts of two replicas: one insert wins,
            // both read the winner.
            sqlx::query(
                "INSERT INTO server_secrets (name, value, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
            let row =
                sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?;
            row.text("value")
        })
        .await
    }
}

#[async_trait]
impl ResponseStore for PgStore {
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
            .bind(r.status.as_str())
            .bind(r.background)
            .bind(&r.body)
            .bind(&r.run_request)
            .bind(r.created_at)
            .execute(&mut *tx)
            .await?;
            insert_items(&mut tx, &r.id, &r.input_items, &r.output_items)
                .await?;
            insert_events(&mut tx, &r.id, &r.events).await?;
            if r.background && r.status == ResponseStatus::Queued {
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
            row.as_ref().map(stored_response).transpose()
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
            items(&rows).map(Some)
        })
        .await
    }

    async fn own_input_items(&self, id: &str) -> StoreResult<Items> {
        self.db(async {
            let rows = sqlx::query(
                "SELECT item_id, body FROM response_items \
                 WHERE response_id = $1 AND kind = $2 ORDER BY position",
            )
            .bind(id)
            .bind(INPUT)
            .fetch_all(&self.pool)
            .await?;
            items(&rows)
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
            row.map(|r| r.text("body")).transpose()
        })
        .await
    }
}

#[async_trait]
impl RunQueue for PgStore {
    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.notices.subscribe())
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
                   UPDATE responses SET status = $4, \
                   lease_owner = $1, lease_expires_at = $2, updated_at = $3 \
                   WHERE id = (SELECT id FROM responses \
                     WHERE status = $5 AND background \
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
            .bind(ResponseStatus::InProgress.as_str())
            .bind(ResponseStatus::Queued.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| claimed_run(&row, row.int("next")?)).transpose()
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
                 AND lease_owner = $3 AND status = $4",
            )
            .bind(until)
            .bind(id)
            .bind(owner)
            .bind(ResponseStatus::InProgress.as_str())
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
        let update = sqlx::query(
            "UPDATE responses SET body = COALESCE($1, body), \
             updated_at = $2 WHERE id = $3 AND lease_owner = $4 \
             AND status = $5",
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
            "UPDATE responses SET status = $1, body = $2, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
             WHERE id = $4 AND lease_owner = $5 AND status = $6",
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
        // Waits for a claim holding the row, then sees it in progress.
        let update = sqlx::query(
            "UPDATE responses SET status = $1, body = $2, updated_at = $3 \
             WHERE id = $4 AND org_id = $5 AND status = $6",
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
            row.map_or(Ok(true), |r| r.flag("cancel_requested"))
        })
        .await
    }

    async fn expired_runs(&self, now: i64) -> StoreResult<Vec<ExpiredRun>> {
        self.db(async {
            let rows = sqlx::query(
                "SELECT r.id, r.lease_owner, r.body, \
                   (SELECT COALESCE(MAX(seq) + 1, 0) FROM response_events e \
                    WHERE e.response_id = r.id) AS next \
                 FROM responses r WHERE r.status = $1 \
                 AND r.background AND r.lease_expires_at < $2",
            )
            .bind(ResponseStatus::InProgress.as_str())
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            all(&rows, expired_run)
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
            all(&rows, event_row)
        })
        .await
    }

    async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        self.db(async {
            let done = sqlx::query(
                "DELETE FROM response_events WHERE created_at < $1 AND \
                 response_id IN (SELECT id FROM responses WHERE status NOT IN \
                 ($2, $3))",
            )
            .bind(before)
            .bind(ResponseStatus::Queued.as_str())
            .bind(ResponseStatus::InProgress.as_str())
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
