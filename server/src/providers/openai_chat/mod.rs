//! OpenAI-compatible Chat Completions upstreams (OpenAI, Ollama, vLLM,
//! llama.cpp, Groq, Together, OpenRouter, …): Responses transcript to
//! `messages`, streamed chunks to provider events, `finish_reason` to
//! status. The upstream key is sent, never logged and scrubbed from any
//! upstream message we pass on.

mod chunks;
mod wire;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::client::{Answer, Client, ClientError, ClientOptions};
use super::discovery::{MAX_LIST_BYTES, ModelCache, merge, parse_model_list};
use super::*;
use chunks::{ChatChunk, ChatCompletion, ChunkParser};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use wire::ChatRequest;

/// `kind = "openai-chat"`: any OpenAI-compatible Chat Completions API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Name of the environment variable that holds the upstream key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `max_tokens` (default) or `max_completion_tokens`.
    #[serde(default)]
    pub max_tokens_field: Option<MaxTokensField>,
    /// Seconds until the upstream must answer (default 300).
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    /// Longest silence between streamed chunks (default 120).
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// PEM file of extra CA certificates to trust for this upstream
    /// (self-hosted models behind a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Models listed by `GET /v1/models` (others can still be called
    /// unless `strict_models`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Also list what the upstream's own `GET {base_url}/models` names
    /// (cached for five minutes; an unreachable upstream is left out of
    /// the listing and logged).
    #[serde(default)]
    pub discover_models: bool,
    /// Only listed (configured or discovered) models may be called;
    /// others are a 404 `model_not_found` before any upstream call.
    #[serde(default)]
    pub strict_models: bool,
}

/// The name of the token-limit field the upstream takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens` (most compatible servers).
    #[default]
    MaxTokens,
    /// `max_completion_tokens` (OpenAI's current name).
    MaxCompletionTokens,
}

impl ChatConfig {
    /// OpenAI's public endpoint with the key in `OPENAI_API_KEY`.
    pub fn openai_default() -> Self {
        ChatConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: Some("OPENAI_API_KEY".into()),
            max_tokens_field: Some(MaxTokensField::MaxCompletionTokens),
            request_timeout_secs: None,
            idle_timeout_secs: None,
            ca_file: None,
            models: Vec::new(),
            discover_models: false,
            strict_models: false,
        }
    }
}

/// Resolved settings of one Chat Completions upstream.
#[derive(Clone)]
pub struct Settings {
    /// Base URL including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Upstream API key, if any.
    pub api_key: Option<String>,
    /// Which token-limit field to send.
    pub max_tokens_field: MaxTokensField,
    /// Time allowed until the upstream answers (headers, or the whole body
    /// when not streaming).
    pub request_timeout: Duration,
    /// Longest silence allowed between streamed chunks.
    pub idle_timeout: Duration,
    /// Extra trusted CA certificates (PEM), for upstreams behind a
    /// private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Models to list.
    pub models: Vec<String>,
    /// Whether to list the upstream's own models too.
    pub discover_models: bool,
    /// Whether only listed models may be called.
    pub strict_models: bool,
}

/// Never shows the key.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("max_tokens_field", &self.max_tokens_field)
            .field("discover_models", &self.discover_models)
            .field("strict_models", &self.strict_models)
            .finish_non_exhaustive()
    }
}

/// A Chat Completions upstream.
pub struct OpenAiChat {
    /// The configured name, for logs.
    name: String,
    cfg: Settings,
    /// `…/chat/completions`, parsed once.
    path: PathAndQuery,
    /// `…/models`, for discovery.
    models_path: PathAndQuery,
    discovered: ModelCache,
    /// Headers of a non-streaming call (content type, accept, key).
    json_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers of a streaming call.
    sse_headers: Vec<(HeaderName, HeaderValue)>,
    http: Client,
}

/// Largest non-streaming answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Largest error body read from an upstream (only its message is kept).
const MAX_ERROR_BYTES: usize = 64 << 10;

impl OpenAiChat {
    /// The provider `name` for a configuration: reads the key from its
    /// environment variable and the CA file, and checks the URL.
    pub fn from_config(
        name: &str,
        c: &ChatConfig,
    ) -> Result<Arc<dyn Provider>, String> {
        let api_key = match &c.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!(
                    "providers.{name}: environment variable {var} is not set"
                )
            })?),
            None => None,
        };
        let ca_pem = match &c.ca_file {
            Some(f) => Some(std::fs::read(f).map_err(|e| {
                format!(
                    "providers.{name}: reading ca_file {}: {e}",
                    f.display()
                )
            })?),
            None => None,
        };
        let settings = Settings {
            base_url: c.base_url.clone(),
            api_key,
            max_tokens_field: c.max_tokens_field.unwrap_or_default(),
            request_timeout: Duration::from_secs(
                c.request_timeout_secs.unwrap_or(300),
            ),
            idle_timeout: Duration::from_secs(
                c.idle_timeout_secs.unwrap_or(120),
            ),
            ca_pem,
            models: c.models.clone(),
            discover_models: c.discover_models,
            strict_models: c.strict_models,
        };
        if settings.strict_models
            && settings.models.is_empty()
            && !settings.discover_models
        {
            return Err(format!(
                "providers.{name}: strict_models = true needs `models` or \
                 discover_models = true (else no model could be called)"
            ));
        }
        let mut p = OpenAiChat::new(settings)
            .map_err(|e| format!("providers.{name}: {e}"))?;
        p.name = name.to_string();
        Ok(Arc::new(p))
    }

    /// Builds the adapter with a pooled keep-alive client.
    pub fn new(cfg: Settings) -> Result<Self, String> {
        let base = cfg.base_url.trim_end_matches('/');
        let url = format!("{base}/chat/completions");
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid base_url '{}': {e}", cfg.base_url))?;
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/chat/completions"));
        let models_path = format!("{base}/models")
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.path_and_query().cloned())
            .unwrap_or_else(|| PathAndQuery::from_static("/models"));
        let http = Client::new(
            &uri,
            ClientOptions {
                extra_roots_pem: cfg.ca_pem.clone(),
                ..ClientOptions::default()
            },
        )
        .map_err(|e| format!("invalid base_url '{}': {e}", cfg.base_url))?;
        let mut base = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        if let Some(key) = &cfg.api_key {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| "upstream key is not a valid header value")?;
            v.set_sensitive(true);
            base.push((header::AUTHORIZATION, v));
        }
        let with_accept = |accept: &'static str| {
            let mut h = base.clone();
            h.push((header::ACCEPT, HeaderValue::from_static(accept)));
            h
        };
        Ok(OpenAiChat {
            name: String::new(),
            json_headers: with_accept("application/json"),
            sse_headers: with_accept("text/event-stream"),
            cfg,
            path,
            models_path,
            discovered: ModelCache::default(),
            http,
        })
    }
    async fn send(
        &self,
        body: &ChatRequest<'_>,
    ) -> Result<Answer, ProviderError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        let headers =
            if body.stream { &self.sse_headers } else { &self.json_headers };
        let secs = self.cfg.request_timeout.as_secs();
        let rsp = match tokio::time::timeout(
            self.cfg.request_timeout,
            self.http.post(&self.path, headers, bytes.into()),
        )
        .await
        {
            Err(_) => return Err(ProviderError::Timeout(secs)),
            Ok(Err(e)) => {
                return Err(ProviderError::Unavailable(
                    self.scrub(&e.to_string()),
                ));
            }
            Ok(Ok(r)) => r,
        };
        if rsp.status.is_success() {
            return Ok(rsp);
        }
        let status = rsp.status.as_u16();
        let retry_after = rsp
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = tokio::time::timeout(
            Duration::from_secs(5),
            rsp.bytes(MAX_ERROR_BYTES),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| truncate(&text, 300));
        Err(ProviderError::Status {
            status,
            message: self.scrub(&message),
            retry_after,
        })
    }

    /// The upstream's own model ids (`GET {base_url}/models`).
    async fn fetch_models(&self) -> Result<Vec<String>, String> {
        let rsp = self
            .http
            .get(&self.models_path, &self.json_headers)
            .await
            .map_err(|e| self.scrub(&e.to_string()))?;
        if !rsp.status.is_success() {
            return Err(format!("the upstream answered {}", rsp.status));
        }
        let body = rsp
            .bytes(MAX_LIST_BYTES)
            .await
            .map_err(|e| self.scrub(&e.to_string()))?;
        parse_model_list(&body)
    }

    /// Removes the upstream key from a text we may pass on or log.
    fn scrub(&self, s: &str) -> String {
        match &self.cfg.api_key {
            Some(k) if k.len() >= 4 && s.contains(k.as_str()) => {
                s.replace(k.as_str(), "[redacted]")
            }
            _ => s.to_string(),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[async_trait]
impl Provider for OpenAiChat {
    async fn models(&self) -> Vec<String> {
        if !self.cfg.discover_models {
            return self.cfg.models.clone();
        }
        match self.discovered.get(&self.name, self.fetch_models()).await {
            Some(found) => merge(&self.cfg.models, &found),
            None => self.cfg.models.clone(),
        }
    }

    fn strict_models(&self) -> bool {
        self.cfg.strict_models
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            images: true,
            tools: true,
            json_schema: true,
            reasoning: true,
            multiple_choices: true,
            extra_fields: true,
        }
    }

    async fn stream(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<EventStream, ProviderError> {
        let rsp = self.send(&self.body(req, true)).await?;
        let reader = ChunkReader {
            sse: Box::pin(rsp.into_stream().eventsource()),
            idle: self.cfg.idle_timeout,
            parser: ChunkParser::default(),
            done: false,
            pending: VecDeque::new(),
            scratch: Vec::new(),
        };
        // Read directly by the consumer: no extra task or channel per
        // stream, and dropping the stream drops the upstream call.
        Ok(Box::pin(futures::stream::unfold(reader, |mut r| async move {
            loop {
                if let Some(ev) = r.pending.pop_front() {
                    return Some((ev, r));
                }
                if r.done {
                    return None;
                }
                r.fill().await;
            }
        })))
    }

    async fn complete(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<Completion, ProviderError> {
        let rsp = self.send(&self.body(req, false)).await?;
        let bytes = tokio::time::timeout(
            self.cfg.request_timeout,
            rsp.bytes(MAX_ANSWER_BYTES),
        )
        .await
        .map_err(|_| {
            ProviderError::Timeout(self.cfg.request_timeout.as_secs())
        })?
        .map_err(|e| ProviderError::Unavailable(self.scrub(&e.to_string())))?;
        let body: ChatCompletion =
            serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Protocol(format!("unreadable answer: {e}"))
            })?;
        ChunkParser::completion(body).ok_or_else(|| {
            ProviderError::Protocol("the answer has no choices".into())
        })
    }
}

impl OpenAiChat {
    fn body<'a>(
        &self,
        req: &'a ProviderRequest,
        stream: bool,
    ) -> ChatRequest<'a> {
        let completion_field =
            self.cfg.max_tokens_field == MaxTokensField::MaxCompletionTokens;
        ChatRequest::new(req, stream, completion_field)
    }
}

type SseStream = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<ClientError>,
                >,
            > + Send,
    >,
>;

/// Turns upstream SSE chunks into provider events, one chunk at a time.
struct ChunkReader {
    sse: SseStream,
    idle: Duration,
    /// Item state of the answer (its `finished`: ending without `[DONE]`
    /// is fine).
    parser: ChunkParser,
    /// Nothing more will be read.
    done: bool,
    pending: VecDeque<Result<ProviderEvent, ProviderError>>,
    /// Reused buffer of one chunk's events.
    scratch: Vec<ProviderEvent>,
}

impl ChunkReader {
    /// Reads the body's end after `[DONE]` so its connection goes back to
    /// the pool: at once when it is already here, else in a short-lived
    /// task, so the answer is never held up by it.
    fn drain_rest(&mut self) {
        let mut rest = std::mem::replace(
            &mut self.sse,
            Box::pin(futures::stream::empty()),
        );
        loop {
            match rest.next().now_or_never() {
                Some(Some(_)) => continue,
                Some(None) => return,
                None => break,
            }
        }
        tokio::spawn(async move {
            let drain = async { while rest.next().await.is_some() {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        });
    }

    fn fail(&mut self, e: ProviderError) {
        self.pending.push_back(Err(e));
        self.done = true;
    }

    /// Reads one upstream event into `pending` (or ends the stream).
    async fn fill(&mut self) {
        let ev = match tokio::time::timeout(self.idle, self.sse.next()).await {
            Err(_) => {
                return self.fail(ProviderError::Timeout(self.idle.as_secs()));
            }
            Ok(None) if self.parser.finished => {
                self.done = true;
                return;
            }
            Ok(None) => {
                return self.fail(ProviderError::Unavailable(
                    "the upstream stream ended before the answer was finished"
                        .into(),
                ));
            }
            Ok(Some(Err(e))) => {
                return self.fail(ProviderError::Unavailable(format!(
                    "the upstream stream broke: {e}"
                )));
            }
            Ok(Some(Ok(ev))) => ev,
        };
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            self.drain_rest();
            return;
        }
        let mut chunk: ChatChunk = match serde_json::from_str(&ev.data) {
            Ok(c) => c,
            Err(e) => {
                return self.fail(ProviderError::Protocol(format!(
                    "unreadable stream chunk: {e}"
                )));
            }
        };
        if let Some(err) = chunk.error.take() {
            let msg = err["message"].as_str().unwrap_or("upstream error");
            return self.fail(ProviderError::Stream(msg.to_string()));
        }
        self.parser.chunk(chunk, &mut self.scratch);
        self.pending.extend(self.scratch.drain(..).map(Ok));
    }
}
