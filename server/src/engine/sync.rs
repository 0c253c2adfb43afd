//! Synchronous runs: the JSON answer (the hot path) and the SSE stream,
//! with their sinks. A stored response is written once, at its end, with
//! its items, in one transaction.

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::builder::{Encoded, ResponseBuilder};
use super::error::{EngineError, EngineResult};
use super::prepare::Prepared;
use super::run::{RunMode, Sink, Stop, Upstream, Wake, upstream_failure};
use super::{Engine, Reply, encode, transcript};
use crate::api::*;
use crate::ids::now_ms;
use crate::store::{ItemRow, NewResponse, SharedStore};

/// The JSON answer: nothing to deliver while running; a stored response
/// is written at the end and its JSON kept for the reply.
struct JsonSink {
    store: Option<Persist>,
    body: Option<Bytes>,
}

/// What storing a finished synchronous response needs.
pub(super) struct Persist {
    pub(super) store: SharedStore,
    pub(super) org_id: String,
    pub(super) input_items: Vec<ItemRow>,
}

impl Persist {
    /// Writes the finished response with its items; returns its JSON.
    pub(super) async fn write(
        &mut self,
        b: &ResponseBuilder,
    ) -> EngineResult<String> {
        let r = b.snapshot();
        let body = encode(r);
        self.store
            .insert_response(NewResponse {
                id: r.id.clone(),
                org_id: self.org_id.clone(),
                previous_response_id: r.previous_response_id.clone(),
                status: r.status,
                background: false,
                body: body.clone(),
                run_request: None,
                input_items: std::mem::take(&mut self.input_items),
                output_items: b
                    .output_items()
                    .iter()
                    .map(transcript::row)
                    .collect(),
                events: Vec::new(),
                created_at: now_ms(),
            })
            .await?;
        Ok(body)
    }
}

#[async_trait]
impl Sink for JsonSink {
    async fn finish(
        &mut self,
        b: &ResponseBuilder,
        _terminal: Vec<Encoded>,
    ) -> Result<bool, EngineError> {
        if let Some(p) = self.store.as_mut() {
            self.body = Some(Bytes::from(p.write(b).await?));
        }
        Ok(true)
    }
}

/// Server-sent events to the caller; a client that leaves cancels.
struct SseSink {
    tx: mpsc::Sender<Bytes>,
    store: Option<Persist>,
}

#[async_trait]
impl Sink for SseSink {
    async fn send(
        &mut self,
        evs: Vec<Encoded>,
        _b: &ResponseBuilder,
    ) -> Result<(), Stop> {
        for e in evs {
            if self.tx.send(e.frame).await.is_err() {
                return Err(Stop::Gone);
            }
        }
        Ok(())
    }

    async fn wait(&mut self) -> Wake {
        self.tx.closed().await;
        Wake::Gone
    }

    async fn tick(
        &mut self,
        wake: Wake,
        _b: &ResponseBuilder,
    ) -> Result<(), Stop> {
        match wake {
            Wake::Gone => Err(Stop::Gone),
            _ => Ok(()),
        }
    }

    async fn finish(
        &mut self,
        b: &ResponseBuilder,
        mut terminal: Vec<Encoded>,
    ) -> Result<bool, EngineError> {
        if let Some(p) = self.store.as_mut()
            && let Err(e) = p.write(b).await
        {
            tracing::error!(response_id = %b.snapshot().id, error = %e, "could not store streamed response");
            if let Some(last) = terminal.last_mut() {
                *last = store_failed_event(last.seq);
            }
        }
        for e in terminal {
            if self.tx.send(e.frame).await.is_err() {
                break;
            }
        }
        Ok(true)
    }
}

impl Engine {
    pub(crate) async fn run_json(
        &self,
        mut p: Prepared,
    ) -> EngineResult<Reply> {
        let ctx = p.context(&self.inner.metrics);
        let mut facts = p.facts(RunMode::Json);
        let (completion, served) = p
            .route
            .complete(&mut p.request, &ctx)
            .await
            .map_err(|f| upstream_failure(&f.provider, f.error))?;
        p.response.provider.clone_from(&served.provider);
        facts.provider = served.provider;
        let stored = p.response.store;
        let mut sink = JsonSink {
            store: stored.then(|| Persist {
                store: self.inner.store.clone(),
                org_id: p.caller.org_id.clone(),
                input_items: p.input_items,
            }),
            body: None,
        };
        let b = ResponseBuilder::new(p.response, 0, false, false);
        let Some((b, outcome)) = self
            .drive(
                b,
                Upstream::Whole(completion),
                &mut sink,
                &CancellationToken::new(),
                facts,
            )
            .await
        else {
            return Err(EngineError::Internal("a JSON run was lost".into()));
        };
        outcome?;
        match sink.body {
            Some(body) => Ok(Reply::Encoded(body)),
            None => Ok(Reply::Json(Box::new(b.into_response()))),
        }
    }

    pub(crate) async fn run_stream(
        &self,
        mut p: Prepared,
    ) -> EngineResult<Reply> {
        let ctx = p.context(&self.inner.metrics);
        let mut facts = p.facts(RunMode::Sse);
        let (upstream, served) = p
            .route
            .stream(&mut p.request, &ctx)
            .await
            .map_err(|f| upstream_failure(&f.provider, f.error))?;
        p.response.provider.clone_from(&served.provider);
        facts.provider = served.provider;
        let (tx, rx) = mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move {
            let mut b = ResponseBuilder::new(p.response, 0, true, p.obfuscate);
            b.start();
            let first = b.drain();
            let stored = b.snapshot().store;
            let mut sink = SseSink {
                tx,
                store: stored.then(|| Persist {
                    store: engine.inner.store.clone(),
                    org_id: p.caller.org_id.clone(),
                    input_items: p.input_items,
                }),
            };
            if sink.send(first, &b).await.is_err() {
                // Gone before the first event: the builder still ends the
                // run (cancelled) through the driver's first turn.
            }
            let _ = engine
                .drive(
                    b,
                    Upstream::Events(upstream),
                    &mut sink,
                    &CancellationToken::new(),
                    facts,
                )
                .await;
        });
        Ok(Reply::Stream(rx))
    }
}

/// The `error` event sent when a finished response could not be stored.
pub(super) fn store_failed_event(seq: i64) -> Encoded {
    let msg = "The response finished but could not be stored; it cannot be \
               retrieved or chained. Please retry.";
    let ev = ResponseStreamEvent::Error(ErrorEvent {
        kind: Default::default(),
        sequence_number: seq,
        code: Some("server_error".into()),
        message: msg.into(),
        param: None,
        error: StreamErrorDetail {
            kind: "server_error".into(),
            code: Some("server_error".into()),
            message: msg.into(),
            param: None,
        },
    });
    Encoded::new(&ev, seq)
}
