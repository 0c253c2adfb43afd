//! Reading stored responses: view, delete, input items, and following a
//! background run's event log (replay from `starting_after`, then live).

use std::time::Duration;

use super::background::parse_body;
use super::builder::Encoded;
use super::*;

/// Events read from the log per query.
const PAGE: i64 = 1000;
/// Comment sent to idle streams so proxies keep them open.
const KEEPALIVE: &[u8] = b": keep-alive\n\n";

impl Engine {
    /// `GET /v1/responses/{id}` (JSON, or the event stream).
    pub async fn view(
        &self,
        caller: &Caller,
        id: &str,
        query: &ResponseViewQuery,
    ) -> Result<Reply, ApiError> {
        let stored = self.stored(caller, id).await?;
        if query.stream != Some(true) {
            if query.starting_after.is_some() {
                return Err(ApiError::invalid(
                    "`starting_after` is only allowed with `stream=true`.",
                    Some("starting_after"),
                    Some("invalid_value"),
                ));
            }
            return parse_body(&stored.body).map(|r| Reply::Json(Box::new(r)));
        }
        if !stored.background {
            return Err(ApiError::invalid(
                "This response cannot be streamed because it was not created \
                 with background=true.",
                Some("stream"),
                Some("invalid_value"),
            ));
        }
        let after = query.starting_after.unwrap_or(-1);
        if after < -1 {
            return Err(ApiError::invalid_value(
                "starting_after",
                "`starting_after` must be a sequence number (0 or more).",
            ));
        }
        let rx = self.follow(caller.org_id.clone(), id.to_string(), after);
        if query.include_obfuscation == Some(false) {
            return Ok(Reply::Stream(without_obfuscation(rx)));
        }
        Ok(Reply::Stream(rx))
    }

    /// Streams a run's events with `sequence_number > after`: from the log,
    /// then live until the terminal event. Leaving never affects the run.
    pub(crate) fn follow(
        &self,
        org: String,
        id: String,
        after: i64,
    ) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.follow_into(&org, &id, after, &tx).await {
                tracing::warn!(response_id = %id, error = %e, "event stream reader stopped");
            }
        });
        rx
    }

    async fn follow_into(
        &self,
        org: &str,
        id: &str,
        mut last: i64,
        tx: &mpsc::Sender<Bytes>,
    ) -> Result<(), StoreError> {
        let hub = &self.inner.hub;
        let poll = Duration::from_millis(self.inner.config.poll_ms.min(250));
        let mut idle = Duration::ZERO;
        loop {
            let opened = hub.feed_opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if let Some(feed) = hub.feed(id) {
                return follow_feed(&feed, last, tx).await;
            }
            let rows = self.inner.store.events_after(id, last, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            if rows.is_empty() && self.run_ended(org, id).await? {
                // Ended (or deleted) with nothing after the cursor; read
                // once more in case it ended between the two queries.
                for row in self.inner.store.events_after(id, last, PAGE).await?
                {
                    if tx
                        .send(Encoded::from_log(row.seq, row.body).frame)
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                return Ok(());
            }
            for row in rows {
                let ev = Encoded::from_log(row.seq, row.body);
                last = ev.seq;
                if tx.send(ev.frame).await.is_err() {
                    return Ok(());
                }
                if ev.terminal {
                    return Ok(());
                }
                idle = Duration::ZERO;
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = opened => {}
                _ = tokio::time::sleep(poll) => idle += poll,
                _ = tx.closed() => return Ok(()),
            }
            if idle >= Duration::from_secs(15) {
                idle = Duration::ZERO;
                if tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// A response of the caller's organization; another org's id is
    /// answered exactly like a missing one.
    pub(crate) async fn stored(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<crate::store::StoredResponse, ApiError> {
        self.inner
            .store
            .get_response(&caller.org_id, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::response_not_found(id))
    }

    /// Whether a run can produce no more events.
    async fn run_ended(&self, org: &str, id: &str) -> Result<bool, StoreError> {
        Ok(match self.inner.store.get_response(org, id).await? {
            Some(r) => r.status.is_terminal(),
            None => true,
        })
    }

    /// `DELETE /v1/responses/{id}`.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ResponseDeleted, ApiError> {
        let stored = self.stored(caller, id).await?;
        if !stored.status.is_terminal() {
            // Stop the run first so no worker writes to a deleted row.
            self.inner
                .store
                .request_cancel(&caller.org_id, id)
                .await
                .map_err(store_error)?;
            self.inner.hub.cancel(id);
        }
        let deleted = self
            .inner
            .store
            .delete_response(&caller.org_id, id)
            .await
            .map_err(store_error)?;
        if !deleted {
            return Err(ApiError::response_not_found(id));
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
    ) -> Result<ResponseItemList, ApiError> {
        let limit = query.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid_value(
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
                .await
                .map_err(store_error)?
                .unwrap_or_default(),
            None => Vec::new(),
        };
        items.extend(store.own_input_items(id).await.map_err(store_error)?);
        if matches!(query.order.unwrap_or_default(), Order::Desc) {
            items.reverse();
        }
        let start = match &query.after {
            Some(after) => match items.iter().position(|i| &i.id == after) {
                Some(p) => p + 1,
                None => {
                    return Err(ApiError::invalid_value(
                        "after",
                        format!(
                            "No input item with id '{after}' in this response."
                        ),
                    ));
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
        let id_of = |i: &ItemResource| match i {
            ItemResource::Message { id, .. } => id.clone(),
        };
        Ok(ResponseItemList {
            object: ListObject::List,
            first_id: page.first().map(id_of),
            last_id: page.last().map(id_of),
            data: page,
            has_more,
        })
    }
}

/// Drops the `obfuscation` padding from replayed delta events (for
/// `include_obfuscation=false`). The field is always serialized last.
fn without_obfuscation(mut rx: mpsc::Receiver<Bytes>) -> mpsc::Receiver<Bytes> {
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if tx.send(strip_obfuscation(frame)).await.is_err() {
                return;
            }
        }
    });
    out
}

fn strip_obfuscation(frame: Bytes) -> Bytes {
    const DELTA: &[u8] = b"event: response.output_text.delta\n";
    const FIELD: &str = ",\"obfuscation\":\"";
    if !frame.starts_with(DELTA) {
        return frame;
    }
    let Ok(text) = std::str::from_utf8(&frame) else { return frame };
    match text.rfind(FIELD) {
        Some(start) => match text[start + FIELD.len()..].find('"') {
            Some(len) => {
                let end = start + FIELD.len() + len + 1;
                Bytes::from(format!("{}{}", &text[..start], &text[end..]))
            }
            None => frame,
        },
        None => frame,
    }
}

/// Follows a local run's feed from `after` until it closes.
async fn follow_feed(
    feed: &hub::Feed,
    mut last: i64,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), StoreError> {
    let mut changes = feed.subscribe();
    loop {
        changes.borrow_and_update();
        let read = feed.read_after(last);
        for frame in read.frames {
            if tx.send(frame).await.is_err() {
                return Ok(());
            }
        }
        last = read.last_seq;
        if read.closed {
            // Events published with the close are already read.
            let tail = feed.read_after(last);
            for frame in tail.frames {
                if tx.send(frame).await.is_err() {
                    return Ok(());
                }
            }
            return Ok(());
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return Ok(()) },
            _ = tx.closed() => return Ok(()),
        }
    }
}
