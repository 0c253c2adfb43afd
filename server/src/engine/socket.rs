//! WebSocket mode as a run mode: each `response.create` turn of a
//! connection goes through the same prepare, `ResponseBuilder` and driver
//! as HTTP, every event one text frame. The transport is a [`Socket`] the
//! http layer implements; the connection-local state (the last response,
//! for `store: false` continuation) is a [`SocketState`] it keeps.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::builder::{Encoded, Ending, ResponseBuilder};
use super::error::EngineError;
use super::run::{RunMode, Sink, Stop, Upstream, Wake, upstream_failure};
use super::sync::{Persist, store_failed_event};
use super::{Caller, Engine, transcript};
use crate::api::*;
use crate::providers::TranscriptItem;

/// What the client sent, as the transport read it.
pub enum Incoming {
    /// A `response.create` turn.
    Create(Box<Turn>),
    /// A frame answered with an `error` event (malformed JSON, an unknown
    /// or unserved event type, a body that does not parse), with the
    /// `previous_response_id` it named, if any: a failed continuation
    /// evicts the cached response.
    Rejected(ApiError, Option<String>),
    /// The client closed the connection, or it broke.
    Gone,
}

/// One `response.create`.
pub struct Turn {
    /// The create body (`stream` and `background` are ignored).
    pub request: CreateResponse,
    /// False: warm the connection only (no model call).
    pub generate: bool,
}

/// One WebSocket connection, as the engine sees it.
#[async_trait]
pub trait Socket: Send {
    /// Sends one JSON text frame, written at once. False: the client is
    /// gone.
    async fn send(&mut self, json: Bytes) -> bool;
    /// Sends an `error` event. False: the client is gone.
    async fn send_error(&mut self, e: ApiError) -> bool;
    /// The client's next message. Cancel-safe: it only reads.
    async fn recv(&mut self) -> Incoming;
}

/// Connection-local state: the last response of the connection, so a
/// `store: false` turn can continue it without the database.
#[derive(Default)]
pub struct SocketState {
    last: Option<Last>,
}

impl SocketState {
    /// Forgets the cached response if it is `id`: a continuation of it
    /// failed, so it cannot be continued any more.
    pub fn evict(&mut self, id: &str) {
        if self.last.as_ref().is_some_and(|l| l.id == id) {
            self.last = None;
        }
    }
}

struct Last {
    id: String,
    /// Everything a continuation prepends: the chain, the turn's input
    /// and its output (never the instructions).
    transcript: Vec<TranscriptItem>,
}

/// A run's events to the socket; frames the client sends meanwhile are
/// answered here (a second `response.create` is refused).
struct SocketSink<'a> {
    socket: &'a mut dyn Socket,
    store: Option<Persist>,
    pending: Option<Incoming>,
    gone: bool,
}

impl SocketSink<'_> {
    async fn deliver(&mut self, evs: Vec<Encoded>) -> Result<(), Stop> {
        for e in evs {
            if self.gone || !self.socket.send(e.json_bytes()).await {
                self.gone = true;
                return Err(Stop::Gone);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for SocketSink<'_> {
    async fn send(
        &mut self,
        evs: Vec<Encoded>,
        _b: &ResponseBuilder,
    ) -> Result<(), Stop> {
        self.deliver(evs).await
    }

    async fn wait(&mut self) -> Wake {
        if self.gone {
            return std::future::pending().await;
        }
        let got = self.socket.recv().await;
        self.pending = Some(got);
        Wake::Client
    }

    async fn tick(
        &mut self,
        wake: Wake,
        _b: &ResponseBuilder,
    ) -> Result<(), Stop> {
        if !matches!(wake, Wake::Client) {
            return Ok(());
        }
        let answer = match self.pending.take() {
            None => return Ok(()),
            Some(Incoming::Gone) => {
                self.gone = true;
                return Err(Stop::Gone);
            }
            Some(Incoming::Rejected(e, _)) => e,
            Some(Incoming::Create(_)) => ApiError::invalid(
                "A response is already in progress on this connection: \
                 wait for its terminal event before sending the next \
                 `response.create`, or open another connection.",
                None,
                Some("response_already_in_flight"),
            ),
        };
        if !self.socket.send_error(answer).await {
            self.gone = true;
            return Err(Stop::Gone);
        }
        Ok(())
    }

    async fn finish(
        &mut self,
        b: &ResponseBuilder,
        mut terminal: Vec<Encoded>,
    ) -> Result<bool, EngineError> {
        if let Some(p) = self.store.as_mut()
            && let Err(e) = p.write(b).await
        {
            tracing::error!(response_id = %b.snapshot().id, error = %e, "could not store a WebSocket response");
            if let Some(last) = terminal.last_mut() {
                *last = store_failed_event(last.seq);
            }
        }
        let _ = self.deliver(terminal).await;
        Ok(true)
    }
}

impl Engine {
    /// Runs one turn of a connection to its terminal event. False when
    /// the client went away (its run was cancelled).
    pub async fn socket_turn(
        &self,
        caller: &Caller,
        turn: Turn,
        state: &mut SocketState,
        socket: &mut dyn Socket,
    ) -> bool {
        let Turn { mut request, generate } = turn;
        // Transport fields of HTTP: a turn always streams, in the
        // foreground.
        request.stream = None;
        request.background = None;
        // Continuing the cached response takes it: a failed continuation
        // leaves nothing to continue.
        let cached = match (&request.previous_response_id, &state.last) {
            (Some(prev), Some(last)) if *prev == last.id => state.last.take(),
            _ => None,
        };
        let local = cached.map(|l| l.transcript);
        let mut p = match self.prepare_with(caller, request, local).await {
            Ok(p) => p,
            Err(e) => return socket.send_error(ApiError::from(e)).await,
        };
        tracing::info!(
            request_id = %caller.request_id,
            org = %caller.org_id,
            response_id = %p.response.id,
            model = %p.response.model,
            generate,
            store = p.response.store,
            "websocket response create"
        );
        let mut facts = p.facts(RunMode::Websocket);
        let mut context = p.request.transcript.clone();
        let upstream = if generate {
            let ctx = p.context(&self.inner.metrics);
            match p.route.stream(&mut p.request, &ctx).await {
                Ok((up, served)) => {
                    p.response.provider.clone_from(&served.provider);
                    facts.provider = served.provider;
                    Some(up)
                }
                Err(f) => {
                    let e = upstream_failure(&f.provider, f.error);
                    return socket.send_error(ApiError::from(e)).await;
                }
            }
        } else {
            None
        };
        let _running = TurnRunning::enter(self);
        let stored = p.response.store;
        let mut sink = SocketSink {
            socket,
            store: stored.then(|| Persist {
                store: self.inner.store.clone(),
                org_id: p.caller.org_id.clone(),
                input_items: p.input_items,
            }),
            pending: None,
            gone: false,
        };
        let mut b = ResponseBuilder::new(p.response, 0, true, p.obfuscate);
        b.start();
        let first = b.drain();
        let _ = sink.deliver(first).await;
        let ran = match upstream {
            Some(up) => {
                self.drive(
                    b,
                    Upstream::Events(up),
                    &mut sink,
                    &CancellationToken::new(),
                    facts,
                )
                .await
            }
            None => {
                b.skip_generation();
                let out =
                    self.finish(&mut b, Ending::Done, None, &mut sink, facts);
                let out = out.await;
                Some((b, out))
            }
        };
        let gone = sink.gone;
        if let Some((b, Ok(_))) = ran
            && matches!(
                b.snapshot().status,
                ResponseStatus::Completed | ResponseStatus::Incomplete
            )
        {
            let unseal = self.unseal(&caller.org_id);
            context.extend(b.output_items().iter().filter_map(|i| {
                transcript::from_stored(&transcript::row(i).body, unseal)
                    .ok()
                    .flatten()
            }));
            state.last =
                Some(Last { id: b.snapshot().id.clone(), transcript: context });
        }
        !gone
    }
}

/// Counts a running turn, so shutdown lets it finish within the grace.
struct TurnRunning<'a>(&'a Engine);

impl<'a> TurnRunning<'a> {
    fn enter(engine: &'a Engine) -> Self {
        engine.inner.socket_turns.fetch_add(1, Ordering::Relaxed);
        TurnRunning(engine)
    }
}

impl Drop for TurnRunning<'_> {
    fn drop(&mut self) {
        self.0.inner.socket_turns.fetch_sub(1, Ordering::Relaxed);
    }
}
