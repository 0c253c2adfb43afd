//! Stored chat completions, always within the caller's organization:
//! another organization's id is indistinguishable from a missing one.

use std::collections::BTreeMap;

use crate::api::*;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::validate::metadata;
use crate::engine::{Caller, Engine};
use crate::store::{self, MessagesQuery, StoredChatCompletion};

/// Default and largest page size.
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

fn not_found(id: &str) -> EngineError {
    EngineError::NotFound {
        message: format!("Chat completion with id '{id}' not found."),
        param: None,
        code: None,
    }
}

fn limit(l: Option<i64>) -> EngineResult<i64> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(l) => Err(EngineError::invalid_value(
            "limit",
            format!(
                "Invalid 'limit': {l} is out of range. Expected a value \
                 between 1 and {MAX_LIMIT}."
            ),
        )),
    }
}

/// A cursor naming nothing of this list: a 404, as for any id that names
/// nothing (the request itself is well-formed).
fn cursor_not_found(after: &str) -> EngineError {
    EngineError::NotFound {
        message: format!(
            "No item with id '{after}' in this list: pass the `last_id` of \
             the previous page as `after`."
        ),
        param: Some("after".into()),
        code: None,
    }
}

/// A stored row as the API object, with its current metadata.
fn completion(row: StoredChatCompletion) -> EngineResult<ChatCompletion> {
    let mut c: ChatCompletion =
        serde_json::from_str(&row.body).map_err(|e| {
            EngineError::Internal(format!("stored completion {}: {e}", row.id))
        })?;
    c.metadata = Some(
        serde_json::from_str::<BTreeMap<String, String>>(&row.metadata)
            .unwrap_or_default(),
    );
    Ok(c)
}

impl Engine {
    /// `GET /v1/chat/completions/{id}`.
    pub async fn chat_view(
        &self,
        caller: &Caller,
        id: &str,
    ) -> EngineResult<ChatCompletion> {
        let row = self
            .inner
            .store
            .get_chat_completion(&caller.org_id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        completion(row)
    }

    /// `GET /v1/chat/completions`.
    pub async fn chat_list(
        &self,
        caller: &Caller,
        q: &ChatListQuery,
    ) -> EngineResult<ChatCompletionList> {
        let limit = limit(q.limit)?;
        let query = store::ChatListQuery {
            after: q.after.clone(),
            limit: limit + 1,
            descending: matches!(q.order, Some(Order::Desc)),
            model: q.model.clone(),
            metadata: q.metadata.clone(),
        };
        let mut rows = self
            .inner
            .store
            .list_chat_completions(&caller.org_id, &query)
            .await?
            .ok_or_else(|| {
                cursor_not_found(q.after.as_deref().unwrap_or(""))
            })?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let data = rows
            .into_iter()
            .map(completion)
            .collect::<EngineResult<Vec<_>>>()?;
        Ok(ChatCompletionList {
            object: ListObject::List,
            first_id: data.first().map(|c| c.id.clone()),
            last_id: data.last().map(|c| c.id.clone()),
            data,
            has_more,
        })
    }

    /// `POST /v1/chat/completions/{id}`: replaces the metadata.
    pub async fn chat_update(
        &self,
        caller: &Caller,
        id: &str,
        update: UpdateChatCompletion,
    ) -> EngineResult<ChatCompletion> {
        let meta = update.metadata.unwrap_or_default();
        metadata(Some(&meta))?;
        let json = serde_json::to_string(&meta)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let row = self
            .inner
            .store
            .update_chat_metadata(&caller.org_id, id, &json)
            .await?
            .ok_or_else(|| not_found(id))?;
        completion(row)
    }

    /// `DELETE /v1/chat/completions/{id}`.
    pub async fn chat_delete(
        &self,
        caller: &Caller,
        id: &str,
    ) -> EngineResult<ChatCompletionDeleted> {
        if !self.inner.store.delete_chat_completion(&caller.org_id, id).await? {
            return Err(not_found(id));
        }
        Ok(ChatCompletionDeleted {
            id: id.to_string(),
            object: ChatDeletedObject::ChatCompletionDeleted,
            deleted: true,
        })
    }

    /// `GET /v1/chat/completions/{id}/messages`.
    pub async fn chat_messages(
        &self,
        caller: &Caller,
        id: &str,
        q: &ChatMessagesQuery,
    ) -> EngineResult<ChatMessageList> {
        let limit = limit(q.limit)?;
        let query = MessagesQuery {
            after: q.after.clone(),
            limit: limit + 1,
            descending: matches!(q.order, Some(Order::Desc)),
        };
        let store = &self.inner.store;
        let Some(mut rows) =
            store.chat_messages(&caller.org_id, id, &query).await?
        else {
            // Tell a missing completion from a bad cursor.
            return Err(
                match (
                    &q.after,
                    store.get_chat_completion(&caller.org_id, id).await?,
                ) {
                    (Some(after), Some(_)) => cursor_not_found(after),
                    _ => not_found(id),
                },
            );
        };
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let data = rows
            .into_iter()
            .map(|r| {
                serde_json::from_str::<ChatStoredMessage>(&r.body).map_err(
                    |e| {
                        EngineError::Internal(format!(
                            "stored message {}: {e}",
                            r.id
                        ))
                    },
                )
            })
            .collect::<EngineResult<Vec<_>>>()?;
        Ok(ChatMessageList {
            object: ListObject::List,
            first_id: data.first().map(|m| m.id.clone()),
            last_id: data.last().map(|m| m.id.clone()),
            data,
            has_more,
        })
    }
}
