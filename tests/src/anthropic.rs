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
//! | `MIDERROR`  | stream: `message_start`, one text delta, then an `error` event (`overloaded_error`); else HTTP 529 |
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
//! `GET /v1/models` answers Anthropic's list shape with [`MODELS`].

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

fn answer(
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
fn error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
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
            if let Err(m) = validate(&body) {
                return Ok(error(400, "invalid_request_error", &m));
            }
            let id = state.next_id.fetch_add(1, Ordering::Relaxed);
            Ok(messages(&body, id, got_key.unwrap_or("")))
        }
        _ => Ok(error(404, "not_found_error", "Not found")),
    }
}

fn blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    }
}

fn kind(b: &Value) -> &str {
    b["type"].as_str().unwrap_or("")
}

/// Anthropic's checks, as far as a translation could fail them.
fn validate(b: &Value) -> Result<(), String> {
    if b["model"].as_str().is_none_or(str::is_empty) {
        return Err("model: Field required".into());
    }
    let max_tokens = b["max_tokens"]
        .as_i64()
        .filter(|m| *m >= 1)
        .ok_or("max_tokens: Field required")?;
    if let Some(t) = b.get("temperature").and_then(Value::as_f64)
        && !(0.0..=1.0).contains(&t)
    {
        return Err("temperature: must be between 0 and 1".into());
    }
    match b.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for p in parts {
                if kind(p) != "text"
                    || p["text"].as_str().is_none_or(str::is_empty)
                {
                    return Err("system: blocks must be non-empty text".into());
                }
            }
        }
        Some(_) => return Err("system: must be a string or blocks".into()),
    }
    let tools = b["tools"].as_array().cloned().unwrap_or_default();
    for (i, t) in tools.iter().enumerate() {
        if t["name"].as_str().is_none_or(str::is_empty)
            || t["input_schema"]["type"] != "object"
        {
            return Err(format!(
                "tools.{i}: needs a name and an object input_schema"
            ));
        }
    }
    let choice = b.get("tool_choice");
    if choice.is_some() && tools.is_empty() {
        return Err(
            "tool_choice: may only be specified while providing tools".into()
        );
    }
    let thinking = match b.get("thinking") {
        None => false,
        Some(t) if t["type"] == "enabled" => {
            let budget = t["budget_tokens"].as_i64().unwrap_or(0);
            if budget < 1024 {
                return Err("thinking.budget_tokens: must be >= 1024".into());
            }
            if budget >= max_tokens {
                return Err(
                    "max_tokens must be greater than thinking.budget_tokens"
                        .into(),
                );
            }
            true
        }
        Some(t) if t["type"] == "disabled" => false,
        Some(_) => return Err("thinking: unknown type".into()),
    };
    if thinking
        && choice.is_some_and(|c| c["type"] == "any" || c["type"] == "tool")
    {
        return Err(
            "Thinking may not be enabled when tool_choice forces tool use."
                .into(),
        );
    }
    if let Some(f) = b["output_config"].get("format")
        && (f["type"] != "json_schema" || !f["schema"].is_object())
    {
        return Err(
            "output_config.format: needs type json_schema and a schema".into(),
        );
    }
    let messages =
        b["messages"].as_array().ok_or("messages: Field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut prev_role = "";
    let mut prev_calls: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: must be user or assistant"
            ));
        }
        if role == prev_role {
            return Err(format!(
                "messages.{i}: roles must alternate between \"user\" and \"assistant\""
            ));
        }
        let content = blocks(&m["content"]);
        if content.is_empty() {
            return Err(format!("messages.{i}: content must be non-empty"));
        }
        let mut calls = Vec::new();
        let mut results = Vec::new();
        let mut seen_other = false;
        for (j, blk) in content.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match kind(blk) {
                "text" => {
                    if blk["text"].as_str().is_none_or(str::is_empty) {
                        return Err(format!(
                            "{at}: text content blocks must be non-empty"
                        ));
                    }
                }
                "image" | "document" => {
                    let s = &blk["source"];
                    let ok = match s["type"].as_str() {
                        Some("base64") => {
                            s["media_type"].is_string() && s["data"].is_string()
                        }
                        Some("url") => s["url"]
                            .as_str()
                            .is_some_and(|u| u.starts_with("http")),
                        _ => false,
                    };
                    if !ok || role != "user" {
                        return Err(format!("{at}.source: invalid"));
                    }
                }
                "tool_use" => {
                    if role != "assistant" || !blk["input"].is_object() {
                        return Err(format!("{at}: invalid tool_use"));
                    }
                    calls.push(blk["id"].as_str().unwrap_or("").to_string());
                }
                "tool_result" => {
                    if role != "user" || seen_other {
                        return Err(format!(
                            "{at}: tool_result blocks must come first in a user message"
                        ));
                    }
                    let id =
                        blk["tool_use_id"].as_str().unwrap_or("").to_string();
                    if !prev_calls.contains(&id) {
                        return Err(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. \
                             Each `tool_result` block must have a corresponding `tool_use` \
                             block in the previous message."
                        ));
                    }
                    results.push(id);
                }
                "thinking" => {
                    let text = blk["thinking"].as_str().unwrap_or("");
                    if role != "assistant"
                        || blk["signature"].as_str()
                            != Some(signature(text).as_str())
                    {
                        return Err(format!(
                            "{at}: Invalid `signature` in `thinking` block"
                        ));
                    }
                }
                "redacted_thinking" => {
                    if role != "assistant" || blk["data"] != REDACTED {
                        return Err(format!(
                            "{at}: invalid redacted_thinking data"
                        ));
                    }
                }
                other => {
                    return Err(format!("{at}: unknown block type `{other}`"));
                }
            }
            if kind(blk) != "tool_result" {
                seen_other = true;
            }
        }
        if let Some(missing) = prev_calls.iter().find(|c| !results.contains(c))
        {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks \
                 immediately after: {missing}"
            ));
        }
        if thinking
            && !calls.is_empty()
            && !matches!(kind(&content[0]), "thinking" | "redacted_thinking")
        {
            return Err(format!(
                "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, \
                 but found `{}`. When `thinking` is enabled, a final `assistant` message \
                 must start with a thinking block.",
                kind(&content[0])
            ));
        }
        prev_role = role;
        prev_calls = calls;
    }
    if !prev_calls.is_empty() {
        return Err(
            "the last message has tool_use blocks without results".into()
        );
    }
    Ok(())
}

/// What the answer will be.
struct Plan {
    id: u64,
    model: String,
    stream: bool,
    think: bool,
    redact: bool,
    /// Reply words (with their spaces).
    words: Vec<String>,
    call: Option<(String, String)>,
    stop_reason: &'static str,
    input: i64,
    cache: bool,
    mid_error: bool,
}

fn text_of(blocks: &[Value]) -> String {
    blocks
        .iter()
        .filter(|b| kind(b) == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn word_count(s: &str) -> i64 {
    s.split_whitespace().count() as i64
}

fn plan(b: &Value, id: u64) -> Result<Plan, Box<Response<Full<Bytes>>>> {
    let messages = b["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| blocks(&m["content"]))
        .unwrap_or_default();
    let text = text_of(&last_user);
    let tool_output: Option<String> = {
        let results: Vec<String> = last_user
            .iter()
            .filter(|b| kind(b) == "tool_result")
            .map(|b| match &b["content"] {
                Value::String(s) => s.clone(),
                c => text_of(&blocks(c)),
            })
            .collect();
        (!results.is_empty()).then(|| results.join(" "))
    };
    for (marker, status, kind, message) in [
        (
            "FAULT:429",
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit.",
        ),
        ("FAULT:529", 529, "overloaded_error", "Overloaded"),
        ("FAULT:500", 500, "api_error", "Internal server error"),
    ] {
        if text.contains(marker) {
            let mut rsp = error(status, kind, message);
            if status == 429 {
                rsp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
            }
            return Err(Box::new(rsp));
        }
    }
    let stream = b["stream"] == true;
    let mid_error = text.contains("MIDERROR");
    if mid_error && !stream {
        return Err(Box::new(error(529, "overloaded_error", "Overloaded")));
    }
    let mut input = word_count(
        &messages
            .iter()
            .map(|m| text_of(&blocks(&m["content"])))
            .collect::<Vec<_>>()
            .join(" "),
    );
    match &b["system"] {
        Value::String(s) => input += word_count(s),
        Value::Array(a) => input += word_count(&text_of(a)),
        _ => {}
    }
    let tools = b["tools"].as_array().cloned().unwrap_or_default();
    let choice = b["tool_choice"]["type"].as_str().unwrap_or("auto");
    let call = if tools.is_empty() || tool_output.is_some() || choice == "none"
    {
        None
    } else if choice == "tool" {
        b["tool_choice"]["name"].as_str().map(str::to_owned)
    } else if choice == "any" || text.contains("CALL") {
        tools[0]["name"].as_str().map(str::to_owned)
    } else {
        None
    }
    .map(|name| (name, json!({"q": text}).to_string()));
    let refuse = text.contains("REFUSE");
    let reply = if refuse {
        REFUSAL.to_string()
    } else if b["output_config"].get("format").is_some() {
        JSON_REPLY.to_string()
    } else if let Some(out) = &tool_output {
        format!("Tool said: {out}")
    } else {
        format!("You said: {text}")
    };
    let mut words: Vec<String> =
        reply.split_inclusive(' ').map(str::to_owned).collect();
    let max = b["max_tokens"].as_i64().unwrap_or(i64::MAX).max(0) as usize;
    let stop_reason = if call.is_some() {
        words.clear();
        "tool_use"
    } else if words.len() > max {
        words.truncate(max);
        if let Some(w) = words.last_mut() {
            *w = w.trim_end().to_string();
        }
        "max_tokens"
    } else if refuse {
        "refusal"
    } else {
        "end_turn"
    };
    Ok(Plan {
        id,
        model: b["model"].as_str().unwrap_or("").to_string(),
        stream,
        think: text.contains("THINK"),
        redact: text.contains("REDACT"),
        words,
        call,
        stop_reason,
        input,
        cache: text.contains("CACHE"),
        mid_error,
    })
}

impl Plan {
    fn output_tokens(&self) -> i64 {
        let mut n = self.words.len() as i64;
        if self.think {
            n += word_count(THINKING);
        }
        if let Some((_, args)) = &self.call {
            n += word_count(args);
        }
        n
    }

    fn usage(&self, output: i64) -> Value {
        let (read, write) =
            if self.cache { (CACHE_READ, CACHE_WRITE) } else { (0, 0) };
        json!({"input_tokens": self.input, "cache_read_input_tokens": read,
               "cache_creation_input_tokens": write, "output_tokens": output})
    }

    fn call_id(&self) -> String {
        format!("toolu_fake_{}", self.id)
    }
}

fn messages(b: &Value, id: u64, got_key: &str) -> Response<Full<Bytes>> {
    let text = b["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| text_of(&blocks(&m["content"])))
        .unwrap_or_default();
    if text.contains("FAULT:401") {
        // Like an upstream that quotes the key it refused.
        return error(
            401,
            "authentication_error",
            &format!("invalid x-api-key: {got_key}"),
        );
    }
    let p = match plan(b, id) {
        Ok(p) => p,
        Err(rsp) => return *rsp,
    };
    if p.stream { stream(&p) } else { whole(&p) }
}

fn whole(p: &Plan) -> Response<Full<Bytes>> {
    let mut content = Vec::new();
    if p.redact {
        content.push(json!({"type": "redacted_thinking", "data": REDACTED}));
    }
    if p.think {
        content.push(json!({"type": "thinking", "thinking": THINKING,
                            "signature": signature(THINKING)}));
    }
    if !p.words.is_empty() {
        content.push(json!({"type": "text", "text": p.words.concat()}));
    }
    if let Some((name, args)) = &p.call {
        let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
        content.push(json!({"type": "tool_use", "id": p.call_id(), "name": name, "input": input}));
    }
    let body = json!({
        "id": format!("msg_fake_{}", p.id), "type": "message", "role": "assistant",
        "model": p.model, "content": content, "stop_reason": p.stop_reason,
        "stop_sequence": null, "usage": p.usage(p.output_tokens()),
    });
    answer(200, "application/json", body.to_string())
}

/// SSE text of events, each with its `event:` line.
struct Sse(String);

impl Sse {
    fn push(&mut self, data: Value) {
        let name = data["type"].as_str().unwrap_or("").to_string();
        self.0.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
}

fn stream(p: &Plan) -> Response<Full<Bytes>> {
    let mut s = Sse(String::new());
    s.push(json!({"type": "message_start", "message": {
        "id": format!("msg_fake_{}", p.id), "type": "message", "role": "assistant",
        "model": p.model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": p.usage(1)}}));
    s.push(json!({"type": "ping"}));
    let mut index = 0;
    if p.mid_error {
        s.push(json!({"type": "content_block_start", "index": 0,
                      "content_block": {"type": "text", "text": ""}}));
        s.push(json!({"type": "content_block_delta", "index": 0,
                      "delta": {"type": "text_delta", "text": "Partial "}}));
        s.push(json!({"type": "error",
                      "error": {"type": "overloaded_error", "message": "Overloaded"}}));
        return answer(200, "text/event-stream", s.0);
    }
    if p.redact {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "redacted_thinking", "data": REDACTED}}));
        s.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if p.think {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "thinking", "thinking": ""}}));
        for w in THINKING.split_inclusive(' ') {
            s.push(json!({"type": "content_block_delta", "index": index,
                          "delta": {"type": "thinking_delta", "thinking": w}}));
        }
        s.push(json!({"type": "content_block_delta", "index": index,
                      "delta": {"type": "signature_delta", "signature": signature(THINKING)}}));
        s.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if !p.words.is_empty() {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "text", "text": ""}}));
        for w in &p.words {
            s.push(json!({"type": "content_block_delta", "index": index,
                          "delta": {"type": "text_delta", "text": w}}));
        }
        s.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if let Some((name, args)) = &p.call {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "tool_use", "id": p.call_id(),
                                        "name": name, "input": {}}}));
        let chars: Vec<char> = args.chars().collect();
        let third = chars.len().div_ceil(3).max(1);
        for piece in chars.chunks(third) {
            let piece: String = piece.iter().collect();
            s.push(json!({"type": "content_block_delta", "index": index,
                          "delta": {"type": "input_json_delta", "partial_json": piece}}));
        }
        s.push(json!({"type": "content_block_stop", "index": index}));
    }
    let usage = if p.cache {
        p.usage(p.output_tokens())
    } else {
        json!({"output_tokens": p.output_tokens()})
    };
    s.push(json!({"type": "message_delta",
                  "delta": {"stop_reason": p.stop_reason, "stop_sequence": null},
                  "usage": usage}));
    s.push(json!({"type": "message_stop"}));
    answer(200, "text/event-stream", s.0)
}

/// The environment variable that holds [`TEST_KEY`] for the gateway.
pub const KEY_ENV: &str = "MANIAC_TEST_ANTHROPIC_KEY";
/// The upstream key tests configure; it must never reach a client.
pub const TEST_KEY: &str = "sk-ant-test-k3y-5ecr3t-7f3c9e1b2d";

/// Puts [`TEST_KEY`] into [`KEY_ENV`], once per process.
pub fn install_test_key() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: std serializes its own environment access, and the
        // value is the same whoever sets it first; tests call this before
        // they start a gateway, so nothing reads this variable meanwhile.
        unsafe { std::env::set_var(KEY_ENV, TEST_KEY) };
    });
}

/// A provider configuration for `fake` with the test key.
pub fn config(
    fake: &FakeAnthropic,
) -> maniac_server::providers::anthropic::AnthropicConfig {
    install_test_key();
    maniac_server::providers::anthropic::AnthropicConfig {
        base_url: Some(fake.base_url()),
        api_key_env: Some(KEY_ENV.into()),
        anthropic_version: None,
        default_max_tokens: None,
        beta: Vec::new(),
        request_timeout_secs: Some(30),
        idle_timeout_secs: Some(30),
        ca_file: None,
        models: vec!["claude-listed".into()],
        discover_models: false,
        strict_models: false,
    }
}
