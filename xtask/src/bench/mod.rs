//! `cargo xtask bench [--quick] [--out DIR] [--only PHASE,…]`: measures
//! the gateway against the fake upstream, each phase directly against the
//! upstream and through the gateway, side by side; the WebSocket phases
//! (`websocket.rs`: a turn over WebSocket mode beside the same turn as
//! HTTP streaming and direct); then the background phases
//! (`background.rs`: what a background run costs per chunk, on SQLite and
//! on two PostgreSQL replicas).
//!
//! Everything measured runs as release builds: the gateway (`maniac`), the
//! fake upstream and the load generator (`xtask bench-load`, this crate
//! built in release and re-executed, one process per phase). Where
//! `taskset` exists and there are two CPUs, the gateway is pinned to CPU 0
//! and the upstream and load generator to CPU 1, so the gateway's numbers
//! are those of one core. Results go to stdout (a table) and to
//! `target/bench/bench-<timestamp>.json` and `target/bench/latest.json`.

mod background;
pub mod load;
mod postgres;
mod procfs;
mod report;
mod websocket;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

use load::{KEY_ENV, LoadResult, Mode, Target};
use procfs::SystemCpu;

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// About one second per phase, no warm-up, 100 and 1,000 open streams:
    /// proves the harness works, the numbers are rough.
    #[arg(long)]
    pub quick: bool,
    /// Directory for bench-<timestamp>.json and latest.json
    /// [default: target/bench].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only these phases (comma-separated ids: json_c1, json_c1_xcore,
    /// json_c32, json_store_c32, stream_c1, stream_c64, websocket =
    /// websocket_c1 + websocket_c64, open_streams, background =
    /// background_sqlite + background_postgres; `-` may stand for `_`),
    /// e.g. to re-run one that was disturbed.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// Durations and sizes of a run.
#[derive(Clone, Debug, Serialize)]
struct Settings {
    quick: bool,
    warmup_ms: u64,
    duration_ms: u64,
    open_streams: Vec<usize>,
    open_timeout_ms: u64,
    /// A phase is re-run (up to this many extra times) when other
    /// processes used more than `noisy_pct` % of a core during it.
    reruns: usize,
    noisy_pct: f64,
}

impl Settings {
    fn new(quick: bool) -> Settings {
        if quick {
            Settings {
                quick,
                warmup_ms: 0,
                duration_ms: 1000,
                open_streams: vec![100, 1000],
                open_timeout_ms: 20_000,
                reruns: 0,
                noisy_pct: 20.0,
            }
        } else {
            Settings {
                quick,
                warmup_ms: 2000,
                duration_ms: 10_000,
                open_streams: vec![1000, 10_000],
                open_timeout_ms: 60_000,
                reruns: 2,
                noisy_pct: 20.0,
            }
        }
    }
}

/// A child process, killed and reaped when dropped (also on errors and
/// panics).
struct Guard {
    name: &'static str,
    child: Child,
}

impl Guard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited: {status}", self.name)),
            _ => None,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The last lines a child wrote to a pipe.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<(VecDeque<String>, usize)>>);

impl Tail {
    fn push(&self, line: String) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.1 += 1;
        if t.0.len() == 50 {
            t.0.pop_front();
        }
        t.0.push_back(line);
    }

    fn lines(&self) -> (Vec<String>, usize) {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (t.0.iter().cloned().collect(), t.1)
    }
}

/// A child's log file: the gateway logs at its default level (one line
/// per request) into a file, as in production, rather than into a pipe a
/// thread of ours would have to drain during the measurements.
struct LogFile(PathBuf);

impl LogFile {
    /// The last 50 lines and the number of lines.
    fn lines(&self) -> (Vec<String>, usize) {
        let tail = Tail::default();
        if let Ok(f) = std::fs::File::open(&self.0) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                tail.push(line);
            }
        }
        tail.lines()
    }
}

/// Reads a pipe line by line on a thread: lines go to the channel while
/// someone listens, and always to the tail.
fn read_lines(
    pipe: impl Read + Send + 'static,
    tail: Tail,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            tail.push(line.clone());
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for a line matching `pred`, returning the lines read so far.
fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    proc: &mut Guard,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{} did not start within {timeout:?}", proc.name);
        }
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(line) => {
                let done = pred(&line);
                seen.push(line);
                if done {
                    return Ok(seen);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(e) = proc.exited() {
                    bail!("{e}");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let e = proc.exited().unwrap_or_default();
                bail!("{} closed its output before starting {e}", proc.name);
            }
        }
    }
}

/// A minimal blocking HTTP/1.1 exchange (`Connection: close`), for health
/// and smoke checks. Returns the status and the raw rest of the answer.
fn http_once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        auth.unwrap_or_default()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status line")?;
    Ok((status, out))
}

/// One measured phase.
#[derive(Clone, Copy, Debug)]
struct Spec {
    id: &'static str,
    target: Target,
    mode: Mode,
    concurrency: usize,
    store: bool,
    /// Run the load generator on this CPU instead of the client CPU.
    client_cpu: Option<u32>,
}

/// Counters sampled around a phase.
struct Snap {
    at: Instant,
    gateway_cpu: u64,
    upstream_cpu: u64,
    self_cpu_s: f64,
    system: SystemCpu,
    gateway_rss: Option<u64>,
    gateway_threads: BTreeMap<String, u64>,
}

/// A measured phase with its context.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseRun {
    id: String,
    target: Target,
    mode: Mode,
    concurrency: usize,
    store: bool,
    load: LoadResult,
    wall_s: f64,
    gateway_cpu_s: f64,
    /// Gateway CPU time / every request of the phase (warm-up included).
    gateway_cpu_us_per_request: Option<f64>,
    /// One clock tick divided by the requests: the precision of the above.
    gateway_cpu_resolution_us: Option<f64>,
    /// Gateway CPU time / wall time, in % of one core.
    gateway_core_pct: f64,
    /// The same per gateway thread name (`main`; unnamed threads carry
    /// the process name `maniac`), threads under 0.5 % left out.
    gateway_threads_pct: BTreeMap<String, f64>,
    upstream_cpu_s: f64,
    load_cpu_s: f64,
    /// (upstream + load generator) CPU / wall, in % of one core.
    client_core_pct: f64,
    /// CPU used by other processes during the phase, % of one core.
    foreign_cpu_pct: f64,
    /// Interrupt (loopback networking) and hypervisor steal time, %.
    irq_pct: f64,
    steal_pct: f64,
    gateway_rss_before_kib: Option<u64>,
    gateway_rss_after_kib: Option<u64>,
    /// Runs of this phase (re-run when disturbed); the kept one is the
    /// least disturbed.
    attempts: usize,
    foreign_cpu_pct_per_attempt: Vec<f64>,
}

/// Open-streams measurement.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamsRun {
    requested: usize,
    attempted: usize,
    limited_by: Option<String>,
    opened: usize,
    failed: usize,
    dropped_while_held: usize,
    error_samples: Vec<String>,
    open_s: f64,
    rss_before_kib: Option<u64>,
    rss_open_kib: Option<u64>,
    peak_rss_kib: Option<u64>,
    rss_after_close_kib: Option<u64>,
    kib_per_stream: Option<f64>,
    fds_before: Option<usize>,
    fds_open: Option<usize>,
    fds_after_close: Option<usize>,
    /// Until the gateway's fds were back near `fds_before`.
    release_s: Option<f64>,
}

/// Everything running during a benchmark.
struct Bench {
    settings: Settings,
    xtask_bin: PathBuf,
    /// Where the release binaries are.
    release: PathBuf,
    /// This run's temporary directory.
    tmp: PathBuf,
    pinned: bool,
    tck: f64,
    gateway: Guard,
    gateway_addr: SocketAddr,
    gateway_stderr: LogFile,
    upstream: Guard,
    upstream_addr: SocketAddr,
    upstream_url: String,
    key: String,
}

/// A gateway started by the bench.
struct Gateway {
    proc: Guard,
    addr: SocketAddr,
    log: LogFile,
    /// The key it created for organization "default" (fresh database),
    /// read from its key file.
    key: Option<String>,
}

/// Starts `maniac serve` on a free port (pinned to `cpu`), logging at its
/// default level into `log`, and waits until `/readyz` answers.
fn start_gateway(
    name: &'static str,
    bin: &Path,
    cpu: Option<u32>,
    database_url: &str,
    config: &Path,
    log: PathBuf,
) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let mut cmd = command(bin, cpu);
    cmd.arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(database_url)
        .arg("--config")
        .arg(config)
        .env_remove("MANIAC_LOG")
        .env_remove("MANIAC_INTERNAL_KEY")
        .env_remove("MANIAC_LISTEN")
        .env_remove("MANIAC_DATABASE_URL")
        .env_remove("MANIAC_CONFIG");
    // A fresh store's key goes to a file (stdout is a pipe): beside a
    // SQLite file, else in the working directory, the bench's temp dir.
    let workdir = log.parent().context("log dir")?.to_path_buf();
    cmd.current_dir(&workdir);
    let key_file =
        workdir.join(maniac_server::initial_key::path_for(database_url));
    let log = LogFile(log);
    let file = std::fs::File::create(&log.0).context("log file")?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let out = child.stdout.take();
    let mut proc = Guard { name, child };
    let rx = read_lines(out.context("stdout")?, Tail::default());
    let lines = wait_for_line(&rx, &mut proc, Duration::from_secs(60), |l| {
        l.starts_with("Maniac gateway listening on ")
    })
    .map_err(|e| anyhow::anyhow!("{e}\n{}", log.lines().0.join("\n")))?;
    let key = lines
        .iter()
        .any(|l| l.starts_with("Created organization"))
        .then(|| std::fs::read_to_string(&key_file))
        .transpose()
        .with_context(|| format!("reading {}", key_file.display()))?
        .map(|k| k.trim().to_string());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        match http_once(addr, "GET", "/readyz", None, "") {
            Ok((200, _)) => break,
            _ if Instant::now() > ready_by => {
                bail!("{name}: /readyz never said 200")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Ok(Gateway { proc, addr, log, key })
}

fn command(bin: &Path, cpu: Option<u32>) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(bin);
            cmd
        }
        None => Command::new(bin),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Whether the gateway can go on CPU 0 and the rest on CPU 1.
fn pinning() -> Result<(), String> {
    if !procfs::on_path("taskset") {
        return Err("taskset not found".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Err(format!("only {cpus} CPU available"));
    }
    for cpu in ["0", "1"] {
        let ok = Command::new("taskset")
            .args(["-c", cpu, "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot run on CPU {cpu}"));
        }
    }
    Ok(())
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).context("workspace root")?;
    let root = std::env::current_dir()?;
    let settings = Settings::new(args.quick);
    let only: Vec<String> =
        args.only.iter().map(|o| o.replace('-', "_")).collect();
    for o in &only {
        let known = ["open_streams", background::ALL, websocket::ALL]
            .iter()
            .chain(background::IDS)
            .any(|id| id == o)
            || phase_list(true).iter().any(|p| p.id == o);
        if !known {
            bail!("--only: no phase {o:?}");
        }
    }

    eprintln!("==> building release binaries (maniac, fake-upstream, xtask)");
    let status = cargo()
        .args([
            "build",
            "--release",
            "-p",
            "maniac-server",
            "--bin",
            "maniac",
            "-p",
            "maniac-tests",
            "--bin",
            "fake-upstream",
            "-p",
            "xtask",
            "--bin",
            "xtask",
        ])
        .status()
        .context("starting cargo build")?;
    if !status.success() {
        bail!("release build failed");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    let release = target_dir.join("release");
    let out_dir = args.out.clone().unwrap_or_else(|| target_dir.join("bench"));

    let (nofile_soft, nofile_hard) = procfs::raise_nofile();
    let pin = pinning();
    let pinned = pin.is_ok();
    let pin_note = match &pin {
        Ok(()) => "gateway on CPU 0; upstream and load generator on CPU 1 \
                   (taskset)"
            .to_string(),
        Err(why) => format!("not used ({why})"),
    };
    eprintln!("==> CPU pinning: {pin_note}");

    // Declared first, dropped last: after the processes using it.
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "maniac-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )));
    std::fs::create_dir_all(&tmp.0).context("temp dir")?;

    // The fake upstream.
    let mut cmd = command(&release.join("fake-upstream"), pinned.then_some(1));
    cmd.args(["--listen", "127.0.0.1:0"]);
    if pinned {
        cmd.arg("--single-thread");
    }
    let upstream_stderr = Tail::default();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting fake-upstream")?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let mut upstream = Guard { name: "fake-upstream", child };
    let rx = read_lines(out.context("stdout")?, Tail::default());
    read_lines(err.context("stderr")?, upstream_stderr.clone());
    let lines =
        wait_for_line(&rx, &mut upstream, Duration::from_secs(20), |l| {
            l.starts_with("listening on ")
        })?;
    let upstream_url = lines
        .last()
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap_or_default()
        .to_string();
    let upstream_addr: SocketAddr = upstream_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .parse()
        .with_context(|| format!("upstream address in {upstream_url:?}"))?;

    // The gateway, on a fresh SQLite database.
    let config = tmp.0.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.fake]\nkind = \"openai-chat\"\nbase_url = \
             \"{upstream_url}\"\n\n[background]\nworkers = 64\n"
        ),
    )?;
    let db = tmp.0.join("bench.db");
    let gw = start_gateway(
        "maniac",
        &release.join("maniac"),
        pinned.then_some(0),
        &format!("sqlite://{}", db.display()),
        &config,
        tmp.0.join("gateway.log"),
    )?;
    let key = gw
        .key
        .context("the gateway printed no API key (database not fresh?)")?;
    let mut bench = Bench {
        settings: settings.clone(),
        xtask_bin: release.join("xtask"),
        release: release.clone(),
        tmp: tmp.0.clone(),
        pinned,
        tck: procfs::clock_ticks(),
        gateway: gw.proc,
        gateway_addr: gw.addr,
        gateway_stderr: gw.log,
        upstream,
        upstream_addr,
        upstream_url,
        key,
    };
    bench.smoke()?;

    let gateway_nofile = procfs::nofile_limits(bench.gateway.pid());
    let gateway_rss_start = procfs::rss_kib(bench.gateway.pid());
    let idle_pct = bench.idle_cpu_pct(if args.quick { 300 } else { 1000 });
    eprintln!(
        "==> gateway pid {} (RSS {} KiB, idle CPU {idle_pct:.1} %), \
         upstream pid {}",
        bench.gateway.pid(),
        gateway_rss_start.unwrap_or(0),
        bench.upstream.pid()
    );

    let selected = |id: &str| {
        only.is_empty()
            || only.iter().any(|o| {
                o == id
                    || (o == background::ALL && id.starts_with("background"))
                    || (o == websocket::ALL && websocket::IDS.contains(&id))
            })
    };
    let phases = phase_list(pinned);
    let mut runs = Vec::new();
    for spec in phases.iter().filter(|p| selected(p.id)) {
        runs.push(bench.measure(spec)?);
    }
    let mut streams = Vec::new();
    if selected("open_streams") {
        for &n in &settings.open_streams {
            streams.push(bench.open_streams(n)?);
        }
    }
    let mut backgrounds = Vec::new();
    for id in background::IDS {
        if selected(id) {
            backgrounds.push(bench.background(id)?);
        }
    }
    let gateway_rss_end = procfs::rss_kib(bench.gateway.pid());
    let (stderr_tail, stderr_lines) = bench.gateway_stderr.lines();

    let env = json!({
        "mode": if args.quick { "quick" } else { "full" },
        "settings": settings,
        "pinning": pin_note,
        "pinned": pinned,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "nofile": {"bench_soft": nofile_soft, "bench_hard": nofile_hard,
                   "gateway": gateway_nofile.map(|(s, h)| json!({"soft": s, "hard": h}))},
        "clock_ticks": bench.tck,
        "gateway_idle_cpu_pct": idle_pct,
        "gateway_rss_start_kib": gateway_rss_start,
        "gateway_rss_end_kib": gateway_rss_end,
        "gateway_stderr_lines": stderr_lines,
        "gateway_stderr_tail": stderr_tail.iter().rev().take(10).rev().collect::<Vec<_>>(),
        "upstream_stderr_lines": upstream_stderr.lines().1,
        "git": git_describe(),
        "load_generator": "xtask bench-load (release), hyper HTTP/1.1 client \
                           (tokio-tungstenite for WebSocket mode), \
                           current-thread tokio runtime, one keep-alive \
                           connection per concurrent client",
    });
    let failed = background::failures(&backgrounds);
    let rep = report::Report::new(env, runs, streams, backgrounds);
    println!("{}", rep.table());
    let stamp = report::timestamp();
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("creating {}", out_dir.display()))?;
    let text = serde_json::to_string_pretty(&rep.json(&stamp))?;
    let file = out_dir.join(format!("bench-{stamp}.json"));
    std::fs::write(&file, &text)?;
    std::fs::write(out_dir.join("latest.json"), &text)?;
    println!("results: {} (and latest.json)", file.display());
    drop(bench);
    drop(tmp);
    if !failed.is_empty() {
        bail!("background phase failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// The phases in order. When pinned, `json_c1_xcore` measures the upstream
/// directly with the client on the gateway's CPU: the cost of a round trip
/// across cores, which the gateway path pays twice (client to gateway,
/// gateway to upstream) while the direct path pays it never.
fn phase_list(pinned: bool) -> Vec<Spec> {
    use Mode::{Json, Stream};
    use Target::{Chat, Direct, Gateway};
    let p = |id, target, mode, concurrency, store| Spec {
        id,
        target,
        mode,
        concurrency,
        store,
        client_cpu: None,
    };
    let mut xcore = p("json_c1_xcore", Direct, Json, 1, false);
    xcore.client_cpu = Some(0);
    let mut phases = vec![
        p("json_c1", Direct, Json, 1, false),
        p("json_c1", Gateway, Json, 1, false),
        p("json_c1", Chat, Json, 1, false),
        p("json_c32", Direct, Json, 32, false),
        p("json_c32", Gateway, Json, 32, false),
        p("json_c32", Chat, Json, 32, false),
        p("json_store_c32", Gateway, Json, 32, true),
        p("stream_c1", Direct, Stream, 1, false),
        p("stream_c1", Gateway, Stream, 1, false),
        p("stream_c1", Chat, Stream, 1, false),
        p("stream_c64", Direct, Stream, 64, false),
        p("stream_c64", Gateway, Stream, 64, false),
    ];
    if pinned {
        phases.insert(2, xcore);
    }
    phases.extend(websocket::phases());
    phases
}

fn git_describe() -> Option<String> {
    let out = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn request_body(
    target: Target,
    mode: Mode,
    store: bool,
    input: &str,
) -> String {
    let stream = mode != Mode::Json;
    match target {
        Target::Gateway if stream => json!({
            "model": "fake/m", "input": input, "store": store, "stream": true
        }),
        Target::Gateway => {
            json!({"model": "fake/m", "input": input, "store": store})
        }
        Target::Websocket => json!({
            "type": "response.create",
            "model": "fake/m",
            "input": input,
            "store": store,
        }),
        Target::Chat => json!({
            "model": "fake/m",
            "messages": [{"role": "user", "content": input}],
            "stream": stream,
            "store": store,
        }),
        Target::Direct => json!({
            "model": "m",
            "messages": [{"role": "user", "content": input}],
            "stream": stream,
        }),
    }
    .to_string()
}

fn path(target: Target) -> &'static str {
    match target {
        Target::Gateway | Target::Websocket => "/v1/responses",
        Target::Direct | Target::Chat => "/v1/chat/completions",
    }
}

impl Bench {
    fn addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Gateway | Target::Chat | Target::Websocket => {
                self.gateway_addr
            }
            Target::Direct => self.upstream_addr,
        }
    }

    /// One request each way before measuring, for a clear error early.
    fn smoke(&mut self) -> anyhow::Result<()> {
        for target in [Target::Direct, Target::Gateway, Target::Chat] {
            let body = request_body(target, Mode::Json, false, "hi");
            let key = target.is_gateway().then_some(self.key.as_str());
            let (status, text) =
                http_once(self.addr(target), "POST", path(target), key, &body)
                    .with_context(|| format!("smoke request ({target:?})"))?;
            if status != 200 || !text.contains("You said: hi") {
                bail!("smoke request ({target:?}): HTTP {status}\n{text}");
            }
        }
        websocket::smoke(self.gateway_addr, &self.key)
    }

    fn idle_cpu_pct(&self, ms: u64) -> f64 {
        let pid = self.gateway.pid();
        let (t0, c0) = (Instant::now(), procfs::cpu_ticks(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(ms));
        let c1 = procfs::cpu_ticks(pid).unwrap_or(0);
        (c1 - c0) as f64 / self.tck / t0.elapsed().as_secs_f64() * 100.0
    }

    fn snap(&self) -> Snap {
        Snap {
            at: Instant::now(),
            gateway_cpu: procfs::cpu_ticks(self.gateway.pid()).unwrap_or(0),
            upstream_cpu: procfs::cpu_ticks(self.upstream.pid()).unwrap_or(0),
            self_cpu_s: procfs::self_cpu_s(),
            system: procfs::system_cpu().unwrap_or_default(),
            gateway_rss: procfs::rss_kib(self.gateway.pid()),
            gateway_threads: procfs::thread_ticks(self.gateway.pid()),
        }
    }

    /// Runs `xtask bench-load` once and parses its result.
    fn run_load(
        &self,
        target: Target,
        cpu: Option<u32>,
        args: &[String],
        timeout: Duration,
    ) -> anyhow::Result<LoadResult> {
        let key = target.is_gateway().then_some(self.key.as_str());
        let mut all =
            vec!["--path".to_string(), path(target).into(), "--target".into()];
        all.push(format!("{target:?}").to_lowercase());
        all.extend_from_slice(args);
        self.run_load_at(self.addr(target), key, cpu, &all, timeout)
    }

    /// Runs `xtask bench-load` against `addr` (on the client CPU unless
    /// `cpu` says otherwise), with `key` if any, and parses its result.
    fn run_load_at(
        &self,
        addr: SocketAddr,
        key: Option<&str>,
        cpu: Option<u32>,
        args: &[String],
        timeout: Duration,
    ) -> anyhow::Result<LoadResult> {
        let cpu = if self.pinned { cpu.or(Some(1)) } else { None };
        let mut cmd = command(&self.xtask_bin, cpu);
        cmd.arg("bench-load")
            .args(["--addr", &addr.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match key {
            Some(k) => cmd.env(KEY_ENV, k),
            None => cmd.env_remove(KEY_ENV),
        };
        let mut child = cmd.spawn().context("starting bench-load")?;
        let mut stdout = child.stdout.take().context("stdout")?;
        let mut guard = Guard { name: "bench-load", child };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            let _ = tx.send(s);
        });
        let text = rx
            .recv_timeout(timeout)
            .map_err(|_| anyhow::anyhow!("bench-load ran over {timeout:?}"))?;
        let status = guard.child.wait()?;
        if !status.success() {
            bail!("bench-load failed: {status}");
        }
        serde_json::from_str(text.trim())
            .with_context(|| format!("bench-load printed {text:?}"))
    }

    /// Measures one phase, re-running it when other processes disturbed
    /// it (full mode), keeping the least disturbed run.
    fn measure(&mut self, spec: &Spec) -> anyhow::Result<PhaseRun> {
        let s = &self.settings;
        let mut best: Option<PhaseRun> = None;
        let mut foreign = Vec::new();
        for attempt in 0..=s.reruns {
            if let Some(e) = self.gateway.exited() {
                bail!("{e}\n{}", self.gateway_stderr.lines().0.join("\n"));
            }
            let run = self.measure_once(spec)?;
            foreign.push(run.foreign_cpu_pct);
            eprintln!(
                "    {:<15} {:<9} {:>9.0} req/s  p50 {:>8.1} µs  errors {}  \
                 gateway {:>5.1} % core  foreign {:>5.1} %{}",
                spec.id,
                format!("{:?}", spec.target).to_lowercase(),
                run.load.rps,
                run.load
                    .first_delta
                    .as_ref()
                    .or(run.load.latency.as_ref())
                    .map_or(0.0, |l| l.p50_us),
                run.load.errors,
                run.gateway_core_pct,
                run.foreign_cpu_pct,
                if attempt > 0 { " (re-run)" } else { "" },
            );
            let noisy = run.foreign_cpu_pct > s.noisy_pct;
            if best
                .as_ref()
                .is_none_or(|b| run.foreign_cpu_pct < b.foreign_cpu_pct)
            {
                best = Some(run);
            }
            if !noisy {
                break;
            }
        }
        let mut best = best.context("no run")?;
        best.attempts = foreign.len();
        best.foreign_cpu_pct_per_attempt = foreign;
        Ok(best)
    }

    fn measure_once(&self, spec: &Spec) -> anyhow::Result<PhaseRun> {
        let s = &self.settings;
        let mut args = vec![
            "--mode".to_string(),
            format!("{:?}", spec.mode).to_lowercase(),
            "--body".into(),
            request_body(spec.target, spec.mode, spec.store, "hi"),
            "--concurrency".into(),
            spec.concurrency.to_string(),
            "--duration-ms".into(),
            s.duration_ms.to_string(),
            "--warmup-ms".into(),
            s.warmup_ms.to_string(),
        ];
        if spec.mode == Mode::Json || spec.target == Target::Websocket {
            args.extend(["--expect".into(), "You said: hi".into()]);
        }
        if spec.store {
            args.push("--verify-stored".into());
        }
        let timeout =
            Duration::from_millis(s.warmup_ms + s.duration_ms + 30_000);
        let before = self.snap();
        let load =
            self.run_load(spec.target, spec.client_cpu, &args, timeout)?;
        let after = self.snap();

        let wall = (after.at - before.at).as_secs_f64();
        let tck = self.tck;
        let gw = (after.gateway_cpu - before.gateway_cpu) as f64 / tck;
        let up = (after.upstream_cpu - before.upstream_cpu) as f64 / tck;
        let me = after.self_cpu_s - before.self_cpu_s;
        let busy = (after.system.busy - before.system.busy) as f64 / tck;
        let irq = (after.system.irq - before.system.irq) as f64 / tck;
        let steal = (after.system.steal - before.system.steal) as f64 / tck;
        let pct = |x: f64| if wall > 0.0 { x / wall * 100.0 } else { 0.0 };
        let foreign = (busy - gw - up - load.cpu_s - me).max(0.0);
        let threads = after
            .gateway_threads
            .iter()
            .map(|(name, &t)| {
                let t0 = before.gateway_threads.get(name).copied().unwrap_or(0);
                (name.clone(), pct(t.saturating_sub(t0) as f64 / tck))
            })
            .filter(|(_, p)| *p >= 0.5)
            .collect();
        let per_request = |x: f64| {
            (spec.target.is_gateway() && load.total_requests > 0)
                .then(|| x * 1e6 / load.total_requests as f64)
        };
        Ok(PhaseRun {
            id: spec.id.to_string(),
            target: spec.target,
            mode: spec.mode,
            concurrency: spec.concurrency,
            store: spec.store,
            wall_s: wall,
            gateway_cpu_s: gw,
            gateway_cpu_us_per_request: per_request(gw),
            gateway_cpu_resolution_us: per_request(1.0 / tck),
            gateway_core_pct: pct(gw),
            gateway_threads_pct: threads,
            upstream_cpu_s: up,
            load_cpu_s: load.cpu_s,
            client_core_pct: pct(up + load.cpu_s),
            foreign_cpu_pct: pct(foreign),
            irq_pct: pct(irq),
            steal_pct: pct(steal),
            gateway_rss_before_kib: before.gateway_rss,
            gateway_rss_after_kib: after.gateway_rss,
            attempts: 1,
            foreign_cpu_pct_per_attempt: Vec::new(),
            load,
        })
    }

    /// Opens `n` streams through the gateway against a slow upstream,
    /// samples the gateway's RSS once all are open, closes them.
    fn open_streams(&mut self, n: usize) -> anyhow::Result<StreamsRun> {
        let gw = self.gateway.pid();
        let mut r = StreamsRun {
            requested: n,
            fds_before: procfs::fd_count(gw),
            rss_before_kib: procfs::rss_kib(gw),
            ..Default::default()
        };
        // Each stream holds two sockets in the gateway (client and
        // upstream) and one in the load generator and in the upstream.
        let reserve = 64;
        let room = |pid: u32, per_stream: usize| -> Option<usize> {
            let (soft, _) = procfs::nofile_limits(pid)?;
            let used = procfs::fd_count(pid)?;
            Some((soft? as usize).saturating_sub(used + reserve) / per_stream)
        };
        let mut attempted = n;
        let mut limits = Vec::new();
        for (who, pid, per) in [
            ("gateway", gw, 2),
            ("fake upstream", self.upstream.pid(), 1),
            ("load generator", std::process::id(), 1),
        ] {
            if let Some(room) = room(pid, per)
                && room < attempted
            {
                attempted = room;
                let (soft, _) =
                    procfs::nofile_limits(pid).unwrap_or((None, None));
                limits.push(format!(
                    "{who}: RLIMIT_NOFILE {} allows {room} streams \
                     ({per} fd per stream, {} fds in use)",
                    soft.unwrap_or(0),
                    procfs::fd_count(pid).unwrap_or(0)
                ));
            }
        }
        if !limits.is_empty() {
            r.limited_by = Some(limits.join("; "));
        }
        r.attempted = attempted;
        eprintln!(
            "==> opening {attempted} streams{}",
            r.limited_by
                .as_ref()
                .map(|l| format!(" (of {n}: {l})"))
                .unwrap_or_default()
        );
        if attempted == 0 {
            return Ok(r);
        }
        let args = vec![
            "--mode".to_string(),
            "open".into(),
            "--body".into(),
            request_body(Target::Gateway, Mode::Stream, false, "SLOW:60000 hi"),
            "--count".into(),
            attempted.to_string(),
            "--open-timeout-ms".into(),
            self.settings.open_timeout_ms.to_string(),
            "--rss-pid".into(),
            gw.to_string(),
        ];
        let timeout =
            Duration::from_millis(self.settings.open_timeout_ms + 60_000);
        let load = self.run_load(Target::Gateway, None, &args, timeout)?;
        let closed_at = Instant::now();
        let open = load.open.clone().unwrap_or_default();
        r.opened = open.opened;
        r.failed = open.failed;
        r.dropped_while_held = open.dropped_while_held;
        r.error_samples = load.error_samples.clone();
        r.open_s = open.open_s;
        r.rss_open_kib = open.rss_kib;
        r.peak_rss_kib = open.peak_rss_kib;
        r.fds_open = open.fds;
        if let (Some(a), Some(b)) = (r.rss_open_kib, r.rss_before_kib)
            && r.opened > 0
        {
            r.kib_per_stream = Some((a as f64 - b as f64) / r.opened as f64);
        }
        // Wait (bounded) for the gateway to notice the clients left and
        // release its sockets.
        let base = r.fds_before.unwrap_or(0) + 16;
        let deadline = closed_at + Duration::from_secs(30);
        loop {
            let fds = procfs::fd_count(gw);
            if fds.is_some_and(|f| f <= base) {
                r.release_s = Some(closed_at.elapsed().as_secs_f64());
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        r.fds_after_close = procfs::fd_count(gw);
        r.rss_after_close_kib = procfs::rss_kib(gw);
        eprintln!(
            "    opened {}/{} in {:.2} s, gateway RSS {} KiB -> {} KiB, \
             fds {} -> {}, released in {}",
            r.opened,
            attempted,
            r.open_s,
            r.rss_before_kib.unwrap_or(0),
            r.rss_open_kib.unwrap_or(0),
            r.fds_before.unwrap_or(0),
            r.fds_open.unwrap_or(0),
            r.release_s.map_or("> 30 s".into(), |s| format!("{s:.2} s")),
        );
        Ok(r)
    }
}
