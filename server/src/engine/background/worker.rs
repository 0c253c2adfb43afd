//! The worker side: a dispatcher claims queued runs up to the worker
//! limit, and each run is driven into the event log by [`LogSink`], which
//! coalesces appends (at most one transaction, and one NOTIFY, per run per
//! [`FLUSH_EVERY`]) while keeping every event durable before any reader
//! sees it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::super::builder::{Encoded, Ending, ResponseBuilder};
use super::super::error::EngineError;
use super::super::hub::{FEED_TAIL, Feed};
use super::super::run::{
    INTERRUPTED, RunFacts, RunMode, Sink, Stop, Upstream, Wake, failed,
};
use super::*;
use crate::providers::CallContext;
use crate::store::{ClaimedRun, SharedStore};

/// Longest an event waits in memory before its batch is written.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(25);

/// How often a running run refreshes its stored snapshot for pollers.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(1000);

/// The event log of one run, written in coalesced batches.
pub(crate) struct LogSink {
    store: SharedStore,
    id: String,
    owner: String,
    feed: Arc<Feed>,
    pending: Vec<Encoded>,
    last_flush: Instant,
    last_snapshot: Instant,
    renew: tokio::time::Interval,
    lease_ms: i64,
}

impl LogSink {
    /// Writes the pending events (and, now and then, the snapshot), then
    /// publishes them to local readers.
    async fn flush(&mut self, b: &ResponseBuilder) -> Result<(), Stop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.write(b).await;
        // Measured from the end of the write: while the next batch waits,
        // the driver drains every upstream chunk that arrived meanwhile
        // (from the start, a write slower than the period would make every
        // batch one event).
        self.last_flush = Instant::now();
        result
    }

    async fn write(&mut self, b: &ResponseBuilder) -> Result<(), Stop> {
        let snap = (self.last_snapshot.elapsed() >= SNAPSHOT_EVERY)
            .then(|| encode(&b.partial()));
        if snap.is_some() {
            self.last_snapshot = Instant::now();
        }
        match self
            .store
            .append_events(
                &self.id,
                &self.owner,
                &rows(&self.pending),
                snap.as_deref(),
            )
            .await
        {
            Ok(true) => {
                self.feed.publish(&self.pending);
                self.pending.clear();
                Ok(())
            }
            Ok(false) => Err(Stop::Lost),
            Err(e) => {
                tracing::error!(response_id = %self.id, error = %e, "could not log events");
                Err(Stop::Failed(EngineError::Unavailable(
                    "event log of this run".into(),
                )))
            }
        }
    }
}

#[async_trait]
impl Sink for LogSink {
    async fn send(
        &mut self,
        evs: Vec<Encoded>,
        _b: &ResponseBuilder,
    ) -> Result<(), Stop> {
        // Written by `tick` when the batch is due (`wait` schedules it).
        self.pending.extend(evs);
        Ok(())
    }

    async fn wait(&mut self) -> Wake {
        let due = tokio::time::Instant::from_std(self.last_flush + FLUSH_EVERY);
        let flushing = !self.pending.is_empty();
        tokio::select! {
            _ = tokio::time::sleep_until(due), if flushing => Wake::Flush,
            _ = self.renew.tick() => Wake::Renew,
        }
    }

    async fn tick(
        &mut self,
        wake: Wake,
        b: &ResponseBuilder,
    ) -> Result<(), Stop> {
        match wake {
            Wake::Flush => self.flush(b).await,
            Wake::Renew => {
                let until = now_ms() + self.lease_ms;
                match self.store.renew_lease(&self.id, &self.owner, until).await
                {
                    Ok(true) => {}
                    Ok(false) => return Err(Stop::Lost),
                    Err(e) => {
                        tracing::warn!(response_id = %self.id, error = %e, "lease renewal failed")
                    }
                }
                if matches!(
                    self.store.cancel_requested(&self.id).await,
                    Ok(true)
                ) {
                    return Err(Stop::Cancelled);
                }
                Ok(())
            }
            Wake::Gone | Wake::Client => Ok(()),
        }
    }

    async fn finish(
        &mut self,
        b: &ResponseBuilder,
        terminal: Vec<Encoded>,
    ) -> Result<bool, EngineError> {
        let mut events = std::mem::take(&mut self.pending);
        events.extend(terminal);
        let end = run_end(b, &events);
        match self.store.finish_run(&self.id, &self.owner, end).await {
            Ok(true) => {
                self.feed.publish(&events);
                Ok(true)
            }
            Ok(false) => {
                tracing::warn!(response_id = %self.id, "run was finished elsewhere");
                Ok(false)
            }
            Err(e) => {
                tracing::error!(response_id = %self.id, error = %e, "could not store the end of a run; the lease sweeper will fail it");
                Err(EngineError::Store(e))
            }
        }
    }
}

impl Engine {
    pub(super) async fn dispatch(&self) {
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
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = self.inner.draining.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Runs one claimed response to its end.
    async fn execute(&self, run: ClaimedRun) {
        let _running = self.inner.metrics.background_run();
        let id = run.id.clone();
        let store = &self.inner.store;
        let response: Response = match serde_json::from_str(&run.body) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(response_id = %id, error = %e, "unreadable queued response; the lease sweeper will fail it");
                return;
            }
        };
        let rr = RunRequest::decode(&run.run_request);
        let obfuscate = rr.as_ref().map_or(true, |r| r.obfuscate);
        let b = ResponseBuilder::new(response, run.next_seq, true, obfuscate);
        let prelude = match store.events_after(&id, -1, FEED_TAIL as i64).await
        {
            Ok(rows) => rows
                .into_iter()
                .map(|r| Encoded::from_log(r.seq, &r.body))
                .collect(),
            Err(e) => {
                // Readers then find the first events in the log.
                tracing::warn!(response_id = %id, error = %e, "could not read a run's first events");
                Vec::new()
            }
        };
        let token = self.inner.hub.cancel_token(&id);
        let feed = self.inner.hub.open_feed(&id, prelude);
        let lease = self.inner.config.lease_ms;
        let every = Duration::from_millis((lease / 3).max(50) as u64);
        let mut sink = LogSink {
            store: store.clone(),
            id: id.clone(),
            owner: self.inner.replica_id.clone(),
            feed,
            pending: Vec::new(),
            last_flush: Instant::now(),
            last_snapshot: Instant::now(),
            renew: tokio::time::interval_at(
                tokio::time::Instant::now() + every,
                every,
            ),
            lease_ms: lease,
        };
        let facts = RunFacts {
            response_id: id.clone(),
            org_id: run.org_id.clone(),
            key_id: rr.as_ref().ok().and_then(|r| r.key_id.clone()),
            provider: rr
                .as_ref()
                .map(|r| r.provider.clone())
                .unwrap_or_default(),
            model: b.snapshot().model.clone(),
            mode: RunMode::Background,
            started: Instant::now(),
            first_output: None,
        };
        tracing::info!(response_id = %id, org = %run.org_id, request_id = rr.as_ref().ok().and_then(|r| r.request_id.as_deref()).unwrap_or(""), "background run started");
        self.run_claimed(b, rr, &token, &mut sink, facts).await;
        self.inner.hub.finish(&id);
    }

    async fn run_claimed(
        &self,
        mut b: ResponseBuilder,
        rr: Result<RunRequest, String>,
        token: &tokio_util::sync::CancellationToken,
        sink: &mut LogSink,
        facts: RunFacts,
    ) {
        b.begin_run();
        let first = b.drain();
        sink.pending.extend(first);
        // `in_progress` is written at once: readers wait for it.
        match sink.flush(&b).await {
            Ok(()) => {}
            Err(Stop::Lost) => {
                tracing::warn!(response_id = %facts.response_id, "run lost its lease before it started");
                return;
            }
            Err(_) => {
                let e =
                    EngineError::Unavailable("event log of this run".into());
                let _ = self
                    .finish(&mut b, failed(&e), Some(e.kind()), sink, facts)
                    .await;
                return;
            }
        }
        let rr = match rr {
            Ok(rr) => rr,
            Err(why) => {
                tracing::error!(response_id = %facts.response_id, error = %why, "unreadable queued run");
                let ending = Ending::Failed {
                    code: "server_error".into(),
                    kind: "server_error".into(),
                    message: format!(
                        "The queued run could not be read: {why}."
                    ),
                };
                let _ = self
                    .finish(
                        &mut b,
                        ending,
                        Some(ErrorKind::Internal),
                        sink,
                        facts,
                    )
                    .await;
                return;
            }
        };
        let providers = &self.inner.providers;
        let route = match &rr.route {
            Some(alias) => providers.resolve(alias).ok(),
            None => providers.get(&rr.provider).map(|p| {
                Resolved::direct(
                    &rr.provider,
                    &rr.request.model,
                    p.clone(),
                    providers.policy(),
                )
            }),
        };
        let Some(route) = route else {
            let ending = Ending::Failed {
                code: "server_error".into(),
                kind: "server_error".into(),
                message: format!(
                    "The provider '{}' is no longer configured on this gateway.",
                    rr.route.as_deref().unwrap_or(&rr.provider)
                ),
            };
            let _ = self
                .finish(&mut b, ending, Some(ErrorKind::Internal), sink, facts)
                .await;
            return;
        };
        let mut rr = rr;
        let ctx = CallContext {
            request_id: rr.request_id.clone().unwrap_or_default(),
            org_id: facts.org_id.clone(),
            key_id: rr.key_id.clone(),
            cancel: token.clone(),
            deadline: None,
            metrics: Some(self.inner.metrics.clone()),
        };
        // Retries and failover can take a while: the lease is renewed
        // (and a cancel request seen) while the route connects.
        let connecting = route.stream(&mut rr.request, &ctx);
        tokio::pin!(connecting);
        let connected = loop {
            tokio::select! {
                s = &mut connecting => break match s {
                    Ok((s, served)) => {
                        b.set_provider(&served.provider);
                        Ok(s)
                    }
                    Err(f) => {
                        let e = EngineError::Upstream { provider: f.provider, error: f.error };
                        tracing::warn!(response_id = %facts.response_id, error = %e, "background run failed to start");
                        let code = if e.kind() == ErrorKind::RateLimited {
                            "rate_limit_exceeded"
                        } else {
                            "server_error"
                        };
                        Err((Ending::Failed {
                            code: code.into(),
                            kind: "server_error".into(),
                            message: e.public_message(),
                        }, Some(e.kind())))
                    }
                },
                _ = token.cancelled() => break Err((Ending::Cancelled, None)),
                _ = self.inner.abort.cancelled() => break Err((Ending::Failed {
                    code: "server_error".into(),
                    kind: "server_error".into(),
                    message: INTERRUPTED.into(),
                }, Some(ErrorKind::Unavailable))),
                wake = sink.wait() => match sink.tick(wake, &b).await {
                    Ok(()) => {}
                    Err(Stop::Cancelled) => break Err((Ending::Cancelled, None)),
                    Err(Stop::Lost) => {
                        tracing::warn!(response_id = %facts.response_id, "run lost its lease while connecting");
                        return;
                    }
                    Err(Stop::Gone | Stop::Failed(_)) => {}
                },
            }
        };
        match connected {
            Ok(stream) => {
                let _ = self
                    .drive(b, Upstream::Events(stream), sink, token, facts)
                    .await;
            }
            Err((ending, error)) => {
                let _ = self.finish(&mut b, ending, error, sink, facts).await;
            }
        }
    }
}
