//! The background phases: background runs whose upstream streams many
//! small chunks, some of them followed live, measured by what each chunk
//! costs in the store (transactions, NOTIFYs, follower queries: the
//! counters every gateway logs at shutdown) and by how late followers see
//! it. `background_sqlite` runs one gateway; `background_postgres` runs two
//! replicas on a fresh database, creating runs on A and following on B.
//! Each phase starts its own gateways so their counters are the phase's.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::load::{BackgroundResult, LoadResult};
use super::postgres::PgDatabase;
use super::{Bench, Gateway, LogFile, procfs, report, start_gateway};

/// `--only background`: both phases.
pub const ALL: &str = "background";
/// The phases, in order.
pub const IDS: &[&str] = &["background_sqlite", "background_postgres"];

/// The size of a phase.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Size {
    runs: usize,
    followers: usize,
    chunks: usize,
    /// The upstream's pause before each chunk (ms).
    chunk_ms: u64,
}

impl Size {
    fn new(quick: bool) -> Size {
        if quick {
            Size { runs: 20, followers: 10, chunks: 50, chunk_ms: 3 }
        } else {
            Size { runs: 100, followers: 50, chunks: 200, chunk_ms: 3 }
        }
    }
}

/// The store counters one gateway logged at shutdown, and what it ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Replica {
    name: &'static str,
    run_writes: Option<u64>,
    notifies: Option<u64>,
    event_reads: Option<u64>,
    response_reads: Option<u64>,
    /// `background run started` lines in its log.
    runs_executed: usize,
    #[serde(skip)]
    executed: Vec<String>,
    cpu_s: f64,
    exit: String,
}

/// One background phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BackgroundRun {
    pub id: &'static str,
    size: Option<Size>,
    /// Why the phase did not run.
    pub skipped: Option<String>,
    database: Option<String>,
    replicas: Vec<Replica>,
    /// run_writes of every replica / runs.
    transactions_per_run: Option<f64>,
    /// NOTIFYs of every replica / runs.
    notifies_per_run: Option<f64>,
    /// (event_reads + response_reads) of the followers' gateway, minus the
    /// bench's own status polls there, / runs.
    follower_queries_per_run: Option<f64>,
    follower_queries_note: String,
    /// Followed runs executed by the followers' own replica (PostgreSQL),
    /// whose followers read the replica's memory, not the database.
    local_followers: Option<usize>,
    /// Gateway CPU (every replica) / (runs × chunks).
    gateway_cpu_us_per_chunk: Option<f64>,
    /// CPU used during the phase by everything but the bench's own
    /// processes (PostgreSQL included), % of one core.
    other_cpu_pct: Option<f64>,
    load: LoadResult,
    /// What went wrong (the phase fails when not empty).
    pub problems: Vec<String>,
}

impl BackgroundRun {
    fn bg(&self) -> Option<&BackgroundResult> {
        self.load.background.as_ref()
    }
}

/// The problems of every phase, prefixed with its id.
pub fn failures(runs: &[BackgroundRun]) -> Vec<String> {
    runs.iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.id)))
        .collect()
}

/// SIGTERMs a gateway and waits (bounded) for it to exit.
fn stop(gw: &mut Gateway, timeout: Duration) -> anyhow::Result<ExitStatus> {
    let pid = gw.proc.pid() as libc::pid_t;
    // SAFETY: kill(2) has no memory preconditions; the pid is our child's,
    // not yet reaped, so it cannot name another process.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        bail!(
            "SIGTERM to {}: {}",
            gw.proc.name,
            std::io::Error::last_os_error()
        );
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = gw.proc.child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not exit within {timeout:?} of SIGTERM",
                gw.proc.name
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `key=` in a log line (`tracing`'s `key=value` fields).
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Reads a stopped gateway's log: its `store counters` line and how many
/// runs it executed.
fn read_log(log: &LogFile, r: &mut Replica) -> Result<(), String> {
    let text = std::fs::read_to_string(&log.0)
        .map_err(|e| format!("reading {}: {e}", log.0.display()))?;
    r.executed = text
        .lines()
        .filter(|l| l.contains("background run started"))
        .filter_map(|l| {
            l.split_whitespace().find_map(|w| w.strip_prefix("response_id="))
        })
        .map(str::to_owned)
        .collect();
    r.runs_executed = r.executed.len();
    let line =
        text.lines().rev().find(|l| l.contains("store counters")).ok_or_else(
            || format!("{}: no `store counters` line in its log", r.name),
        )?;
    r.run_writes = field(line, "run_writes");
    r.notifies = field(line, "notifies");
    r.event_reads = field(line, "event_reads");
    r.response_reads = field(line, "response_reads");
    if r.run_writes.is_none() || r.notifies.is_none() {
        return Err(format!("{}: unreadable counters: {line}", r.name));
    }
    Ok(())
}

impl Bench {
    /// Runs one background phase (`background_sqlite` or
    /// `background_postgres`).
    pub(super) fn background(
        &self,
        id: &'static str,
    ) -> anyhow::Result<BackgroundRun> {
        let size = Size::new(self.settings.quick);
        let mut run =
            BackgroundRun { id, size: Some(size), ..Default::default() };
        let postgres = id == "background_postgres";
        eprintln!(
            "==> {id}: {} runs × {} chunks ({} ms apart), {} followers{} \
             ({} mode)",
            size.runs,
            size.chunks,
            size.chunk_ms,
            size.followers,
            if postgres { " on replica B" } else { "" },
            if self.settings.quick { "quick" } else { "full" },
        );
        // Declared before the gateways: dropped after them.
        let pg;
        let url = if postgres {
            match PgDatabase::create()? {
                Ok(db) => {
                    pg = db;
                    run.database = Some(pg.name.clone());
                    pg.url()
                }
                Err(why) => {
                    let note = format!(
                        "PostgreSQL unreachable at 127.0.0.1:5432 ({why}): \
                         skipped"
                    );
                    eprintln!("    {note}");
                    run.skipped = Some(note);
                    return Ok(run);
                }
            }
        } else {
            format!("sqlite://{}", self.tmp.join(format!("{id}.db")).display())
        };
        // Replica A has workers for every run at once; B, one (the
        // fewest there can be), so that nearly every run executes on A and
        // B's followers are remote ones.
        let config = |replica: &str, workers: usize| -> anyhow::Result<_> {
            let path = self.tmp.join(format!("{id}-{replica}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[providers.fake]\nkind = \"openai-chat\"\nbase_url = \
                     \"{}\"\n\n[background]\nworkers = {workers}\n",
                    self.upstream_url,
                ),
            )?;
            Ok(path)
        };
        let bin = self.release.join("maniac");
        let cpu = self.pinned.then_some(0);
        let log = |r: &str| self.tmp.join(format!("{id}-{r}.log"));
        let mut gateways = vec![start_gateway(
            if postgres { "maniac (replica A)" } else { "maniac" },
            &bin,
            cpu,
            &url,
            &config("a", size.runs.max(64))?,
            log("a"),
        )?];
        if postgres {
            gateways.push(start_gateway(
                "maniac (replica B)",
                &bin,
                cpu,
                &url,
                &config("b", 1)?,
                log("b"),
            )?);
        }
        let key = gateways[0]
            .key
            .clone()
            .context("the gateway printed no API key (database not fresh?)")?;
        let creator = gateways[0].addr;
        let follower = gateways[gateways.len() - 1].addr;

        let body = serde_json::json!({
            "model": "fake/m",
            "input": format!("STAMP SLOW:{} WORDS:{}", size.chunk_ms, size.chunks),
            "background": true,
            "store": true,
            "stream": false,
        });
        let deadline_ms = if self.settings.quick { 60_000 } else { 180_000 };
        let args: Vec<String> = [
            "--mode",
            "background",
            "--target",
            "gateway",
            "--path",
            "/v1/responses",
            "--body",
            &body.to_string(),
            "--runs",
            &size.runs.to_string(),
            "--followers",
            &size.followers.to_string(),
            "--chunks",
            &size.chunks.to_string(),
            "--follow-addr",
            &follower.to_string(),
            "--deadline-ms",
            &deadline_ms.to_string(),
        ]
        .map(String::from)
        .into();
        let cpu0: Vec<u64> = gateways
            .iter()
            .map(|g| procfs::cpu_ticks(g.proc.pid()).unwrap_or(0))
            .collect();
        let ours0 = self.own_cpu_s();
        let (t0, sys0) = (Instant::now(), procfs::system_cpu());
        let load = self.run_load_at(
            creator,
            Some(&key),
            None,
            &args,
            Duration::from_millis(deadline_ms + 30_000),
        );
        let cpu1: Vec<u64> = gateways
            .iter()
            .map(|g| procfs::cpu_ticks(g.proc.pid()).unwrap_or(0))
            .collect();
        let (wall, sys1) = (t0.elapsed().as_secs_f64(), procfs::system_cpu());
        let ours = self.own_cpu_s() - ours0
            + cpu1
                .iter()
                .zip(&cpu0)
                .map(|(a, b)| a.saturating_sub(*b))
                .sum::<u64>() as f64
                / self.tck
            + load.as_ref().map_or(0.0, |l| l.cpu_s);
        if let (Some(a), Some(b)) = (sys0, sys1)
            && wall > 0.0
        {
            let busy = b.busy.saturating_sub(a.busy) as f64 / self.tck;
            run.other_cpu_pct = Some((busy - ours).max(0.0) / wall * 100.0);
        }

        // Stop every gateway (also when the load failed) and read its
        // counters.
        for (i, gw) in gateways.iter_mut().enumerate() {
            let mut r = Replica {
                name: match (postgres, i) {
                    (false, _) => "gateway",
                    (true, 0) => "A",
                    _ => "B",
                },
                cpu_s: cpu1[i].saturating_sub(cpu0[i]) as f64 / self.tck,
                ..Default::default()
            };
            match stop(gw, Duration::from_secs(40)) {
                Ok(status) => {
                    r.exit = status.to_string();
                    if !status.success() {
                        run.problems
                            .push(format!("{} exited: {status}", gw.proc.name));
                    }
                }
                Err(e) => {
                    r.exit = e.to_string();
                    run.problems.push(e.to_string());
                }
            }
            if let Err(e) = read_log(&gw.log, &mut r) {
                run.problems.push(e);
            }
            run.replicas.push(r);
        }
        drop(gateways);
        run.load = load?;
        self.derive(&mut run, size);
        if let Some(bg) = run.bg() {
            eprintln!(
                "    {}/{} completed in {:.2} s ({:.1} runs/s), lag p50 {} \
                 p99 {}, transactions/run {}, NOTIFYs/run {}, follower \
                 queries/run {}",
                bg.completed,
                bg.runs,
                bg.wall_s,
                bg.runs_per_s,
                bg.lag.as_ref().map_or("—".into(), |l| report::us(l.p50_us)),
                bg.lag.as_ref().map_or("—".into(), |l| report::us(l.p99_us)),
                per(run.transactions_per_run),
                per(run.notifies_per_run),
                per(run.follower_queries_per_run),
            );
        }
        for p in &run.problems {
            eprintln!("    PROBLEM: {p}");
        }
        Ok(run)
    }

    /// CPU time of the upstream, the idle main gateway and this process.
    fn own_cpu_s(&self) -> f64 {
        let ticks = [self.upstream.pid(), self.gateway.pid()]
            .map(|p| procfs::cpu_ticks(p).unwrap_or(0));
        ticks.iter().sum::<u64>() as f64 / self.tck + procfs::self_cpu_s()
    }

    /// The per-run figures and the checks.
    fn derive(&self, run: &mut BackgroundRun, size: Size) {
        let n = size.runs as f64;
        let sum = |f: fn(&Replica) -> Option<u64>| -> Option<u64> {
            run.replicas.iter().map(f).sum()
        };
        run.transactions_per_run = sum(|r| r.run_writes).map(|w| w as f64 / n);
        run.notifies_per_run = sum(|r| r.notifies).map(|w| w as f64 / n);
        let polls = run.bg().map_or(0, |b| b.polls);
        let postgres = run.replicas.len() > 1;
        if let Some(f) = run.replicas.last() {
            let reads = f.event_reads.zip(f.response_reads).map(|(e, r)| e + r);
            // The bench's polls went to the creating gateway: here only
            // on SQLite, where it is the same one.
            let own = if postgres { 0 } else { polls };
            run.follower_queries_per_run =
                reads.map(|r| r.saturating_sub(own) as f64 / n);
            let local = run.bg().map(|b| {
                b.followed.iter().filter(|id| f.executed.contains(id)).count()
            });
            if postgres {
                run.local_followers = local;
            }
            run.follower_queries_note = if postgres {
                format!(
                    "event_reads + response_reads of replica B (followers' \
                     side, workers = 1), which also executed {} of the runs; \
                     {} of the {} followed runs ran on B (local followers)",
                    f.runs_executed,
                    local.unwrap_or(0),
                    run.bg().map_or(0, |b| b.followed.len())
                )
            } else {
                format!(
                    "event_reads + response_reads of the one gateway, which \
                     include the runs' own reads; minus the bench's {polls} \
                     status polls"
                )
            };
        }
        let cpu: f64 = run.replicas.iter().map(|r| r.cpu_s).sum();
        let chunks = (size.runs * size.chunks) as f64;
        if chunks > 0.0 {
            run.gateway_cpu_us_per_chunk = Some(cpu * 1e6 / chunks);
        }

        let mut problems = Vec::new();
        match run.load.background.as_ref() {
            None => problems.push("the load generator gave no result".into()),
            Some(bg) => {
                if bg.created != bg.runs {
                    problems.push(format!(
                        "{} of {} runs created",
                        bg.created, bg.runs
                    ));
                }
                if bg.completed != bg.runs {
                    problems.push(format!(
                        "{} of {} runs ended completed; others: {:?}",
                        bg.completed, bg.runs, bg.not_completed
                    ));
                }
                if bg.followers != size.followers
                    || bg.followers_ok != size.followers
                {
                    problems.push(format!(
                        "{} of {} followers saw {} deltas and \
                         response.completed: {}",
                        bg.followers_ok,
                        size.followers,
                        size.chunks,
                        bg.follower_problems.join("; ")
                    ));
                }
                let expected = size.followers * size.chunks;
                if bg.lag.as_ref().map_or(0, |l| l.n) != expected {
                    problems.push(format!(
                        "{} stamped deltas seen, {expected} expected",
                        bg.lag.as_ref().map_or(0, |l| l.n)
                    ));
                }
            }
        }
        if run.load.errors > 0 {
            problems.push(format!(
                "{} request errors: {}",
                run.load.errors,
                run.load.error_samples.join(" | ")
            ));
        }
        let executed: usize =
            run.replicas.iter().map(|r| r.runs_executed).sum();
        if executed != size.runs {
            problems.push(format!(
                "{executed} runs executed by the gateways, {} created",
                size.runs
            ));
        }
        run.problems.extend(problems);
    }
}

fn per(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.2}"))
}

/// The rows of the background table.
const METRICS: &[&str] = &[
    "transactions/run",
    "NOTIFYs/run",
    "follower queries/run",
    "follow lag p50",
    "follow lag p99",
    "wall time, all runs",
    "runs/s",
    "gateway CPU/chunk",
    "other CPU (PostgreSQL, others)",
    "create p50",
    "completed",
    "followers with every delta",
    "runs executed per replica",
    "result",
];

/// One phase's cells, in the order of [`METRICS`].
fn column(r: &BackgroundRun) -> Vec<String> {
    if r.skipped.is_some() {
        return vec!["skipped".to_string(); METRICS.len()];
    }
    let none = || "—".to_string();
    let bg = r.bg();
    let lag = bg.and_then(|b| b.lag.as_ref());
    let create = bg.and_then(|b| b.create_latency.as_ref());
    vec![
        per(r.transactions_per_run),
        per(r.notifies_per_run),
        per(r.follower_queries_per_run),
        lag.map_or_else(none, |l| report::us(l.p50_us)),
        lag.map_or_else(none, |l| report::us(l.p99_us)),
        bg.map_or_else(none, |b| format!("{:.2} s", b.wall_s)),
        bg.map_or_else(none, |b| format!("{:.1}", b.runs_per_s)),
        r.gateway_cpu_us_per_chunk.map_or_else(none, report::us),
        r.other_cpu_pct.map_or_else(none, |p| format!("{p:.0} % of a core")),
        create.map_or_else(none, |l| report::us(l.p50_us)),
        bg.map_or_else(none, |b| format!("{}/{}", b.completed, b.runs)),
        bg.map_or_else(none, |b| format!("{}/{}", b.followers_ok, b.followers)),
        r.replicas
            .iter()
            .map(|x| format!("{} {}", x.name, x.runs_executed))
            .collect::<Vec<_>>()
            .join(", "),
        if r.problems.is_empty() { "PASS" } else { "FAIL" }.to_string(),
    ]
}

/// The background table: one column per phase.
pub fn table(runs: &[BackgroundRun]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        return out;
    }
    let size = runs.iter().find_map(|r| r.size);
    if let Some(s) = size {
        out.push_str(&format!(
            "\nBackground runs: {} runs × {} chunks ({} ms apart upstream), \
             {} of them followed live from the start:\n",
            s.runs, s.chunks, s.chunk_ms, s.followers
        ));
    }
    let mut header = vec!["metric".to_string()];
    header.extend(runs.iter().map(
        |r| match r.id.strip_prefix("background_") {
            Some("postgres") => "postgres (A runs, B follows)".to_string(),
            Some(b) => b.to_string(),
            None => r.id.to_string(),
        },
    ));
    let mut rows = vec![header];
    let columns: Vec<Vec<String>> = runs.iter().map(column).collect();
    for (i, name) in METRICS.iter().enumerate() {
        let mut row = vec![name.to_string()];
        row.extend(columns.iter().map(|c| c[i].clone()));
        rows.push(row);
    }
    report::render(&mut out, &rows);
    out.push_str(
        "transactions/run: the store's run write transactions (claim, \
         appends, lease renewals, finish; idle queue polls and lost claims \
         included), every replica, / runs. NOTIFYs/run: likewise. Follower \
         queries/run: event-log and response reads of the followers' \
         gateway / runs. Lag: follower receive time − upstream send time of \
         each text delta (one clock).\n",
    );
    for r in runs {
        if let Some(s) = &r.skipped {
            out.push_str(&format!("note: {}: {s}\n", r.id));
        } else if !r.follower_queries_note.is_empty() {
            out.push_str(&format!(
                "note: {} follower queries: {}\n",
                r.id, r.follower_queries_note
            ));
        }
        for p in &r.problems {
            out.push_str(&format!("FAIL: {}: {p}\n", r.id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counter_fields() {
        let line = "2026-01-01T00:00:00.000000Z  INFO maniac_server::store::\
                    counters: store counters run_writes=20512 notifies=0 \
                    event_reads=151 response_reads=7";
        assert_eq!(field(line, "run_writes"), Some(20512));
        assert_eq!(field(line, "notifies"), Some(0));
        assert_eq!(field(line, "response_reads"), Some(7));
        assert_eq!(field(line, "reads"), None);
    }
}
