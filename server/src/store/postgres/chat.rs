//! Stored chat completions on PostgreSQL: a completion and its messages go
//! in one transaction; pages are keyset ranges over the indexes, and the
//! metadata filter is a JSONB containment per pair, built with serde_json.

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::writes::insert_messages;
use crate::store::rows::*;
use crate::store::*;

#[async_trait]
impl ChatStore for PgStore {
    async fn insert_chat_completion(
        &self,
        c: NewChatCompletion,
    ) -> StoreResult<()> {
        self.db(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO chat_completions (id, org_id, model, metadata, \
                 body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.id)
            .bind(&c.org_id)
            .bind(&c.model)
            .bind(&c.metadata)
            .bind(&c.body)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
            insert_messages(&mut tx, &c.id, &c.messages).await?;
            tx.commit().await
        })
        .await
    }

    async fn get_chat_completion(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<StoredChatCompletion>> {
        self.db(async {
            let row = sqlx::query(
                "SELECT id, body, metadata, created_at FROM chat_completions \
                 WHERE id = $1 AND org_id = $2",
            )
            .bind(id)
            .bind(org)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(stored_chat).transpose()
        })
        .await
    }

    async fn list_chat_completions(
        &self,
        org: &str,
        q: &ChatListQuery,
    ) -> StoreResult<Option<Vec<StoredChatCompletion>>> {
        self.db(async {
            let cursor = match q.after.as_deref() {
                None => None,
                Some(after) => {
                    let row = sqlx::query(
                        "SELECT created_at FROM chat_completions \
                         WHERE id = $1 AND org_id = $2",
                    )
                    .bind(after)
                    .bind(org)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    Some((row.int("created_at")?, after))
                }
            };
            let rows = list_query(org, q, cursor)
                .build()
                .fetch_all(&self.pool)
                .await?;
            all(&rows, stored_chat).map(Some)
        })
        .await
    }

    async fn update_chat_metadata(
        &self,
        org: &str,
        id: &str,
        metadata: &str,
    ) -> StoreResult<Option<StoredChatCompletion>> {
        self.db(async {
            let row = sqlx::query(
                "UPDATE chat_completions SET metadata = $1 \
                 WHERE id = $2 AND org_id = $3 \
                 RETURNING id, body, metadata, created_at",
            )
            .bind(metadata)
            .bind(id)
            .bind(org)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(stored_chat).transpose()
        })
        .await
    }

    async fn delete_chat_completion(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<bool> {
        // Its messages go with it (ON DELETE CASCADE).
        self.db(async {
            let done = sqlx::query(
                "DELETE FROM chat_completions WHERE id = $1 AND org_id = $2",
            )
            .bind(id)
            .bind(org)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn chat_messages(
        &self,
        org: &str,
        id: &str,
        q: &MessagesQuery,
    ) -> StoreResult<Option<Vec<ItemRow>>> {
        self.db(async {
            // The completion must be `org`'s, and `after` one of its
            // messages.
            let row = sqlx::query(
                "SELECT (SELECT m.position FROM chat_completion_messages m \
                   WHERE m.completion_id = c.id AND m.message_id = $1) \
                   AS position \
                 FROM chat_completions c WHERE c.id = $2 AND c.org_id = $3",
            )
            .bind(q.after.as_deref())
            .bind(id)
            .bind(org)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let from = match (q.after.is_some(), row.opt_int("position")?) {
                (true, None) => return Ok(None),
                (_, Some(position)) => position,
                (false, None) if q.descending => i64::MAX,
                (false, None) => -1,
            };
            let page = if q.descending {
                sqlx::query(
                    "SELECT message_id AS item_id, body \
                     FROM chat_completion_messages WHERE completion_id = $1 \
                     AND position < $2 ORDER BY position DESC LIMIT $3",
                )
            } else {
                sqlx::query(
                    "SELECT message_id AS item_id, body \
                     FROM chat_completion_messages WHERE completion_id = $1 \
                     AND position > $2 ORDER BY position LIMIT $3",
                )
            };
            let rows = page
                .bind(id)
                .bind(from)
                .bind(q.limit.max(0))
                .fetch_all(&self.pool)
                .await?;
            items(&rows).map(Some)
        })
        .await
    }
}

/// The page query of `list_chat_completions`; `cursor` is the
/// `(created_at, id)` of `q.after`, already resolved within `org`. Each
/// metadata pair is its own containment test against a one-key object
/// that serde_json writes, so any key text is matched literally, and a
/// key asked twice with two values matches nothing (as on SQLite).
fn list_query<'a>(
    org: &'a str,
    q: &'a ChatListQuery,
    cursor: Option<(i64, &'a str)>,
) -> QueryBuilder<Postgres> {
    let mut b = QueryBuilder::new(
        "SELECT c.id, c.body, c.metadata, c.created_at \
         FROM chat_completions c WHERE c.org_id = ",
    );
    b.push_bind(org);
    if let Some(model) = q.model.as_deref() {
        b.push(" AND c.model = ").push_bind(model);
    }
    if let Some((created_at, id)) = cursor {
        b.push(if q.descending {
            " AND (c.created_at, c.id) < ("
        } else {
            " AND (c.created_at, c.id) > ("
        });
        b.push_bind(created_at).push(", ").push_bind(id).push(")");
    }
    for (key, value) in &q.metadata {
        let pair = serde_json::Value::Object(serde_json::Map::from_iter([(
            key.clone(),
            serde_json::Value::String(value.clone()),
        )]));
        b.push(" AND c.metadata::jsonb @> ")
            .push_bind(pair.to_string())
            .push("::jsonb");
    }
    b.push(if q.descending {
        " ORDER BY c.created_at DESC, c.id DESC LIMIT "
    } else {
        " ORDER BY c.created_at, c.id LIMIT "
    });
    b.push_bind(q.limit.max(0));
    b
}
