//! The benchmark's table and JSON: per metric the direct value, the
//! gateway value, the overhead and, where there is one, the target.

use serde::Serialize;
use serde_json::{Value, json};

use super::background::{self, BackgroundRun};
use super::load::{Stats, Target};
use super::websocket::Section;
use super::{PhaseRun, StreamsRun};

/// Added p50 latency at c=1 (µs).
const ADDED_P50_US: f64 = 100.0;
/// Requests per second at c=32.
const MIN_RPS_C32: f64 = 10_000.0;
/// Gateway CPU per request (µs).
const MAX_CPU_US: f64 = 50.0;
/// Added time to first delta at c=1 (µs).
const ADDED_FIRST_DELTA_US: f64 = 200.0;
/// Stored responses per second at c=32.
const MIN_STORED_RPS: f64 = 5_000.0;
/// Open streams and the RSS they must fit in (MiB).
const STREAMS: usize = 10_000;
const MAX_STREAMS_RSS_MIB: f64 = 500.0;

/// One line of the table.
#[derive(Clone, Debug, Default, Serialize)]
struct Row {
    metric: String,
    direct: String,
    gateway: String,
    overhead: String,
    target: String,
    result: String,
}

/// A target and whether it was met.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Check {
    pub(super) name: &'static str,
    pub(super) target: String,
    pub(super) value: Option<f64>,
    pub(super) unit: &'static str,
    pub(super) pass: Option<bool>,
    pub(super) note: Option<String>,
}

/// Everything measured.
pub struct Report {
    env: Value,
    runs: Vec<PhaseRun>,
    streams: Vec<StreamsRun>,
    background: Vec<BackgroundRun>,
    rows: Vec<Row>,
    websocket: Section,
    checks: Vec<Check>,
    notes: Vec<String>,
}

pub(super) fn us(x: f64) -> String {
    if x.abs() >= 10_000_000.0 {
        format!("{:.2} s", x / 1e6)
    } else if x.abs() >= 10_000.0 {
        format!("{:.2} ms", x / 1000.0)
    } else {
        format!("{x:.1} µs")
    }
}

pub(super) fn signed_us(x: f64) -> String {
    if x >= 0.0 { format!("+{}", us(x)) } else { format!("-{}", us(-x)) }
}

pub(super) fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(super) fn verdict(pass: Option<bool>, errors: bool) -> String {
    match (pass, errors) {
        (_, true) => "FAIL (errors)".into(),
        (Some(true), _) => "PASS".into(),
        (Some(false), _) => "FAIL".into(),
        (None, _) => "n/a".into(),
    }
}

impl Report {
    /// Builds the rows and checks.
    pub fn new(
        env: Value,
        runs: Vec<PhaseRun>,
        streams: Vec<StreamsRun>,
        background: Vec<BackgroundRun>,
    ) -> Report {
        let mut r = Report {
            env,
            runs,
            streams,
            background,
            rows: Vec::new(),
            websocket: Section::default(),
            checks: Vec::new(),
            notes: Vec::new(),
        };
        r.build();
        r.websocket = Section::new(&r.runs);
        r.checks.extend(r.websocket.checks.iter().cloned());
        r
    }

    fn run(&self, id: &str, target: Target) -> Option<&PhaseRun> {
        self.runs.iter().find(|r| r.id == id && r.target == target)
    }

    fn errors(&self, id: &str) -> bool {
        self.runs.iter().any(|r| r.id == id && r.load.errors > 0)
    }

    fn row(&mut self, metric: impl Into<String>, cells: [String; 5]) {
        let [direct, gateway, overhead, target, result] = cells;
        self.rows.push(Row {
            metric: metric.into(),
            direct,
            gateway,
            overhead,
            target,
            result,
        });
    }

    /// A latency row: direct, gateway, gateway minus direct.
    fn latency_row(
        &mut self,
        metric: &str,
        id: &str,
        pick: fn(&PhaseRun) -> Option<&Stats>,
        pct: fn(&Stats) -> f64,
        target: Option<(&'static str, f64)>,
    ) {
        self.latency_row_via(metric, id, Target::Gateway, pick, pct, target)
    }

    /// A latency row of the gateway endpoint `via`.
    fn latency_row_via(
        &mut self,
        metric: &str,
        id: &str,
        via: Target,
        pick: fn(&PhaseRun) -> Option<&Stats>,
        pct: fn(&Stats) -> f64,
        target: Option<(&'static str, f64)>,
    ) {
        let d = self.run(id, Target::Direct).and_then(pick).map(pct);
        let g = self.run(id, via).and_then(pick).map(pct);
        let added = d.zip(g).map(|(d, g)| g - d);
        let errors = self.errors(id);
        let (target_s, result) = match target {
            Some((name, max)) => {
                let pass = added.map(|a| a <= max);
                self.checks.push(Check {
                    name,
                    target: format!("added ≤ {}", us(max)),
                    value: added,
                    unit: "µs",
                    pass: pass.map(|p| p && !errors),
                    note: errors.then(|| "the phase had errors".into()),
                });
                (format!("added ≤ {}", us(max)), verdict(pass, errors))
            }
            None => (String::new(), String::new()),
        };
        self.row(
            metric,
            [
                d.map(us).unwrap_or_default(),
                g.map(us).unwrap_or_default(),
                added.map(signed_us).unwrap_or_default(),
                target_s,
                result,
            ],
        );
    }

    /// A throughput row: direct, gateway, gateway / direct.
    fn rps_row(
        &mut self,
        metric: &str,
        id: &str,
        unit: &str,
        target: Option<(&'static str, f64)>,
    ) {
        self.rps_row_via(metric, id, Target::Gateway, unit, target)
    }

    /// A throughput row of the gateway endpoint `via`.
    fn rps_row_via(
        &mut self,
        metric: &str,
        id: &str,
        via: Target,
        unit: &str,
        target: Option<(&'static str, f64)>,
    ) {
        let d = self.run(id, Target::Direct).map(|r| r.load.rps);
        let g = self.run(id, via).map(|r| r.load.rps);
        let errors = self.errors(id);
        let (target_s, result) = match target {
            Some((name, min)) => {
                let pass = g.map(|g| g >= min);
                self.checks.push(Check {
                    name,
                    target: format!("≥ {}{unit}", thousands(min)),
                    value: g,
                    unit: "per second",
                    pass: pass.map(|p| p && !errors),
                    note: errors.then(|| "the phase had errors".into()),
                });
                (format!("≥ {}{unit}", thousands(min)), verdict(pass, errors))
            }
            None => (String::new(), String::new()),
        };
        self.row(
            metric,
            [
                d.map(|d| format!("{}{unit}", thousands(d)))
                    .unwrap_or("—".into()),
                g.map(|g| format!("{}{unit}", thousands(g)))
                    .unwrap_or_default(),
                d.zip(g)
                    .map(|(d, g)| format!("{:.2}×", g / d))
                    .unwrap_or_default(),
                target_s,
                result,
            ],
        );
    }

    fn build(&mut self) {
        let p50: fn(&Stats) -> f64 = |s| s.p50_us;
        let p99: fn(&Stats) -> f64 = |s| s.p99_us;
        let lat: fn(&PhaseRun) -> Option<&Stats> = |r| r.load.latency.as_ref();
        let ttfb: fn(&PhaseRun) -> Option<&Stats> = |r| r.load.ttfb.as_ref();
        let first: fn(&PhaseRun) -> Option<&Stats> =
            |r| r.load.first_delta.as_ref();

        // a. Non-streaming, store:false.
        self.latency_row(
            "non-stream c=1 p50",
            "json_c1",
            lat,
            p50,
            Some(("added p50 latency at c=1", ADDED_P50_US)),
        );
        self.latency_row("non-stream c=1 p99", "json_c1", lat, p99, None);
        let same = self.run("json_c1", Target::Direct).and_then(lat).map(p50);
        let cross =
            self.run("json_c1_xcore", Target::Direct).and_then(lat).map(p50);
        if let Some(cross) = cross {
            self.row(
                "direct c=1 p50, client on CPU 0 (calibration)",
                [
                    us(cross),
                    String::new(),
                    same.map(|s| {
                        format!("{} vs same CPU", signed_us(cross - s))
                    })
                    .unwrap_or_default(),
                    String::new(),
                    String::new(),
                ],
            );
            if let Some(s) = same {
                self.notes.push(format!(
                    "a request/response round trip across CPUs costs {} more \
                     than on one CPU here (json_c1_xcore); the gateway path \
                     makes two such round trips per request (client to \
                     gateway, gateway to upstream), the direct path none",
                    us(cross - s)
                ));
            }
        }
        self.rps_row("non-stream c=1 throughput", "json_c1", "/s", None);
        self.rps_row(
            "non-stream c=32 throughput",
            "json_c32",
            "/s",
            Some(("requests/s at c=32", MIN_RPS_C32)),
        );
        self.latency_row("non-stream c=32 p50", "json_c32", lat, p50, None);
        self.latency_row("non-stream c=32 p99", "json_c32", lat, p99, None);

        // b. Stored responses.
        let errors = self.errors("json_store_c32");
        if let Some(r) = self.run("json_store_c32", Target::Gateway).cloned() {
            let pass = Some(r.load.rps >= MIN_STORED_RPS);
            self.checks.push(Check {
                name: "stored responses/s at c=32",
                target: format!("≥ {}/s", thousands(MIN_STORED_RPS)),
                value: Some(r.load.rps),
                unit: "per second",
                pass: pass.map(|p| p && !errors),
                note: r.load.stored_check.clone(),
            });
            self.row(
                "store:true c=32 stored responses",
                [
                    "—".into(),
                    format!("{}/s", thousands(r.load.rps)),
                    String::new(),
                    format!("≥ {}/s", thousands(MIN_STORED_RPS)),
                    verdict(pass, errors),
                ],
            );
            for (name, f) in [("p50", p50), ("p99", p99)] {
                let v = r.load.latency.as_ref().map(f);
                let direct =
                    self.run("json_c32", Target::Gateway).and_then(lat).map(f);
                self.row(
                    format!("store:true c=32 {name}"),
                    [
                        "—".into(),
                        v.map(us).unwrap_or_default(),
                        v.zip(direct)
                            .map(|(v, d)| {
                                format!("{} vs store:false", signed_us(v - d))
                            })
                            .unwrap_or_default(),
                        String::new(),
                        String::new(),
                    ],
                );
            }
            if let Some(c) = &r.load.stored_check
                && !c.starts_with("ok")
            {
                self.notes.push(format!("store:true check: {c}"));
            }
        }

        // e. Gateway CPU per request.
        for (id, via, label) in [
            ("json_c1", Target::Gateway, "non-stream c=1"),
            ("json_c32", Target::Gateway, "non-stream c=32"),
            ("json_store_c32", Target::Gateway, "store:true c=32"),
            ("stream_c1", Target::Gateway, "stream c=1"),
            ("stream_c64", Target::Gateway, "stream c=64"),
            ("json_c1", Target::Chat, "chat non-stream c=1"),
            ("json_c32", Target::Chat, "chat non-stream c=32"),
            ("stream_c1", Target::Chat, "chat stream c=1"),
        ] {
            let Some(r) = self.run(id, via).cloned() else {
                continue;
            };
            let v = r.gateway_cpu_us_per_request;
            let (target, result) = if id == "json_c32" {
                let pass = v.map(|v| v <= MAX_CPU_US);
                let errors = r.load.errors > 0;
                self.checks.push(Check {
                    name: if via == Target::Chat {
                        "chat: gateway CPU per request (c=32)"
                    } else {
                        "gateway CPU per request (c=32, store:false)"
                    },
                    target: format!("≤ {}", us(MAX_CPU_US)),
                    value: v,
                    unit: "µs",
                    pass: pass.map(|p| p && !errors),
                    note: None,
                });
                (format!("≤ {}", us(MAX_CPU_US)), verdict(pass, errors))
            } else {
                (String::new(), String::new())
            };
            self.row(
                format!("gateway CPU/request {label}"),
                [
                    "—".into(),
                    cpu_cell(&r),
                    format!("core {:.0} % busy", r.gateway_core_pct),
                    target,
                    result,
                ],
            );
        }

        // Chat Completions to the same upstream, with the same targets.
        self.latency_row_via(
            "chat non-stream c=1 p50",
            "json_c1",
            Target::Chat,
            lat,
            p50,
            Some(("chat: added p50 latency at c=1", ADDED_P50_US)),
        );
        self.rps_row_via(
            "chat non-stream c=32 throughput",
            "json_c32",
            Target::Chat,
            "/s",
            Some(("chat: requests/s at c=32", MIN_RPS_C32)),
        );
        self.latency_row_via(
            "chat stream c=1 first delta p50",
            "stream_c1",
            Target::Chat,
            first,
            p50,
            Some((
                "chat: added time to first delta at c=1",
                ADDED_FIRST_DELTA_US,
            )),
        );

        // c. Streaming.
        self.latency_row(
            "stream c=1 first byte p50",
            "stream_c1",
            ttfb,
            p50,
            None,
        );
        self.latency_row(
            "stream c=1 first byte p99",
            "stream_c1",
            ttfb,
            p99,
            None,
        );
        self.latency_row(
            "stream c=1 first delta p50",
            "stream_c1",
            first,
            p50,
            Some(("added time to first delta at c=1", ADDED_FIRST_DELTA_US)),
        );
        self.latency_row(
            "stream c=1 first delta p99",
            "stream_c1",
            first,
            p99,
            None,
        );
        self.latency_row(
            "stream c=64 first byte p50",
            "stream_c64",
            ttfb,
            p50,
            None,
        );
        self.latency_row(
            "stream c=64 first byte p99",
            "stream_c64",
            ttfb,
            p99,
            None,
        );
        self.latency_row(
            "stream c=64 first delta p50",
            "stream_c64",
            first,
            p50,
            None,
        );
        self.latency_row(
            "stream c=64 first delta p99",
            "stream_c64",
            first,
            p99,
            None,
        );
        self.rps_row(
            "stream c=64 throughput",
            "stream_c64",
            " streams/s",
            None,
        );

        // d. Open streams.
        let streams = self.streams.clone();
        for (i, s) in streams.iter().enumerate() {
            let last = i + 1 == streams.len();
            let per = s
                .kib_per_stream
                .map(|k| format!("{:+.1} KiB/stream", k))
                .unwrap_or_default();
            let mut target = String::new();
            let mut result = String::new();
            if last {
                let problem = s.failed > 0 || s.dropped_while_held > 0;
                let (value, note) = match (s.rss_open_kib, s.kib_per_stream) {
                    (Some(rss), _) if s.opened >= STREAMS => {
                        (Some(rss as f64 / 1024.0), None)
                    }
                    (Some(rss), Some(per)) if s.opened > 0 => {
                        let missing = STREAMS.saturating_sub(s.opened) as f64;
                        (
                            Some(
                                (rss as f64 + per.max(0.0) * missing) / 1024.0,
                            ),
                            Some(format!(
                                "extrapolated from {} open streams{}",
                                s.opened,
                                s.limited_by
                                    .as_ref()
                                    .map(|l| format!(" (limited by {l})"))
                                    .unwrap_or_default()
                            )),
                        )
                    }
                    _ => (None, Some("no stream opened".into())),
                };
                let pass = value.map(|v| v <= MAX_STREAMS_RSS_MIB);
                target = format!(
                    "{} streams ≤ {MAX_STREAMS_RSS_MIB:.0} MiB",
                    thousands(STREAMS as f64)
                );
                result = verdict(pass, problem);
                if let (Some(v), Some(n)) = (value, &note) {
                    result =
                        format!("{result} ({v:.0} MiB {})", "extrapolated");
                    self.notes.push(format!("open streams: {n}"));
                }
                self.checks.push(Check {
                    name: "RSS with 10,000 open streams",
                    target: target.clone(),
                    value,
                    unit: "MiB",
                    pass: pass.map(|p| p && !problem),
                    note,
                });
            }
            self.row(
                format!(
                    "{} open streams: gateway RSS",
                    thousands(s.attempted as f64)
                ),
                [
                    "—".into(),
                    s.rss_open_kib.map(mib).unwrap_or_default(),
                    per,
                    target,
                    result,
                ],
            );
            if s.failed > 0
                || s.dropped_while_held > 0
                || s.opened < s.attempted
            {
                self.notes.push(format!(
                    "open streams ({}): {} opened, {} failed, {} dropped while \
                     held: {}",
                    s.attempted,
                    s.opened,
                    s.failed,
                    s.dropped_while_held,
                    s.error_samples.join(" | ")
                ));
            }
            if s.release_s.is_none() {
                self.notes.push(format!(
                    "open streams ({}): the gateway still held {} fds 30 s \
                     after the clients left (before: {})",
                    s.attempted,
                    s.fds_after_close.unwrap_or(0),
                    s.fds_before.unwrap_or(0)
                ));
            }
        }

        for r in &self.runs {
            if r.load.errors > 0 {
                self.notes.push(format!(
                    "{} ({:?}): {} errors, e.g. {}",
                    r.id,
                    r.target,
                    r.load.errors,
                    r.load.error_samples.join(" | ")
                ));
            }
            if r.foreign_cpu_pct > 20.0 {
                self.notes.push(format!(
                    "{} ({:?}): other processes used {:.0} % of a core during \
                     the phase ({} attempts): numbers may be disturbed",
                    r.id, r.target, r.foreign_cpu_pct, r.attempts
                ));
            }
        }
    }

    fn phase_table(&self) -> Vec<[String; 11]> {
        let mut rows = vec![
            [
                "phase",
                "target",
                "req/s",
                "errors",
                "gw CPU/req",
                "gw core",
                "client core",
                "irq",
                "foreign",
                "runs",
                "gateway threads (% of a core)",
            ]
            .map(String::from),
        ];
        for r in &self.runs {
            rows.push([
                r.id.clone(),
                format!("{:?}", r.target).to_lowercase(),
                thousands(r.load.rps),
                r.load.errors.to_string(),
                cpu_cell(r),
                format!("{:.0} %", r.gateway_core_pct),
                format!("{:.0} %", r.client_core_pct),
                format!("{:.0} %", r.irq_pct),
                format!("{:.0} %", r.foreign_cpu_pct),
                r.attempts.to_string(),
                threads(r),
            ]);
        }
        rows
    }

    /// The text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let env = &self.env;
        let s = &env["settings"];
        out.push_str(&format!(
            "\nManiac gateway benchmark ({} mode: {} ms warm-up + {} ms per \
             phase; git {})\nCPU pinning: {}\n\n",
            env["mode"].as_str().unwrap_or(""),
            s["warmup_ms"],
            s["duration_ms"],
            env["git"].as_str().unwrap_or("?"),
            env["pinning"].as_str().unwrap_or(""),
        ));
        if !self.runs.is_empty() || !self.streams.is_empty() {
            self.classic_table(&mut out);
        }
        out.push_str(&background::table(&self.background));
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }

    /// The direct-vs-gateway phases and the targets.
    fn classic_table(&self, out: &mut String) {
        let env = &self.env;
        let mut rows: Vec<[String; 6]> = vec![
            ["metric", "direct", "gateway", "overhead", "target", "result"]
                .map(String::from),
        ];
        // Rows of phases that did not run (`--only`) say nothing.
        let measured = |r: &&Row| {
            [&r.direct, &r.gateway].iter().any(|c| !c.is_empty() && *c != "—")
        };
        rows.extend(self.rows.iter().filter(measured).map(|r| {
            [
                r.metric.clone(),
                r.direct.clone(),
                r.gateway.clone(),
                r.overhead.clone(),
                r.target.clone(),
                r.result.clone(),
            ]
        }));
        if rows.len() > 1 {
            render(out, &rows);
        }
        out.push_str(&format!(
            "\nGateway RSS: {} at start, {} at the end; idle CPU {:.1} % of a \
             core. Overhead: gateway − direct for latencies, gateway / \
             direct for throughput.\n\nPer phase (CPU as % of one core over \
             the phase's wall time; gw CPU/req includes warm-up requests):\n",
            env["gateway_rss_start_kib"].as_u64().map(mib).unwrap_or_default(),
            env["gateway_rss_end_kib"].as_u64().map(mib).unwrap_or_default(),
            env["gateway_idle_cpu_pct"].as_f64().unwrap_or(0.0),
        ));
        render(out, &self.phase_table());
        out.push_str(&self.websocket.table());
        let count = |p: Option<bool>| {
            self.checks.iter().filter(|c| c.pass == p).count()
        };
        out.push_str(&format!(
            "\nTargets: {} met, {} missed, {} not measured.\n",
            count(Some(true)),
            count(Some(false)),
            count(None)
        ));
    }

    /// The JSON document.
    pub fn json(&self, stamp: &str) -> Value {
        json!({
            "timestamp": stamp,
            "environment": self.env,
            "targets": self.checks,
            "table": self.rows,
            "websocket_table": self.websocket.rows,
            "notes": self.notes,
            "phases": self.runs,
            "open_streams": self.streams,
            "background": self.background,
        })
    }
}

/// Gateway CPU per request, with its precision when that is coarse (one
/// clock tick over few requests).
pub(super) fn cpu_cell(r: &PhaseRun) -> String {
    match (r.gateway_cpu_us_per_request, r.gateway_cpu_resolution_us) {
        (Some(v), Some(res)) if res > v * 0.05 => {
            format!("{} ±{}", us(v), us(res))
        }
        (Some(v), _) => us(v),
        _ => "—".into(),
    }
}

/// The busiest gateway threads, e.g. `tokio-rt-worker 90, maniac 4`.
fn threads(r: &PhaseRun) -> String {
    if !r.target.is_gateway() {
        return String::new();
    }
    let mut t: Vec<_> = r.gateway_threads_pct.iter().collect();
    t.sort_by(|a, b| b.1.total_cmp(a.1));
    t.iter()
        .take(4)
        .map(|(n, p)| format!("{n} {p:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders rows of cells (the first row is the header) as columns.
pub(super) fn render<R: AsRef<[String]>>(out: &mut String, rows: &[R]) {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0usize; n];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.as_ref()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let r = r.as_ref();
        let mut line = String::new();
        for (j, (c, &w)) in r.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            // Text left-aligned, numbers right-aligned.
            if j == 0 || j + 1 == n || i == 0 || c.is_empty() {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize =
                widths.iter().sum::<usize>() + 2 * n.saturating_sub(1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
}

/// UTC `YYYYMMDDTHHMMSSZ`.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
