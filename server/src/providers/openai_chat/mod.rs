//! OpenAI-compatible Chat Completions upstreams (OpenAI, Ollama, vLLM,
//! llama.cpp, Groq, Together, OpenRouter, …): Responses transcript to
//! `messages`, streamed chunks to provider events, `finish_reason` to
//! status. The upstream key is sent, never logged and scrubbed from any
//! upstream message we pass on.

mod chunks;
mod config;
pub(crate) mod fuzzing;
mod wire;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::client::{Answer, Client, ClientOptions};
use super::discovery::{ModelCache, merge};
use super::http_options::with_query;
use super::keys::{KeyPool, PoolKey};
use super::timeouts::Timeouts;
use super::upstream::{
    self, SseStream, drain_rest, fetch_models, openai_error_report,
    openai_report, status_error,
};
use super::*;
use chunks::{ChatChunk, ChatCompletion, ChunkParser};
pub use config::{ChatConfig, MaxTokensField, Settings};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use wire::ChatRequest;

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
    keys: Arc<KeyPool>,
    /// Headers of a non-streaming call (content type, accept, and the key
    /// when there is only one).
    json_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers of a streaming call.
    sse_headers: Vec<(HeaderName, HeaderValue)>,
    http: Client,
}

/// Largest non-streaming answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 << 20;

impl OpenAiChat {
    /// The provider `name` for a configuration: reads the keys from
    /// their environment variables and the CA file, and checks the URL.
    pub fn from_config(
        name: &str,
        c: &ChatConfig,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, String> {
        let settings = Settings::from_config(name, c, ctx)?;
        let mut p = OpenAiChat::new(settings)
            .map_err(|e| format!("providers.{name}: {e}"))?;
        p.name = name.to_string();
        Ok(Arc::new(p))
    }

    /// Builds the adapter with a pooled keep-alive client.
    pub fn new(cfg: Settings) -> Result<Self, String> {
        let base = cfg.base_url.trim_end_matches('/');
        let url = with_query(&format!("{base}/chat/completions"), &cfg.query);
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid base_url '{}': {e}", cfg.base_url))?;
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/chat/completions"));
        let models_path = with_query(&format!("{base}/models"), &cfg.query)
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.path_and_query().cloned())
            .unwrap_or_else(|| PathAndQuery::from_static("/models"));
        let http = Client::new(
            &uri,
            ClientOptions {
                extra_roots_pem: cfg.ca_pem.clone(),
                connect_timeout: cfg.timeouts.connect,
                proxy: cfg.proxy.clone(),
                ..ClientOptions::default()
            },
        )
        .map_err(|e| format!("base_url '{}': {e}", cfg.base_url))?;
        let keys = cfg.keys.clone();
        let mut base = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        base.extend(cfg.headers.iter().cloned());
        if let Some(name) = keys.header_name()
            && base.iter().any(|(n, _)| n == name)
        {
            return Err(format!(
                "headers.{name}: the key goes there from api_key_env; remove \
                 it from `headers`"
            ));
        }
        if keys.len() == 1
            && let Some(k) = keys.pick()
        {
            // One key: sent with the static headers, no per-call pick.
            base.push(k.header);
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
            keys,
            http,
        })
    }

    /// The headers of one call, and the pool key among them (several
    /// keys rotate per call).
    fn headers(
        &self,
        stream: bool,
    ) -> (std::borrow::Cow<'_, [(HeaderName, HeaderValue)]>, Option<PoolKey>)
    {
        let base = if stream { &self.sse_headers } else { &self.json_headers };
        if self.keys.len() <= 1 {
            return (std::borrow::Cow::Borrowed(base.as_slice()), None);
        }
        let key = self.keys.pick();
        let mut h = Vec::with_capacity(base.len() + 1);
        h.extend_from_slice(base);
        if let Some(k) = &key {
            h.push(k.header.clone());
        }
        (std::borrow::Cow::Owned(h), key)
    }

    async fn send(
        &self,
        body: &ChatRequest<'_>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Answer, ProviderError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        let (headers, key) = self.headers(body.stream);
        let (budget, timed_out) = self.cfg.timeouts.first_byte(deadline);
        let rsp = match tokio::time::timeout(
            budget,
            self.http.post(&self.path, &headers, bytes.into()),
        )
        .await
        {
            Err(_) => return Err(timed_out),
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
        if let Some(k) = &key {
            self.keys.refused(k, rsp.status.as_u16());
        }
        Err(status_error(rsp, openai_report, |s| self.scrub(s)).await)
    }

    /// The upstream's own model ids (`GET {base_url}/models`).
    async fn fetch_models(&self) -> Result<Vec<String>, String> {
        let (headers, _) = self.headers(false);
        fetch_models(&self.http, &self.models_path, &headers, |s| self.scrub(s))
            .await
    }

    /// Removes the upstream keys from a text we may pass on or log.
    fn scrub(&self, s: &str) -> String {
        self.keys.scrub(s)
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

    fn keys(&self) -> Option<&KeyPool> {
        Some(&self.keys)
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
        let deadline = self.cfg.timeouts.deadline();
        let rsp = self.send(&self.body(req, true), deadline).await?;
        let reader = ChunkReader {
            sse: sse::events(rsp.into_stream()),
            timeouts: self.cfg.timeouts,
            deadline,
            keys: self.keys.clone(),
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
        let deadline = self.cfg.timeouts.deadline();
        let rsp = self.send(&self.body(req, false), deadline).await?;
        let (budget, timed_out) = self.cfg.timeouts.first_byte(deadline);
        let bytes = tokio::time::timeout(budget, rsp.bytes(MAX_ANSWER_BYTES))
            .await
            .map_err(|_| timed_out)?
            .map_err(|e| {
                ProviderError::Unavailable(self.scrub(&e.to_string()))
            })?;
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

/// Turns upstream SSE chunks into provider events, one chunk at a time.
struct ChunkReader {
    sse: SseStream,
    timeouts: Timeouts,
    /// When the whole call must be over (`total_timeout_secs`).
    deadline: Option<tokio::time::Instant>,
    /// The upstream keys, scrubbed from what a failure reports.
    keys: Arc<KeyPool>,
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
    fn fail(&mut self, e: ProviderError) {
        let e = match e {
            ProviderError::Stream(r) => {
                ProviderError::Stream(r.scrubbed(|s| self.keys.scrub(s)))
            }
            ProviderError::Unavailable(m) => {
                ProviderError::Unavailable(self.keys.scrub(&m))
            }
            other => other,
        };
        self.pending.push_back(Err(e));
        self.done = true;
    }

    /// Reads one upstream event into `pending` (or ends the stream).
    async fn fill(&mut self) {
        let (wait, timed_out) = self.timeouts.next_event(self.deadline);
        let ev = match tokio::time::timeout(wait, self.sse.next()).await {
            Err(_) => return self.fail(timed_out),
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
            drain_rest(&mut self.sse);
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
            let report = openai_error_report(&err).unwrap_or_else(|| {
                UpstreamReport::new(
                    None,
                    upstream::truncate(&err.to_string(), 300),
                )
            });
            return self.fail(ProviderError::Stream(report));
        }
        self.parser.chunk(chunk, &mut self.scratch);
        self.pending.extend(self.scratch.drain(..).map(Ok));
    }
}
