//! A real fake HTTP proxy on 127.0.0.1, as corporate networks run them:
//! `CONNECT host:port` opens a byte tunnel (for https upstreams) and an
//! absolute-form request (`POST http://host:port/path`) is forwarded to
//! its origin (for http upstreams).
//!
//! It can require `Proxy-Authorization` (407 otherwise) and refuse every
//! `CONNECT` with 403, and it records what it was asked: the `CONNECT`
//! targets, the forwarded request lines, the `Proxy-Authorization` of
//! every request, and the connections accepted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How a [`FakeProxy`] behaves.
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// The exact `Proxy-Authorization` value required (e.g. `Basic
    /// dXNlcjpzZWNyZXQ=`); any other value, or none, is answered 407.
    pub require_authorization: Option<String>,
    /// Answer every `CONNECT` with 403.
    pub refuse_connect: bool,
}

#[derive(Default)]
struct State {
    options: ProxyOptions,
    connections: AtomicUsize,
    connect_targets: Mutex<Vec<String>>,
    request_lines: Mutex<Vec<String>>,
    authorizations: Mutex<Vec<Option<String>>>,
    tunnels: Mutex<JoinSet<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake proxy serving on 127.0.0.1 until dropped (its tunnels too).
pub struct FakeProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.task.abort();
        lock(&self.state.tunnels).abort_all();
    }
}

impl std::fmt::Debug for FakeProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeProxy {
    /// An open proxy: no credentials needed, `CONNECT` allowed.
    pub async fn start() -> FakeProxy {
        FakeProxy::start_with(ProxyOptions::default()).await
    }

    /// A proxy behaving as `options` say.
    pub async fn start_with(options: ProxyOptions) -> FakeProxy {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("fake proxy binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(State { options, ..State::default() });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        FakeProxy { addr, state, task }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:password@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The target (`host:port`) of every `CONNECT` received, refused or
    /// not, in arrival order.
    pub fn connect_targets(&self) -> Vec<String> {
        lock(&self.state.connect_targets).clone()
    }

    /// The request line (`POST http://host:port/path HTTP/1.1`) of every
    /// other request received, in arrival order.
    pub fn request_lines(&self) -> Vec<String> {
        lock(&self.state.request_lines).clone()
    }

    /// The `Proxy-Authorization` of every request (`CONNECT` or not).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        lock(&self.state.authorizations).clone()
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    let state = state.clone();
                    conns.spawn(async move {
                        let svc = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(state, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .with_upgrades()
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn answer(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *rsp.status_mut() = status;
    rsp
}

async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let authorization = req
        .headers()
        .get(header::PROXY_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    lock(&state.authorizations).push(authorization.clone());
    if req.method() == Method::CONNECT {
        let target =
            req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        lock(&state.connect_targets).push(target.clone());
    } else {
        let line =
            format!("{} {} {:?}", req.method(), req.uri(), req.version());
        lock(&state.request_lines).push(line);
    }

    if let Some(want) = &state.options.require_authorization
        && authorization.as_deref() != Some(want.as_str())
    {
        let mut rsp = answer(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "proxy credentials required",
        );
        rsp.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fake\""),
        );
        return rsp;
    }

    if req.method() == Method::CONNECT {
        if state.options.refuse_connect {
            return answer(StatusCode::FORBIDDEN, "tunnels are not allowed");
        }
        let Some(target) = req.uri().authority().map(|a| a.to_string()) else {
            return answer(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            return answer(StatusCode::BAD_GATEWAY, "cannot reach the target");
        };
        let upgrade = hyper::upgrade::on(&mut req);
        lock(&state.tunnels).spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut client = TokioIo::new(upgraded);
                let _ =
                    tokio::io::copy_bidirectional(&mut client, &mut upstream)
                        .await;
            }
        });
        return answer(StatusCode::OK, "");
    }

    forward(req).await
}

/// Sends an absolute-form request on to its origin.
async fn forward(req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().scheme().is_none() || req.uri().authority().is_none() {
        return answer(
            StatusCode::BAD_REQUEST,
            "a proxy wants absolute-form requests",
        );
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let mut headers = parts.headers;
    for hop in [
        header::HOST,
        header::PROXY_AUTHORIZATION,
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(hop);
    }
    let client = reqwest::Client::builder().no_proxy().build();
    let Ok(client) = client else {
        return answer(StatusCode::INTERNAL_SERVER_ERROR, "no client");
    };
    let sent = client
        .request(parts.method, parts.uri.to_string())
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(rsp) = sent else {
        return answer(StatusCode::BAD_GATEWAY, "cannot reach the origin");
    };
    let status = rsp.status();
    let mut headers = rsp.headers().clone();
    let Ok(body) = rsp.bytes().await else {
        return answer(StatusCode::BAD_GATEWAY, "the origin's answer broke");
    };
    for hop in
        [header::CONNECTION, header::CONTENT_LENGTH, header::TRANSFER_ENCODING]
    {
        headers.remove(hop);
    }
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}
