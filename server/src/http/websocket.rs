//! WebSocket mode's transport: frames in and out over tungstenite, pings,
//! the connection's age limit, and the registry that lets shutdown close
//! connections after their running turn. Turns are the engine's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dropshot::WebsocketConnection;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig,
};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::api::{
    ApiError, CreateResponse, MAX_REQUEST_BYTES, WebsocketErrorEvent,
};
use crate::engine::socket::{Incoming, Socket, SocketState, Turn};
use crate::engine::{Caller, Engine};

/// Limits of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest life of a connection.
    pub max_age: Duration,
    /// An idle connection is pinged this often.
    pub ping_every: Duration,
}

/// The open connections, so shutdown can close them and wait.
#[derive(Clone)]
pub struct Connections {
    open: Arc<watch::Sender<usize>>,
    closing: CancellationToken,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            open: Arc::new(watch::channel(0).0),
            closing: CancellationToken::new(),
        }
    }
}

/// One registered connection; leaving the registry on drop.
pub struct Registered {
    open: Arc<watch::Sender<usize>>,
    closing: CancellationToken,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Connections {
    /// Registers a connection about to be upgraded.
    pub fn enter(&self) -> Registered {
        self.open.send_modify(|n| *n += 1);
        Registered { open: self.open.clone(), closing: self.closing.clone() }
    }

    /// Asks every connection to close after its running turn and waits,
    /// at most `grace`, for them to go.
    pub async fn drain(&self, grace: Duration) {
        self.closing.cancel();
        let mut open = self.open.subscribe();
        let all_closed = open.wait_for(|n| *n == 0);
        if tokio::time::timeout(grace, all_closed).await.is_err() {
            tracing::warn!(
                open = *self.open.borrow(),
                "WebSocket connections still open after the grace period"
            );
        }
    }
}

type Stream = WebSocketStream<dropshot::WebsocketConnectionRaw>;

/// Frames queued for the writer of one connection: enough for a burst of
/// events; a slow client then holds the run back, as an SSE client does.
const OUTBOX_FRAMES: usize = 64;

/// Longest wait for the writer to send the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A tungstenite connection as the engine's [`Socket`]. Frames go out
/// through a writer task that flushes once per burst: events that are
/// ready together leave in one write, as hyper writes an SSE stream,
/// instead of one system call per frame.
struct Ws {
    read: SplitStream<Stream>,
    out: mpsc::Sender<Message>,
    writer: JoinHandle<()>,
}

impl Ws {
    fn new(ws: Stream) -> Self {
        let (sink, read) = ws.split();
        let (out, rx) = mpsc::channel(OUTBOX_FRAMES);
        Ws { read, out, writer: tokio::spawn(write_frames(sink, rx)) }
    }

    /// Queues a frame; false once the client is gone.
    async fn queue(&mut self, m: Message) -> bool {
        self.out.send(m).await.is_ok()
    }
}

/// Writes queued frames, flushing when none is waiting; ends after a
/// close frame or when the client is gone (the queue then refuses more).
async fn write_frames(
    mut sink: SplitSink<Stream, Message>,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let closing = matches!(m, Message::Close(_));
            if sink.feed(m).await.is_err() {
                return;
            }
            if closing {
                let _ = sink.close().await;
                return;
            }
            next = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl Socket for Ws {
    async fn send(&mut self, json: Bytes) -> bool {
        // Our own events are always UTF-8 JSON.
        let Ok(text) = Utf8Bytes::try_from(json) else { return true };
        self.queue(Message::Text(text)).await
    }

    async fn send_error(&mut self, e: ApiError) -> bool {
        let ev = WebsocketErrorEvent::from(e);
        let json = serde_json::to_string(&ev).unwrap_or_default();
        self.queue(Message::text(json)).await
    }

    async fn recv(&mut self) -> Incoming {
        loop {
            // tungstenite answers pings itself while reading.
            match self.read.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    return Incoming::Gone;
                }
                Some(Ok(Message::Text(t))) => return parse_frame(&t),
                Some(Ok(Message::Binary(_))) => {
                    return Incoming::Rejected(
                        ApiError::invalid(
                            "Binary frames are not supported: send each \
                             client event as one JSON text frame.",
                            None,
                            Some("invalid_frame"),
                        ),
                        None,
                    );
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// Reads one client event (also the fuzz targets' entry point).
pub(crate) fn parse_frame(text: &str) -> Incoming {
    let mut map: serde_json::Map<String, serde_json::Value> =
        match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                return Incoming::Rejected(
                    ApiError::invalid(
                        format!(
                            "The frame is not a JSON object ({e}): send each \
                             client event as one JSON object with a `type`."
                        ),
                        None,
                        Some("invalid_json"),
                    ),
                    None,
                );
            }
        };
    let previous = map
        .get("previous_response_id")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let reject = |e: ApiError| Incoming::Rejected(e, previous.clone());
    match map.remove("type") {
        Some(serde_json::Value::String(t)) if t == "response.create" => {}
        Some(serde_json::Value::String(t)) => {
            return reject(ApiError::invalid(
                format!(
                    "Unsupported client event type '{t}': this server serves \
                     only `response.create`."
                ),
                Some("type"),
                Some("unsupported_event_type"),
            ));
        }
        _ => {
            return reject(ApiError::invalid(
                "Missing or invalid `type`: send `\"type\": \
                 \"response.create\"` with the create body.",
                Some("type"),
                Some("missing_required_parameter"),
            ));
        }
    }
    // HTTP transport fields: a turn always streams, in the foreground.
    map.remove("stream");
    map.remove("background");
    let generate = match map.remove("generate") {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => {
            return reject(ApiError::invalid_value(
                "generate",
                "Invalid value for 'generate': expected a boolean.",
            ));
        }
    };
    let body = serde_json::Value::Object(map);
    match serde_path_to_error::deserialize::<_, CreateResponse>(body) {
        Ok(request) => Incoming::Create(Box::new(Turn { request, generate })),
        Err(e) => reject(crate::api::error::body_error(&e.to_string())),
    }
}

/// Serves one upgraded connection until the client leaves, its age limit,
/// or shutdown.
pub async fn serve(
    engine: Engine,
    caller: Caller,
    conn: WebsocketConnection,
    limits: Limits,
    registered: Registered,
) {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_REQUEST_BYTES);
    config.max_frame_size = Some(MAX_REQUEST_BYTES);
    let ws = WebSocketStream::from_raw_socket(
        conn.into_inner(),
        Role::Server,
        Some(config),
    )
    .await;
    let mut socket = Ws::new(ws);
    let mut state = SocketState::default();
    let deadline = Instant::now() + limits.max_age;
    let mut ping = tokio::time::interval_at(
        Instant::now() + limits.ping_every,
        limits.ping_every,
    );
    loop {
        let got = tokio::select! {
            biased;
            _ = registered.closing.cancelled() => {
                close(&mut socket, CloseCode::Away, "server shutting down")
                    .await;
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let e = ApiError::invalid(
                    format!(
                        "Responses WebSocket connection limit reached ({} \
                         minutes). Create a new WebSocket connection to \
                         continue.",
                        limits.max_age.as_secs().div_ceil(60)
                    ),
                    None,
                    Some("websocket_connection_limit_reached"),
                );
                if socket.send_error(e).await {
                    close(&mut socket, CloseCode::Policy, "connection limit")
                        .await;
                }
                return;
            }
            _ = ping.tick() => {
                if !socket.queue(Message::Ping(Bytes::new())).await {
                    return;
                }
                continue;
            }
            got = socket.recv() => got,
        };
        let alive = match got {
            Incoming::Gone => false,
            Incoming::Rejected(e, previous) => {
                if let Some(id) = previous {
                    state.evict(&id);
                }
                socket.send_error(e).await
            }
            Incoming::Create(turn) => {
                engine
                    .socket_turn(&caller, *turn, &mut state, &mut socket)
                    .await
            }
        };
        if !alive {
            return;
        }
        ping.reset();
    }
}

async fn close(socket: &mut Ws, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    if socket.queue(Message::Close(Some(frame))).await {
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut socket.writer).await;
    }
}
