//! OpenAI-compatible Chat Completions upstreams (OpenAI, Ollama, vLLM,
//! llama.cpp, Groq, Together, OpenRouter, …): Responses transcript to
//! `messages`, streamed chunks to provider events, `finish_reason` to
//! status. The upstream key is sent, never logged and scrubbed from any
//! upstream message we pass on.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{Answer, Client, ClientError, ClientOptions};
use super::*;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;

/// Settings of one Chat Completions upstream.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Base URL including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Upstream API key, if any.
    pub api_key: Option<String>,
    /// Name of the token-limit field (`max_tokens` or
    /// `max_completion_tokens`).
    pub max_tokens_field: String,
    /// Time allowed until the upstream answers (headers, or the whole body
    /// when not streaming).
    pub request_timeout: Duration,
    /// Longest silence allowed between streamed chunks.
    pub idle_timeout: Duration,
    /// Extra trusted CA certificates (PEM), for upstreams behind a
    /// private CA.
    pub ca_pem: Option<Vec<u8>>,
}

/// A Chat Completions upstream.
pub struct OpenAiChat {
    cfg: ChatConfig,
    /// `…/chat/completions`, parsed once.
    path: PathAndQuery,
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
    /// Builds the adapter with a pooled keep-alive client.
    pub fn new(cfg: ChatConfig) -> Result<Self, String> {
        let url =
            format!("{}/chat/completions", cfg.base_url.trim_end_matches('/'));
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid base_url '{}': {e}", cfg.base_url))?;
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/chat/completions"));
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
            json_headers: with_accept("application/json"),
            sse_headers: with_accept("text/event-stream"),
            cfg,
            path,
            http,
        })
    }
    fn body<'a>(
        &self,
        req: &'a ProviderRequest,
        stream: bool,
    ) -> ChatRequest<'a> {
        let mut messages = Vec::with_capacity(req.messages.len() + 1);
        if let Some(i) = &req.instructions {
            messages.push(ChatMessage {
                role: "system",
                content: ChatContent::Text(Cow::Borrowed(i)),
            });
        }
        messages.extend(req.messages.iter().map(chat_message));
        let completion_field =
            self.cfg.max_tokens_field == "max_completion_tokens";
        ChatRequest {
            model: &req.model,
            messages,
            stream,
            stream_options: stream
                .then_some(StreamOptions { include_usage: true }),
            max_tokens: req.max_output_tokens.filter(|_| !completion_field),
            max_completion_tokens: req
                .max_output_tokens
                .filter(|_| completion_field),
            temperature: req.temperature,
            top_p: req.top_p,
            reasoning_effort: req.reasoning_effort.as_deref(),
            user: req.user.as_deref(),
            response_format: response_format(req.text_format.as_ref()),
        }
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

/// The Chat Completions request body, borrowed from the provider request
/// so the hot path serializes without building an intermediate tree.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: ChatContent<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Value>),
}

fn response_format(format: Option<&TextFormat>) -> Option<Value> {
    match format? {
        TextFormat::JsonObject => Some(json!({"type": "json_object"})),
        TextFormat::JsonSchema { name, schema, description, strict } => {
            let mut js = json!({"name": name, "schema": schema});
            if let Some(d) = description {
                js["description"] = json!(d);
            }
            if let Some(s) = strict {
                js["strict"] = json!(s);
            }
            Some(json!({"type": "json_schema", "json_schema": js}))
        }
        TextFormat::Text => None,
    }
}

/// Text of text-only parts; borrowed when there is a single part.
fn text_of(parts: &[ContentPart]) -> Cow<'_, str> {
    match parts {
        [ContentPart::InputText { text }]
        | [ContentPart::OutputText { text, .. }]
        | [ContentPart::Refusal { refusal: text }] => Cow::Borrowed(text),
        _ => Cow::Owned(plain_text(parts)),
    }
}

fn chat_message(m: &Message) -> ChatMessage<'_> {
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::System | Role::Developer => "system",
    };
    let has_media = m.parts.iter().any(|p| {
        matches!(
            p,
            ContentPart::InputImage { .. } | ContentPart::InputFile { .. }
        )
    });
    if !has_media {
        return ChatMessage {
            role,
            content: ChatContent::Text(text_of(&m.parts)),
        };
    }
    let parts: Vec<Value> = m
        .parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::InputText { text }
            | ContentPart::OutputText { text, .. } => {
                Some(json!({"type": "text", "text": text}))
            }
            ContentPart::Refusal { refusal } => {
                Some(json!({"type": "text", "text": refusal}))
            }
            ContentPart::InputImage {
                image_url: Some(url), detail, ..
            } => {
                let mut img = json!({"url": url});
                if let Some(d) = detail {
                    img["detail"] = json!(d);
                }
                Some(json!({"type": "image_url", "image_url": img}))
            }
            ContentPart::InputFile { file_data, filename, file_id, .. } => {
                let mut f = serde_json::Map::new();
                if let Some(d) = file_data {
                    f.insert("file_data".into(), json!(d));
                }
                if let Some(n) = filename {
                    f.insert("filename".into(), json!(n));
                }
                if let Some(i) = file_id {
                    f.insert("file_id".into(), json!(i));
                }
                Some(json!({"type": "file", "file": f}))
            }
            ContentPart::InputImage { .. } => None,
        })
        .collect();
    ChatMessage { role, content: ChatContent::Parts(parts) }
}

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<i64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<i64>,
}

impl From<ChatUsage> for Usage {
    fn from(u: ChatUsage) -> Usage {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct ChatCompletion {
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatMessageOut,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessageOut {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Serialize, Default)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

fn finish_reason(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

#[async_trait]
impl Provider for OpenAiChat {
    async fn stream(
        &self,
        req: &ProviderRequest,
    ) -> Result<EventStream, ProviderError> {
        let rsp = self.send(&self.body(req, true)).await?;
        let reader = ChunkReader {
            sse: Box::pin(rsp.into_stream().eventsource()),
            idle: self.cfg.idle_timeout,
            finished: false,
            done: false,
            pending: VecDeque::new(),
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
        let choice = body.choices.into_iter().next().ok_or_else(|| {
            ProviderError::Protocol("the answer has no choices".into())
        })?;
        Ok(Completion {
            text: choice.message.content.unwrap_or_default(),
            refusal: choice.message.refusal,
            usage: body.usage.map(Usage::from),
            finish: choice.finish_reason.as_deref().map(finish_reason),
        })
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
    /// A `finish_reason` was seen: ending without `[DONE]` is fine.
    finished: bool,
    /// Nothing more will be read.
    done: bool,
    pending: VecDeque<Result<ProviderEvent, ProviderError>>,
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
            Ok(None) if self.finished => {
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
        let chunk: ChatChunk = match serde_json::from_str(&ev.data) {
            Ok(c) => c,
            Err(e) => {
                return self.fail(ProviderError::Protocol(format!(
                    "unreadable stream chunk: {e}"
                )));
            }
        };
        if let Some(err) = chunk.error {
            let msg = err["message"].as_str().unwrap_or("upstream error");
            return self.fail(ProviderError::Unavailable(msg.to_string()));
        }
        for choice in chunk.choices {
            let delta = choice.delta.unwrap_or_default();
            if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
                self.pending.push_back(Ok(ProviderEvent::Text(t)));
            }
            if let Some(r) = delta.refusal.filter(|r| !r.is_empty()) {
                self.pending.push_back(Ok(ProviderEvent::Refusal(r)));
            }
            if let Some(f) = choice.finish_reason {
                self.finished = true;
                self.pending
                    .push_back(Ok(ProviderEvent::Finish(finish_reason(&f))));
            }
        }
        if let Some(u) = chunk.usage {
            self.pending.push_back(Ok(ProviderEvent::Usage(u.into())));
        }
    }
}
