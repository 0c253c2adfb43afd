//! A real fake OpenAI Responses upstream (`kind = "openai-responses"`).
//!
//! `POST /v1/responses` answers `"You said: <last user text>"` as OpenAI
//! does: a `Response` JSON object, or (`stream: true`) SSE with `event:`
//! lines, `sequence_number`s from 0 and OpenAI's event order. Usage counts
//! whitespace-separated words (`cached_tokens` is half the input). After a
//! `function_call_output` (the last input item) it answers `Tool said:
//! <output>`. Markers in the last user text:
//!
//! | marker       | effect                                                        |
//! |--------------|---------------------------------------------------------------|
//! | `THINK`      | a reasoning item first: summary [`SUMMARY`] and, when `include` asks for `reasoning.encrypted_content`, `encrypted_content` `enc-<n>` |
//! | `CALL`       | with `tools`: a `function_call` of the first tool, arguments `{"q":"<text>"}` streamed in 3 deltas |
//! | `REFUSE`     | the message is the refusal [`REFUSAL`] (streamed as `response.refusal.delta`) |
//! | `LONG`       | the reply is `w0 w1 … w39`                                     |
//! | `MIDERROR`   | stream: `response.failed` (code `server_error`, message [`MID_ERROR`]) after one text delta; else a `failed` Response |
//! | `FAULT:429`  | HTTP 429, `Retry-After: 7`, code `rate_limit_exceeded`         |
//! | `FAULT:500`  | HTTP 500 `server_error`                                        |
//! | `ECHOKEY`    | HTTP 400 whose message repeats the key it got, whole (worse than OpenAI, which masks it: proves the gateway scrubs it) |
//!
//! `max_output_tokens` cuts the reply at that many words: status
//! `incomplete`, reason `max_output_tokens`.
//!
//! It rejects (400, OpenAI's error shape) what a stateless client must
//! never send: `previous_response_id`, `store` other than `false`, input
//! items with an `id` (not persisted with `store: false`), and reasoning
//! items whose `encrypted_content` it did not issue. With
//! [`FakeResponsesUpstream::require_key`] it answers 401 unless the key
//! comes in the configured header. `GET /v1/models` lists
//! [`RESPONSES_MODELS`]. Every request is recorded (body, headers, query).

mod answer;

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use answer::{plan, render};

/// The summary of `THINK`'s reasoning.
pub const SUMMARY: &str = "Thinking it over.";
/// What `GET /v1/models` lists.
pub const RESPONSES_MODELS: [&str; 2] = ["native-large", "native-small"];
/// The refusal of `REFUSE`.
pub const REFUSAL: &str = "I can't help with that.";
/// The message of `MIDERROR`'s failure.
/// It names the operator's upstream organization and a key-looking string
/// ([`crate::upstream::UPSTREAM_DETAIL`]), which clients must never see.
pub const MID_ERROR: &str = "The model failed to generate a response \
    (organization org-acme-internal-7f3e, key sk-proj-leak-9c1d2e).";

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method and path, e.g. `POST /v1/responses`.
    pub target: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when there was none or it was not JSON).
    pub body: Value,
}

impl Recorded {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Where the key must come.
#[derive(Clone, Debug)]
enum KeyRule {
    Bearer(String),
    ApiKey(String),
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    issued: Mutex<HashSet<String>>,
    next: AtomicU64,
    key: Mutex<Option<KeyRule>>,
}

/// The fake upstream, serving on 127.0.0.1 until dropped.
pub struct FakeResponsesUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeResponsesUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeResponsesUpstream {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start() -> FakeResponsesUpstream {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        FakeResponsesUpstream { addr, state, task }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// From now on only `key` is accepted: in `Authorization: Bearer`
    /// (`api_key_header` false) or in `api-key` (Azure; then an
    /// `Authorization` header is refused too).
    pub fn require_key(&self, key: &str, api_key_header: bool) {
        let rule = if api_key_header {
            KeyRule::ApiKey(key.into())
        } else {
            KeyRule::Bearer(key.into())
        };
        *self.state.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(rule);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `POST /v1/responses` requests received so far.
    pub fn responses_requests(&self) -> Vec<Recorded> {
        let mut r = self.requests();
        r.retain(|r| r.target == "POST /v1/responses");
        r
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.state.requests.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let state = state.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Body> {
    let mut rsp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}

fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": kind,
        "param": param, "code": code}});
    full(status, "application/json", body.to_string())
}

fn invalid(message: &str, param: &str) -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        Some(param),
        None,
    )
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let target = format!("{} {}", req.method(), req.uri().path());
    let query = req.uri().query().map(str::to_string);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    let is_post = req.method() == Method::POST;
    let raw = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let rec = Recorded { target: target.clone(), query, headers, body };
    state.requests.lock().unwrap_or_else(|e| e.into_inner()).push(rec.clone());

    if let Some(rsp) = check_key(&state, &rec) {
        return Ok(rsp);
    }
    match target.as_str() {
        "GET /v1/models" => {
            let data: Vec<Value> = RESPONSES_MODELS
                .iter()
                .map(|id| json!({"id": id, "object": "model", "owned_by": "fake"}))
                .collect();
            let list = json!({"object": "list", "data": data});
            Ok(full(StatusCode::OK, "application/json", list.to_string()))
        }
        "POST /v1/responses" if is_post => {
            if rec.body.to_string().contains("ECHOKEY") {
                let got = rec
                    .header("api-key")
                    .or(rec.header("authorization"))
                    .unwrap_or("");
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    &format!("This key cannot use this model: {got}."),
                    "invalid_request_error",
                    Some("model"),
                    None,
                ));
            }
            Ok(respond(&state, &rec.body))
        }
        _ => Ok(error(
            StatusCode::NOT_FOUND,
            &format!("Unknown request URL: {target}"),
            "invalid_request_error",
            None,
            Some("unknown_url"),
        )),
    }
}

fn check_key(state: &State, rec: &Recorded) -> Option<Response<Body>> {
    let rule = state.key.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
    let ok = match &rule {
        KeyRule::Bearer(k) => {
            rec.header("authorization") == Some(&format!("Bearer {k}"))
        }
        KeyRule::ApiKey(k) => {
            rec.header("api-key") == Some(k.as_str())
                && rec.header("authorization").is_none()
        }
    };
    (!ok).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )
    })
}

/// What a stateless client must never send, as OpenAI words it.
fn reject(state: &State, body: &Value) -> Option<Response<Body>> {
    if body.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Some(invalid(
            "previous_response_id is not served here: inline the transcript",
            "previous_response_id",
        ));
    }
    if body.get("store") != Some(&json!(false)) {
        return Some(invalid("`store` must be false here", "store"));
    }
    let Some(input) = body["input"].as_array() else {
        return Some(invalid("`input` must be a list of items", "input"));
    };
    let issued = state.issued.lock().unwrap_or_else(|e| e.into_inner());
    for (i, item) in input.iter().enumerate() {
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            return Some(invalid(
                &format!(
                    "Item with id '{id}' not found. Items are not persisted \
                     when `store` is set to false."
                ),
                &format!("input[{i}]"),
            ));
        }
        let kind = item["type"].as_str().unwrap_or("message");
        if !matches!(
            kind,
            "message" | "function_call" | "function_call_output" | "reasoning"
        ) {
            return Some(invalid(
                &format!("Invalid value: '{kind}'."),
                &format!("input[{i}].type"),
            ));
        }
        if kind == "reasoning" {
            if !item["summary"].is_array() {
                return Some(invalid(
                    "Missing required parameter: 'summary'.",
                    &format!("input[{i}].summary"),
                ));
            }
            if let Some(e) =
                item.get("encrypted_content").and_then(Value::as_str)
                && !issued.contains(e)
            {
                return Some(invalid(
                    "The encrypted content could not be verified.",
                    &format!("input[{i}].encrypted_content"),
                ));
            }
        }
    }
    None
}

fn respond(state: &State, body: &Value) -> Response<Body> {
    if let Some(rsp) = reject(state, body) {
        return rsp;
    }
    let p = match plan(state, body) {
        Ok(p) => p,
        Err(rsp) => return *rsp,
    };
    render(&p)
}
