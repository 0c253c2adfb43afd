//! The WebSocket phases: the same short turn (`"hi"`, `store: false`)
//! over connections opened once and reused, at c=1 and c=64, measured
//! three ways back to back: direct to the fake upstream's stream, through
//! the gateway as HTTP streaming (SSE), and through its WebSocket mode.
//! Here: the phases, a one-turn smoke check, and their table (what each
//! gateway transport adds to the time to first delta and to completion,
//! and what a turn costs the gateway's core).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use super::load::{Mode, Stats, Target};
use super::report::{
    Check, cpu_cell, render, signed_us, thousands, us, verdict,
};
use super::{PhaseRun, Spec};

/// `--only websocket`: both phases.
pub const ALL: &str = "websocket";
/// The phases, in order; each is measured direct, as HTTP SSE through the
/// gateway, and over WebSocket mode.
pub const IDS: &[&str] = &["websocket_c1", "websocket_c64"];
/// The concurrent connections of each of [`IDS`].
const CONCURRENCY: [usize; 2] = [1, 64];

/// The phases' specs: direct, HTTP SSE, WebSocket, back to back, so the
/// three see the same machine.
pub(super) fn phases() -> Vec<Spec> {
    let mut out = Vec::new();
    for (&id, concurrency) in IDS.iter().zip(CONCURRENCY) {
        for target in [Target::Direct, Target::Gateway, Target::Websocket] {
            out.push(Spec {
                id,
                target,
                mode: Mode::Stream,
                concurrency,
                store: false,
                client_cpu: None,
            });
        }
    }
    out
}

/// One blocking turn over WebSocket mode, for a clear error before any
/// phase runs (the handshake refused, a turn that does not complete).
pub(super) fn smoke(addr: SocketAddr, key: &str) -> anyhow::Result<()> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("ws://{addr}/v1/responses").into_client_request()?;
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {key}").parse().context("key is not a header value")?,
    );
    let mut ws = match tungstenite::client(req, tcp) {
        Ok((ws, _)) => ws,
        Err(tungstenite::HandshakeError::Failure(
            tungstenite::Error::Http(rsp),
        )) => bail!(
            "smoke turn (websocket): handshake refused: HTTP {}: {}",
            rsp.status(),
            String::from_utf8_lossy(rsp.body().as_deref().unwrap_or_default())
        ),
        Err(e) => bail!("smoke turn (websocket): handshake: {e}"),
    };
    let body = json!({"type": "response.create", "model": "fake/m",
                      "input": "hi", "store": false});
    ws.send(Message::text(body.to_string()))
        .context("smoke turn (websocket): send")?;
    let mut seen = Vec::new();
    loop {
        let msg = ws.read().context("smoke turn (websocket): receive")?;
        let Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("smoke turn (websocket): {text}"))?;
        let kind = v["type"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "response.completed" if text.contains("You said: hi") => break,
            "response.completed"
            | "response.failed"
            | "response.incomplete"
            | "error" => {
                bail!("smoke turn (websocket): {text}")
            }
            _ => seen.push(kind),
        }
    }
    if !seen.iter().any(|k| k == "response.output_text.delta") {
        bail!("smoke turn (websocket): no text delta before completion");
    }
    let _ = ws.close(None);
    Ok(())
}

/// One line of the WebSocket table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    metric: String,
    direct: String,
    http_sse: String,
    websocket: String,
    sse_added: String,
    ws_added: String,
    ws_minus_sse: String,
    target: String,
    result: String,
}

/// The WebSocket table and the targets it checks.
#[derive(Clone, Debug, Default)]
pub struct Section {
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
}

type Pick = fn(&PhaseRun) -> Option<&Stats>;

impl Section {
    /// Builds the rows from the runs of [`IDS`] (empty when none ran).
    pub fn new(runs: &[PhaseRun]) -> Section {
        let mut s = Section::default();
        let first: Pick = |r| r.load.first_delta.as_ref();
        let whole: Pick = |r| r.load.latency.as_ref();
        for (&id, c) in IDS.iter().zip(CONCURRENCY) {
            let by =
                |t: Target| runs.iter().find(|r| r.id == id && r.target == t);
            let trio = [
                by(Target::Direct),
                by(Target::Gateway),
                by(Target::Websocket),
            ];
            if trio.iter().all(Option::is_none) {
                continue;
            }
            let errors = trio.iter().flatten().any(|r| r.load.errors > 0);
            let p50: fn(&Stats) -> f64 = |x| x.p50_us;
            let p99: fn(&Stats) -> f64 = |x| x.p99_us;
            s.latency(&trio, c, "first delta p50", first, p50, Some(errors));
            s.latency(&trio, c, "first delta p99", first, p99, None);
            s.latency(&trio, c, "completion p50", whole, p50, None);
            s.latency(&trio, c, "completion p99", whole, p99, None);
            s.throughput(&trio, c);
            s.cpu(&trio, c, (c > 1).then_some(errors));
        }
        s
    }

    /// A latency row; with `check` (whether the phase had errors), the
    /// target "WebSocket adds no more than HTTP SSE".
    fn latency(
        &mut self,
        [d, g, w]: &[Option<&PhaseRun>; 3],
        c: usize,
        what: &str,
        pick: Pick,
        pct: fn(&Stats) -> f64,
        check: Option<bool>,
    ) {
        let v = |r: &Option<&PhaseRun>| r.and_then(pick).map(pct);
        let (d, g, w) = (v(d), v(g), v(w));
        let sse_added = d.zip(g).map(|(d, g)| g - d);
        let ws_added = d.zip(w).map(|(d, w)| w - d);
        let ws_minus_sse = g.zip(w).map(|(g, w)| w - g);
        let (target, result) = match check {
            Some(errors) => {
                let pass = ws_minus_sse.map(|x| x <= 0.0);
                self.checks.push(Check {
                    name: if c == 1 {
                        "websocket: added time to first delta at c=1 ≤ HTTP \
                         SSE's"
                    } else {
                        "websocket: added time to first delta at c=64 ≤ HTTP \
                         SSE's"
                    },
                    target: "WS added ≤ SSE added".into(),
                    value: ws_added,
                    unit: "µs",
                    pass: pass.map(|p| p && !errors),
                    note: Some(format!(
                        "HTTP SSE added {}",
                        sse_added.map(signed_us).unwrap_or("?".into())
                    )),
                });
                ("WS ≤ SSE".to_string(), verdict(pass, errors))
            }
            None => (String::new(), String::new()),
        };
        let cell =
            |x: Option<f64>, f: fn(f64) -> String| x.map(f).unwrap_or_default();
        self.rows.push(Row {
            metric: format!("c={c} {what}"),
            direct: cell(d, us),
            http_sse: cell(g, us),
            websocket: cell(w, us),
            sse_added: cell(sse_added, signed_us),
            ws_added: cell(ws_added, signed_us),
            ws_minus_sse: cell(ws_minus_sse, signed_us),
            target,
            result,
        });
    }

    /// Turns per second, the gateway's as ratios.
    fn throughput(&mut self, [d, g, w]: &[Option<&PhaseRun>; 3], c: usize) {
        let v = |r: &Option<&PhaseRun>| r.map(|r| r.load.rps);
        let (d, g, w) = (v(d), v(g), v(w));
        let ratio = |a: Option<f64>, b: Option<f64>| {
            a.zip(b).map(|(a, b)| format!("{:.2}×", b / a)).unwrap_or_default()
        };
        let cell = |x: Option<f64>| {
            x.map(|x| format!("{}/s", thousands(x))).unwrap_or_default()
        };
        self.rows.push(Row {
            metric: format!("c={c} turns/s"),
            direct: cell(d),
            http_sse: cell(g),
            websocket: cell(w),
            sse_added: ratio(d, g),
            ws_added: ratio(d, w),
            ws_minus_sse: ratio(g, w),
            target: String::new(),
            result: String::new(),
        });
    }

    /// Gateway CPU per turn; with `check`, the target "a turn over
    /// WebSocket costs no more than over HTTP SSE".
    fn cpu(
        &mut self,
        [_, g, w]: &[Option<&PhaseRun>; 3],
        c: usize,
        check: Option<bool>,
    ) {
        let v = |r: &Option<&PhaseRun>| {
            r.and_then(|r| r.gateway_cpu_us_per_request)
        };
        let diff = v(g).zip(v(w)).map(|(g, w)| w - g);
        let (target, result) = match check {
            Some(errors) => {
                let pass = diff.map(|x| x <= 0.0);
                self.checks.push(Check {
                    name: "websocket: gateway CPU per turn at c=64 ≤ HTTP SSE's",
                    target: "WS ≤ SSE".into(),
                    value: v(w),
                    unit: "µs",
                    pass: pass.map(|p| p && !errors),
                    note: Some(format!(
                        "HTTP SSE {}",
                        v(g).map(us).unwrap_or("?".into())
                    )),
                });
                ("WS ≤ SSE".to_string(), verdict(pass, errors))
            }
            None => (String::new(), String::new()),
        };
        self.rows.push(Row {
            metric: format!("c={c} gateway CPU/turn"),
            direct: "—".into(),
            http_sse: g.map(cpu_cell).unwrap_or_default(),
            websocket: w.map(cpu_cell).unwrap_or_default(),
            sse_added: String::new(),
            ws_added: String::new(),
            ws_minus_sse: diff.map(signed_us).unwrap_or_default(),
            target,
            result,
        });
    }

    /// The text table (empty when no WebSocket phase ran).
    pub fn table(&self) -> String {
        let mut out = String::new();
        if self.rows.is_empty() {
            return out;
        }
        out.push_str(
            "\nWebSocket mode: one turn (\"hi\", store:false) per request on \
             connections opened once and reused; direct = the fake \
             upstream's stream, HTTP SSE = POST /v1/responses stream:true, \
             WebSocket = response.create frames on GET /v1/responses, \
             measured back to back:\n",
        );
        let mut rows = vec![
            [
                "metric",
                "direct",
                "HTTP SSE",
                "WebSocket",
                "SSE added",
                "WS added",
                "WS − SSE",
                "target",
                "result",
            ]
            .map(String::from),
        ];
        rows.extend(self.rows.iter().map(|r| {
            [
                r.metric.clone(),
                r.direct.clone(),
                r.http_sse.clone(),
                r.websocket.clone(),
                r.sse_added.clone(),
                r.ws_added.clone(),
                r.ws_minus_sse.clone(),
                r.target.clone(),
                r.result.clone(),
            ]
        }));
        render(&mut out, &rows);
        out.push_str(
            "First delta: from sending the request (the frame) to the first \
             text delta. Completion: to the end of the stream (direct, SSE) \
             or the response.completed frame (WebSocket). Added: minus \
             direct; for turns/s the ratio to direct, and WebSocket / SSE.\n",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_runs_direct_then_sse_then_websocket() {
        let got: Vec<_> = phases()
            .iter()
            .map(|p| (p.id, p.target, p.concurrency, p.mode))
            .collect();
        let mut want = Vec::new();
        for (id, c) in [("websocket_c1", 1), ("websocket_c64", 64)] {
            for t in [Target::Direct, Target::Gateway, Target::Websocket] {
                want.push((id, t, c, Mode::Stream));
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn no_websocket_run_no_table() {
        let s = Section::new(&[]);
        assert!(s.rows.is_empty() && s.checks.is_empty());
        assert_eq!(s.table(), "");
    }
}
