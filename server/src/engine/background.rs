//! Background runs that no crash can strand. A run is a queued row; a
//! bounded pool claims rows under a lease it renews; every event is durable
//! before readers see it; expired leases are swept so that nothing stays
//! `queued` or `in_progress` forever; SIGTERM drains within a grace period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::builder::{Encoded, ResponseBuilder};
use super::*;
use crate::store::{ClaimedRun, EventRow, ExpiredRun, RunEnd};

/// What a worker needs to run a queued response (stored with the row).
#[derive(Serialize, Deserialize)]
struct RunRequest {
    provider: String,
    request: ProviderRequest,
    obfuscate: bool,
}

/// How often a running run refreshes its stored snapshot for pollers.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// Message of a run whose worker died or was stopped.
const INTERRUPTED: &str = "The run was interrupted: the gateway process \
    running it stopped before it finished. Retry the request.";

fn rows(evs: &[Encoded]) -> Vec<EventRow> {
    evs.iter().map(|e| EventRow { seq: e.seq, body: e.json.clone() }).collect()
}

impl Engine {
    /// Queues a background run and answers at once (or follows it live).
    pub(crate) async fn submit(
        &self,
        p: Prepared,
        stream: bool,
    ) -> Result<Reply, ApiError> {
        let mut b = ResponseBuilder::new(p.response, 0, true, p.obfuscate);
        b.start();
        let events = b.drain();
        let run = RunRequest {
            provider: p.provider_name,
            request: p.request,
            obfuscate: p.obfuscate,
        };
        let snapshot = b.snapshot().clone();
        self.inner
            .store
            .insert_response(NewResponse {
                id: snapshot.id.clone(),
                org_id: p.org_id.clone(),
                previous_response_id: snapshot.previous_response_id.clone(),
                status: ResponseStatus::Queued,
                background: true,
                body: serde_json::to_string(&snapshot).unwrap_or_default(),
                run_request: Some(
                    serde_json::to_string(&run).unwrap_or_default(),
                ),
                input_items: p.input_items,
                output_items: Vec::new(),
                events: rows(&events),
                created_at: now_ms(),
            })
            .await
            .map_err(store_error)?;
        self.inner.hub.queue.notify_one();
        if stream {
            return Ok(Reply::Stream(self.follow(p.org_id, snapshot.id, -1)));
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
    /// the dispatcher, new events wake log readers, cancels reach the run.
    async fn relay_notices(
        &self,
        mut rx: tokio::sync::broadcast::Receiver<crate::store::Notice>,
    ) {
        use crate::store::Notice;
        use tokio::sync::broadcast::error::RecvError;
        let hub = &self.inner.hub;
        loop {
            match rx.recv().await {
                Ok(Notice::Queued) => hub.queue.notify_one(),
                Ok(Notice::Events(_)) => hub.feed_opened.notify_waiters(),
                Ok(Notice::Cancel(id)) => {
                    hub.cancel(&id);
                }
                Err(RecvError::Lagged(_)) => {
                    hub.queue.notify_one();
                    hub.feed_opened.notify_waiters();
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Stops claiming, lets running runs finish for the grace period, then
    /// fails the rest as interrupted. Returns when no run is executing.
    pub async fn shutdown(&self) {
        self.inner.draining.cancel();
        let deadline = Instant::now()
            + Duration::from_millis(self.inner.config.shutdown_grace_ms);
        while self.inner.hub.running() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.inner.hub.running() > 0 {
            tracing::warn!(
                running = self.inner.hub.running(),
                "grace period over; failing runs as interrupted"
            );
            self.inner.abort.cancel();
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.inner.hub.running() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn dispatch(&self) {
        let limit = Arc::new(Semaphore::new(self.inner.config.workers));
        let poll = Duration::from_millis(self.inner.config.poll_ms);
        loop {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = self.inner.draining.cancelled() => return,
            };
            if self.inner.draining.is_cancelled() {
                return;
            }
            let claimed = self
                .inner
                .store
                .claim_next(
                    &self.inner.replica_id,
                    self.inner.config.lease_ms,
                    now_ms(),
                )
                .await;
            match claimed {
                Ok(Some(run)) => {
                    let e = self.clone();
                    tokio::spawn(async move {
                        e.execute(run).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = self.inner.hub.queue.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = self.inner.draining.cancelled() => return,
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "claiming queued runs failed; retrying");
                    tokio::time::sleep(poll).await;
                }
            }
        }
    }

    /// Runs one claimed response to its end.
    async fn execute(&self, run: ClaimedRun) {
        let id = run.id.clone();
        let started = Instant::now();
        let store = &self.inner.store;
        let owner = self.inner.replica_id.as_str();
        let response: Response = match serde_json::from_str(&run.body) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(response_id = %id, error = %e, "unreadable queued response");
                return;
            }
        };
        let rr: Option<RunRequest> =
            serde_json::from_str(&run.run_request).ok();
        let obfuscate = rr.as_ref().is_none_or(|r| r.obfuscate);
        let mut b =
            ResponseBuilder::new(response, run.next_seq, true, obfuscate);
        let prelude = match store.events_after(&id, -1, 100_000).await {
            Ok(rows) => rows
                .into_iter()
                .map(|r| Encoded::from_log(r.seq, r.body))
                .collect(),
            Err(_) => Vec::new(),
        };
        let token = self.inner.hub.cancel_token(&id);
        let feed = self.inner.hub.open_feed(&id, prelude);
        tracing::info!(response_id = %id, org = %run.org_id, "background run started");
        b.begin_run();
        let first = b.drain();
        let snap = serde_json::to_string(&b.partial()).ok();
        let alive = matches!(
            store
                .append_events(&id, owner, &rows(&first), snap.as_deref())
                .await,
            Ok(true)
        );
        feed.publish(&first);

        enum End {
            Done,
            Failed(&'static str, &'static str, String),
            Cancelled,
            Lost,
        }
        let mut end = End::Done;
        let provider = rr
            .as_ref()
            .and_then(|r| self.inner.providers.get(&r.provider).cloned());
        let mut upstream = match (&rr, provider) {
            _ if !alive => None,
            (Some(rr), Some(p)) => {
                tokio::select! {
                    s = p.stream(&rr.request) => match s {
                        Ok(s) => Some(s),
                        Err(e) => {
                            let err = provider_error(&rr.provider, &e);
                            end = End::Failed(
                                if err.status == 429 { "rate_limit_exceeded" } else { "server_error" },
                                "server_error",
                                err.error.message,
                            );
                            None
                        }
                    },
                    _ = token.cancelled() => { end = End::Cancelled; None }
                    _ = self.inner.abort.cancelled() => {
                        end = End::Failed("server_error", "server_error", INTERRUPTED.into());
                        None
                    }
                }
            }
            (Some(rr), None) => {
                end = End::Failed(
                    "server_error",
                    "server_error",
                    format!(
                        "The provider '{}' is no longer configured on this gateway.",
                        rr.provider
                    ),
                );
                None
            }
            (None, _) => {
                end = End::Failed(
                    "server_error",
                    "server_error",
                    "The queued run could not be read.".into(),
                );
                None
            }
        };
        if !alive {
            end = End::Lost;
        }
        let lease = self.inner.config.lease_ms;
        let mut renew = tokio::time::interval(Duration::from_millis(
            (lease / 3).max(50) as u64,
        ));
        renew.tick().await;
        let mut last_snapshot = Instant::now();
        while let Some(up) = upstream.as_mut() {
            tokio::select! {
                biased;
                _ = token.cancelled() => { end = End::Cancelled; break }
                _ = self.inner.abort.cancelled() => {
                    end = End::Failed("server_error", "server_error", INTERRUPTED.into());
                    break
                }
                _ = renew.tick() => {
                    match store.renew_lease(&id, owner, now_ms() + lease).await {
                        Ok(true) => {}
                        Ok(false) => { end = End::Lost; break }
                        Err(e) => tracing::warn!(response_id = %id, error = %e, "lease renewal failed"),
                    }
                    if matches!(store.cancel_requested(&id).await, Ok(true)) {
                        end = End::Cancelled;
                        break;
                    }
                    continue;
                }
                ev = up.next() => match ev {
                    None => break,
                    Some(Ok(ev)) => apply_event(&mut b, ev),
                    Some(Err(e)) => {
                        let name = rr.as_ref().map_or("", |r| r.provider.as_str());
                        let (code, kind, msg) = stream_failure(name, &e);
                        end = End::Failed(code, kind, msg);
                        break
                    }
                },
            }
            let evs = b.drain();
            if evs.is_empty() {
                continue;
            }
            let snap = (last_snapshot.elapsed() >= SNAPSHOT_EVERY)
                .then(|| serde_json::to_string(&b.partial()).ok())
                .flatten();
            if snap.is_some() {
                last_snapshot = Instant::now();
            }
            match store
                .append_events(&id, owner, &rows(&evs), snap.as_deref())
                .await
            {
                Ok(true) => feed.publish(&evs),
                Ok(false) => {
                    end = End::Lost;
                    break;
                }
                Err(e) => {
                    tracing::error!(response_id = %id, error = %e, "could not log events");
                    end = End::Failed(
                        "server_error",
                        "server_error",
                        "The gateway could not record the run's progress."
                            .into(),
                    );
                    break;
                }
            }
        }
        drop(upstream);
        match &end {
            End::Done => b.complete(),
            End::Failed(code, kind, msg) => b.fail(code, kind, msg),
            End::Cancelled => b.cancel(),
            End::Lost => {
                tracing::warn!(response_id = %id, "run lost its lease (swept or cancelled elsewhere)");
                self.inner.hub.finish(&id);
                return;
            }
        }
        let last = b.drain();
        let status = b.snapshot().status;
        let finish = RunEnd {
            status,
            body: serde_json::to_string(b.snapshot()).unwrap_or_default(),
            output_items: b.output_items(),
            events: rows(&last),
        };
        match store.finish_run(&id, owner, finish).await {
            Ok(true) => feed.publish(&last),
            Ok(false) => {
                tracing::warn!(response_id = %id, "run was finished elsewhere")
            }
            Err(e) => {
                tracing::error!(response_id = %id, error = %e, "could not store the end of a run; the lease sweeper will fail it")
            }
        }
        self.inner.hub.finish(&id);
        tracing::info!(
            response_id = %id,
            status = status.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "background run ended"
        );
    }

    async fn sweep_loop(&self) {
        let every = Duration::from_millis(
            (self.inner.config.lease_ms / 2).clamp(200, 10_000) as u64,
        );
        loop {
            match self.inner.store.expired_runs(now_ms()).await {
                Ok(runs) => {
                    for run in runs {
                        self.fail_expired(run).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "lease sweep failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.inner.abort.cancelled() => return,
            }
        }
    }

    /// Ends a run whose worker died: `failed` with a clear error and a
    /// terminal event, so readers are released.
    async fn fail_expired(&self, run: ExpiredRun) {
        let Ok(mut response) = serde_json::from_str::<Response>(&run.body)
        else {
            tracing::error!(response_id = %run.id, "unreadable snapshot of an expired run");
            return;
        };
        response.status = ResponseStatus::InProgress;
        let mut b = ResponseBuilder::new(response, run.next_seq, true, false);
        b.fail("server_error", "server_error", INTERRUPTED);
        let evs = b.drain();
        let end = RunEnd {
            status: ResponseStatus::Failed,
            body: serde_json::to_string(b.snapshot()).unwrap_or_default(),
            output_items: Vec::new(),
            events: rows(&evs),
        };
        match self.inner.store.finish_run(&run.id, &run.lease_owner, end).await
        {
            Ok(true) => {
                tracing::warn!(response_id = %run.id, owner = %run.lease_owner, "failed a run whose worker stopped renewing its lease");
                if let Some(feed) = self.inner.hub.feed(&run.id) {
                    feed.publish(&evs);
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(response_id = %run.id, error = %e, "could not fail an expired run")
            }
        }
    }

    async fn prune_loop(&self) {
        let every = Duration::from_secs(600);
        loop {
            let before = now_ms() - self.inner.config.event_retention_ms;
            match self.inner.store.prune_events(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned old event logs"),
                Err(e) => tracing::warn!(error = %e, "event pruning failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.inner.abort.cancelled() => return,
            }
        }
    }

    /// `POST /v1/responses/{id}/cancel`.
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Response, ApiError> {
        let store = &self.inner.store;
        let stored = self.stored(caller, id).await?;
        if !stored.background {
            return Err(ApiError::invalid(
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
                    .await
                    .map_err(store_error)?
                    .last()
                    .map_or(0, |e| e.seq + 1);
                response.status = ResponseStatus::InProgress;
                let mut b = ResponseBuilder::new(response, next, true, false);
                b.cancel();
                let evs = b.drain();
                let end = RunEnd {
                    status: ResponseStatus::Cancelled,
                    body: serde_json::to_string(b.snapshot())
                        .unwrap_or_default(),
                    output_items: Vec::new(),
                    events: rows(&evs),
                };
                if store
                    .cancel_queued(&caller.org_id, id, end)
                    .await
                    .map_err(store_error)?
                {
                    tracing::info!(response_id = %id, "queued run cancelled");
                    self.inner.hub.feed_opened.notify_waiters();
                    return Ok(b.into_response());
                }
                // Claimed in the meantime: cancel it as a running run.
            }
            "in_progress" => {}
            other => {
                let article = if other == "incomplete" { "an" } else { "a" };
                return Err(ApiError::invalid(
                    format!("Cannot cancel {article} {other} response."),
                    None,
                    None,
                ));
            }
        }
        store.request_cancel(&caller.org_id, id).await.map_err(store_error)?;
        self.inner.hub.cancel(id);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = store
                .get_response(&caller.org_id, id)
                .await
                .map_err(store_error)?;
            let Some(now) = now else {
                return Err(ApiError::response_not_found(id));
            };
            match now.status.as_str() {
                "cancelled" => return parse_body(&now.body),
                "queued" | "in_progress" if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                "queued" | "in_progress" => {
                    return Err(ApiError::unavailable(
                        "cancellation of this run (it did not stop in time)",
                    ));
                }
                other => {
                    // It ended on its own before the cancel took effect.
                    return Err(ApiError::invalid(
                        format!("Cannot cancel a {other} response."),
                        None,
                        None,
                    ));
                }
            }
        }
    }
}

/// Parses a stored response body.
pub(crate) fn parse_body(body: &str) -> Result<Response, ApiError> {
    serde_json::from_str(body).map_err(|e| {
        tracing::error!(error = %e, "unreadable stored response");
        ApiError::internal("unreadable stored response")
    })
}
