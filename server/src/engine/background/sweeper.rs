//! What keeps the queue honest when workers die: the lease sweeper fails
//! runs whose worker stopped renewing (through the one `finish()`, so
//! readers get a terminal event), and the pruner drops old event logs.

use std::time::Duration;

use async_trait::async_trait;

use super::super::builder::{Encoded, Ending, ResponseBuilder};
use super::super::error::EngineError;
use super::super::run::{INTERRUPTED, RunFacts, RunMode, Sink};
use super::*;
use crate::store::ExpiredRun;

/// Ends an expired run on behalf of its dead owner.
struct SweepSink<'a> {
    engine: &'a Engine,
    run: &'a ExpiredRun,
}

#[async_trait]
impl Sink for SweepSink<'_> {
    async fn finish(
        &mut self,
        b: &ResponseBuilder,
        terminal: Vec<Encoded>,
    ) -> Result<bool, EngineError> {
        let end = run_end(b, &terminal);
        let run = self.run;
        let done = self
            .engine
            .inner
            .store
            .finish_run(&run.id, &run.lease_owner, end)
            .await?;
        if done {
            self.engine.inner.metrics.lease_expired();
            tracing::warn!(response_id = %run.id, owner = %run.lease_owner, "failed a run whose worker stopped renewing its lease");
            if let Some(feed) = self.engine.inner.hub.feed(&run.id) {
                feed.publish(&terminal);
            }
        }
        Ok(done)
    }
}

impl Engine {
    pub(super) async fn sweep_loop(&self) {
        let every = Duration::from_millis(
            (self.inner.config.lease_ms / 2).clamp(200, 10_000) as u64,
        );
        // Both loops stop when shutdown starts (draining): a stopping
        // replica leaves other replicas' dead runs and old logs to the
        // replicas that stay.
        loop {
            if self.inner.draining.is_cancelled() {
                return;
            }
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
                _ = self.inner.draining.cancelled() => return,
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
        let facts = RunFacts {
            response_id: run.id.clone(),
            org_id: String::new(),
            key_id: None,
            provider: response.provider.clone(),
            model: response.model.clone(),
            mode: RunMode::Background,
            started: std::time::Instant::now(),
            first_output: None,
        };
        let mut b = ResponseBuilder::new(response, run.next_seq, true, false);
        let ending = Ending::Failed {
            code: "server_error".into(),
            kind: "server_error".into(),
            message: INTERRUPTED.into(),
        };
        let mut sink = SweepSink { engine: self, run: &run };
        if let Err(e) = self
            .finish(
                &mut b,
                ending,
                Some(ErrorKind::Unavailable),
                &mut sink,
                facts,
            )
            .await
        {
            tracing::warn!(response_id = %run.id, error = %e, "could not fail an expired run");
        }
    }

    pub(super) async fn prune_loop(&self) {
        let every = Duration::from_secs(600);
        loop {
            if self.inner.draining.is_cancelled() {
                return;
            }
            let before = now_ms() - self.inner.config.event_retention_ms;
            match self.inner.store.prune_events(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned old event logs"),
                Err(e) => tracing::warn!(error = %e, "event pruning failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.inner.draining.cancelled() => return,
            }
        }
    }
}
