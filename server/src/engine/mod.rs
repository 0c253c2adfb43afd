//! The engine: request → transcript → provider run → events → `Response`.
//! Every mode (JSON, SSE, stored, background) consumes the one event
//! stream of a `ResponseBuilder`. No HTTP types here: handlers call these
//! methods and map the result.

pub mod background;
pub mod builder;
pub mod follow;
pub mod hub;
pub mod transcript;
pub mod validate;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::*;
use crate::ids::{self, now_ms};
use crate::providers::{
    EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest,
    Registry,
};
use crate::store::{NewResponse, SharedStore, StoreError};

use builder::{Encoded, ResponseBuilder};
use hub::Hub;

/// Background-run settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most runs executing at once in this process.
    pub workers: usize,
    /// Lease of a running run; renewed every third of it.
    pub lease_ms: i64,
    /// How often to look for queued runs and expired leases without a
    /// wake-up (other replicas' submissions, crashes).
    pub poll_ms: u64,
    /// How long event logs of finished runs are kept.
    pub event_retention_ms: i64,
    /// How long running runs may finish after SIGTERM.
    pub shutdown_grace_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        EngineConfig {
            workers: (cores * 64).clamp(64, 1024),
            lease_ms: 30_000,
            poll_ms: 1_000,
            event_retention_ms: 24 * 3600 * 1000,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// Who is asking.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Organization id; every read is scoped to it.
    pub org_id: String,
    /// The request's id, for logs.
    pub request_id: String,
}

/// What a create or view produces.
pub enum Reply {
    /// A response object (boxed: it is large and streams are common).
    Json(Box<Response>),
    /// A response object already serialized: a stored response is encoded
    /// once, for the database and the client alike.
    Encoded(Bytes),
    /// SSE frames; dropping the receiver means the client left.
    Stream(mpsc::Receiver<Bytes>),
}

/// The engine, cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: SharedStore,
    providers: Registry,
    hub: Hub,
    config: EngineConfig,
    /// Identifies this process as a lease owner.
    replica_id: String,
    /// Stop claiming new runs.
    draining: CancellationToken,
    /// Abandon running runs (after the grace period).
    abort: CancellationToken,
}

/// Store failures as client answers: 503 when the database is away,
/// otherwise a logged 500.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(msg) => {
            tracing::warn!(error = %msg, "database unavailable");
            ApiError::unavailable("database")
        }
        other => {
            tracing::error!(error = %other, "store error");
            ApiError::internal("storage error")
        }
    }
}

/// Upstream failures before the first event, as client answers.
pub fn provider_error(provider: &str, e: &ProviderError) -> ApiError {
    tracing::warn!(provider, error = %e, "upstream failure");
    match e {
        ProviderError::Status { status: 429, message, retry_after } => {
            let mut err = ApiError::new(
                429,
                "rate_limit_error",
                format!(
                    "The upstream provider '{provider}' is rate limiting requests: {message}"
                ),
                None,
                Some("rate_limit_exceeded"),
            );
            err.retry_after = *retry_after;
            err
        }
        ProviderError::Status { status: 401 | 403, .. } => ApiError::new(
            502,
            "server_error",
            format!(
                "The upstream provider '{provider}' rejected the gateway's \
                 credentials. The operator should check its API key."
            ),
            None,
            Some("upstream_auth_failed"),
        ),
        ProviderError::Status { status, message, .. } if *status < 500 => {
            ApiError::new(
                *status,
                "invalid_request_error",
                format!(
                    "The upstream provider '{provider}' rejected the request: {message}"
                ),
                None,
                Some("upstream_rejected"),
            )
        }
        ProviderError::Status { status, message, .. } => ApiError::new(
            502,
            "server_error",
            format!(
                "The upstream provider '{provider}' failed (HTTP {status}): {message}"
            ),
            None,
            Some("upstream_error"),
        ),
        ProviderError::Unavailable(msg) | ProviderError::Protocol(msg) => {
            ApiError::new(
                502,
                "server_error",
                format!(
                    "The upstream provider '{provider}' could not be used: {msg}"
                ),
                None,
                Some("upstream_unavailable"),
            )
        }
        ProviderError::Timeout(secs) => ApiError::new(
            504,
            "server_error",
            format!(
                "The upstream provider '{provider}' did not answer within {secs} s."
            ),
            None,
            Some("upstream_timeout"),
        ),
    }
}

/// `(code, type, message)` of a failure after the stream started.
pub fn stream_failure(
    provider: &str,
    e: &ProviderError,
) -> (&'static str, &'static str, String) {
    match e {
        ProviderError::Status { status: 429, .. } => (
            "rate_limit_exceeded",
            "rate_limit_error",
            format!(
                "The upstream provider '{provider}' is rate limiting requests."
            ),
        ),
        _ => (
            "server_error",
            "server_error",
            format!(
                "The upstream provider '{provider}' failed mid-stream: {e}"
            ),
        ),
    }
}

/// A checked create request, ready to run.
pub(crate) struct Prepared {
    pub(crate) org_id: String,
    pub(crate) provider_name: String,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) request: ProviderRequest,
    pub(crate) response: Response,
    pub(crate) input_items: Vec<crate::store::ItemRow>,
    pub(crate) obfuscate: bool,
}

impl Engine {
    /// An engine over a store and providers. Background tasks start with
    /// [`Engine::start_background`].
    pub fn new(
        store: SharedStore,
        providers: Registry,
        config: EngineConfig,
    ) -> Self {
        Engine {
            inner: Arc::new(Inner {
                store,
                providers,
                hub: Hub::default(),
                config,
                replica_id: format!("replica_{}", ids::random_hex(8)),
                draining: CancellationToken::new(),
                abort: CancellationToken::new(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// `POST /v1/responses`.
    pub async fn create(
        &self,
        caller: &Caller,
        req: CreateResponse,
    ) -> Result<Reply, ApiError> {
        let stream = req.stream.unwrap_or(false);
        let background = req.background.unwrap_or(false);
        let p = self.prepare(caller, req).await?;
        // One line per request, kept lean: it is formatted on the request
        // path (~10k instructions for these fields). Tags and trace are
        // client data and stay out of the logs.
        tracing::info!(
            request_id = %caller.request_id,
            org = %caller.org_id,
            response_id = %p.response.id,
            model = %p.response.model,
            stream, background,
            store = p.response.store,
            "response create"
        );
        if background {
            return self.submit(p, stream).await;
        }
        if stream {
            return self.run_stream(p).await;
        }
        self.run_json(p).await
    }

    async fn prepare(
        &self,
        caller: &Caller,
        req: CreateResponse,
    ) -> Result<Prepared, ApiError> {
        validate::check(&req)?;
        let full_model = req.model.clone().unwrap_or_default();
        let Some((provider_name, model)) = full_model
            .split_once('/')
            .filter(|(p, m)| !p.is_empty() && !m.is_empty())
        else {
            return Err(ApiError::invalid_value(
                "model",
                format!(
                    "Invalid model '{full_model}': use the form \
                     'provider/model', for example 'echo/test' or \
                     'openai/gpt-4o-mini'."
                ),
            ));
        };
        let provider = self.inner.providers.get(provider_name).cloned().ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_request_error",
                format!(
                    "Unknown provider '{provider_name}' in model '{full_model}'. \
                     Configured providers: {}.",
                    self.inner.providers.names().join(", ")
                ),
                Some("model"),
                Some("model_not_found"),
            )
        })?;
        let store = self.inner.store.clone();
        let mut messages = Vec::new();
        if let Some(prev) = &req.previous_response_id {
            let items = store
                .chain_items(&caller.org_id, prev)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!(
                            "Previous response with id '{prev}' not found."
                        ),
                        Some("previous_response_id"),
                        Some("previous_response_not_found"),
                    )
                })?;
            messages.extend(
                items
                    .iter()
                    .filter_map(|i| transcript::message_from_item(&i.body)),
            );
        }
        let org = caller.org_id.clone();
        let keep_items = req.store.unwrap_or(true);
        let turn = transcript::resolve_input(req.input.as_ref(), keep_items, |id| {
            let (store, org) = (store.clone(), org.clone());
            async move { store.find_item(&org, &id).await.map_err(store_error) }
        })
        .await?;
        messages.extend(turn.messages);
        let format = req.text.as_ref().and_then(|t| t.format.clone());
        let request = ProviderRequest {
            model: model.to_string(),
            instructions: req.instructions.clone(),
            messages,
            max_output_tokens: req.max_output_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            reasoning_effort: req
                .reasoning
                .as_ref()
                .and_then(|r| r.effort.clone()),
            text_format: format.clone(),
            user: req.safety_identifier.clone().or_else(|| req.user.clone()),
        };
        let background = req.background.unwrap_or(false);
        let response = Response {
            id: ids::response_id(),
            object: ResponseObject::Response,
            created_at: now_ms() / 1000,
            status: if background {
                ResponseStatus::Queued
            } else {
                ResponseStatus::InProgress
            },
            completed_at: None,
            background,
            error: None,
            incomplete_details: None,
            instructions: req.instructions,
            max_output_tokens: req.max_output_tokens,
            max_tool_calls: req.max_tool_calls,
            model: full_model.clone(),
            output: Vec::new(),
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id,
            reasoning: req.reasoning.unwrap_or_default(),
            service_tier: Some(match req.service_tier.as_deref() {
                None | Some("auto") => "default".to_string(),
                Some(t) => t.to_string(),
            }),
            store: req.store.unwrap_or(true),
            temperature: req.temperature.unwrap_or(1.0),
            top_p: req.top_p.unwrap_or(1.0),
            top_logprobs: req.top_logprobs.unwrap_or(0),
            text: TextConfig {
                format: Some(format.unwrap_or(TextFormat::Text)),
                verbosity: Some(
                    req.text
                        .and_then(|t| t.verbosity)
                        .unwrap_or(Verbosity::Medium),
                ),
            },
            tool_choice: req.tool_choice.unwrap_or_else(|| "auto".into()),
            tools: Vec::new(),
            truncation: req.truncation.unwrap_or(Truncation::Disabled),
            usage: None,
            user: req.user,
            safety_identifier: req.safety_identifier,
            prompt_cache_key: req.prompt_cache_key,
            metadata: req.metadata.unwrap_or_default(),
            provider: provider_name.to_string(),
            tags: req.tags.unwrap_or_default(),
            trace: req.trace,
        };
        let obfuscate = req
            .stream_options
            .and_then(|o| o.include_obfuscation)
            .unwrap_or(true);
        Ok(Prepared {
            org_id: caller.org_id.clone(),
            provider_name: provider_name.to_string(),
            provider,
            request,
            response,
            input_items: turn.items,
            obfuscate,
        })
    }

    /// Stores a finished synchronous response with its items; `body` is
    /// its JSON.
    async fn persist(
        &self,
        b: &ResponseBuilder,
        body: String,
        input_items: Vec<crate::store::ItemRow>,
        org: String,
    ) -> Result<(), StoreError> {
        let r = b.snapshot();
        self.inner
            .store
            .insert_response(NewResponse {
                id: r.id.clone(),
                org_id: org,
                previous_response_id: r.previous_response_id.clone(),
                status: r.status,
                background: false,
                body,
                run_request: None,
                input_items,
                output_items: b.output_items(),
                events: Vec::new(),
                created_at: now_ms(),
            })
            .await
    }

    async fn run_json(&self, p: Prepared) -> Result<Reply, ApiError> {
        let completion = p
            .provider
            .complete(&p.request)
            .await
            .map_err(|e| provider_error(&p.provider_name, &e))?;
        let mut b = ResponseBuilder::new(p.response, 0, false, false);
        b.apply(completion);
        b.complete();
        if !b.snapshot().store {
            return Ok(Reply::Json(Box::new(b.into_response())));
        }
        let body = encode(b.snapshot());
        let reply = Bytes::from(body.clone());
        self.persist(&b, body, p.input_items, p.org_id)
            .await
            .map_err(store_error)?;
        Ok(Reply::Encoded(reply))
    }

    async fn run_stream(&self, p: Prepared) -> Result<Reply, ApiError> {
        let upstream = p
            .provider
            .stream(&p.request)
            .await
            .map_err(|e| provider_error(&p.provider_name, &e))?;
        let (tx, rx) = mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move { engine.drive_stream(p, upstream, tx).await });
        Ok(Reply::Stream(rx))
    }

    /// Drives a synchronous stream: forwards each event as it is built;
    /// a client that leaves cancels the upstream call.
    async fn drive_stream(
        &self,
        p: Prepared,
        mut upstream: EventStream,
        tx: mpsc::Sender<Bytes>,
    ) {
        let Prepared {
            org_id: org,
            provider_name,
            response,
            input_items,
            obfuscate,
            ..
        } = p;
        let mut b = ResponseBuilder::new(response, 0, true, obfuscate);
        b.start();
        let mut gone = !send_all(&tx, b.drain()).await;
        let mut failure = None;
        while !gone {
            tokio::select! {
                biased;
                _ = tx.closed() => gone = true,
                ev = upstream.next() => match ev {
                    None => break,
                    Some(Ok(ev)) => apply_event(&mut b, ev),
                    Some(Err(e)) => { failure = Some(e); break }
                },
            }
            if !send_all(&tx, b.drain()).await {
                gone = true;
            }
        }
        drop(upstream);
        if gone {
            b.cancel();
            tracing::info!(response_id = %b.snapshot().id, "client left the stream; upstream cancelled");
        } else if let Some(e) = failure {
            let (code, kind, msg) = stream_failure(&provider_name, &e);
            tracing::warn!(response_id = %b.snapshot().id, error = %e, "upstream failed mid-stream");
            b.fail(code, kind, &msg);
        } else {
            b.complete();
        }
        let mut terminal = b.drain();
        if b.snapshot().store
            && let Err(e) =
                self.persist(&b, encode(b.snapshot()), input_items, org).await
        {
            tracing::error!(response_id = %b.snapshot().id, error = %e, "could not store streamed response");
            if let Some(last) = terminal.last_mut() {
                *last = store_failed_event(last.seq);
            }
        }
        send_all(&tx, terminal).await;
    }
}

/// A response object as JSON text.
pub(crate) fn encode(r: &Response) -> String {
    let mut out = Vec::with_capacity(2048);
    // Serializing plain data into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, r);
    String::from_utf8(out).unwrap_or_default()
}

/// Feeds one provider event to a builder.
pub(crate) fn apply_event(b: &mut ResponseBuilder, ev: ProviderEvent) {
    match ev {
        ProviderEvent::Text(t) => b.text(&t),
        ProviderEvent::Refusal(r) => b.refusal(&r),
        ProviderEvent::Usage(u) => b.usage(u),
        ProviderEvent::Finish(f) => b.finish_reason(f),
    }
}

/// Sends frames in order; false when the client left.
pub(crate) async fn send_all(
    tx: &mpsc::Sender<Bytes>,
    evs: Vec<Encoded>,
) -> bool {
    for e in evs {
        if tx.send(e.frame).await.is_err() {
            return false;
        }
    }
    true
}

/// The `error` event sent when a finished response could not be stored.
fn store_failed_event(seq: i64) -> Encoded {
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
