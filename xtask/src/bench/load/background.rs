//! `bench-load --mode background`: creates background runs back to back on
//! `--addr`, follows some of them (`GET /v1/responses/{id}?stream=true` on
//! `--follow-addr`, each started right after its create), takes each text
//! delta's lag behind the upstream's send time (`[t=<unix µs>]` in its
//! text), then polls the runs nobody followed until they ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinSet;

use super::{
    LoadArgs, LoadResult, Sender, Stats, Template, connect, drain_data,
    snippet, stats,
};

/// Background mode's outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BackgroundResult {
    /// Runs asked for, and created (`POST` answered 2xx with an id).
    pub runs: usize,
    pub created: usize,
    /// Followers started, and those that saw `chunks` text deltas and
    /// `response.completed`.
    pub followers: usize,
    pub followers_ok: usize,
    /// The ids of the followed runs.
    pub followed: Vec<String>,
    /// Text deltas each follower had to see.
    pub chunks: usize,
    /// Text deltas seen by all followers, and the fewest / most by one.
    pub deltas: usize,
    pub deltas_min: Option<usize>,
    pub deltas_max: Option<usize>,
    /// Runs that ended `completed`; the others' ids by final status
    /// (`unknown`: still running at the deadline).
    pub completed: usize,
    pub not_completed: BTreeMap<String, Vec<String>>,
    /// Followers that went wrong, e.g. `resp_…: 150 deltas, ended by
    /// response.failed`.
    pub follower_problems: Vec<String>,
    /// Receive time − upstream send time of every text delta seen.
    pub lag: Option<Stats>,
    /// Of the `POST /v1/responses` (queueing a run).
    pub create_latency: Option<Stats>,
    /// From the first create until every run was seen ended.
    pub wall_s: f64,
    pub runs_per_s: f64,
    /// `GET /v1/responses/{id}` sent to `--addr` to see unfollowed runs
    /// end: one response read each in that gateway's counters.
    pub polls: u64,
}

/// What one follower saw.
struct Followed {
    id: String,
    deltas: usize,
    /// Lags, in nanoseconds.
    lags: Vec<u64>,
    /// The type of the terminal event.
    end: Option<String>,
    ended_at: Instant,
    error: Option<String>,
}

fn error(res: &mut LoadResult, e: String) {
    res.errors += 1;
    if res.error_samples.len() < 8 && !res.error_samples.contains(&e) {
        res.error_samples.push(e);
    }
}

fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros())
        as u64
}

/// The send time at the start of a delta's text.
fn stamp(delta: &str) -> Option<u64> {
    let rest = delta.strip_prefix("[t=")?;
    rest[..rest.find(']')?].parse().ok()
}

/// Whether run `i` of `runs` is followed: `followers` of them, spread
/// evenly (every other one for 50 of 100).
fn followed(i: usize, runs: usize, followers: usize) -> bool {
    i * followers % runs.max(1) < followers
}

pub(super) async fn run(
    args: &LoadArgs,
    t: Arc<Template>,
) -> anyhow::Result<LoadResult> {
    let mut ft = (*t).clone();
    if let Some(a) = args.follow_addr {
        ft.addr = a;
        ft.host = http::HeaderValue::from_str(&a.to_string())?;
    }
    let ft = Arc::new(ft);
    let deadline = Instant::now() + Duration::from_millis(args.deadline_ms);
    let mut res = LoadResult::default();
    let mut bg = BackgroundResult {
        runs: args.runs,
        chunks: args.chunks,
        ..Default::default()
    };

    let start = Instant::now();
    let mut creator = connect(t.addr).await.map_err(anyhow::Error::msg)?;
    let mut create_ns = Vec::with_capacity(args.runs);
    let mut ids = Vec::with_capacity(args.runs);
    let mut follows = JoinSet::new();
    for i in 0..args.runs {
        let t0 = Instant::now();
        match create(&mut creator, &t).await {
            Ok(id) => {
                create_ns.push(t0.elapsed().as_nanos() as u64);
                if followed(i, args.runs, args.followers) {
                    follows.spawn(follow(ft.clone(), id.clone()));
                    bg.followed.push(id.clone());
                }
                ids.push(id);
            }
            Err(e) => {
                error(&mut res, format!("create: {e}"));
                creator = connect(t.addr).await.map_err(anyhow::Error::msg)?;
            }
        }
    }
    res.total_requests = args.runs as u64;
    bg.created = ids.len();
    bg.followers = follows.len();
    bg.create_latency = stats(create_ns);

    // The followers' ends.
    let mut ended: BTreeMap<String, (String, Instant)> = BTreeMap::new();
    let mut lags = Vec::new();
    let left = deadline.saturating_duration_since(Instant::now());
    let joined = tokio::time::timeout(left, async {
        let mut outs = Vec::new();
        while let Some(r) = follows.join_next().await {
            outs.push(r);
        }
        outs
    })
    .await;
    let outs = match joined {
        Ok(outs) => outs,
        Err(_) => {
            error(&mut res, "followers still running at the deadline".into());
            Vec::new()
        }
    };
    for out in outs {
        let f = out.context("follower panicked")?;
        bg.deltas += f.deltas;
        bg.deltas_min =
            Some(bg.deltas_min.map_or(f.deltas, |m| m.min(f.deltas)));
        bg.deltas_max =
            Some(bg.deltas_max.map_or(f.deltas, |m| m.max(f.deltas)));
        lags.extend(f.lags);
        let completed = f.end.as_deref() == Some("response.completed");
        if completed && f.deltas == args.chunks && f.error.is_none() {
            bg.followers_ok += 1;
        } else {
            bg.follower_problems.push(format!(
                "{}: {} deltas, ended by {}{}",
                f.id,
                f.deltas,
                f.end.as_deref().unwrap_or("nothing"),
                f.error.map(|e| format!(" ({e})")).unwrap_or_default()
            ));
        }
        if let Some(end) = f.end {
            let status = end.strip_prefix("response.").unwrap_or(&end);
            ended.insert(f.id, (status.to_string(), f.ended_at));
        }
    }
    bg.lag = stats(lags);

    // Poll the others until they ended (most have by now).
    loop {
        let pending: Vec<&String> =
            ids.iter().filter(|id| !ended.contains_key(*id)).collect();
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        for id in pending {
            bg.polls += 1;
            match status(&mut creator, &t, id).await {
                Ok(s) if s != "queued" && s != "in_progress" => {
                    ended.insert(id.clone(), (s, Instant::now()));
                }
                Ok(_) => {}
                Err(e) => {
                    error(&mut res, format!("poll: {e}"));
                    creator =
                        connect(t.addr).await.map_err(anyhow::Error::msg)?;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut last = start;
    for id in &ids {
        match ended.get(id) {
            Some((s, at)) => {
                last = last.max(*at);
                if s == "completed" {
                    bg.completed += 1;
                } else {
                    bg.not_completed
                        .entry(s.clone())
                        .or_default()
                        .push(id.clone());
                }
            }
            None => bg
                .not_completed
                .entry("unknown".into())
                .or_default()
                .push(id.clone()),
        }
    }
    bg.wall_s = (last - start).as_secs_f64();
    if bg.wall_s > 0.0 {
        bg.runs_per_s = bg.completed as f64 / bg.wall_s;
    }
    res.requests = bg.completed as u64;
    res.measured_s = bg.wall_s;
    res.rps = bg.runs_per_s;
    res.background = Some(bg);
    Ok(res)
}

/// Sends one request on the keep-alive connection and reads its body.
async fn exchange(
    s: &mut Sender,
    t: &Template,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<Value, String> {
    if s.ready().await.is_err() {
        // The server closed the idle connection (the creator's waits for
        // the followers): not a request failure.
        *s = connect(t.addr).await?;
    }
    let rsp = s
        .send_request(t.request(method, path, body))
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = rsp.status();
    let body = rsp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", snippet(&body)));
    }
    serde_json::from_slice(&body)
        .map_err(|e| format!("{e}: {}", snippet(&body)))
}

/// Queues one run; returns its id.
async fn create(s: &mut Sender, t: &Template) -> Result<String, String> {
    let v = exchange(s, t, Method::POST, &t.path, t.body.clone()).await?;
    v["id"].as_str().map(str::to_owned).ok_or_else(|| format!("no id: {v}"))
}

/// A run's stored status.
async fn status(
    s: &mut Sender,
    t: &Template,
    id: &str,
) -> Result<String, String> {
    let path = format!("{}/{id}", t.path.trim_end_matches('/'));
    let v = exchange(s, t, Method::GET, &path, Bytes::new()).await?;
    v["status"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no status: {v}"))
}

/// Follows one run's event stream to its end.
async fn follow(t: Arc<Template>, id: String) -> Followed {
    let mut f = Followed {
        id,
        deltas: 0,
        lags: Vec::new(),
        end: None,
        ended_at: Instant::now(),
        error: None,
    };
    if let Err(e) = read_stream(&t, &mut f).await {
        f.error = Some(e);
    }
    f.ended_at = Instant::now();
    f
}

async fn read_stream(t: &Template, f: &mut Followed) -> Result<(), String> {
    let mut s = connect(t.addr).await?;
    let path = format!("{}/{}?stream=true", t.path.trim_end_matches('/'), f.id);
    let rsp = s
        .send_request(t.request(Method::GET, &path, Bytes::new()))
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = rsp.status();
    let mut body = rsp.into_body();
    if !status.is_success() {
        let b = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(format!("HTTP {status}: {}", snippet(&b)));
    }
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("stream: {e}"))?;
        let Ok(data) = frame.into_data() else { continue };
        let now = unix_micros();
        buf.extend_from_slice(&data);
        let ended = drain_data(&mut buf, |d| {
            let Ok(v) = serde_json::from_slice::<Value>(d) else {
                return false;
            };
            let kind = v["type"].as_str().unwrap_or_default();
            match kind {
                "response.output_text.delta" => {
                    f.deltas += 1;
                    if let Some(sent) = v["delta"].as_str().and_then(stamp) {
                        f.lags.push(now.saturating_sub(sent) * 1000);
                    }
                    false
                }
                "response.completed"
                | "response.failed"
                | "response.incomplete"
                | "response.cancelled"
                | "error" => {
                    f.end = Some(kind.to_string());
                    true
                }
                _ => false,
            }
        });
        if ended {
            return Ok(());
        }
    }
    Err("the stream ended without a terminal event".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_spread() {
        assert_eq!(
            stamp("[t=1700000000123456]w0 "),
            Some(1_700_000_000_123_456)
        );
        assert_eq!(stamp("w0 "), None);
        assert_eq!((0..100).filter(|&i| followed(i, 100, 50)).count(), 50);
        assert!(followed(0, 100, 50) && !followed(1, 100, 50));
        assert_eq!((0..20).filter(|&i| followed(i, 20, 10)).count(), 10);
        assert_eq!((0..7).filter(|&i| followed(i, 7, 7)).count(), 7);
    }
}
