//! `POST /v1/responses/{id}/cancel`: a queued run is ended at once
//! (through the one `finish()`); a running one is flagged and woken, here
//! or on its replica, and the call waits for it to stop.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::super::builder::{Encoded, Ending, ResponseBuilder};
use super::super::error::{EngineError, EngineResult};
use super::super::responses::parse_body;
use super::super::run::{RunFacts, RunMode, Sink};
use super::*;

/// Ends a run that is still queued (false if a worker claimed it first).
struct QueuedCancelSink<'a> {
    engine: &'a Engine,
    org: &'a str,
    id: &'a str,
}

#[async_trait]
impl Sink for QueuedCancelSink<'_> {
    async fn finish(
        &mut self,
        b: &ResponseBuilder,
        terminal: Vec<Encoded>,
    ) -> Result<bool, EngineError> {
        let end = run_end(b, &terminal);
        let store = &self.engine.inner.store;
        let done = store.cancel_queued(self.org, self.id, end).await?;
        if done {
            tracing::info!(response_id = %self.id, "queued run cancelled");
            self.engine.inner.hub.wake(self.id);
            self.engine.inner.hub.feed_opened.notify_waiters();
        }
        Ok(done)
    }
}

impl Engine {
    /// `POST /v1/responses/{id}/cancel`.
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: &str,
    ) -> EngineResult<Response> {
        let store = &self.inner.store;
        let stored = self.stored(caller, id).await?;
        if !stored.background {
            return Err(EngineError::invalid(
                "Cannot cancel a synchronous response.",
                None,
                None,
            ));
        }
        match stored.status.as_str() {
            "cancelled" => return parse_body(&stored.body),
            "queued" => {
                let mut response = parse_body(&stored.body)?;
                let next = store
                    .events_after(id, -1, 100_000)
                    .await?
                    .last()
                    .map_or(0, |e| e.seq + 1);
                response.status = ResponseStatus::InProgress;
                let facts = RunFacts {
                    response_id: id.to_string(),
                    org_id: caller.org_id.clone(),
                    key_id: caller.key_id.clone(),
                    provider: response.provider.clone(),
                    model: response.model.clone(),
                    mode: RunMode::Background,
                    started: Instant::now(),
                    first_output: None,
                };
                let mut b = ResponseBuilder::new(response, next, true, false);
                let mut sink =
                    QueuedCancelSink { engine: self, org: &caller.org_id, id };
                let outcome = self
                    .finish(&mut b, Ending::Cancelled, None, &mut sink, facts)
                    .await?;
                if outcome.recorded {
                    return Ok(b.into_response());
                }
                // Claimed in the meantime: cancel it as a running run.
            }
            "in_progress" => {}
            other => {
                let article = if other == "incomplete" { "an" } else { "a" };
                return Err(EngineError::invalid(
                    format!("Cannot cancel {article} {other} response."),
                    None,
                    None,
                ));
            }
        }
        store.request_cancel(&caller.org_id, id).await?;
        self.inner.hub.cancel(id);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let Some(now) = store.get_response(&caller.org_id, id).await?
            else {
                return Err(EngineError::response_not_found(id));
            };
            match now.status.as_str() {
                "cancelled" => return parse_body(&now.body),
                "queued" | "in_progress" if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                "queued" | "in_progress" => {
                    return Err(EngineError::Unavailable(
                        "cancellation of this run (it did not stop in time)"
                            .into(),
                    ));
                }
                other => {
                    // It ended on its own before the cancel took effect.
                    return Err(EngineError::invalid(
                        format!("Cannot cancel a {other} response."),
                        None,
                        None,
                    ));
                }
            }
        }
    }
}
