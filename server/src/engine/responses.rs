//! Stored responses as the caller sees them: view (JSON, or the event
//! stream of a background run), delete, and the input items, every one
//! scoped to the caller's organization.

use super::error::{EngineError, EngineResult};
use super::follow::without_obfuscation;
use super::*;
use crate::store::StoredResponse;

impl Engine {
    /// `GET /v1/responses/{id}` (JSON, or the event stream).
    pub async fn view(
        &self,
        caller: &Caller,
        id: &str,
        query: &ResponseViewQuery,
    ) -> EngineResult<Reply> {
        let stored = self.stored(caller, id).await?;
        if query.stream != Some(true) {
            if query.starting_after.is_some() {
                return Err(EngineError::invalid(
                    "`starting_after` is only allowed with `stream=true`.",
                    Some("starting_after"),
                    Some("invalid_value"),
                ));
            }
            return parse_body(&stored.body).map(|r| Reply::Json(Box::new(r)));
        }
        if !stored.background {
            return Err(EngineError::invalid(
                "This response cannot be streamed because it was not created \
                 with background=true.",
                Some("stream"),
                Some("invalid_value"),
            ));
        }
        let after = match query.starting_after {
            None => -1,
            Some(n) if n >= 0 => n,
            Some(_) => {
                return Err(EngineError::invalid_value(
                    "starting_after",
                    "`starting_after` must be a sequence number (0 or more).",
                ));
            }
        };
        let rx = self.follow(caller.org_id.clone(), id.to_string(), after);
        if query.include_obfuscation == Some(false) {
            return Ok(Reply::Stream(without_obfuscation(rx)));
        }
        Ok(Reply::Stream(rx))
    }

    /// A response of the caller's organization; another org's id is
    /// answered exactly like a missing one.
    pub(crate) async fn stored(
        &self,
        caller: &Caller,
        id: &str,
    ) -> EngineResult<StoredResponse> {
        self.inner
            .store
            .get_response(&caller.org_id, id)
            .await?
            .ok_or_else(|| EngineError::response_not_found(id))
    }

    /// `DELETE /v1/responses/{id}`.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: &str,
    ) -> EngineResult<ResponseDeleted> {
        let stored = self.stored(caller, id).await?;
        if !stored.status.is_terminal() {
            // Stop the run first so no worker writes to a deleted row.
            self.inner.store.request_cancel(&caller.org_id, id).await?;
            self.inner.hub.cancel(id);
        }
        let deleted =
            self.inner.store.delete_response(&caller.org_id, id).await?;
        if !deleted {
            return Err(EngineError::response_not_found(id));
        }
        tracing::info!(org = %caller.org_id, response_id = %id, "response deleted");
        Ok(ResponseDeleted {
            id: id.to_string(),
            object: DeletedObject::ResponseDeleted,
            deleted: true,
        })
    }

    /// `GET /v1/responses/{id}/input_items`: the whole input context of the
    /// response (inherited chain, then its own input), paged by item id.
    pub async fn input_items(
        &self,
        caller: &Caller,
        id: &str,
        query: &InputItemsQuery,
    ) -> EngineResult<ResponseItemList> {
        let limit = query.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(EngineError::invalid_value(
                "limit",
                format!(
                    "Invalid 'limit': {limit}. Expected a value between 1 and 100."
                ),
            ));
        }
        let store = &self.inner.store;
        let stored = self.stored(caller, id).await?;
        let response = parse_body(&stored.body)?;
        let mut items = match &response.previous_response_id {
            Some(prev) => store
                .chain_items(&caller.org_id, prev)
                .await?
                .unwrap_or_default(),
            None => Vec::new(),
        };
        items.extend(store.own_input_items(id).await?);
        if matches!(query.order.unwrap_or_default(), Order::Desc) {
            items.reverse();
        }
        let start = match &query.after {
            Some(after) => match items.iter().position(|i| &i.id == after) {
                Some(p) => p + 1,
                // Well-formed, naming nothing: a 404 like any such id.
                None => {
                    return Err(EngineError::NotFound {
                        message: format!(
                            "No input item with id '{after}' in this \
                             response: pass the `last_id` of the previous \
                             page as `after`."
                        ),
                        param: Some("after".into()),
                        code: None,
                    });
                }
            },
            None => 0,
        };
        let page: Vec<ItemResource> = items
            .iter()
            .skip(start)
            .take(limit as usize)
            .filter_map(|i| serde_json::from_str(&i.body).ok())
            .collect();
        let has_more = start + (limit as usize) < items.len();
        let id_of = |i: &ItemResource| i.id().to_string();
        Ok(ResponseItemList {
            object: ListObject::List,
            first_id: page.first().map(id_of),
            last_id: page.last().map(id_of),
            data: page,
            has_more,
        })
    }
}

/// Parses a stored response body.
pub(crate) fn parse_body(body: &str) -> EngineResult<Response> {
    serde_json::from_str(body).map_err(|e| {
        EngineError::Internal(format!("unreadable stored response: {e}"))
    })
}
