//! The one run driver and the one end of every run. A run is a builder
//! fed by an upstream (a stream, or a whole completion on the hot JSON
//! path) under cancellation, delivering its events to one [`Sink`]: none
//! for JSON, an SSE channel, a WebSocket, the background event log. [`Engine::finish`]
//! ends every run, in every mode (the lease sweeper and queued-run
//! cancellation included) and yields its [`RunOutcome`].

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Engine;
use super::builder::{Encoded, Ending, ResponseBuilder};
use super::error::{EngineError, ErrorKind};
use crate::api::ResponseStatus;
use crate::providers::{
    Completion, EventStream, ProviderError, ProviderEvent, Usage,
};

/// Message of a run whose worker died or was stopped.
pub(crate) const INTERRUPTED: &str = "The run was interrupted: the gateway \
    process running it stopped before it finished. Retry the request.";

/// What feeds a run.
pub(crate) enum Upstream {
    /// A live event stream.
    Events(EventStream),
    /// A whole generation (the non-streaming path).
    Whole(Completion),
}

/// How a run is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// One JSON answer.
    Json,
    /// Server-sent events to the caller.
    Sse,
    /// A queued background run.
    Background,
    /// A turn of a WebSocket connection.
    Websocket,
}

/// Why a sink wants the run to stop.
pub(crate) enum Stop {
    /// The consumer left (an SSE client disconnected): cancel.
    Gone,
    /// Cancellation was requested (seen by the sink).
    Cancelled,
    /// The run is no longer ours (its lease was taken): abandon it; whoever
    /// took it ends it.
    Lost,
    /// The sink failed (e.g. the event log could not be written).
    Failed(EngineError),
}

/// What woke a waiting sink.
pub(crate) enum Wake {
    /// A scheduled flush is due.
    Flush,
    /// Periodic housekeeping (lease renewal).
    Renew,
    /// The consumer left.
    Gone,
    /// The consumer sent something (a WebSocket frame), kept by the sink.
    Client,
}

/// What turns provider events into one front end's answer: the
/// Responses builder, the Chat Completions builder. The driver and
/// [`Engine::finish`] are the same for both.
pub(crate) trait RunBuilder: Send + Sync {
    /// One encoded wire event.
    type Event: Send;
    /// Feeds one provider event.
    fn apply(&mut self, ev: ProviderEvent);
    /// Feeds a whole generation (the non-streaming path).
    fn apply_all(&mut self, c: Completion) {
        for ev in c.events {
            self.apply(ev);
        }
    }
    /// Takes the events built since the last call.
    fn drain(&mut self) -> Vec<Self::Event>;
    /// Ends the run and builds its terminal events.
    fn end(&mut self, ending: &Ending);
    /// The run's status (final after `end`).
    fn status(&self) -> ResponseStatus;
    /// The usage reported so far.
    fn usage(&self) -> Usage;
}

impl RunBuilder for ResponseBuilder {
    type Event = Encoded;
    fn apply(&mut self, ev: ProviderEvent) {
        ResponseBuilder::apply(self, ev)
    }
    fn apply_all(&mut self, c: Completion) {
        ResponseBuilder::apply_all(self, c)
    }
    fn drain(&mut self) -> Vec<Encoded> {
        ResponseBuilder::drain(self)
    }
    fn end(&mut self, ending: &Ending) {
        ResponseBuilder::end(self, ending)
    }
    fn status(&self) -> ResponseStatus {
        self.snapshot().status
    }
    fn usage(&self) -> Usage {
        ResponseBuilder::usage(self)
    }
}

/// Where a run's events go.
#[async_trait]
pub(crate) trait Sink<B: RunBuilder = ResponseBuilder>: Send {
    /// Takes events as they are built (default: nothing to deliver, as
    /// for JSON answers and runs ended without running).
    async fn send(&mut self, _evs: Vec<B::Event>, _b: &B) -> Result<(), Stop> {
        Ok(())
    }

    /// Resolves when the sink needs attention. Must be cancel-safe: it
    /// only waits; the work is done by [`Sink::tick`].
    async fn wait(&mut self) -> Wake {
        std::future::pending().await
    }

    /// Does what `wait` woke it for.
    async fn tick(&mut self, _wake: Wake, _b: &B) -> Result<(), Stop> {
        Ok(())
    }

    /// Takes the run's last events (terminal one last) and keeps the end.
    /// `Ok(false)`: someone else ended the run first; nothing was written.
    async fn finish(
        &mut self,
        b: &B,
        terminal: Vec<B::Event>,
    ) -> Result<bool, EngineError>;
}

/// Who ran what, carried from the start of a run to its outcome.
#[derive(Clone, Debug)]
pub struct RunFacts {
    /// Response id.
    pub response_id: String,
    /// Organization id.
    pub org_id: String,
    /// Key id of the caller (None for internal calls and old runs).
    pub key_id: Option<String>,
    /// Provider name.
    pub provider: String,
    /// Model as requested.
    pub model: String,
    /// Delivery mode.
    pub mode: RunMode,
    /// When the run started.
    pub started: Instant,
    /// When the first output arrived.
    pub first_output: Option<Instant>,
}

/// How a run ended: what metrics, usage accounting and limits consume.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Who ran what.
    pub facts: RunFacts,
    /// Final status.
    pub status: ResponseStatus,
    /// Token usage.
    pub usage: Usage,
    /// Time to the first output.
    pub time_to_first_token: Option<Duration>,
    /// Start to end.
    pub duration: Duration,
    /// The class of error, for failed runs.
    pub error: Option<ErrorKind>,
    /// False when another actor ended the run first (nothing written).
    pub recorded: bool,
}

impl Engine {
    /// Drives a run to its end. None when the run was lost to another
    /// actor, which ends it.
    pub(crate) async fn drive<B: RunBuilder>(
        &self,
        mut b: B,
        upstream: Upstream,
        sink: &mut dyn Sink<B>,
        cancel: &CancellationToken,
        mut facts: RunFacts,
    ) -> Option<(B, Result<RunOutcome, EngineError>)> {
        let mut up = match upstream {
            Upstream::Whole(c) => {
                facts.first_output = Some(Instant::now());
                b.apply_all(c);
                None
            }
            Upstream::Events(s) => Some(s),
        };
        let mut ending = Ending::Done;
        let mut error = None;
        let abort = self.inner.abort.clone();
        while let Some(stream) = up.as_mut() {
            enum Got {
                Stop(Stop),
                Wake(Wake),
                Event(ProviderEvent),
                End,
            }
            let got = tokio::select! {
                biased;
                _ = cancel.cancelled() => Got::Stop(Stop::Cancelled),
                _ = abort.cancelled() => Got::Stop(Stop::Failed(
                    EngineError::Unavailable(INTERRUPTED.into()),
                )),
                wake = sink.wait() => Got::Wake(wake),
                ev = stream.next() => match ev {
                    None => Got::End,
                    Some(Ok(ev)) => Got::Event(ev),
                    Some(Err(e)) => Got::Stop(Stop::Failed(
                        upstream_failure(&facts.provider, e),
                    )),
                },
            };
            let stop = match got {
                Got::End => break,
                Got::Stop(s) => Some(s),
                Got::Wake(w) => sink.tick(w, &b).await.err(),
                Got::Event(ev) => {
                    if facts.first_output.is_none()
                        && matches!(ev, ProviderEvent::Delta { .. })
                    {
                        facts.first_output = Some(Instant::now());
                    }
                    b.apply(ev);
                    None
                }
            };
            let stop = match stop {
                Some(s) => Some(s),
                None => {
                    let evs = b.drain();
                    if evs.is_empty() {
                        None
                    } else {
                        sink.send(evs, &b).await.err()
                    }
                }
            };
            match stop {
                None => {}
                Some(Stop::Lost) => {
                    tracing::warn!(response_id = %facts.response_id, "run lost its lease (swept or cancelled elsewhere)");
                    return None;
                }
                Some(Stop::Gone) => {
                    tracing::info!(response_id = %facts.response_id, "client left the stream; upstream cancelled");
                    ending = Ending::Cancelled;
                    break;
                }
                Some(Stop::Cancelled) => {
                    ending = Ending::Cancelled;
                    break;
                }
                Some(Stop::Failed(e)) => {
                    tracing::warn!(response_id = %facts.response_id, error = %e, "run failed mid-stream");
                    ending = failed(&e);
                    error = Some(e.kind());
                    break;
                }
            }
        }
        drop(up);
        let outcome = self.finish(&mut b, ending, error, sink, facts).await;
        Some((b, outcome))
    }

    /// Ends a run: the builder's terminal event, the sink keeps it, and
    /// the outcome is recorded. The only place any run ends.
    pub(crate) async fn finish<B: RunBuilder>(
        &self,
        b: &mut B,
        ending: Ending,
        error: Option<ErrorKind>,
        sink: &mut dyn Sink<B>,
        facts: RunFacts,
    ) -> Result<RunOutcome, EngineError> {
        b.end(&ending);
        let terminal = b.drain();
        let recorded = sink.finish(b, terminal).await?;
        let now = Instant::now();
        let outcome = RunOutcome {
            status: b.status(),
            usage: b.usage(),
            time_to_first_token: facts
                .first_output
                .map(|t| t.saturating_duration_since(facts.started)),
            duration: now.saturating_duration_since(facts.started),
            error,
            recorded,
            facts,
        };
        self.record(&outcome);
        Ok(outcome)
    }

    /// Hands an outcome to what consumes outcomes: the metrics, the
    /// request's access line when the run ended inside its request, and
    /// the log.
    fn record(&self, o: &RunOutcome) {
        self.inner.metrics.run(o);
        crate::metrics::notes::note(|n| {
            n.input_tokens = Some(o.usage.input);
            n.output_tokens = Some(o.usage.output);
            n.time_to_first_token = o.time_to_first_token;
        });
        if o.facts.mode == RunMode::Background && o.recorded {
            tracing::info!(
                response_id = %o.facts.response_id,
                status = o.status.as_str(),
                elapsed_ms = o.duration.as_millis() as u64,
                "background run ended"
            );
        } else {
            tracing::debug!(
                response_id = %o.facts.response_id,
                status = o.status.as_str(),
                input_tokens = o.usage.input,
                output_tokens = o.usage.output,
                elapsed_ms = o.duration.as_millis() as u64,
                "run ended"
            );
        }
    }
}

/// An upstream failure as an engine error.
pub(crate) fn upstream_failure(
    provider: &str,
    e: ProviderError,
) -> EngineError {
    EngineError::Upstream { provider: provider.to_string(), error: e }
}

/// The ending of a run that failed with `e` after it started.
pub(crate) fn failed(e: &EngineError) -> Ending {
    let (code, kind, message) = match e {
        EngineError::Unavailable(m) if m == INTERRUPTED => {
            ("server_error".into(), "server_error".into(), m.clone())
        }
        other => other.stream_failure(),
    };
    Ending::Failed { code, kind, message }
}
