//! Anthropic Messages API upstreams (`POST /v1/messages`): the neutral
//! transcript to Messages content blocks, streamed Messages events to
//! provider events, Anthropic's error bodies to provider errors. The key
//! travels in `x-api-key`, is never logged and is scrubbed from any
//! upstream message we pass on.

mod errors;
pub(crate) mod fuzzing;
mod stream;
mod thinking;
mod usage;
mod wire;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use serde::Deserialize;

use super::client::{Answer, Client, ClientOptions, ProxyChoice};
use super::discovery::{ModelCache, merge};
use super::keys::{KeyHeader, KeyPool};
use super::timeouts::{TimeoutFields, Timeouts};
use super::upstream::{SseStream, drain_rest, fetch_models};
use super::*;
use stream::{EventParser, MessageBody, StreamEvent};
use wire::{CountTokensRequest, MessagesRequest, TokenCount};

/// `kind = "anthropic"`: Anthropic's Messages API (or a compatible one).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicConfig {
    /// Origin without the version path (default
    /// `https://api.anthropic.com`); the gateway appends `/v1/messages`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable that holds the upstream key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Several keys, rotated per request (a refused key cools down).
    #[serde(default)]
    pub api_key_envs: Vec<String>,
    /// The `anthropic-version` header (default `2023-06-01`).
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `max_tokens` when the request sets no limit (default 4096;
    /// Anthropic requires one).
    #[serde(default)]
    pub default_max_tokens: Option<i64>,
    /// Beta features, sent comma-joined as `anthropic-beta`.
    #[serde(default)]
    pub beta: Vec<String>,
    /// Seconds until the upstream must answer (default 600).
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    /// Longest silence between streamed events (default 120; Anthropic
    /// pings in between).
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds to open a connection (default 10).
    #[serde(default)]
    pub connect_timeout_secs: Option<u64>,
    /// Seconds until the answer starts (default 600; old name
    /// `request_timeout_secs`).
    #[serde(default)]
    pub first_byte_timeout_secs: Option<u64>,
    /// Seconds the whole call may take (default: no limit).
    #[serde(default)]
    pub total_timeout_secs: Option<u64>,
    /// PEM file of extra CA certificates to trust for this upstream.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Outbound HTTP proxy; unset: `HTTPS_PROXY`/`NO_PROXY`.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Models listed by `GET /v1/models` (others can still be called
    /// unless `strict_models`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Also list what the upstream's own `GET /v1/models` names (cached
    /// for five minutes).
    #[serde(default)]
    pub discover_models: bool,
    /// Only listed (configured or discovered) models may be called.
    #[serde(default)]
    pub strict_models: bool,
}

impl AnthropicConfig {
    /// Anthropic's public API with the key in `ANTHROPIC_API_KEY`.
    pub fn anthropic_default() -> Self {
        AnthropicConfig {
            base_url: None,
            api_key_env: Some("ANTHROPIC_API_KEY".into()),
            api_key_envs: Vec::new(),
            anthropic_version: None,
            default_max_tokens: None,
            beta: Vec::new(),
            request_timeout_secs: None,
            idle_timeout_secs: None,
            connect_timeout_secs: None,
            first_byte_timeout_secs: None,
            total_timeout_secs: None,
            ca_file: None,
            proxy: None,
            models: Vec::new(),
            discover_models: false,
            strict_models: false,
        }
    }
}

/// Anthropic's public origin.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version sent unless configured.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// `max_tokens` unless configured.
pub const DEFAULT_MAX_TOKENS: i64 = 4096;

/// Largest non-streaming answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Resolved settings of one Anthropic upstream.
#[derive(Clone)]
struct Settings {
    default_max_tokens: i64,
    timeouts: Timeouts,
    models: Vec<String>,
    discover_models: bool,
    strict_models: bool,
}

/// An Anthropic Messages upstream.
pub struct Anthropic {
    /// The configured name, for logs.
    name: String,
    cfg: Settings,
    /// `/v1/messages` under the base URL, parsed once.
    path: PathAndQuery,
    /// `/v1/models`, for discovery.
    models_path: PathAndQuery,
    /// `/v1/messages/count_tokens` under the base URL.
    count_path: PathAndQuery,
    discovered: ModelCache,
    keys: Arc<KeyPool>,
    json_headers: Vec<(HeaderName, HeaderValue)>,
    sse_headers: Vec<(HeaderName, HeaderValue)>,
    http: Client,
}

impl Anthropic {
    /// The provider `name` for a configuration: reads the key from its
    /// environment variable and the CA file, and checks the URL.
    pub fn from_config(
        name: &str,
        c: &AnthropicConfig,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, String> {
        let err = |e: String| format!("providers.{name}: {e}");
        let keys = KeyPool::from_config(
            name,
            c.api_key_env.as_ref(),
            &c.api_key_envs,
            KeyHeader::XApiKey,
            ctx.key_cooldown,
        )?;
        let timeouts = Timeouts::resolve(
            name,
            TimeoutFields {
                connect: c.connect_timeout_secs,
                first_byte: c.first_byte_timeout_secs,
                request: c.request_timeout_secs,
                idle: c.idle_timeout_secs,
                total: c.total_timeout_secs,
            },
            600,
        )?;
        let ca_pem = match &c.ca_file {
            Some(f) => Some(std::fs::read(f).map_err(|e| {
                err(format!("reading ca_file {}: {e}", f.display()))
            })?),
            None => None,
        };
        let default_max_tokens =
            c.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if default_max_tokens < 1 {
            return Err(err("default_max_tokens must be at least 1".into()));
        }
        if c.strict_models && c.models.is_empty() && !c.discover_models {
            return Err(err("strict_models = true needs `models` or \
                 discover_models = true (else no model could be called)"
                .into()));
        }
        let base = c
            .base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/');
        if base.ends_with("/v1") {
            return Err(err(format!(
                "base_url '{base}' must not include the version path: remove \
                 the trailing /v1 (the gateway appends /v1/messages)"
            )));
        }
        let parse =
            |suffix: &str| -> Result<(http::Uri, PathAndQuery), String> {
                let uri: http::Uri = format!("{base}{suffix}")
                    .parse()
                    .map_err(|e| format!("invalid base_url '{base}': {e}"))?;
                let path = uri
                    .path_and_query()
                    .cloned()
                    .ok_or_else(|| format!("invalid base_url '{base}'"))?;
                Ok((uri, path))
            };
        let (uri, path) = parse("/v1/messages").map_err(err)?;
        let (_, models_path) = parse("/v1/models?limit=1000").map_err(err)?;
        let (_, count_path) =
            parse("/v1/messages/count_tokens").map_err(err)?;
        let http = Client::new(
            &uri,
            ClientOptions {
                extra_roots_pem: ca_pem,
                connect_timeout: timeouts.connect,
                proxy: c
                    .proxy
                    .clone()
                    .map_or(ProxyChoice::Environment, ProxyChoice::Url),
                ..ClientOptions::default()
            },
        )
        .map_err(|e| err(format!("base_url '{base}': {e}")))?;
        let version = c.anthropic_version.as_deref().unwrap_or(DEFAULT_VERSION);
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_str(version).map_err(|_| {
                    err("anthropic_version is not a valid header value".into())
                })?,
            ),
        ];
        if !c.beta.is_empty() {
            headers.push((
                HeaderName::from_static("anthropic-beta"),
                HeaderValue::from_str(&c.beta.join(",")).map_err(|_| {
                    err("beta is not a valid header value".into())
                })?,
            ));
        }
        let with_accept = |accept: &'static str| {
            let mut h = headers.clone();
            h.push((header::ACCEPT, HeaderValue::from_static(accept)));
            h
        };
        Ok(Arc::new(Anthropic {
            name: name.to_string(),
            json_headers: with_accept("application/json"),
            sse_headers: with_accept("text/event-stream"),
            keys: Arc::new(keys),
            cfg: Settings {
                default_max_tokens,
                timeouts,
                models: c.models.clone(),
                discover_models: c.discover_models,
                strict_models: c.strict_models,
            },
            path,
            models_path,
            count_path,
            discovered: ModelCache::default(),
            http,
        }))
    }

    async fn send(
        &self,
        body: &MessagesRequest<'_>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Answer, ProviderError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        self.post(&self.path, bytes, body.stream, deadline).await
    }

    async fn post(
        &self,
        path: &PathAndQuery,
        bytes: Vec<u8>,
        stream: bool,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Answer, ProviderError> {
        let base = if stream { &self.sse_headers } else { &self.json_headers };
        let (headers, key) = self.keys.headers(base);
        let (budget, timed_out) = self.cfg.timeouts.first_byte(deadline);
        let rsp = match tokio::time::timeout(
            budget,
            self.http.post(path, &headers, bytes.into()),
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
        Err(errors::status_error(rsp, |s| self.scrub(s)).await)
    }

    /// A whole (non-streamed) answer's body, within the first-byte budget.
    async fn whole(
        &self,
        rsp: Answer,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<bytes::Bytes, ProviderError> {
        let (budget, timed_out) = self.cfg.timeouts.first_byte(deadline);
        tokio::time::timeout(budget, rsp.bytes(MAX_ANSWER_BYTES))
            .await
            .map_err(|_| timed_out)?
            .map_err(|e| ProviderError::Unavailable(self.scrub(&e.to_string())))
    }

    /// `POST /v1/messages/count_tokens`: Anthropic's own count of the
    /// request's input.
    async fn count(&self, req: &ProviderRequest) -> Result<i64, ProviderError> {
        let body = CountTokensRequest::from(self.body(req, false)?);
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        let deadline = self.cfg.timeouts.deadline();
        let rsp = self.post(&self.count_path, bytes, false, deadline).await?;
        let bytes = self.whole(rsp, deadline).await?;
        let counted: TokenCount =
            serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Protocol(format!("unreadable token count: {e}"))
            })?;
        Ok(counted.input_tokens)
    }

    /// The upstream's own model ids (`GET /v1/models`).
    async fn fetch_models(&self) -> Result<Vec<String>, String> {
        let (headers, _) = self.keys.headers(&self.json_headers);
        fetch_models(&self.http, &self.models_path, &headers, |s| self.scrub(s))
            .await
    }

    /// Removes the upstream key from a text we may pass on or log.
    fn scrub(&self, s: &str) -> String {
        self.keys.scrub(s)
    }

    fn body<'a>(
        &self,
        req: &'a ProviderRequest,
        stream: bool,
    ) -> Result<MessagesRequest<'a>, ProviderError> {
        MessagesRequest::new(req, stream, self.cfg.default_max_tokens)
    }
}

#[async_trait]
impl Provider for Anthropic {
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
            multiple_choices: false,
            extra_fields: false,
        }
    }

    async fn stream(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<EventStream, ProviderError> {
        let deadline = self.cfg.timeouts.deadline();
        let rsp = self.send(&self.body(req, true)?, deadline).await?;
        let reader = EventReader {
            sse: sse::events(rsp.into_stream()),
            timeouts: self.cfg.timeouts,
            deadline,
            parser: EventParser::default(),
            done: false,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            keys: self.keys.clone(),
        };
        // Read directly by the consumer: no task or channel per stream,
        // and dropping the stream drops the upstream call.
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

    async fn count_tokens(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Option<Result<i64, ProviderError>> {
        Some(self.count(req).await)
    }

    async fn complete(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<Completion, ProviderError> {
        let deadline = self.cfg.timeouts.deadline();
        let rsp = self.send(&self.body(req, false)?, deadline).await?;
        let bytes = self.whole(rsp, deadline).await?;
        let body: MessageBody =
            serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Protocol(format!("unreadable answer: {e}"))
            })?;
        Ok(EventParser::completion(body))
    }
}

/// Turns upstream Messages events into provider events, one at a time.
struct EventReader {
    sse: SseStream,
    timeouts: Timeouts,
    /// When the whole call must be over.
    deadline: Option<tokio::time::Instant>,
    parser: EventParser,
    /// Nothing more will be read.
    done: bool,
    pending: VecDeque<Result<ProviderEvent, ProviderError>>,
    /// Reused buffer of one event's provider events.
    scratch: Vec<ProviderEvent>,
    /// Scrubbed from upstream messages.
    keys: Arc<KeyPool>,
}

impl EventReader {
    fn fail(&mut self, e: ProviderError) {
        self.pending.push_back(Err(e));
        self.done = true;
    }

    /// Reads one upstream event into `pending` (or ends the stream).
    async fn fill(&mut self) {
        let (wait, timed_out) = self.timeouts.next_event(self.deadline);
        let ev = match tokio::time::timeout(wait, self.sse.next()).await {
            Err(_) => return self.fail(timed_out),
            Ok(None) => {
                return self.fail(ProviderError::Unavailable(
                    "the upstream stream ended before `message_stop`".into(),
                ));
            }
            Ok(Some(Err(e))) => {
                return self.fail(ProviderError::Unavailable(format!(
                    "the upstream stream broke: {e}"
                )));
            }
            Ok(Some(Ok(ev))) => ev,
        };
        let event: StreamEvent = match serde_json::from_str(&ev.data) {
            Ok(e) => e,
            Err(e) => {
                return self.fail(ProviderError::Protocol(format!(
                    "unreadable stream event `{}`: {e}",
                    ev.event
                )));
            }
        };
        let applied = self.parser.event(event, &mut self.scratch);
        self.pending.extend(self.scratch.drain(..).map(Ok));
        if let Err(e) = applied {
            let e = match e {
                ProviderError::Stream(r) => {
                    ProviderError::Stream(r.scrubbed(|s| self.keys.scrub(s)))
                }
                other => other,
            };
            return self.fail(e);
        }
        if self.parser.finished {
            self.done = true;
            drain_rest(&mut self.sse);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<ProviderConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn config_parses_every_field_and_refuses_unknown_ones() {
        let c = parse(
            r#"
            kind = "anthropic"
            base_url = "http://127.0.0.1:9"
            anthropic_version = "2023-06-01"
            default_max_tokens = 1000
            beta = ["a", "b"]
            request_timeout_secs = 5
            idle_timeout_secs = 6
            models = ["claude-x"]
            discover_models = true
            strict_models = true
            "#,
        )
        .unwrap();
        let ProviderConfig::Anthropic(a) = &c else {
            panic!("{c:?}");
        };
        assert_eq!(a.beta, ["a", "b"]);
        assert_eq!(a.default_max_tokens, Some(1000));
        assert!(c.build("claude", &BuildContext::default()).is_ok());
        let err = parse("kind = \"anthropic\"\nmax_tokens = 5\n").unwrap_err();
        assert!(err.contains("max_tokens"), "{err}");
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_do() {
        let cases = [
            (
                r#"kind = "anthropic"
                   base_url = "https://api.anthropic.com/v1""#,
                "remove the trailing /v1",
            ),
            (
                r#"kind = "anthropic"
                strict_models = true"#,
                "strict_models",
            ),
            (
                r#"kind = "anthropic"
                default_max_tokens = 0"#,
                "default_max_tokens",
            ),
            (
                r#"kind = "anthropic"
                   api_key_env = "MANIAC_UNIT_TEST_UNSET_VARIABLE""#,
                "MANIAC_UNIT_TEST_UNSET_VARIABLE is not set",
            ),
            (
                r#"kind = "anthropic"
                base_url = "ftp://x""#,
                "http",
            ),
        ];
        for (text, want) in cases {
            let err = match parse(text)
                .unwrap()
                .build("claude", &BuildContext::default())
            {
                Ok(_) => panic!("{text}: accepted"),
                Err(e) => e,
            };
            assert!(err.starts_with("providers.claude: "), "{err}");
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
