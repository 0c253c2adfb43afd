//! A real fake OpenAI-compatible Chat Completions upstream.
//!
//! `POST /v1/chat/completions` answers `"You said: <last user text>"`,
//! streamed (SSE, one event per word) or not, with usage counted in
//! whitespace-separated words. Behaviour is scripted by markers in the
//! text of the last user message:
//!
//! | marker         | effect                                                           |
//! |----------------|------------------------------------------------------------------|
//! | `FAULT:500`    | HTTP 500 `server_error` ("upstream exploded")                    |
//! | `FAULT:429`    | HTTP 429 with `Retry-After: 7`, code `rate_limit_exceeded`       |
//! | `FAULT:400`    | HTTP 400 `invalid_request_error` ("bad upstream request")        |
//! | `FAULT:401`    | HTTP 401 `invalid_api_key`                                       |
//! | `FAULT:hang`   | never answers (the connection stays open)                        |
//! | `FAULT:reset`  | stream: 2 content chunks then the connection is cut; else no answer |
//! | `FAULT:malformed` | stream: `data: {not json` after the first chunk; else body `{not json` |
//! | `FAULT:filter` | finish_reason `content_filter`                                   |
//! | `REFUSE`       | refusal "I can't help with that." instead of content            |
//! | `SLOW:<ms>`    | sleep before each SSE event (before the answer when not streaming) |
//! | `JSON:`        | reply is `{"name":"Ada","age":36}` (streamed in 3 pieces)        |
//! | `WORDS:<n>`    | reply is `w0 w1 … w(n-1)`                                        |
//! | `STAMP`        | stream: each content chunk starts with `[t=<unix µs>]`, its send time |
//! | `CLOSE`        | answers with `Connection: close` (the connection is not reused)  |
//! | `THINK`        | reasons first: `reasoning_content` "Thinking about it." (streamed per word), counted in `reasoning_tokens` |
//! | `THINK:openrouter` | the same reasoning in OpenRouter's `reasoning` field          |
//!
//! Built for speed as well (benchmarks): HTTP/1.1 keep-alive, no logging,
//! pre-serialized SSE framing.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The path served.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";
/// The reply of `JSON:`.
pub const JSON_REPLY: &str = r#"{"name":"Ada","age":36}"#;
/// The refusal of `REFUSE`.
pub const REFUSAL: &str = "I can't help with that.";

/// One chat completion request as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The parsed JSON body (`Value::Null` if it was not JSON).
    pub body: serde_json::Value,
    /// The `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// The request path (without query).
    pub path: String,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    count: AtomicUsize,
    open_streams: AtomicUsize,
    in_flight: AtomicUsize,
    no_recording: AtomicBool,
    next_id: AtomicU64,
    connections: AtomicUsize,
}

impl State {
    fn record(&self, r: RecordedRequest) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !self.no_recording.load(Ordering::Relaxed) {
            self.requests.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        }
    }
}

/// Which counter a [`Gauge`] holds.
#[derive(Clone, Copy)]
enum Counter {
    InFlight,
    OpenStreams,
}

/// Holds one unit of a counter; gives it back when dropped.
struct Gauge {
    state: Arc<State>,
    counter: Counter,
}

impl Gauge {
    fn new(state: &Arc<State>, counter: Counter) -> Gauge {
        let g = Gauge { state: state.clone(), counter };
        g.cell().fetch_add(1, Ordering::SeqCst);
        g
    }

    fn cell(&self) -> &AtomicUsize {
        match self.counter {
            Counter::InFlight => &self.state.in_flight,
            Counter::OpenStreams => &self.state.open_streams,
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.cell().fetch_sub(1, Ordering::SeqCst);
    }
}

/// A throwaway CA and a `localhost` certificate it signed, so TLS to a
/// fake upstream is verified like TLS to a real one.
pub struct TestTls {
    /// The CA certificate (PEM): what the gateway must be told to trust.
    pub ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TestTls {
    /// Generates the CA and the server certificate.
    pub fn generate() -> TestTls {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair,
        };
        use tokio_rustls::rustls::{self, ServerConfig, pki_types};
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("CA key");
        let ca =
            CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca)
            .expect("leaf cert");
        let key = pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
            .expect("leaf key der");
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(provider))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der().clone()], key)
                .expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestTls {
            ca_pem: ca.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// A fake upstream serving on 127.0.0.1 until dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // The connections live in a JoinSet owned by the accept task, so
        // aborting it closes them too.
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start() -> FakeUpstream {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("fake upstream binds 127.0.0.1:0")
    }

    /// Like [`FakeUpstream::start`] but on a given address.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<FakeUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, state.clone(), None));
        Ok(FakeUpstream { addr, tls: false, state, task })
    }

    /// Like [`FakeUpstream::start`] but speaking HTTPS with `tls`'s
    /// certificate for `localhost`.
    pub async fn start_tls(tls: &TestTls) -> FakeUpstream {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("fake upstream binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(State::default());
        let acceptor = Some(tls.acceptor.clone());
        let task = tokio::spawn(accept_loop(listener, state.clone(), acceptor));
        FakeUpstream { addr, tls: true, state, task }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL including `/v1`, e.g. `http://127.0.0.1:PORT/v1` (or
    /// `https://localhost:PORT/v1` when serving TLS).
    pub fn base_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/v1", self.addr.port())
        } else {
            format!("http://{}/v1", self.addr)
        }
    }

    /// Every chat completion request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Number of chat completion requests received (counted even when
    /// recording is off).
    pub fn request_count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Forgets recorded requests and resets the request count.
    pub fn clear(&self) {
        let mut reqs =
            self.state.requests.lock().unwrap_or_else(|e| e.into_inner());
        reqs.clear();
        self.state.count.store(0, Ordering::SeqCst);
    }

    /// Number of recorded requests whose serialized JSON body contains `needle`.
    pub fn count_containing(&self, needle: &str) -> usize {
        let reqs =
            self.state.requests.lock().unwrap_or_else(|e| e.into_inner());
        reqs.iter().filter(|r| r.body.to_string().contains(needle)).count()
    }

    /// Number of streaming responses currently being sent: incremented when
    /// the streamed response starts, decremented when its last event is
    /// handed to the connection, when it is cut (`FAULT:reset`) or when the
    /// client disconnects.
    pub fn open_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// Number of chat completion requests being handled right now (including
    /// hanging ones and open streams); drops when the answer is complete or
    /// the client disconnects.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Number of connections accepted so far (keep-alive reuse shows as
    /// fewer connections than requests).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Turns recording of request bodies on (default) or off (for
    /// benchmarks: [`FakeUpstream::request_count`] still counts).
    pub fn set_recording(&self, on: bool) {
        self.state.no_recording.store(!on, Ordering::Relaxed);
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    let state = state.clone();
                    let tls = tls.clone();
                    conns.spawn(async move {
                        let svc = service_fn(move |req| handle(state.clone(), req));
                        let http = hyper::server::conn::http1::Builder::new();
                        match tls {
                            None => {
                                let _ = http
                                    .serve_connection(TokioIo::new(tcp), svc)
                                    .await;
                            }
                            Some(tls) => {
                                if let Ok(stream) = tls.accept(tcp).await {
                                    let _ = http
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                                }
                            }
                        }
                    });
                }
                // E.g. too many open files: back off a little.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut rsp = Response::new(
        Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}

fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    full(status, "application/json", body.to_string())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    if req.method() != Method::POST || req.uri().path() != CHAT_COMPLETIONS_PATH
    {
        let msg = format!(
            "Unknown request URL: {} {}",
            req.method(),
            req.uri().path()
        );
        return Ok(error_response(
            StatusCode::NOT_FOUND,
            &msg,
            "invalid_request_error",
            None,
            Some("unknown_url"),
        ));
    }
    let gauge = Gauge::new(&state, Counter::InFlight);
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let raw = req.into_body().collect().await?.to_bytes();
    let body: Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(e) => {
            state.record(RecordedRequest {
                body: Value::Null,
                authorization,
                path,
            });
            let msg = format!(
                "We could not parse the JSON body of your request: {e}"
            );
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                &msg,
                "invalid_request_error",
                None,
                None,
            ));
        }
    };
    let plan = Plan::new(&body);
    state.record(RecordedRequest { body, authorization, path });

    match plan.fault {
        Some(Fault::Status(500)) => {
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "upstream exploded",
                "server_error",
                None,
                None,
            ));
        }
        Some(Fault::Status(429)) => {
            let mut rsp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "upstream rate limit reached, retry later",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            );
            rsp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
            return Ok(rsp);
        }
        Some(Fault::Status(400)) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "bad upstream request",
                "invalid_request_error",
                Some("messages"),
                None,
            ));
        }
        Some(Fault::Status(_)) => {
            return Ok(error_response(
                StatusCode::UNAUTHORIZED,
                "upstream rejected the API key: Incorrect API key provided",
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ));
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Err("hung".into());
        }
        Some(Fault::Reset) if !plan.stream => return Err("reset".into()),
        Some(Fault::Malformed) if !plan.stream => {
            return Ok(full(StatusCode::OK, "application/json", "{not json"));
        }
        _ => {}
    }

    let close = plan.close;
    let mut rsp = if plan.stream {
        stream_response(&state, plan, gauge)
    } else {
        if let Some(d) = plan.slow {
            tokio::time::sleep(d).await;
        }
        full(StatusCode::OK, "application/json", completion_json(&state, &plan))
    };
    if close {
        rsp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(rsp)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Status(u16),
    Hang,
    Reset,
    Malformed,
}

/// What to answer to one request.
struct Plan {
    /// Answer with `Connection: close`.
    close: bool,
    stream: bool,
    include_usage: bool,
    model: String,
    fault: Option<Fault>,
    slow: Option<Duration>,
    refuse: bool,
    json: bool,
    /// Streamed content chunks start with their send time.
    stamp: bool,
    /// The reply (or refusal) after truncation.
    reply: String,
    truncated: bool,
    finish_reason: &'static str,
    prompt_tokens: usize,
    completion_tokens: usize,
    /// Reasoning sent before the reply, and the field that carries it.
    reasoning: Option<(&'static str, String)>,
}

/// The reasoning of `THINK`.
pub const REASONING: &str = "Thinking about it.";

/// The text of a message's content: a string, or the concatenation of the
/// `text` of its `{"type":"text"}` parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// The decimal number right after `marker` in `text`.
fn marker_number(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Splits at word boundaries: each piece is one word plus the whitespace
/// that follows it (leading whitespace joins the first piece), so the
/// pieces concatenate to `s` exactly.
fn word_chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut prev_ws = false;
    for (i, c) in s.char_indices() {
        let ws = c.is_whitespace();
        if !ws && prev_ws && seen_word {
            out.push(&s[start..i]);
            start = i;
        }
        seen_word |= !ws;
        prev_ws = ws;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Splits into `n` pieces of roughly equal length (on char boundaries).
fn equal_pieces(s: &str, n: usize) -> Vec<&str> {
    let chars: Vec<usize> = s
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect();
    let len = chars.len() - 1;
    (0..n)
        .map(|k| {
            (chars[(k * len).div_ceil(n)], chars[((k + 1) * len).div_ceil(n)])
        })
        .filter(|(a, b)| a < b)
        .map(|(a, b)| &s[a..b])
        .collect()
}

impl Plan {
    fn new(body: &Value) -> Plan {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let prompt_tokens = messages
            .iter()
            .map(|m| m.get("content").map_or(0, |c| words(&content_text(c))))
            .sum();
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default();
        let t = last_user.as_str();

        let fault = if t.contains("FAULT:500") {
            Some(Fault::Status(500))
        } else if t.contains("FAULT:429") {
            Some(Fault::Status(429))
        } else if t.contains("FAULT:400") {
            Some(Fault::Status(400))
        } else if t.contains("FAULT:401") {
            Some(Fault::Status(401))
        } else if t.contains("FAULT:hang") {
            Some(Fault::Hang)
        } else if t.contains("FAULT:reset") {
            Some(Fault::Reset)
        } else if t.contains("FAULT:malformed") {
            Some(Fault::Malformed)
        } else {
            None
        };
        let close = t.contains("CLOSE");
        let refuse = t.contains("REFUSE");
        let json = !refuse && t.contains("JSON:");
        let full_reply = if refuse {
            REFUSAL.to_string()
        } else if json {
            JSON_REPLY.to_string()
        } else if let Some(n) = marker_number(t, "WORDS:") {
            let mut s = String::with_capacity(n as usize * 5);
            for i in 0..n {
                if i > 0 {
                    s.push(' ');
                }
                s.push('w');
                s.push_str(&i.to_string());
            }
            s
        } else {
            format!("You said: {t}")
        };

        let limit = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64));
        let (reply, truncated) = match limit {
            Some(n) if words(&full_reply) as u64 > n => {
                let kept: String = word_chunks(&full_reply)
                    .into_iter()
                    .take(n as usize)
                    .collect();
                (kept.trim_end().to_string(), true)
            }
            _ => (full_reply, false),
        };
        let finish_reason = if t.contains("FAULT:filter") {
            "content_filter"
        } else if truncated {
            "length"
        } else {
            "stop"
        };
        Plan {
            close,
            stream: body
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            include_usage: body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            fault,
            slow: marker_number(t, "SLOW:").map(Duration::from_millis),
            refuse,
            json,
            stamp: t.contains("STAMP"),
            completion_tokens: words(&reply),
            reasoning: t.contains("THINK").then(|| {
                let field = if t.contains("THINK:openrouter") {
                    "reasoning"
                } else {
                    "reasoning_content"
                };
                (field, REASONING.to_string())
            }),
            reply,
            truncated,
            finish_reason,
            prompt_tokens,
        }
    }

    fn usage(&self) -> Value {
        let reasoning = self.reasoning.as_ref().map_or(0, |(_, r)| words(r));
        let completion = self.completion_tokens + reasoning;
        let mut u = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        });
        if reasoning > 0 {
            u["completion_tokens_details"] =
                json!({"reasoning_tokens": reasoning});
        }
        u
    }

    /// The streamed pieces of the reply.
    fn pieces(&self) -> Vec<&str> {
        if self.json && !self.truncated {
            equal_pieces(&self.reply, 3)
        } else {
            word_chunks(&self.reply)
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_json(state: &State, plan: &Plan) -> String {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let mut message = if plan.refuse {
        json!({"role": "assistant", "content": null, "refusal": plan.reply})
    } else {
        json!({"role": "assistant", "content": plan.reply, "refusal": null})
    };
    if let Some((field, text)) = &plan.reasoning {
        message[*field] = json!(text);
    }
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": now_secs(),
        "model": plan.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": plan.finish_reason}],
        "usage": plan.usage(),
    })
    .to_string()
}

enum Event {
    Data(Bytes),
    /// A chunk whose text starts with its send time: the bytes before and
    /// after the stamp.
    Stamped(String, String),
    /// Cut the connection (the body yields an error, hyper aborts).
    Reset,
}

fn stream_response(
    state: &Arc<State>,
    plan: Plan,
    in_flight: Gauge,
) -> Response<Body> {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    // Every chunk starts with this, up to and including `"choices":[`.
    let prefix = format!(
        r#"data: {{"id":"chatcmpl-{id}","object":"chat.completion.chunk","created":{},"model":{},"choices":["#,
        now_secs(),
        Value::String(plan.model.clone()),
    );
    let field = if plan.refuse { "refusal" } else { "content" };
    let pieces = plan.pieces();
    let mut events = VecDeque::with_capacity(pieces.len() + 4);
    if let Some((rfield, text)) = &plan.reasoning {
        for (i, piece) in word_chunks(text).into_iter().enumerate() {
            let role = if i == 0 { r#""role":"assistant","# } else { "" };
            let piece = Value::String(piece.to_string());
            events.push_back(Event::Data(Bytes::from(format!(
                "{prefix}{{\"index\":0,\"delta\":{{{role}\"{rfield}\":{piece}}},\"finish_reason\":null}}]}}\n\n"
            ))));
        }
    }
    for (i, piece) in pieces.iter().enumerate() {
        if plan.fault == Some(Fault::Reset) && i == 2 {
            break;
        }
        let role = if i == 0 { r#""role":"assistant","# } else { "" };
        let text = Value::String((*piece).to_string()).to_string();
        let ev = if plan.stamp {
            // `text` is a JSON string: the stamp goes after its opening quote.
            Event::Stamped(
                format!(
                    "{prefix}{{\"index\":0,\"delta\":{{{role}\"{field}\":\""
                ),
                format!("{}}},\"finish_reason\":null}}]}}\n\n", &text[1..]),
            )
        } else {
            Event::Data(Bytes::from(format!(
                "{prefix}{{\"index\":0,\"delta\":{{{role}\"{field}\":{text}}},\"finish_reason\":null}}]}}\n\n"
            )))
        };
        events.push_back(ev);
        if plan.fault == Some(Fault::Malformed) && i == 0 {
            events.push_back(Event::Data(Bytes::from_static(
                b"data: {not json\n\n",
            )));
        }
    }
    if plan.fault == Some(Fault::Reset) {
        events.push_back(Event::Reset);
    } else {
        if plan.fault == Some(Fault::Malformed) && pieces.is_empty() {
            events.push_back(Event::Data(Bytes::from_static(
                b"data: {not json\n\n",
            )));
        }
        let ev = format!(
            "{prefix}{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"{}\"}}]}}\n\n",
            plan.finish_reason
        );
        events.push_back(Event::Data(Bytes::from(ev)));
        if plan.include_usage {
            let ev = format!("{prefix}],\"usage\":{}}}\n\n", plan.usage());
            events.push_back(Event::Data(Bytes::from(ev)));
        }
        events.push_back(Event::Data(Bytes::from_static(b"data: [DONE]\n\n")));
    }

    struct St {
        events: VecDeque<Event>,
        delay: Option<Duration>,
        guards: Option<(Gauge, Gauge)>,
    }
    let st = St {
        events,
        delay: plan.slow,
        guards: Some((Gauge::new(state, Counter::OpenStreams), in_flight)),
    };
    let body = futures::stream::unfold(st, |mut st| async move {
        let ev = st.events.pop_front()?;
        if let Some(d) = st.delay {
            tokio::time::sleep(d).await;
        }
        if st.events.is_empty() {
            // The stream is over once its last event is handed over.
            st.guards = None;
        }
        let item = match ev {
            Event::Data(b) => Ok(Frame::data(b)),
            Event::Stamped(head, tail) => {
                let sent = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                Ok(Frame::data(Bytes::from(format!("{head}[t={sent}]{tail}"))))
            }
            Event::Reset => {
                // Return Pending once so hyper flushes what came before
                // (headers and chunks) before the error cuts the connection.
                tokio::task::yield_now().await;
                Err(BoxError::from("FAULT:reset"))
            }
        };
        Some((item, st))
    });
    let mut rsp = Response::new(StreamBody::new(body).boxed_unsync());
    let h = rsp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble() {
        for s in ["You said: hello  world ", "  a b", "", "x", "You said: "] {
            assert_eq!(word_chunks(s).concat(), s);
        }
        assert_eq!(
            word_chunks("You said: hi there"),
            ["You ", "said: ", "hi ", "there"]
        );
        assert_eq!(equal_pieces(JSON_REPLY, 3).concat(), JSON_REPLY);
        assert_eq!(equal_pieces(JSON_REPLY, 3).len(), 3);
    }
}
