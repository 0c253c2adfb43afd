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
//! | `LONG`       | the reply is `w0 w1 … w39`                                     |
//! | `MIDERROR`   | stream: `response.failed` after one text delta; else a `failed` Response |
//! | `FAULT:429`  | HTTP 429, `Retry-After: 7`, code `rate_limit_exceeded`         |
//! | `FAULT:500`  | HTTP 500 `server_error`                                        |
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

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The summary of `THINK`'s reasoning.
pub const SUMMARY: &str = "Thinking it over.";
/// What `GET /v1/models` lists.
pub const RESPONSES_MODELS: [&str; 2] = ["native-large", "native-small"];
/// The message of `MIDERROR`'s failure.
pub const MID_ERROR: &str = "The model failed to generate a response.";

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
        "POST /v1/responses" if is_post => Ok(respond(&state, &rec.body)),
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

fn words(s: &str) -> i64 {
    s.split_whitespace().count() as i64
}

/// Text of a message item's parts (input or output text).
fn item_text(item: &Value) -> String {
    match &item["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or(p["refusal"].as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// One output item of the answer.
enum Out {
    Reasoning { id: String, enc: Option<String> },
    Message { id: String, pieces: Vec<String>, cut: bool },
    Call { id: String, call_id: String, name: String, args: String },
}

/// What to answer.
struct Plan {
    id: String,
    model: String,
    stream: bool,
    items: Vec<Out>,
    mid_error: bool,
    incomplete: bool,
    input_tokens: i64,
    output_tokens: i64,
    reasoning_tokens: i64,
}

/// The answer to `body`, or the fault it asks for.
fn plan(state: &State, body: &Value) -> Result<Plan, Box<Response<Body>>> {
    let n = state.next.fetch_add(1, Ordering::SeqCst);
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let last_user = input
        .iter()
        .rev()
        .find(|i| i["role"] == "user")
        .map(item_text)
        .unwrap_or_default();
    if last_user.contains("FAULT:429") {
        let mut rsp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached, retry later",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        );
        rsp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        return Err(Box::new(rsp));
    }
    if last_user.contains("FAULT:500") {
        return Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request.",
            "server_error",
            None,
            None,
        )));
    }
    let input_tokens = words(body["instructions"].as_str().unwrap_or(""))
        + input.iter().map(|i| words(&item_text(i))).sum::<i64>();
    let tool_output = input
        .last()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].as_str().unwrap_or("").to_string());
    let mut items = Vec::new();
    let mut reasoning_tokens = 0;
    if last_user.contains("THINK") && tool_output.is_none() {
        let wants = body["include"].as_array().is_some_and(|a| {
            a.iter().any(|v| v == "reasoning.encrypted_content")
        });
        let enc = wants.then(|| format!("enc-{n}"));
        if let Some(e) = &enc {
            state
                .issued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(e.clone());
        }
        reasoning_tokens = words(SUMMARY);
        items.push(Out::Reasoning { id: format!("rs_fake_{n}"), enc });
    }
    let tool = body["tools"].as_array().and_then(|t| t.first()).cloned();
    let mut output_tokens = reasoning_tokens;
    let mut incomplete = false;
    match tool {
        Some(t) if last_user.contains("CALL") && tool_output.is_none() => {
            let args = json!({"q": last_user}).to_string();
            output_tokens += words(&args);
            items.push(Out::Call {
                id: format!("fc_fake_{n}"),
                call_id: format!("call_fake_{n}"),
                name: t["name"].as_str().unwrap_or("").to_string(),
                args,
            });
        }
        _ => {
            let text = match &tool_output {
                Some(o) => format!("Tool said: {o}"),
                None if last_user.contains("LONG") => (0..40)
                    .map(|i| format!("w{i}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                None => format!("You said: {last_user}"),
            };
            let mut pieces: Vec<String> =
                text.split_inclusive(' ').map(str::to_string).collect();
            if let Some(max) = body["max_output_tokens"].as_u64()
                && pieces.len() as u64 > max
            {
                pieces.truncate(max as usize);
                incomplete = true;
            }
            output_tokens += pieces.len() as i64;
            items.push(Out::Message {
                id: format!("msg_fake_{n}"),
                pieces,
                cut: incomplete,
            });
        }
    }
    Ok(Plan {
        id: format!("resp_fake_{n}"),
        model: body["model"].as_str().unwrap_or("").to_string(),
        stream: body["stream"] == true,
        items,
        mid_error: last_user.contains("MIDERROR"),
        incomplete,
        input_tokens,
        output_tokens,
        reasoning_tokens,
    })
}

fn respond(state: &State, body: &Value) -> Response<Body> {
    if let Some(rsp) = reject(state, body) {
        return rsp;
    }
    let p = match plan(state, body) {
        Ok(p) => p,
        Err(rsp) => return *rsp,
    };
    if p.stream {
        let mut sse = String::new();
        for (seq, ev) in stream_events(&p).into_iter().enumerate() {
            let mut ev = ev;
            ev["sequence_number"] = json!(seq);
            let kind = ev["type"].as_str().unwrap_or("").to_string();
            sse.push_str(&format!("event: {kind}\ndata: {ev}\n\n"));
        }
        let mut rsp =
            full(StatusCode::OK, "text/event-stream; charset=utf-8", sse);
        rsp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        return rsp;
    }
    let r = if p.mid_error {
        response_object(&p, "failed", Vec::new())
    } else {
        let output: Vec<Value> =
            p.items.iter().map(|i| item_json(i, true)).collect();
        response_object(&p, status(&p), output)
    };
    full(StatusCode::OK, "application/json", r.to_string())
}

fn status(p: &Plan) -> &'static str {
    if p.incomplete { "incomplete" } else { "completed" }
}

/// An output item, finished (`done`) or as first announced.
fn item_json(item: &Out, done: bool) -> Value {
    match item {
        Out::Reasoning { id, enc } => {
            let mut v = json!({"id": id, "type": "reasoning", "summary": []});
            if done {
                v["summary"] =
                    json!([{"type": "summary_text", "text": SUMMARY}]);
                if let Some(e) = enc {
                    v["encrypted_content"] = json!(e);
                }
            }
            v
        }
        Out::Message { id, pieces, cut } => {
            let (status, content) = if done {
                let text: String = pieces.concat();
                (
                    if *cut { "incomplete" } else { "completed" },
                    json!([{"type": "output_text", "text": text,
                        "annotations": [], "logprobs": []}]),
                )
            } else {
                ("in_progress", json!([]))
            };
            json!({"id": id, "type": "message", "status": status,
                "content": content, "role": "assistant"})
        }
        Out::Call { id, call_id, name, args } => json!({"id": id,
            "type": "function_call",
            "status": if done { "completed" } else { "in_progress" },
            "arguments": if done { args.as_str() } else { "" },
            "call_id": call_id, "name": name}),
    }
}

fn response_object(p: &Plan, status: &str, output: Vec<Value>) -> Value {
    let usage = (status != "in_progress").then(|| {
        json!({"input_tokens": p.input_tokens,
            "input_tokens_details": {"cached_tokens": p.input_tokens / 2},
            "output_tokens": p.output_tokens,
            "output_tokens_details": {"reasoning_tokens": p.reasoning_tokens},
            "total_tokens": p.input_tokens + p.output_tokens})
    });
    let incomplete = (status == "incomplete")
        .then(|| json!({"reason": "max_output_tokens"}));
    let error = (status == "failed")
        .then(|| json!({"code": "server_error", "message": MID_ERROR}));
    json!({"id": p.id, "object": "response", "created_at": 1_700_000_000,
        "status": status, "model": p.model, "output": output,
        "usage": usage, "incomplete_details": incomplete, "error": error,
        "store": false, "previous_response_id": null,
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": []})
}

/// The stream's events without sequence numbers, in OpenAI's order.
fn stream_events(p: &Plan) -> Vec<Value> {
    let start = response_object(p, "in_progress", Vec::new());
    let mut evs = vec![
        json!({"type": "response.created", "response": start}),
        json!({"type": "response.in_progress", "response": start}),
    ];
    let mut done = Vec::new();
    for (index, item) in p.items.iter().enumerate() {
        evs.push(json!({"type": "response.output_item.added",
            "output_index": index, "item": item_json(item, false)}));
        match item {
            Out::Reasoning { id, .. } => {
                let at = json!({"item_id": id, "output_index": index, "summary_index": 0});
                let with = |kind: &str, extra: Value| {
                    let mut e = at.clone();
                    e["type"] = json!(kind);
                    if let (Some(e), Some(x)) =
                        (e.as_object_mut(), extra.as_object())
                    {
                        e.extend(x.clone());
                    }
                    e
                };
                evs.push(with(
                    "response.reasoning_summary_part.added",
                    json!({"part": {"type": "summary_text", "text": ""}}),
                ));
                for piece in SUMMARY.split_inclusive(' ') {
                    evs.push(with(
                        "response.reasoning_summary_text.delta",
                        json!({"delta": piece}),
                    ));
                }
                evs.push(with(
                    "response.reasoning_summary_text.done",
                    json!({"text": SUMMARY}),
                ));
                evs.push(with(
                    "response.reasoning_summary_part.done",
                    json!({"part": {"type": "summary_text", "text": SUMMARY}}),
                ));
            }
            Out::Message { id, pieces, .. } => {
                let at = |kind: &str| {
                    json!({"type": kind, "item_id": id,
                    "output_index": index, "content_index": 0})
                };
                let mut e = at("response.content_part.added");
                e["part"] = json!({"type": "output_text", "annotations": [],
                    "logprobs": [], "text": ""});
                evs.push(e);
                for piece in pieces {
                    let mut e = at("response.output_text.delta");
                    e["delta"] = json!(piece);
                    e["logprobs"] = json!([]);
                    evs.push(e);
                    if p.mid_error {
                        let failed = response_object(p, "failed", Vec::new());
                        evs.push(json!({"type": "response.failed", "response": failed}));
                        return evs;
                    }
                }
                let text = pieces.concat();
                let mut e = at("response.output_text.done");
                e["text"] = json!(text);
                e["logprobs"] = json!([]);
                evs.push(e);
                let mut e = at("response.content_part.done");
                e["part"] = json!({"type": "output_text", "annotations": [],
                    "logprobs": [], "text": text});
                evs.push(e);
            }
            Out::Call { id, args, name, .. } => {
                let chars: Vec<char> = args.chars().collect();
                let third = chars.len().div_ceil(3).max(1);
                for piece in chars.chunks(third) {
                    evs.push(
                        json!({"type": "response.function_call_arguments.delta",
                        "item_id": id, "output_index": index,
                        "delta": piece.iter().collect::<String>()}),
                    );
                }
                evs.push(
                    json!({"type": "response.function_call_arguments.done",
                    "item_id": id, "output_index": index, "name": name,
                    "arguments": args}),
                );
            }
        }
        let finished = item_json(item, true);
        evs.push(json!({"type": "response.output_item.done",
            "output_index": index, "item": finished}));
        done.push(finished);
    }
    let status = status(p);
    evs.push(json!({"type": format!("response.{status}"),
        "response": response_object(p, status, done)}));
    evs
}
