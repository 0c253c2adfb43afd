//! A real fake Anthropic Messages upstream.
//!
//! `POST /v1/messages` answers `"You said: <last user text>"` as a
//! non-streaming message or, with `stream: true`, as Anthropic's exact
//! event sequence (`event:` lines, `message_start`, `ping`, content block
//! start/delta/stop, `message_delta`, `message_stop`), one text delta per
//! word; usage counts whitespace-separated words. When the last user turn
//! starts with `tool_result` blocks it answers `Tool said: <their text>`;
//! with `output_config.format` it answers [`JSON_REPLY`]. `max_tokens`
//! cuts the reply at that many words (`stop_reason: max_tokens`).
//! Markers in the last user text script it:
//!
//! | marker      | effect                                                          |
//! |-------------|-----------------------------------------------------------------|
//! | `THINK`     | a thinking block [`THINKING`] signed [`signature`], then the text |
//! | `REDACT`    | a `redacted_thinking` block [`REDACTED`] first                  |
//! | `CALL`      | with `tools`: a `tool_use` of the first tool (input `{"q": <text>}`, streamed in 3 `input_json_delta` pieces), `stop_reason: tool_use`; `tool_choice` `any`/`tool` calls too (`tool`: that tool), `none` never |
//! | `CACHE`     | usage has `cache_read_input_tokens` [`CACHE_READ`] and `cache_creation_input_tokens` [`CACHE_WRITE`] (streamed: repeated in `message_delta`) |
//! | `REFUSE`    | reply [`REFUSAL`], `stop_reason: refusal`                       |
//! | `FAULT:429` | HTTP 429 `rate_limit_error`, `retry-after: 7`                   |
//! | `FAULT:529` | HTTP 529 `overloaded_error`                                     |
//! | `FAULT:500` | HTTP 500 `api_error`                                            |
//! | `FAULT:401` | HTTP 401 `authentication_error` quoting the `x-api-key` it got  |
//! | `MIDERROR`  | stream: `message_start`, one text delta, then an `error` event (`overloaded_error`, its message naming [`crate::upstream::UPSTREAM_DETAIL`]); else HTTP 529 |
//!
//! It validates what Anthropic validates and a translation could get
//! wrong, answering 400 `invalid_request_error` as Anthropic does: the key
//! (`x-api-key`, 401 when it differs from the configured one), the
//! `anthropic-version` header, `max_tokens`, alternating roles, non-empty
//! text, image sources, `tool_result` blocks first in the user turn right
//! after the `tool_use` turn and answering every call, thinking budgets,
//! thinking signatures (they must match the text), a thinking block
//! leading every replayed `tool_use` turn when thinking is enabled, and
//! `tool_choice` only with `tools`.
//!
//! `GET /v1/models` answers Anthropic's list shape with [`MODELS`];
//! `POST /v1/messages/count_tokens` takes only the input's fields (400
//! otherwise, as Anthropic) and counts the words of its texts.

mod reply;
mod validate;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The reasoning of `THINK`.
pub const THINKING: &str = "Let me think about that.";
/// The data of `REDACT`.
pub const REDACTED: &str = "EoRedactedOpaqueBlob==";
/// The refusal of `REFUSE`.
pub const REFUSAL: &str = "I can't help with that.";
/// The reply when structured output is asked for.
pub const JSON_REPLY: &str = r#"{"name":"Ada","age":36}"#;
/// Cache reads reported by `CACHE`.
pub const CACHE_READ: i64 = 100;
/// Cache writes reported by `CACHE`.
pub const CACHE_WRITE: i64 = 20;
/// What `GET /v1/models` lists.
pub const MODELS: [&str; 2] = ["claude-fake-large", "claude-fake-small"];

/// The signature the fake gives a thinking text (and checks on replay).
pub fn signature(thinking: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in thinking.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fakesig{h:016x}")
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method and path, e.g. `POST /v1/messages`.
    pub route: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The parsed JSON body (`Null` when not JSON or empty).
    pub body: Value,
}

impl Recorded {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

#[derive(Default)]
struct State {
    key: Option<String>,
    requests: Mutex<Vec<Recorded>>,
    next_id: AtomicU64,
}

/// A fake Anthropic upstream serving on 127.0.0.1 until dropped.
pub struct FakeAnthropic {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAnthropic {
    /// Serves on 127.0.0.1:0; with `key`, requests must carry it in
    /// `x-api-key`.
    pub async fn start(key: Option<&str>) -> FakeAnthropic {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("fake anthropic binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let state =
            Arc::new(State { key: key.map(str::to_owned), ..State::default() });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        FakeAnthropic { addr, state, task }
    }

    /// `http://127.0.0.1:PORT` (no version path, as configured).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received, in order.
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `POST /v1/messages` requests, in order.
    pub fn messages_requests(&self) -> Vec<Recorded> {
        self.all_requests()
            .into_iter()
            .filter(|r| r.route == "POST /v1/messages")
            .collect()
    }

    /// The last `POST /v1/messages` request.
    pub fn last(&self) -> Recorded {
        self.messages_requests().pop().expect("a messages request")
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => if let Ok((tcp, _)) = accepted {
                let state = state.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

pub(crate) fn answer(
    status: u16,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(body.into()));
    *rsp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp.headers_mut()
        .insert("request-id", HeaderValue::from_static("req_fake"));
    rsp
}

/// Anthropic's error shape.
pub(crate) fn error(
    status: u16,
    kind: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let body =
        json!({"type": "error", "error": {"type": kind, "message": message}});
    answer(status, "application/json", body.to_string())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let route = format!("{} {}", req.method(), req.uri().path());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let raw = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    state.requests.lock().unwrap_or_else(|e| e.into_inner()).push(Recorded {
        route,
        headers: headers.clone(),
        body: body.clone(),
    });
    let got_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if let Some(key) = &state.key
        && got_key != Some(key.as_str())
    {
        return Ok(error(401, "authentication_error", "invalid x-api-key"));
    }
    if headers.get("anthropic-version").is_none() {
        return Ok(error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    match (method, path.as_str()) {
        (Method::GET, "/v1/models") => {
            let data: Vec<Value> = MODELS
                .iter()
                .map(|id| {
                    json!({"type": "model", "id": id, "display_name": id,
                                 "created_at": "2025-01-01T00:00:00Z"})
                })
                .collect();
            let body = json!({"data": data, "has_more": false,
                "first_id": MODELS[0], "last_id": MODELS[MODELS.len() - 1]});
            Ok(answer(200, "application/json", body.to_string()))
        }
        (Method::POST, "/v1/messages") => {
            if body.is_null() {
                return Ok(error(
                    400,
                    "invalid_request_error",
                    "the body is not JSON",
                ));
            }
            if let Err(m) = validate::validate(&body) {
                return Ok(error(400, "invalid_request_error", &m));
            }
            let id = state.next_id.fetch_add(1, Ordering::Relaxed);
            Ok(reply::messages(&body, id, got_key.unwrap_or("")))
        }
        (Method::POST, "/v1/messages/count_tokens") => {
            Ok(match count_tokens(&body) {
                Ok(n) => answer(
                    200,
                    "application/json",
                    json!({"input_tokens": n}).to_string(),
                ),
                Err(m) => error(400, "invalid_request_error", &m),
            })
        }
        _ => Ok(error(404, "not_found_error", "Not found")),
    }
}

/// `POST /v1/messages/count_tokens`: like Anthropic, only the input's
/// fields are accepted; the count is the words of every text in `system`
/// and `messages` (what tests can predict).
fn count_tokens(body: &Value) -> Result<usize, String> {
    const ALLOWED: [&str; 6] =
        ["model", "messages", "system", "tools", "tool_choice", "thinking"];
    let Some(fields) = body.as_object() else {
        return Err("the body is not a JSON object".into());
    };
    if let Some(extra) = fields.keys().find(|k| !ALLOWED.contains(&k.as_str()))
    {
        return Err(format!("{extra}: Extra inputs are not permitted"));
    }
    let Some(messages) = body["messages"].as_array() else {
        return Err("messages: Field required".into());
    };
    let words = |v: &Value| -> usize {
        blocks(v)
            .iter()
            .filter_map(|b| b["text"].as_str())
            .map(|t| t.split_whitespace().count())
            .sum()
    };
    Ok(words(&body["system"])
        + messages.iter().map(|m| words(&m["content"])).sum::<usize>())
}

pub(crate) fn blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    }
}

pub(crate) fn kind(b: &Value) -> &str {
    b["type"].as_str().unwrap_or("")
}

/// The environment variable that holds [`TEST_KEY`] for the gateway.
pub const KEY_ENV: &str = "MANIAC_TEST_ANTHROPIC_KEY";
/// The upstream key tests configure; it must never reach a client.
pub const TEST_KEY: &str = "sk-ant-test-k3y-5ecr3t-7f3c9e1b2d";

/// Checks that cargo put [`TEST_KEY`] into [`KEY_ENV`] (the `[env]` table
/// of `.cargo/config.toml`): tests never set their own environment.
pub fn install_test_key() {
    assert_eq!(
        std::env::var(KEY_ENV).as_deref(),
        Ok(TEST_KEY),
        "{KEY_ENV} comes from .cargo/config.toml [env]; run the tests with cargo"
    );
}

/// A provider configuration for `fake` with the test key.
pub fn config(
    fake: &FakeAnthropic,
) -> maniac_server::providers::anthropic::AnthropicConfig {
    install_test_key();
    maniac_server::providers::anthropic::AnthropicConfig {
        base_url: Some(fake.base_url()),
        api_key_env: Some(KEY_ENV.into()),
        api_key_envs: Vec::new(),
        anthropic_version: None,
        default_max_tokens: None,
        beta: Vec::new(),
        request_timeout_secs: Some(30),
        idle_timeout_secs: Some(30),
        connect_timeout_secs: None,
        first_byte_timeout_secs: None,
        total_timeout_secs: None,
        ca_file: None,
        proxy: None,
        models: vec!["claude-listed".into()],
        discover_models: false,
        strict_models: false,
    }
}
