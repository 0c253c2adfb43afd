//! `xtask bench-load`: one load phase, run by `cargo xtask bench` as a
//! separate process (release build, pinned to its own core when possible)
//! so that the client's overhead stays small and off the gateway's core.
//! Prints one JSON [`LoadResult`] on stdout.
//!
//! The client is hyper's low-level HTTP/1.1 connection API on a
//! single-threaded tokio runtime: one keep-alive connection per simulated
//! client, requests issued back to back on it (`websocket.rs`: the same
//! with one WebSocket connection per client and turns on it).

mod background;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::procfs;

pub use background::BackgroundResult;

/// Environment variable carrying the gateway key (kept out of argv).
pub const KEY_ENV: &str = "MANIAC_BENCH_KEY";

/// What one simulated client does.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Non-streaming requests, back to back.
    Json,
    /// Streaming requests, back to back, each read to its end.
    Stream,
    /// Open `--count` streams at once, hold them, sample `--rss-pid`,
    /// close them.
    Open,
    /// Create `--runs` background runs back to back (`--body`), follow
    /// `--followers` of them on `--follow-addr`, wait until all ended.
    Background,
}

/// Who is being measured (decides what "first delta" means).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The fake upstream's Chat Completions endpoint.
    Direct,
    /// The gateway's Responses endpoint.
    Gateway,
    /// The gateway's Chat Completions endpoint.
    Chat,
    /// The gateway's Responses endpoint in WebSocket mode (`GET` upgraded,
    /// one `response.create` frame per turn; stream mode only).
    Websocket,
}

impl Target {
    /// Whether this is the gateway (measured, authenticated).
    pub fn is_gateway(self) -> bool {
        self != Target::Direct
    }
}

/// Arguments of `xtask bench-load`.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Server address (127.0.0.1:PORT).
    #[arg(long)]
    pub addr: SocketAddr,
    /// Request path, e.g. /v1/responses.
    #[arg(long)]
    pub path: String,
    /// JSON request body.
    #[arg(long)]
    pub body: String,
    #[arg(long, value_enum)]
    pub mode: Mode,
    #[arg(long, value_enum)]
    pub target: Target,
    /// Concurrent connections (json and stream modes).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Measured time in milliseconds (after the warm-up).
    #[arg(long, default_value_t = 1000)]
    pub duration_ms: u64,
    /// Warm-up in milliseconds (requests run but are not measured).
    #[arg(long, default_value_t = 0)]
    pub warmup_ms: u64,
    /// A string every successful non-streaming body must contain.
    #[arg(long)]
    pub expect: Option<String>,
    /// Most latency samples kept (reservoir sampling beyond).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_samples: usize,
    /// After the run, GET /v1/responses/{id} of a response created.
    #[arg(long)]
    pub verify_stored: bool,
    /// Streams to open (open mode).
    #[arg(long, default_value_t = 0)]
    pub count: usize,
    /// Give up opening streams after this many milliseconds (open mode).
    #[arg(long, default_value_t = 60_000)]
    pub open_timeout_ms: u64,
    /// Process whose RSS and fds are sampled while the streams are open.
    #[arg(long)]
    pub rss_pid: Option<u32>,
    /// Background runs to create (background mode).
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Runs followed with `GET …?stream=true` (background mode).
    #[arg(long, default_value_t = 50)]
    pub followers: usize,
    /// Text deltas each followed run must show (background mode).
    #[arg(long, default_value_t = 200)]
    pub chunks: usize,
    /// Where the followers connect [default: --addr] (background mode).
    #[arg(long)]
    pub follow_addr: Option<SocketAddr>,
    /// Give up waiting for the runs after this many milliseconds
    /// (background mode).
    #[arg(long, default_value_t = 120_000)]
    pub deadline_ms: u64,
}

/// Latency distribution, in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// What `bench-load` prints.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Successful requests started in the measured window.
    pub requests: u64,
    /// Every request attempted, warm-up and failures included (the
    /// denominator of the gateway's CPU time per request).
    pub total_requests: u64,
    /// Failed requests (non-2xx, transport errors, unexpected bodies),
    /// warm-up included.
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Connections re-established after the server closed them.
    pub reconnects: u64,
    /// From the end of the warm-up to the last measured completion.
    pub measured_s: f64,
    /// `requests / measured_s`.
    pub rps: f64,
    /// Whole request (non-streaming) or whole stream.
    pub latency: Option<Stats>,
    /// Streams: until the response head arrived.
    pub ttfb: Option<Stats>,
    /// Streams: until the first text delta arrived.
    pub first_delta: Option<Stats>,
    /// Outcome of `--verify-stored`.
    pub stored_check: Option<String>,
    /// CPU time of the load generator itself.
    pub cpu_s: f64,
    pub open: Option<OpenResult>,
    pub background: Option<BackgroundResult>,
}

/// Open mode's outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OpenResult {
    pub requested: usize,
    /// Streams whose first event arrived.
    pub opened: usize,
    pub failed: usize,
    /// Until every stream was open (or the time-out).
    pub open_s: f64,
    /// `--rss-pid`'s VmRSS with every stream open.
    pub rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub fds: Option<usize>,
    /// Streams that broke or ended while held.
    pub dropped_while_held: usize,
}

/// Runs one phase and prints its result.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let mut result = rt.block_on(run_async(args))?;
    result.cpu_s = procfs::self_cpu_s();
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// What every request needs, built once.
#[derive(Clone)]
struct Template {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
    body: Bytes,
    auth: Option<HeaderValue>,
    mode: Mode,
    target: Target,
    /// Checked in non-streaming bodies and WebSocket `response.completed`
    /// frames.
    expect: Option<Vec<u8>>,
}

impl Template {
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = path.parse().unwrap_or_default();
        let h = req.headers_mut();
        h.insert(header::HOST, self.host.clone());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(a) = &self.auth {
            h.insert(header::AUTHORIZATION, a.clone());
        }
        req
    }

    fn post(&self) -> Request<Full<Bytes>> {
        self.request(Method::POST, &self.path, self.body.clone())
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let tcp =
        TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn run_async(args: LoadArgs) -> anyhow::Result<LoadResult> {
    let auth = match std::env::var(KEY_ENV) {
        Ok(k) if !k.is_empty() => Some(
            HeaderValue::from_str(&format!("Bearer {k}"))
                .context("key is not a header value")?,
        ),
        _ => None,
    };
    let t = Arc::new(Template {
        addr: args.addr,
        host: HeaderValue::from_str(&args.addr.to_string())?,
        path: args.path.clone(),
        body: Bytes::from(args.body.clone()),
        auth,
        mode: args.mode,
        target: args.target,
        expect: args.expect.as_ref().map(|s| s.as_bytes().to_vec()),
    });
    match (args.mode, args.target) {
        (Mode::Stream, _) => {}
        (_, Target::Websocket) => anyhow::bail!(
            "--target websocket runs turns: use --mode stream, not {:?}",
            args.mode
        ),
        (Mode::Open, _) => return open_streams(&args, t).await,
        (Mode::Background, _) => return background::run(&args, t).await,
        (Mode::Json, _) => {}
    }

    let start = Instant::now();
    let warm_end = start + Duration::from_millis(args.warmup_ms);
    let end = warm_end + Duration::from_millis(args.duration_ms);
    let c = args.concurrency.max(1);
    let cap = (args.max_samples / c).max(1);
    let mut set = JoinSet::new();
    for i in 0..c {
        let (t, seed) = (t.clone(), i as u64);
        match args.target {
            Target::Websocket => {
                set.spawn(websocket::worker(t, cap, seed, warm_end, end))
            }
            _ => set.spawn(worker(t, cap, seed, warm_end, end)),
        };
    }
    let mut outs = Vec::with_capacity(c);
    while let Some(r) = set.join_next().await {
        outs.push(r.context("worker panicked")?);
    }

    let mut res = LoadResult::default();
    let (mut lat, mut ttfb, mut first) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_done = warm_end;
    let mut last_body = None;
    for o in outs {
        res.requests += o.ok;
        res.total_requests += o.total;
        res.errors += o.errors;
        res.reconnects += o.reconnects;
        for e in o.error_samples {
            if res.error_samples.len() < 8 && !res.error_samples.contains(&e) {
                res.error_samples.push(e);
            }
        }
        lat.extend(o.latency.v);
        ttfb.extend(o.ttfb.v);
        first.extend(o.first_delta.v);
        if let Some(d) = o.last_done {
            last_done = last_done.max(d);
        }
        if o.last_body.is_some() {
            last_body = o.last_body;
        }
    }
    res.measured_s = (last_done - warm_end).as_secs_f64();
    if res.measured_s > 0.0 {
        res.rps = res.requests as f64 / res.measured_s;
    }
    res.latency = stats(lat);
    if args.mode == Mode::Stream {
        res.ttfb = stats(ttfb);
        res.first_delta = stats(first);
    }
    if args.verify_stored {
        res.stored_check = Some(verify_stored(&t, last_body).await);
    }
    Ok(res)
}

/// GETs a response created by the run: proves `store: true` stored it.
async fn verify_stored(t: &Template, body: Option<Bytes>) -> String {
    let Some(body) = body else {
        return "no successful response to check".into();
    };
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
    let Some(id) = id else {
        return "the response has no id".into();
    };
    let check = async {
        let mut s = connect(t.addr).await?;
        let path = format!("{}/{id}", t.path.trim_end_matches('/'));
        let rsp = s
            .send_request(t.request(Method::GET, &path, Bytes::new()))
            .await
            .map_err(|e| e.to_string())?;
        let status = rsp.status();
        let body = rsp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status.is_success() && find(&body, id.as_bytes()).is_some() {
            Ok(format!("ok: GET {path} -> {status}"))
        } else {
            Err(format!("GET {path} -> {status}"))
        }
    };
    match check.await {
        Ok(s) => s,
        Err(e) => format!("FAILED: {e}"),
    }
}

/// Keeps at most `cap` values, uniformly sampled.
struct Reservoir {
    cap: usize,
    seen: u64,
    rng: u64,
    v: Vec<u64>,
}

impl Reservoir {
    fn new(cap: usize, seed: u64) -> Reservoir {
        Reservoir {
            cap,
            seen: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (seed.wrapping_add(1) << 17),
            v: Vec::with_capacity(cap.min(1 << 16)),
        }
    }

    fn push(&mut self, nanos: u64) {
        self.seen += 1;
        if self.v.len() < self.cap {
            self.v.push(nanos);
            return;
        }
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let j = self.rng % self.seen;
        if (j as usize) < self.cap {
            self.v[j as usize] = nanos;
        }
    }
}

fn stats(mut v: Vec<u64>) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let us = |ns: u64| ns as f64 / 1000.0;
    // Nearest rank.
    let p = |q: f64| us(v[((q * n as f64).ceil() as usize).clamp(1, n) - 1]);
    Some(Stats {
        n,
        mean_us: v.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1000.0,
        p50_us: p(0.50),
        p90_us: p(0.90),
        p99_us: p(0.99),
        max_us: us(v[n - 1]),
    })
}

struct WorkerOut {
    ok: u64,
    total: u64,
    errors: u64,
    reconnects: u64,
    error_samples: Vec<String>,
    latency: Reservoir,
    ttfb: Reservoir,
    first_delta: Reservoir,
    last_done: Option<Instant>,
    last_body: Option<Bytes>,
}

impl WorkerOut {
    fn new(t: &Template, cap: usize, seed: u64) -> WorkerOut {
        let stream_cap = if t.mode == Mode::Stream { cap } else { 0 };
        WorkerOut {
            ok: 0,
            total: 0,
            errors: 0,
            reconnects: 0,
            error_samples: Vec::new(),
            latency: Reservoir::new(cap, seed),
            ttfb: Reservoir::new(stream_cap, seed + 1000),
            first_delta: Reservoir::new(stream_cap, seed + 2000),
            last_done: None,
            last_body: None,
        }
    }

    /// Counts a request started at `t0` and ended at `done`, keeping its
    /// timings when it started after the warm-up. Returns whether the
    /// connection broke.
    fn record(
        &mut self,
        r: Result<Timing, Failure>,
        t0: Instant,
        done: Instant,
        warm_end: Instant,
        stream: bool,
    ) -> bool {
        self.total += 1;
        match r {
            Ok(tm) => {
                if t0 >= warm_end {
                    self.ok += 1;
                    self.latency.push(tm.total);
                    if stream {
                        self.ttfb.push(tm.ttfb);
                        self.first_delta.push(tm.first_delta);
                    }
                    self.last_done = Some(done);
                }
                if tm.body.is_some() {
                    self.last_body = tm.body;
                }
                false
            }
            Err(f) => {
                self.error(f.msg);
                f.broken
            }
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.error_samples.len() < 4 && !self.error_samples.contains(&e) {
            self.error_samples.push(e);
        }
    }
}

/// The timings of one successful request, in nanoseconds.
struct Timing {
    total: u64,
    ttfb: u64,
    first_delta: u64,
    body: Option<Bytes>,
}

/// A failed request; `broken` when the connection cannot be reused.
struct Failure {
    msg: String,
    broken: bool,
}

fn broken(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure { msg: format!("{what}: {e}"), broken: true }
}

async fn worker(
    t: Arc<Template>,
    cap: usize,
    seed: u64,
    warm_end: Instant,
    end: Instant,
) -> WorkerOut {
    let mut out = WorkerOut::new(&t, cap, seed);
    let mut sender: Option<Sender> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut n: u64 = 0;
    while Instant::now() < end {
        if sender.is_none() {
            match connect(t.addr).await {
                Ok(s) => {
                    if n > 0 {
                        out.reconnects += 1;
                    }
                    sender = Some(s);
                }
                Err(e) => {
                    out.total += 1;
                    out.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        if s.ready().await.is_err() {
            // The server closed the idle connection: not a request failure.
            sender = None;
            continue;
        }
        // Check the body of the first requests of each connection, then
        // one in 256 (searching every body would cost client CPU).
        let check = n < 64 || n.is_multiple_of(256);
        n += 1;
        let t0 = Instant::now();
        let r = match t.mode {
            Mode::Stream => stream_request(s, &t, &mut buf, t0).await,
            _ => json_request(s, &t, check, t0).await,
        };
        let done = Instant::now();
        let stream = t.mode == Mode::Stream;
        if out.record(r, t0, done, warm_end, stream) {
            sender = None;
        }
    }
    out
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

async fn json_request(
    s: &mut Sender,
    t: &Template,
    check: bool,
    t0: Instant,
) -> Result<Timing, Failure> {
    let rsp =
        s.send_request(t.post()).await.map_err(|e| broken("request", e))?;
    let status = rsp.status();
    let body = rsp
        .into_body()
        .collect()
        .await
        .map_err(|e| broken("body", e))?
        .to_bytes();
    let total = nanos(t0.elapsed());
    if !status.is_success() {
        return Err(Failure {
            msg: format!("HTTP {status}: {}", snippet(&body)),
            broken: false,
        });
    }
    if check
        && let Some(e) = &t.expect
        && find(&body, e).is_none()
    {
        return Err(Failure {
            msg: format!("unexpected body: {}", snippet(&body)),
            broken: false,
        });
    }
    Ok(Timing { total, ttfb: 0, first_delta: 0, body: check.then_some(body) })
}

async fn stream_request(
    s: &mut Sender,
    t: &Template,
    buf: &mut Vec<u8>,
    t0: Instant,
) -> Result<Timing, Failure> {
    let rsp =
        s.send_request(t.post()).await.map_err(|e| broken("request", e))?;
    let ttfb = nanos(t0.elapsed());
    let status = rsp.status();
    let mut body = rsp.into_body();
    if !status.is_success() {
        let b = body.collect().await.map_err(|e| broken("body", e))?;
        return Err(Failure {
            msg: format!("HTTP {status}: {}", snippet(&b.to_bytes())),
            broken: false,
        });
    }
    buf.clear();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| broken("stream", e))?;
        if first.is_some() {
            continue;
        }
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if first_delta_seen(t.target, buf) {
                first = Some(nanos(t0.elapsed()));
            }
        }
    }
    let total = nanos(t0.elapsed());
    match first {
        Some(first_delta) => {
            Ok(Timing { total, ttfb, first_delta, body: None })
        }
        None => Err(Failure {
            msg: format!("stream without a text delta: {}", snippet(buf)),
            broken: false,
        }),
    }
}

/// Whether the bytes received so far hold the first text delta: the
/// gateway's first `response.output_text.delta` event, or the upstream's
/// first chunk with non-empty `choices[0].delta.content`. Consumes the
/// complete events it inspected (direct) so each is parsed once.
fn first_delta_seen(target: Target, buf: &mut Vec<u8>) -> bool {
    match target {
        Target::Gateway | Target::Websocket => {
            find(buf, b"response.output_text.delta").is_some()
        }
        Target::Direct | Target::Chat => drain_data(buf, |d| {
            serde_json::from_slice::<Value>(d).ok().is_some_and(|v| {
                v.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty())
            })
        }),
    }
}

/// Takes the complete SSE events off the front of `buf`, passing each
/// `data:` payload to `f`, and stops after the event for which `f` said
/// true (returning true); the rest stays in `buf` for later.
fn drain_data(buf: &mut Vec<u8>, mut f: impl FnMut(&[u8]) -> bool) -> bool {
    let mut start = 0;
    let mut hit = false;
    while !hit && let Some(p) = find(&buf[start..], b"\n\n") {
        let event = &buf[start..start + p];
        start += p + 2;
        hit = event
            .split(|&b| b == b'\n')
            .filter_map(|l| l.strip_prefix(b"data:"))
            .any(|d| f(d.trim_ascii()));
    }
    buf.drain(..start);
    hit
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()].iter().position(|&b| b == first)
        {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    s.replace('\n', "\\n")
}

/// Open mode: opens `count` streams (at most 256 being set up at a time),
/// waits until each has received its first event, samples the process
/// `rss_pid`, then closes them all.
async fn open_streams(
    args: &LoadArgs,
    t: Arc<Template>,
) -> anyhow::Result<LoadResult> {
    let count = args.count;
    let (close_tx, close_rx) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let setup = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..count {
        set.spawn(hold_stream(
            t.clone(),
            setup.clone(),
            opened.clone(),
            failed.clone(),
            close_rx.clone(),
        ));
    }
    let deadline = started + Duration::from_millis(args.open_timeout_ms);
    while opened.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) < count
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let open_s = started.elapsed().as_secs_f64();
    // Let the last events settle in the server before sampling.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut open = OpenResult {
        requested: count,
        opened: opened.load(Ordering::SeqCst),
        failed: failed.load(Ordering::SeqCst),
        open_s,
        ..Default::default()
    };
    if let Some(pid) = args.rss_pid {
        open.rss_kib = procfs::rss_kib(pid);
        open.peak_rss_kib = procfs::peak_rss_kib(pid);
        open.fds = procfs::fd_count(pid);
    }
    let _ = close_tx.send(true);
    let mut res = LoadResult::default();
    let closing = async {
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err((e, held))) => {
                    res.errors += 1;
                    if held {
                        open.dropped_while_held += 1;
                    }
                    if res.error_samples.len() < 8
                        && !res.error_samples.contains(&e)
                    {
                        res.error_samples.push(e);
                    }
                }
                Err(e) => res.error_samples.push(format!("task: {e}")),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), closing).await.is_err() {
        res.error_samples.push("streams did not close within 30 s".into());
    }
    set.abort_all();
    res.requests = open.opened as u64;
    res.total_requests = count as u64;
    res.measured_s = open_s;
    res.open = Some(open);
    Ok(res)
}

/// One held stream. Errors say whether the stream had been open.
async fn hold_stream(
    t: Arc<Template>,
    setup: Arc<Semaphore>,
    opened: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    mut close: watch::Receiver<bool>,
) -> Result<(), (String, bool)> {
    let opening = async {
        let _permit = setup.acquire().await.map_err(|e| e.to_string())?;
        let mut s = connect(t.addr).await?;
        let rsp = s
            .send_request(t.post())
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = rsp.status();
        let mut body: Incoming = rsp.into_body();
        if !status.is_success() {
            let b =
                body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(format!("HTTP {status}: {}", snippet(&b)));
        }
        let mut buf = Vec::new();
        let marker: &[u8] = match t.target {
            Target::Gateway | Target::Websocket => b"response.created",
            Target::Direct | Target::Chat => b"data:",
        };
        loop {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        buf.extend_from_slice(&d);
                        if find(&buf, marker).is_some() {
                            return Ok((s, body));
                        }
                    }
                }
                Some(Err(e)) => return Err(format!("stream: {e}")),
                None => {
                    return Err(format!(
                        "stream ended before its first event: {}",
                        snippet(&buf)
                    ));
                }
            }
        }
    };
    let (_sender, mut body) = match opening.await {
        Ok(x) => x,
        Err(e) => {
            failed.fetch_add(1, Ordering::SeqCst);
            return Err((e, false));
        }
    };
    opened.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::select! {
            _ = close.changed() => return Ok(()),
            f = body.frame() => match f {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err((format!("stream broke while held: {e}"), true)),
                None => return Err(("stream ended while held".into(), true)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"xx\n\nyy", b"\n\n"), Some(2));
    }

    #[test]
    fn percentiles() {
        let s = stats((1..=100).map(|x| x * 1000).collect()).unwrap();
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (50.0, 99.0, 100.0));
    }

    #[test]
    fn direct_first_content() {
        let mut buf = b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: {\"choi".to_vec();
        assert!(!first_delta_seen(Target::Direct, &mut buf));
        buf.extend_from_slice(
            b"ces\":[{\"delta\":{\"content\":\"You \"}}]}\n\n",
        );
        assert!(first_delta_seen(Target::Direct, &mut buf));
    }
}
