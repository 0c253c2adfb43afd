//! `bench-load --target websocket`: WebSocket mode's client. Each
//! simulated client opens one connection (`GET` upgraded, the key at the
//! handshake) and runs `response.create` turns back to back on it,
//! reconnecting only when the server closed it. A turn is timed from
//! sending its frame to its first frame (`ttfb`), its first
//! `response.output_text.delta` (first delta) and `response.completed`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use http::header;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async};

use super::{
    Failure, Template, Timing, WorkerOut, broken, find, nanos, snippet,
};

type Ws = WebSocketStream<TcpStream>;

/// A turn that has not completed by then counts as failed, and its
/// connection as broken (so a stuck server cannot hang the phase).
const TURN_TIMEOUT: Duration = Duration::from_secs(30);

/// One simulated client: a connection reused for turns until `end`.
pub(super) async fn worker(
    t: Arc<Template>,
    cap: usize,
    seed: u64,
    warm_end: Instant,
    end: Instant,
) -> WorkerOut {
    let mut out = WorkerOut::new(&t, cap, seed);
    let frame = match std::str::from_utf8(&t.body) {
        Ok(b) => Utf8Bytes::from(b),
        Err(e) => {
            out.total += 1;
            out.error(format!("--body is not UTF-8: {e}"));
            return out;
        }
    };
    let expect = t.expect.as_deref();
    let mut ws: Option<Ws> = None;
    let mut n: u64 = 0;
    while Instant::now() < end {
        let Some(socket) = ws.as_mut() else {
            match connect(&t).await {
                Ok(s) => {
                    if n > 0 {
                        out.reconnects += 1;
                    }
                    ws = Some(s);
                }
                Err(e) => {
                    out.total += 1;
                    out.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            continue;
        };
        n += 1;
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            TURN_TIMEOUT,
            turn(socket, frame.clone(), expect, t0),
        )
        .await
        .unwrap_or_else(|_| {
            Err(broken("turn", format!("no end within {TURN_TIMEOUT:?}")))
        });
        if out.record(r, t0, Instant::now(), warm_end, true) {
            ws = None;
        }
    }
    if let Some(mut s) = ws {
        let _ = s.close(None).await;
    }
    out
}

/// Opens a connection to `t.addr`/`t.path` with `t.auth` at the handshake.
async fn connect(t: &Template) -> Result<Ws, String> {
    let tcp = TcpStream::connect(t.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!("ws://{}{}", t.addr, t.path)
        .into_client_request()
        .map_err(|e| format!("handshake request: {e}"))?;
    if let Some(a) = &t.auth {
        req.headers_mut().insert(header::AUTHORIZATION, a.clone());
    }
    match client_async(req, tcp).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(rsp)) => Err(format!(
            "handshake refused: HTTP {}: {}",
            rsp.status(),
            snippet(rsp.body().as_deref().unwrap_or_default())
        )),
        Err(e) => Err(format!("handshake: {e}")),
    }
}

/// The `type` of a server event (the rest of the frame is skipped).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// Sends one `response.create` frame and reads the turn's events up to
/// its terminal one. `expect` must appear in `response.completed`.
async fn turn(
    ws: &mut Ws,
    frame: Utf8Bytes,
    expect: Option<&[u8]>,
    t0: Instant,
) -> Result<Timing, Failure> {
    ws.send(Message::Text(frame)).await.map_err(|e| broken("send", e))?;
    let mut ttfb = None;
    let mut first_delta = None;
    loop {
        let text = match ws.next().await {
            None => return Err(broken("receive", "connection ended")),
            Some(Err(e)) => return Err(broken("receive", e)),
            Some(Ok(Message::Text(text))) => text,
            // tungstenite answers pings itself while reading.
            Some(Ok(
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_),
            )) => {
                continue;
            }
            Some(Ok(Message::Close(c))) => {
                return Err(broken("receive", format!("closed: {c:?}")));
            }
            Some(Ok(Message::Binary(b))) => {
                return Err(broken(
                    "receive",
                    format!("unexpected binary frame ({} bytes)", b.len()),
                ));
            }
        };
        let at = nanos(t0.elapsed());
        let bytes = text.as_bytes();
        ttfb.get_or_insert(at);
        let event =
            serde_json::from_slice::<Event>(bytes).map_err(|e| Failure {
                msg: format!("frame without a type ({e}): {}", snippet(bytes)),
                broken: false,
            })?;
        let failed = |why: &str| Failure {
            msg: format!("{why}: {}", snippet(bytes)),
            broken: false,
        };
        match event.kind.as_ref() {
            "response.output_text.delta" => {
                first_delta.get_or_insert(at);
            }
            "response.completed" => {
                if let Some(e) = expect
                    && find(bytes, e).is_none()
                {
                    return Err(failed("unexpected response.completed"));
                }
                let (Some(ttfb), Some(first_delta)) = (ttfb, first_delta)
                else {
                    return Err(failed("completed without a text delta"));
                };
                return Ok(Timing { total: at, ttfb, first_delta, body: None });
            }
            "response.failed" | "response.incomplete" | "error" => {
                return Err(failed(&event.kind));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_is_read_without_the_rest_of_the_frame() {
        let frame = br#"{"type":"response.output_text.delta","sequence_number":3,"delta":"You "}"#;
        let e = serde_json::from_slice::<Event>(frame).unwrap();
        assert_eq!(e.kind, "response.output_text.delta");
        assert!(serde_json::from_slice::<Event>(br#"{"delta":"x"}"#).is_err());
    }
}
