//! A real fake OpenAI-compatible Chat Completions upstream.
//!
//! `POST /v1/chat/completions` answers `"You said: <last user text>"`,
//! streamed (SSE, one chunk per word) or not, with usage counted in
//! whitespace-separated words. Like OpenAI it honours `n` (at most
//! [`MAX_CHOICES`]; choice `i > 0` appends ` (choice i)`; streamed choices
//! are interleaved, each with its own role and finish chunk; usage counts
//! every choice), `logprobs`/`top_logprobs` (one entry per streamed piece,
//! non-streaming one per word; `logprob` [`LOGPROB`], alternatives `alt1`,
//! `alt2`, …), `tools`/`tool_choice` (below) and `service_tier` (echoed,
//! else `"default"`); every body and chunk has `system_fingerprint`
//! [`SYSTEM_FINGERPRINT`]. Streams end with a `choices: []` usage chunk only
//! when `stream_options.include_usage` is true (no other chunk has a
//! `usage` field). After a `tool` message (the last message) it answers
//! `Tool said: <that message's content text>`. Behaviour is scripted by
//! markers in the text of the last user message:
//!
//! | marker         | effect                                                           |
//! |----------------|------------------------------------------------------------------|
//! | `FAULT:500`    | HTTP 500 `server_error` ("upstream exploded (…)")                |
//! | `FAULT:429`    | HTTP 429 with `Retry-After: 7`, code `rate_limit_exceeded`       |
//! | `FAULT:400`    | HTTP 400 `invalid_request_error` ("bad upstream request (…)")    |
//! | `FAULT:401`    | HTTP 401 `invalid_api_key`, quoting the key it got, as OpenAI does |
//!
//! Error messages name [`UPSTREAM_DETAIL`] (the operator's upstream
//! organization and a key-looking string), as real upstreams' messages
//! do: text the gateway must keep from its clients.
//! | `FAULT:hang`   | never answers (the connection stays open)                        |
//! | `FAULT:reset`  | stream: 2 content chunks (per choice) then the connection is cut; else no answer |
//! | `FAULT:malformed` | stream: `data: {not json` after the first content chunk; else body `{not json` |
//! | `FAULT:midstream` | stream: after the first content chunk an `error` chunk (code `engine_overloaded`, message with [`UPSTREAM_DETAIL`]) and the end; else as 500 |
//! | `PAUSE`        | stream: waits after the first content chunk until [`FakeUpstream::release_pauses`] |
//! | `FAULT:filter` | finish_reason `content_filter`                                   |
//! | `REFUSE`       | refusal "I can't help with that." instead of content            |
//! | `SLOW:<ms>`    | sleep before each SSE event (before the answer when not streaming) |
//! | `JSON:`        | reply is `{"name":"Ada","age":36}` (streamed in 3 pieces; the same in every choice) |
//! | `FIELDS`       | reply is the request's top-level field names, sorted, joined with `,` |
//! | `WORDS:<n>`    | reply is `w0 w1 … w(n-1)`                                        |
//! | `STAMP`        | stream: each content chunk starts with `[t=<unix µs>]`, its send time |
//! | `CLOSE`        | answers with `Connection: close` (the connection is not reused)  |
//! | `THINK`        | reasons first: `reasoning_content` "Thinking about it." (streamed per word), counted in `reasoning_tokens` |
//! | `THINK:openrouter` | the same reasoning in OpenRouter's `reasoning` field          |
//! | `ANNOTATE`     | content carries `annotations: [{"type":"url_citation",…}]` over the whole reply (streamed: in the last content delta) |
//! | `CALL`, `CALL:<k>` | with non-empty `tools`: `k` (default 1, at most [`MAX_TOOL_CALLS`]) calls to the first `k` tools, cycling |
//!
//! Tool calls: when `tools` is non-empty, the last message is not a `tool`
//! message, `tool_choice` is not `"none"`, and `tool_choice` is
//! `"required"`, a named function (`{"type":"function","function":
//! {"name"}}`: every call goes to it) or the text has `CALL`, each choice
//! calls instead of answering: ids `call_<request>_<i>` unique in the
//! request, `arguments` the compact JSON `{"q":"<last user text>"}`,
//! `content: null`, finish_reason `tool_calls`, usage the arguments' words.
//! Streamed as OpenAI does: per call one fragment with `id`, `type`,
//! `function.name` and empty `arguments`, then the arguments in 3 pieces.
//! Precedence of the reply text: `REFUSE`, `JSON:`, `FIELDS`, tool result,
//! `WORDS:`, `You said: …`; `max_tokens`/`max_completion_tokens` cut each
//! choice at that many words (finish_reason `length`).
//!
//! [`FakeUpstream::fail_all`] applies a `FAULT:` marker to every request
//! (an upstream having a bad hour while its twin is fine), and
//! [`FakeUpstream::reject_authorization`] answers 401 to one key.
//!
//! `GET /v1/models` answers OpenAI's list shape with [`DEFAULT_MODELS`]
//! (or what [`FakeUpstream::set_models`] set), or the status
//! [`FakeUpstream::fail_models`] set; these calls are counted apart from
//! chat completions ([`FakeUpstream::model_list_requests`]).
//!
//! Built for speed as well (benchmarks): HTTP/1.1 keep-alive, no logging,
//! pre-serialized SSE framing.

mod plan;
mod reply;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use plan::{Fault, Plan};
pub use plan::{MAX_CHOICES, MAX_TOOL_CALLS};
pub use reply::{ANNOTATION_URL, LOGPROB, SYSTEM_FINGERPRINT};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The path served.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";
/// The model list's path.
pub const MODELS_PATH: &str = "/v1/models";
/// The models `GET /v1/models` lists until told otherwise.
pub const DEFAULT_MODELS: [&str; 2] = ["fake-large", "fake-small"];
/// The reply of `JSON:`.
pub const JSON_REPLY: &str = r#"{"name":"Ada","age":36}"#;
/// The refusal of `REFUSE`.
pub const REFUSAL: &str = "I can't help with that.";
/// The reasoning of `THINK`.
pub const REASONING: &str = "Thinking about it.";
/// What every error message of the fake names: the operator's upstream
/// organization and a key-looking string (never to reach a client).
pub const UPSTREAM_DETAIL: &str =
    "organization org-acme-internal-7f3e, key sk-proj-leak-9c1d2e";
/// The message of a `FAULT:midstream` error chunk (before the detail).
pub const MID_STREAM_MESSAGE: &str = "engine overloaded mid-stream";

/// One chat completion request as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The parsed JSON body (`Value::Null` if it was not JSON).
    pub body: serde_json::Value,
    /// The `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// The request path (without query).
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Every header, by lower-case name (the last value of repeated ones).
    pub headers: std::collections::BTreeMap<String, String>,
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
    models: Mutex<Models>,
    /// A `FAULT:` marker applied to every chat request.
    forced: Mutex<Option<String>>,
    /// `Authorization` values answered with 401.
    rejected: Mutex<Vec<String>>,
    /// Permits that let paused (`PAUSE`) streams go on.
    pauses: Arc<Pauses>,
}

/// The gate paused streams wait at: a semaphore with no permits until the
/// test releases some.
pub(crate) struct Pauses(tokio::sync::Semaphore);

impl Default for Pauses {
    fn default() -> Self {
        Pauses(tokio::sync::Semaphore::new(0))
    }
}

impl std::ops::Deref for Pauses {
    type Target = tokio::sync::Semaphore;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// What `GET /v1/models` answers.
struct Models {
    ids: Vec<String>,
    fail: Option<StatusCode>,
    /// The `Authorization` header of every model list request.
    seen: Vec<Option<String>>,
}

impl Default for Models {
    fn default() -> Self {
        Models {
            ids: DEFAULT_MODELS.iter().map(|m| m.to_string()).collect(),
            fail: None,
            seen: Vec::new(),
        }
    }
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

    /// Makes every chat request behave as if its text had `marker` (a
    /// `FAULT:` marker such as `"FAULT:500"` or `"FAULT:hang"`), or, with
    /// `None`, as written again.
    pub fn fail_all(&self, marker: Option<&str>) {
        *self.state.forced.lock().unwrap_or_else(|e| e.into_inner()) =
            marker.map(str::to_string);
    }

    /// Lets `n` paused (`PAUSE`) streams go on, now or when they get to
    /// their pause.
    pub fn release_pauses(&self, n: usize) {
        self.state.pauses.add_permits(n);
    }

    /// Answers 401 `invalid_api_key` to requests whose `Authorization` is
    /// `authorization` (a revoked key).
    pub fn reject_authorization(&self, authorization: &str) {
        self.state
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(authorization.to_string());
    }

    /// Makes `GET /v1/models` list `ids`.
    pub fn set_models(&self, ids: &[&str]) {
        let mut m = self.models();
        m.ids = ids.iter().map(|s| s.to_string()).collect();
        m.fail = None;
    }

    /// Makes `GET /v1/models` answer `status` with an OpenAI error body.
    pub fn fail_models(&self, status: u16) {
        self.models().fail =
            Some(StatusCode::from_u16(status).expect("a valid status"));
    }

    /// The `Authorization` header of each `GET /v1/models` received.
    pub fn model_list_requests(&self) -> Vec<Option<String>> {
        self.models().seen.clone()
    }

    fn models(&self) -> std::sync::MutexGuard<'_, Models> {
        self.state.models.lock().unwrap_or_else(|e| e.into_inner())
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

/// `GET /v1/models`.
fn model_list(state: &State, req: &Request<Incoming>) -> Response<Body> {
    let mut m = state.models.lock().unwrap_or_else(|e| e.into_inner());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    m.seen.push(authorization);
    if let Some(status) = m.fail {
        return error_response(
            status,
            "model listing is down",
            "server_error",
            None,
            None,
        );
    }
    let data: Vec<Value> = m
        .ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}))
        .collect();
    let body = json!({"object": "list", "data": data});
    full(StatusCode::OK, "application/json", body.to_string())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    if req.method() == Method::GET && req.uri().path() == MODELS_PATH {
        return Ok(model_list(&state, &req));
    }
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
    let query = req.uri().query().map(str::to_owned);
    let headers: std::collections::BTreeMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
        .collect();
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
                query,
                headers,
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
    let mut plan =
        Plan::new(&body, state.next_id.fetch_add(1, Ordering::Relaxed));
    let revoked = authorization.as_ref().is_some_and(|a| {
        state.rejected.lock().unwrap_or_else(|e| e.into_inner()).contains(a)
    });
    let given_key = authorization
        .as_deref()
        .map(|a| a.trim_start_matches("Bearer ").to_string());
    state.record(RecordedRequest { body, authorization, path, query, headers });
    if revoked {
        plan.fault = Some(Fault::Status(401));
    } else if let Some(m) =
        state.forced.lock().unwrap_or_else(|e| e.into_inner()).as_deref()
    {
        plan.fault = plan::fault_of(m);
    }

    match plan.fault {
        Some(Fault::Status(500)) => {
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("upstream exploded ({UPSTREAM_DETAIL})"),
                "server_error",
                None,
                None,
            ));
        }
        Some(Fault::Status(429)) => {
            let mut rsp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "upstream rate limit reached, retry later ({UPSTREAM_DETAIL})"
                ),
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
                &format!("bad upstream request ({UPSTREAM_DETAIL})"),
                "invalid_request_error",
                Some("messages"),
                None,
            ));
        }
        Some(Fault::Status(_)) => {
            let message = format!(
                "upstream rejected the API key: Incorrect API key provided: \
                 {} ({UPSTREAM_DETAIL})",
                given_key.as_deref().unwrap_or("none")
            );
            return Ok(error_response(
                StatusCode::UNAUTHORIZED,
                &message,
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
        Some(Fault::MidStream) if !plan.stream => {
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{MID_STREAM_MESSAGE} ({UPSTREAM_DETAIL})"),
                "server_error",
                None,
                Some("engine_overloaded"),
            ));
        }
        Some(Fault::Malformed) if !plan.stream => {
            return Ok(full(StatusCode::OK, "application/json", "{not json"));
        }
        _ => {}
    }

    let mut rsp = if plan.stream {
        reply::stream_response(&state, &plan, gauge)
    } else {
        if let Some(d) = plan.slow {
            tokio::time::sleep(d).await;
        }
        full(StatusCode::OK, "application/json", reply::completion_json(&plan))
    };
    if plan.close {
        rsp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(rsp)
}
