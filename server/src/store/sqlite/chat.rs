//! Stored chat completions on SQLite: inserts join the single writer's
//! batches (durable when acknowledged, like responses), reads go through
//! the read pool, and pages are keyset ranges over the indexes, so a page
//! never reads more rows than it returns (plus those a filter skips).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::SqliteStore;
use super::writer::{Insert, chunked};
use crate::store::rows::*;
use crate::store::*;

#[async_trait]
impl ChatStore for SqliteStore {
    async fn insert_chat_completion(
        &self,
        c: NewChatCompletion,
    ) -> StoreResult<()> {
        self.enqueue(Insert::Chat(c)).await
    }

    async fn get_chat_completion(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<StoredChatCompletion>> {
        let row = sqlx::query(
            "SELECT id, body, metadata, created_at FROM chat_completions \
             WHERE id = ? AND org_id = ?",
        )
        .bind(id)
        .bind(org)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(stored_chat).transpose()?)
    }

    async fn list_chat_completions(
        &self,
        org: &str,
        q: &ChatListQuery,
    ) -> StoreResult<Option<Vec<StoredChatCompletion>>> {
        let cursor = match q.after.as_deref() {
            None => None,
            Some(after) => {
                let row = sqlx::query(
                    "SELECT created_at FROM chat_completions \
                     WHERE id = ? AND org_id = ?",
                )
                .bind(after)
                .bind(org)
                .fetch_optional(&self.read)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Some((row.int("created_at")?, after))
            }
        };
        let rows = list_query("", org, q, cursor)
            .build()
            .fetch_all(&self.read)
            .await?;
        Ok(Some(all(&rows, stored_chat)?))
    }

    async fn update_chat_metadata(
        &self,
        org: &str,
        id: &str,
        metadata: &str,
    ) -> StoreResult<Option<StoredChatCompletion>> {
        let row = sqlx::query(
            "UPDATE chat_completions SET metadata = ? \
             WHERE id = ? AND org_id = ? \
             RETURNING id, body, metadata, created_at",
        )
        .bind(metadata)
        .bind(id)
        .bind(org)
        .fetch_optional(&self.write)
        .await?;
        Ok(row.as_ref().map(stored_chat).transpose()?)
    }

    async fn delete_chat_completion(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<bool> {
        // Its messages go with it (ON DELETE CASCADE).
        let done = sqlx::query(
            "DELETE FROM chat_completions WHERE id = ? AND org_id = ?",
        )
        .bind(id)
        .bind(org)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn chat_messages(
        &self,
        org: &str,
        id: &str,
        q: &MessagesQuery,
    ) -> StoreResult<Option<Vec<ItemRow>>> {
        // The completion must be `org`'s, and `after` one of its messages.
        let row = sqlx::query(
            "SELECT (SELECT m.position FROM chat_completion_messages m \
               WHERE m.completion_id = c.id AND m.message_id = ?) \
               AS position \
             FROM chat_completions c WHERE c.id = ? AND c.org_id = ?",
        )
        .bind(q.after.as_deref())
        .bind(id)
        .bind(org)
        .fetch_optional(&self.read)
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
                 FROM chat_completion_messages WHERE completion_id = ? \
                 AND position < ? ORDER BY position DESC LIMIT ?",
            )
        } else {
            sqlx::query(
                "SELECT message_id AS item_id, body \
                 FROM chat_completion_messages WHERE completion_id = ? \
                 AND position > ? ORDER BY position LIMIT ?",
            )
        };
        let rows = page
            .bind(id)
            .bind(from)
            .bind(q.limit.max(0))
            .fetch_all(&self.read)
            .await?;
        Ok(Some(items(&rows)?))
    }
}

/// The page query of `list_chat_completions`, behind `prefix` (tests put
/// `EXPLAIN QUERY PLAN ` there). `cursor` is the `(created_at, id)` of
/// `q.after`, already resolved within `org`. Each metadata pair is its own
/// `EXISTS` over `json_each`, with key and value bound, so that any key
/// text matches literally (a key is never read as a JSON path).
pub(super) fn list_query<'a>(
    prefix: &str,
    org: &'a str,
    q: &'a ChatListQuery,
    cursor: Option<(i64, &'a str)>,
) -> QueryBuilder<Sqlite> {
    let mut b = QueryBuilder::new(prefix);
    b.push(
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
        b.push(
            " AND EXISTS (SELECT 1 FROM json_each(c.metadata) m \
             WHERE m.key = ",
        )
        .push_bind(key.as_str())
        .push(" AND m.type = 'text' AND m.value = ")
        .push_bind(value.as_str())
        .push(")");
    }
    b.push(if q.descending {
        " ORDER BY c.created_at DESC, c.id DESC LIMIT "
    } else {
        " ORDER BY c.created_at, c.id LIMIT "
    });
    b.push_bind(q.limit.max(0));
    b
}

/// Inserts completions and their messages (positions from 0) with as few
/// multi-row statements as [`chunked`] allows; part of a writer batch.
pub(super) async fn insert_chats(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[&NewChatCompletion],
) -> StoreResult<()> {
    for chunk in chunked(rows) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO chat_completions (id, org_id, model, metadata, \
             body, created_at) ",
        );
        q.push_values(chunk, |mut b, c| {
            b.push_bind(c.id.as_str())
                .push_bind(c.org_id.as_str())
                .push_bind(c.model.as_str())
                .push_bind(c.metadata.as_str())
                .push_bind(c.body.as_str())
                .push_bind(c.created_at);
        });
        q.build().execute(&mut **tx).await?;
    }
    let messages: Vec<(&str, i64, &ItemRow)> = rows
        .iter()
        .flat_map(|c| {
            let id = c.id.as_str();
            c.messages.iter().enumerate().map(move |(p, m)| (id, p as i64, m))
        })
        .collect();
    for chunk in chunked(&messages) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO chat_completion_messages (completion_id, position, \
             message_id, body) ",
        );
        q.push_values(chunk, |mut b, (id, position, m)| {
            b.push_bind(*id)
                .push_bind(*position)
                .push_bind(m.id.as_str())
                .push_bind(m.body.as_str());
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}
