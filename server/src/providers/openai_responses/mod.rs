//! Native Responses upstreams (OpenAI, Azure OpenAI, xAI, vLLM, SGLang,
//! Ollama): the neutral request as a stateless `POST …/responses` (the
//! gateway keeps the state), the upstream's stream events to provider
//! events. The upstream key is sent, never logged and scrubbed from any
//! upstream message we pass on.

mod events;
pub(crate) mod fuzzing;
mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use serde::Deserialize;

use super::client::{Answer, Client, ClientOptions, ProxyChoice};
use super::discovery::{ModelCache, merge};
use super::http_options::{self, Auth};
use super::keys::KeyPool;
use super::timeouts::{TimeoutFields, Timeouts};
use super::upstream::{
    SseStream, drain_rest, fetch_models, openai_report, status_error,
};
use super::*;
use events::{EventParser, ResponseObject, StreamEvent};
use wire::ResponsesRequest;

/// Prefix of the `encrypted_content` we received from a Responses
/// upstream, as we store it: replayed (without the prefix) only to
/// Responses upstreams; any other reasoning reaches them as text.
pub const REASONING_TAG: &str = "openai:";

/// `kind = "openai-responses"`: an upstream serving `/responses` itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`
    /// (the gateway appends `/responses`).
    pub base_url: String,
    /// Name of the environment variable that holds the upstream key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Several keys, rotated per request (a refused key cools down).
    #[serde(default)]
    pub api_key_envs: Vec<String>,
    /// Which header carries the key: `bearer` (default) or `api-key`
    /// (Azure OpenAI).
    #[serde(default)]
    pub auth: Auth,
    /// Static query parameters appended to every URL (Azure's
    /// `api-version`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra static headers sent with every call.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Seconds until the upstream must answer (default 300).
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    /// Longest silence between streamed events (default 120).
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds to open a connection (default 10).
    #[serde(default)]
    pub connect_timeout_secs: Option<u64>,
    /// Seconds until the answer starts (default 300; old name
    /// `request_timeout_secs`).
    #[serde(default)]
    pub first_byte_timeout_secs: Option<u64>,
    /// Seconds the whole call may take (default: no limit).
    #[serde(default)]
    pub total_timeout_secs: Option<u64>,
    /// PEM file of extra CA certificates to trust for this upstream.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Outbound HTTP proxy; unset: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Models listed by `GET /v1/models` (others can still be called
    /// unless `strict_models`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Also list what the upstream's own `GET {base_url}/models` names
    /// (cached for five minutes).
    #[serde(default)]
    pub discover_models: bool,
    /// Only listed (configured or discovered) models may be called.
    #[serde(default)]
    pub strict_models: bool,
}

impl ResponsesConfig {
    /// A configuration for `base_url` with every other setting at its
    /// default.
    pub fn new(base_url: impl Into<String>) -> Self {
        ResponsesConfig {
            base_url: base_url.into(),
            api_key_env: None,
            api_key_envs: Vec::new(),
            auth: Auth::default(),
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
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

/// Largest non-streaming answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// A Responses upstream.
pub struct OpenAiResponses {
    /// The configured name, for logs.
    name: String,
    /// Upstream keys (none for a keyless upstream).
    keys: Arc<KeyPool>,
    timeouts: Timeouts,
    models: Vec<String>,
    discover_models: bool,
    strict_models: bool,
    /// `…/responses?<query>`, parsed once.
    path: PathAndQuery,
    /// `…/models?<query>`, for discovery.
    models_path: PathAndQuery,
    discovered: ModelCache,
    /// Headers of a non-streaming call (content type, accept, key, extras).
    json_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers of a streaming call.
    sse_headers: Vec<(HeaderName, HeaderValue)>,
    http: Client,
}

/// Never shows the key.
impl std::fmt::Debug for OpenAiResponses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiResponses")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn path_of(url: &str) -> Result<(http::Uri, PathAndQuery), String> {
    let uri: http::Uri =
        url.parse().map_err(|e| format!("invalid base_url: {e}"))?;
    let path = uri
        .path_and_query()
        .cloned()
        .ok_or_else(|| "invalid base_url: no path".to_string())?;
    Ok((uri, path))
}

impl OpenAiResponses {
    /// The provider `name` for a configuration: reads the key from its
    /// environment variable and the CA file, checks the URL, the query
    /// and the headers. Errors name the field.
    pub fn from_config(
        name: &str,
        c: &ResponsesConfig,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, String> {
        let p = Self::build(name, c, ctx)
            .map_err(|e| format!("providers.{name}: {e}"))?;
        Ok(Arc::new(p))
    }

    fn build(
        name: &str,
        c: &ResponsesConfig,
        ctx: &BuildContext,
    ) -> Result<Self, String> {
        let keys = KeyPool::from_config(
            name,
            c.api_key_env.as_ref(),
            &c.api_key_envs,
            c.auth.into(),
            ctx.key_cooldown,
        )
        .map_err(|e| {
            e.trim_start_matches(&format!("providers.{name}: ")).to_string()
        })?;
        let timeouts = Timeouts::resolve(
            name,
            TimeoutFields {
                connect: c.connect_timeout_secs,
                first_byte: c.first_byte_timeout_secs,
                request: c.request_timeout_secs,
                idle: c.idle_timeout_secs,
                total: c.total_timeout_secs,
            },
            300,
        )
        .map_err(|e| {
            e.trim_start_matches(&format!("providers.{name}.")).to_string()
        })?;
        let ca_pem = match &c.ca_file {
            Some(f) => Some(std::fs::read(f).map_err(|e| {
                format!("reading ca_file {}: {e}", f.display())
            })?),
            None => None,
        };
        if c.strict_models && c.models.is_empty() && !c.discover_models {
            return Err("strict_models = true needs `models` or \
                 discover_models = true (else no model could be called)"
                .into());
        }
        let base = c.base_url.trim_end_matches('/');
        let (uri, path) = path_of(&http_options::with_query(
            &format!("{base}/responses"),
            &c.query,
        ))
        .map_err(|e| format!("{e} ('{}')", c.base_url))?;
        let (_, models_path) = path_of(&http_options::with_query(
            &format!("{base}/models"),
            &c.query,
        ))
        .map_err(|e| format!("{e} ('{}')", c.base_url))?;
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
        .map_err(|e| format!("base_url '{}': {e}", c.base_url))?;
        let mut common = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        common.extend(http_options::extra_headers(&c.headers)?);
        if let Some(name) = keys.header_name()
            && common.iter().any(|(n, _)| n == name)
        {
            return Err(format!(
                "headers.{name}: the key goes in `{name}` from api_key_env; \
                 remove it from `headers`"
            ));
        }
        let with_accept = |accept: &'static str| {
            let mut h = common.clone();
            h.push((header::ACCEPT, HeaderValue::from_static(accept)));
            h
        };
        Ok(OpenAiResponses {
            name: name.to_string(),
            json_headers: with_accept("application/json"),
            sse_headers: with_accept("text/event-stream"),
            keys: Arc::new(keys),
            timeouts,
            models: c.models.clone(),
            discover_models: c.discover_models,
            strict_models: c.strict_models,
            path,
            models_path,
            discovered: ModelCache::default(),
            http,
        })
    }

    async fn send(
        &self,
        body: &ResponsesRequest<'_>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Answer, ProviderError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        let base =
            if body.stream { &self.sse_headers } else { &self.json_headers };
        let (headers, key) = self.keys.headers(base);
        let (budget, timed_out) = self.timeouts.first_byte(deadline);
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
        let (headers, _) = self.keys.headers(&self.json_headers);
        fetch_models(&self.http, &self.models_path, &headers, |s| self.scrub(s))
            .await
    }

    /// Removes the upstream key from a text we may pass on or log.
    fn scrub(&self, s: &str) -> String {
        self.keys.scrub(s)
    }
}

#[async_trait]
impl Provider for OpenAiResponses {
    async fn models(&self) -> Vec<String> {
        if !self.discover_models {
            return self.models.clone();
        }
        match self.discovered.get(&self.name, self.fetch_models()).await {
            Some(found) => merge(&self.models, &found),
            None => self.models.clone(),
        }
    }

    fn strict_models(&self) -> bool {
        self.strict_models
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
        let deadline = self.timeouts.deadline();
        let rsp =
            self.send(&ResponsesRequest::new(req, true), deadline).await?;
        let reader = EventReader {
            sse: sse::events(rsp.into_stream()),
            timeouts: self.timeouts,
            deadline,
            keys: self.keys.clone(),
            parser: EventParser::default(),
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
        let deadline = self.timeouts.deadline();
        let rsp =
            self.send(&ResponsesRequest::new(req, false), deadline).await?;
        let (budget, timed_out) = self.timeouts.first_byte(deadline);
        let bytes = tokio::time::timeout(budget, rsp.bytes(MAX_ANSWER_BYTES))
            .await
            .map_err(|_| timed_out)?
            .map_err(|e| {
                ProviderError::Unavailable(self.scrub(&e.to_string()))
            })?;
        let body: ResponseObject =
            serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Protocol(format!("unreadable answer: {e}"))
            })?;
        EventParser::completion(body).map_err(|e| match e {
            ProviderError::Stream(r) => {
                ProviderError::Stream(r.scrubbed(|s| self.scrub(s)))
            }
            other => other,
        })
    }
}

/// Turns upstream SSE events into provider events, one at a time.
struct EventReader {
    sse: SseStream,
    timeouts: Timeouts,
    /// When the whole call must be over.
    deadline: Option<tokio::time::Instant>,
    /// The upstream keys, scrubbed from messages we pass on.
    keys: Arc<KeyPool>,
    parser: EventParser,
    /// Nothing more will be read.
    done: bool,
    pending: VecDeque<Result<ProviderEvent, ProviderError>>,
    /// Reused buffer of one event's provider events.
    scratch: Vec<ProviderEvent>,
}

impl EventReader {
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
        let data = ev.data.trim();
        if data.is_empty() || data == "[DONE]" {
            if data == "[DONE]" && self.parser.finished {
                self.done = true;
                drain_rest(&mut self.sse);
            }
            return;
        }
        let parsed: StreamEvent = match serde_json::from_str(data) {
            Ok(e) => e,
            Err(e) => {
                return self.fail(ProviderError::Protocol(format!(
                    "unreadable stream event: {e}"
                )));
            }
        };
        let result = self.parser.event(parsed, &mut self.scratch);
        self.pending.extend(self.scratch.drain(..).map(Ok));
        if let Err(e) = result {
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

    fn build(toml_text: &str) -> Result<(), String> {
        match parse(toml_text)? {
            ProviderConfig::OpenAiResponses(c) => {
                OpenAiResponses::from_config("p", &c, &BuildContext::default())
                    .map(|_| ())
            }
            _ => Err("another kind".into()),
        }
    }

    #[test]
    fn configuration_mistakes_are_refused_naming_the_field() {
        let base = "kind = \"openai-responses\"\nbase_url = \"http://127.0.0.1:1/v1\"\n";
        let table = [
            ("", None),
            ("auth = \"api-key\"\nquery = { api-version = \"v\" }\n", None),
            ("headers = { x-extra = \"ok\" }\n", None),
            ("headers = { \"bad name\" = \"v\" }\n", Some("headers.bad name")),
            ("headers = { x-v = \"a\\nb\" }\n", Some("headers.x-v")),
            ("auth = \"basic\"\n", Some("basic")),
            ("max_tokens_field = \"max_tokens\"\n", Some("max_tokens_field")),
            ("strict_models = true\n", Some("strict_models")),
            (
                "api_key_env = \"MANIAC_SURELY_UNSET_VAR\"\n",
                Some("MANIAC_SURELY_UNSET_VAR"),
            ),
            ("ca_file = \"/nonexistent/ca.pem\"\n", Some("ca_file")),
        ];
        let mut failures = Vec::new();
        for (extra, want) in table {
            let got = build(&format!("{base}{extra}"));
            let ok = match (&got, want) {
                (Ok(()), None) => true,
                (Err(e), Some(w)) => e.contains(w),
                _ => false,
            };
            if !ok {
                failures.push(format!("{extra:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn urls_carry_the_static_query_and_the_debug_hides_the_key() {
        let mut c =
            ResponsesConfig::new("https://x.openai.azure.com/openai/v1/");
        c.query.insert("api-version".into(), "preview".into());
        let p =
            OpenAiResponses::build("az", &c, &BuildContext::default()).unwrap();
        assert_eq!(p.path.as_str(), "/openai/v1/responses?api-version=preview");
        assert_eq!(
            p.models_path.as_str(),
            "/openai/v1/models?api-version=preview"
        );
        let keys = KeyPool::new(
            vec!["sk-secret".into()],
            crate::providers::keys::KeyHeader::Bearer,
            crate::providers::keys::DEFAULT_COOLDOWN,
        )
        .unwrap();
        let p = OpenAiResponses { keys: Arc::new(keys), ..p };
        assert!(!format!("{p:?}").contains("sk-secret"));
        assert_eq!(p.scrub("bad key sk-secret"), "bad key [redacted]");
    }
}
