//! Background runs that no crash can strand. A run is a queued row with a
//! versioned request; a bounded pool claims rows under a lease it renews;
//! every event is durable before readers see it; expired leases are swept
//! so nothing stays `queued` or `in_progress` forever; SIGTERM drains
//! within a grace period.

mod cancel;
mod request;
mod sweeper;
mod worker;

use std::time::{Duration, Instant};

use super::builder::ResponseBuilder;
use super::error::EngineResult;
use super::prepare::Prepared;
use super::*;
use crate::ids::now_ms;
use crate::routing::Resolved;
use crate::store::{EventRow, NewResponse, RunEnd};

pub(crate) use request::RunRequest;

fn rows(evs: &[builder::Encoded]) -> Vec<EventRow> {
    evs.iter()
        .map(|e| EventRow { seq: e.seq, body: e.json().to_string() })
        .collect()
}

/// The end of a run as the store keeps it: final snapshot, output items
/// and the last events.
fn run_end(b: &ResponseBuilder, events: &[builder::Encoded]) -> RunEnd {
    let r = b.snapshot();
    RunEnd {
        status: r.status,
        body: encode(r),
        output_items: b.output_items().iter().map(transcript::row).collect(),
        events: rows(events),
    }
}

impl Engine {
    /// Queues a background run and answers at once (or follows it live).
    pub(crate) async fn submit(
        &self,
        p: Prepared,
        stream: bool,
    ) -> EngineResult<Reply> {
        let mut b = ResponseBuilder::new(p.response, 0, true, p.obfuscate);
        b.start();
        let events = b.drain();
        let run = RunRequest {
            provider: p.route.first_provider().to_string(),
            route: match &p.route {
                Resolved::Alias(r) => Some(r.name.clone()),
                Resolved::Direct { .. } => None,
            },
            request: p.request,
            obfuscate: p.obfuscate,
            key_id: p.caller.key_id.clone(),
            request_id: Some(p.caller.request_id.clone()),
        };
        let snapshot = b.snapshot().clone();
        self.inner
            .store
            .insert_response(NewResponse {
                id: snapshot.id.clone(),
                org_id: p.caller.org_id.clone(),
                previous_response_id: snapshot.previous_response_id.clone(),
                status: ResponseStatus::Queued,
                background: true,
                body: encode(&snapshot),
                run_request: Some(run.encode()),
                input_items: p.input_items,
                output_items: Vec::new(),
                events: rows(&events),
                created_at: now_ms(),
            })
            .await?;
        self.inner.metrics.background_queued();
        self.inner.hub.queue.notify_one();
        if stream {
            return Ok(Reply::Stream(self.follow(
                p.caller.org_id,
                snapshot.id,
                -1,
            )));
        }
        Ok(Reply::Json(Box::new(snapshot)))
    }

    /// Starts the dispatcher, the lease sweeper and the event pruner.
    pub fn start_background(&self) {
        let e = self.clone();
        tokio::spawn(async move { e.dispatch().await });
        let e = self.clone();
        tokio::spawn(async move { e.sweep_loop().await });
        let e = self.clone();
        tokio::spawn(async move { e.prune_loop().await });
        if let Some(rx) = self.inner.store.notices() {
            let e = self.clone();
            tokio::spawn(async move { e.relay_notices(rx).await });
        }
    }

    /// Turns other replicas' notices into local wake-ups: queued runs wake
    /// the dispatcher, new events wake that run's readers only, cancels
    /// reach the run.
    async fn relay_notices(
        &self,
        mut rx: tokio::sync::broadcast::Receiver<crate::store::Notice>,
    ) {
        use crate::store::Notice;
        use tokio::sync::broadcast::error::RecvError;
        let hub = &self.inner.hub;
        loop {
            let notice = tokio::select! {
                n = rx.recv() => n,
                _ = self.inner.abort.cancelled() => return,
            };
            match notice {
                Ok(Notice::Queued) => hub.queue.notify_one(),
                Ok(Notice::Events(id)) => hub.wake(&id),
                Ok(Notice::Cancel(id)) => {
                    hub.cancel(&id);
                }
                Err(RecvError::Lagged(_)) => {
                    hub.queue.notify_one();
                    hub.wake_all();
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Background runs and WebSocket turns running in this process.
    fn running_runs(&self) -> usize {
        use std::sync::atomic::Ordering;
        self.inner.hub.running()
            + self.inner.socket_turns.load(Ordering::Relaxed)
    }

    /// Stops claiming, lets running runs finish for the grace period, then
    /// fails the rest as interrupted and stops every background task.
    /// Returns when no run is executing.
    pub async fn shutdown(&self) {
        self.inner.draining.cancel();
        let deadline = Instant::now()
            + Duration::from_millis(self.inner.config.shutdown_grace_ms);
        while self.running_runs() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.running_runs() > 0 {
            tracing::warn!(
                running = self.running_runs(),
                "grace period over; failing runs as interrupted"
            );
        }
        self.inner.abort.cancel();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.running_runs() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
