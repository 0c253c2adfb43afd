//! A lean HTTP/1.1 client for one upstream origin: keep-alive connections
//! in a LIFO pool, driven by hyper's connection API, TLS by rustls.
//!
//! Why not reqwest: callgrind put reqwest at ~45k instructions of the
//! gateway's ~173k per proxied request: the URL was re-parsed three times
//! (redirect policy, pending request), and redirect, retry and legacy-pool
//! layers ran for an origin that never changes. Here the origin is parsed
//! once and a request is a header map, a body and a pooled sender.
//!
//! Behind an HTTP proxy ([`ProxyChoice`]) a pooled connection is a
//! `CONNECT` tunnel (https) or a connection to the proxy carrying
//! absolute-form requests (http).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

pub use super::proxy::ProxyChoice;
use super::proxy::{ProxyEnv, ProxyUrl};

type Sender = SendRequest<Full<Bytes>>;

/// Why a call failed, worded for operators (no URL, no key).
#[derive(Debug)]
pub enum ClientError {
    /// No connection could be made (DNS, refused, TLS).
    Connect(String),
    /// The connection broke while sending or reading.
    Io(String),
    /// The answer was larger than allowed.
    TooLarge(usize),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(m) => write!(f, "cannot connect: {m}"),
            ClientError::Io(m) => write!(f, "connection failed: {m}"),
            ClientError::TooLarge(n) => {
                write!(f, "the answer exceeds {n} bytes")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// Settings of a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time allowed to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Idle connections older than this are not reused.
    pub idle_timeout: Duration,
    /// Most idle connections kept.
    pub max_idle: usize,
    /// Extra trusted CA certificates (PEM), for private upstreams.
    pub extra_roots_pem: Option<Vec<u8>>,
    /// The outbound HTTP proxy, resolved once by [`Client::new`]
    /// (default: [`ProxyChoice::Direct`], whatever the environment says).
    pub proxy: ProxyChoice,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_idle: 1024,
            extra_roots_pem: None,
            proxy: ProxyChoice::Direct,
        }
    }
}

/// A client bound to one `http` or `https` origin.
pub struct Client {
    host: String,
    port: u16,
    authority: HeaderValue,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    route: Route,
    pool: Arc<Pool>,
    connect_timeout: Duration,
}

/// How connections reach the origin.
enum Route {
    Direct,
    /// https: TLS inside a `CONNECT` tunnel to `target` (`host:port`).
    Tunnel {
        proxy: ProxyUrl,
        target: String,
    },
    /// http: requests in absolute form (`http://origin/path`) to the proxy.
    Forward {
        proxy: ProxyUrl,
        origin: Authority,
    },
}

impl Route {
    /// The route to the origin `auth` (`port` filled in), with `env` read
    /// only for [`ProxyChoice::Environment`].
    fn resolve(
        choice: &ProxyChoice,
        env: impl FnOnce() -> ProxyEnv,
        https: bool,
        auth: &Authority,
        port: u16,
    ) -> Result<Route, String> {
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        let proxy = match choice {
            ProxyChoice::Direct => None,
            ProxyChoice::Url(url) => Some(
                ProxyUrl::parse(url)
                    .map_err(|e| format!("invalid proxy: {e}"))?,
            ),
            ProxyChoice::Environment => {
                match env().proxy_for(https, host, port) {
                    None => None,
                    Some(p) => Some(ProxyUrl::parse(p.url).map_err(|e| {
                        format!(
                            "{} is not a usable proxy: {e}; fix it, or \
                             list the upstream in NO_PROXY",
                            p.variable
                        )
                    })?),
                }
            }
        };
        let Some(proxy) = proxy else {
            return Ok(Route::Direct);
        };
        let target = super::proxy::authority(host, port);
        tracing::info!(
            upstream = %target,
            proxy = %proxy.authority(),
            "upstream connections go through a proxy"
        );
        Ok(if https {
            Route::Tunnel { proxy, target }
        } else {
            Route::Forward { proxy, origin: auth.clone() }
        })
    }

    fn proxy(&self) -> Option<&ProxyUrl> {
        match self {
            Route::Direct => None,
            Route::Tunnel { proxy, .. } | Route::Forward { proxy, .. } => {
                Some(proxy)
            }
        }
    }
}

impl Client {
    /// A client for the origin of `base`; the path of `base` is ignored
    /// here (requests name their own path).
    pub fn new(base: &Uri, opts: ClientOptions) -> Result<Client, String> {
        let https = match base.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => {
                return Err(
                    "the URL must start with http:// or https://".into()
                );
            }
        };
        let auth = base.authority().ok_or("the URL has no host")?;
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = HeaderValue::from_str(auth.as_str())
            .map_err(|_| "the URL's host is not a valid header value")?;
        let route = Route::resolve(
            &opts.proxy,
            ProxyEnv::from_process,
            https,
            auth,
            port,
        )?;
        let tls = if https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("invalid TLS server name: {e}"))?;
            Some((tls_connector(opts.extra_roots_pem.as_deref())?, name))
        } else {
            None
        };
        Ok(Client {
            host: host.to_string(),
            port,
            authority,
            tls,
            route,
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                max_idle: opts.max_idle,
                idle_timeout: opts.idle_timeout,
            }),
            connect_timeout: opts.connect_timeout,
        })
    }

    /// POSTs `body` to `path` on a pooled connection (or a new one). A
    /// pooled connection the upstream closed while it sat idle hands the
    /// request back unsent, and the next connection is tried.
    pub async fn post(
        &self,
        path: &PathAndQuery,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        self.send(Method::POST, path, headers, body).await
    }

    /// GETs `path` (model discovery), as [`Client::post`] does.
    pub async fn get(
        &self,
        path: &PathAndQuery,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }

    async fn send(
        &self,
        method: Method,
        path: &PathAndQuery,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        // hyper sends the URI as it is: a proxy wants the absolute form.
        let uri = match &self.route {
            Route::Forward { origin, .. } => Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(origin.clone())
                .path_and_query(path.clone())
                .build()
                .map_err(|e| ClientError::Io(e.to_string()))?,
            _ => Uri::from(path.clone()),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, self.authority.clone())
            .body(Full::new(body))
            .map_err(|e| ClientError::Io(e.to_string()))?;
        req.headers_mut().extend(headers.iter().cloned());
        if let Route::Forward { proxy, .. } = &self.route
            && let Some(auth) = &proxy.authorization
        {
            req.headers_mut().insert(header::PROXY_AUTHORIZATION, auth.clone());
        }
        loop {
            let (mut sender, pooled) = match self.pool.take() {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            if sender.ready().await.is_err() {
                if pooled {
                    continue;
                }
                return Err(ClientError::Io("connection closed".into()));
            }
            match sender.try_send_request(req).await {
                Ok(rsp) => {
                    let (parts, body) = rsp.into_parts();
                    return Ok(Answer {
                        status: parts.status,
                        headers: parts.headers,
                        body,
                        lease: Lease {
                            sender: Some(sender),
                            pool: self.pool.clone(),
                        },
                    });
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if pooled => req = unsent,
                    _ => return Err(ClientError::Io(error_chain(e.error()))),
                },
            }
        }
    }

    async fn connect(&self) -> Result<Sender, ClientError> {
        let connecting = async {
            let mut tcp = match self.route.proxy() {
                None => TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|e| ClientError::Connect(e.to_string()))?,
                Some(p) => TcpStream::connect((p.host.as_str(), p.port))
                    .await
                    .map_err(|e| {
                        ClientError::Connect(format!(
                            "proxy {}: {e}",
                            p.authority()
                        ))
                    })?,
            };
            let _ = tcp.set_nodelay(true);
            if let Route::Tunnel { proxy, target } = &self.route {
                super::proxy::connect_tunnel(&mut tcp, proxy, target).await?;
            }
            match &self.tls {
                None => handshake(tcp).await,
                Some((tls, name)) => {
                    let stream =
                        tls.connect(name.clone(), tcp).await.map_err(|e| {
                            ClientError::Connect(format!("TLS: {e}"))
                        })?;
                    handshake(stream).await
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Connect(format!(
                "no connection within {} s{}",
                self.connect_timeout.as_secs(),
                match self.route.proxy() {
                    Some(p) => format!(" (through proxy {})", p.authority()),
                    None => String::new(),
                }
            ))),
        }
    }
}

/// Starts HTTP/1.1 on `io` and spawns the task that drives it.
async fn handshake<T>(io: T) -> Result<Sender, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ClientError::Connect(error_chain(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %error_chain(&e), "upstream connection ended");
        }
    });
    Ok(sender)
}

fn tls_connector(extra_pem: Option<&[u8]>) -> Result<TlsConnector, String> {
    use tokio_rustls::rustls::{self, ClientConfig};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra: Vec<CertificateDer<'static>> = match extra_pem {
        None => Vec::new(),
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("reading CA certificates: {e}"))?
        }
    };
    let verifier = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(
            extra,
            provider.clone(),
        )
    }
    .map_err(|e| format!("TLS verifier: {e}"))?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// hyper errors print only their top level; the cause is what helps.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Idle connections, newest last: the warmest connection is reused first
/// and the coldest ones age out.
struct Pool {
    idle: Mutex<Vec<(Sender, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    fn take(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((s, since)) = idle.pop() {
            if !s.is_closed() && since.elapsed() < self.idle_timeout {
                return Some(s);
            }
        }
        None
    }

    fn put(&self, s: Sender) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push((s, Instant::now()));
        }
    }
}

/// A connection in use; it returns to the pool only once its answer was
/// read to the end (dropping it earlier closes the connection).
struct Lease {
    sender: Option<Sender>,
    pool: Arc<Pool>,
}

impl Lease {
    fn release(&mut self) {
        if let Some(s) = self.sender.take() {
            self.pool.put(s);
        }
    }
}

/// An upstream answer whose body has not been read yet.
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    body: Incoming,
    lease: Lease,
}

impl Answer {
    /// Reads the whole body, up to `limit` bytes.
    pub async fn bytes(mut self, limit: usize) -> Result<Bytes, ClientError> {
        let mut buf = BytesMut::new();
        while let Some(frame) = self.body.frame().await {
            let frame = frame.map_err(|e| ClientError::Io(error_chain(&e)))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(ClientError::TooLarge(limit));
                }
                if buf.is_empty() && self.body.is_end_stream() {
                    self.lease.release();
                    return Ok(data);
                }
                buf.extend_from_slice(&data);
            }
        }
        self.lease.release();
        Ok(buf.freeze())
    }

    /// The body as a stream of chunks; the connection goes back to the
    /// pool when the stream reaches its end.
    pub fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, ClientError>> + Send + 'static {
        let Answer { body, lease, .. } = self;
        futures::stream::unfold(Some((body, lease)), |state| async move {
            let (mut body, mut lease) = state?;
            loop {
                match body.frame().await {
                    None => {
                        lease.release();
                        return None;
                    }
                    Some(Err(e)) => {
                        return Some((
                            Err(ClientError::Io(error_chain(&e))),
                            None,
                        ));
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some((body, lease))));
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(choice: &ProxyChoice, env: ProxyEnv, base: &str) -> Route {
        let uri: Uri = base.parse().expect("URI");
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let auth = uri.authority().expect("authority");
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        Route::resolve(choice, || env, https, auth, port).expect("route")
    }

    fn env(https: &str, http: &str, no_proxy: &str) -> ProxyEnv {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        ProxyEnv {
            https_proxy: some(https),
            http_proxy: some(http),
            all_proxy: None,
            no_proxy: some(no_proxy),
        }
    }

    /// `Tunnel <proxy> <target>`, `Forward <proxy> <origin>` or `Direct`.
    fn describe(r: &Route) -> String {
        match r {
            Route::Direct => "Direct".into(),
            Route::Tunnel { proxy, target } => {
                format!("Tunnel {} {target}", proxy.authority())
            }
            Route::Forward { proxy, origin } => {
                format!("Forward {} {origin}", proxy.authority())
            }
        }
    }

    #[test]
    fn client_routes_follow_the_proxy_choice() {
        let corp = ProxyChoice::Url("http://u:p@proxy.corp:3128".into());
        let both = env("http://s:1", "http://p:2", "");
        // (choice, env, base URL, route)
        let table: &[(&ProxyChoice, ProxyEnv, &str, &str)] = &[
            (&ProxyChoice::Direct, both.clone(), "https://api.x/v1", "Direct"),
            (
                &corp,
                both.clone(),
                "https://api.x/v1",
                "Tunnel proxy.corp:3128 api.x:443",
            ),
            (
                &corp,
                both.clone(),
                "http://10.0.0.1:8000/v1",
                "Forward proxy.corp:3128 10.0.0.1:8000",
            ),
            (
                &corp,
                both.clone(),
                "https://[::1]:8443",
                "Tunnel proxy.corp:3128 [::1]:8443",
            ),
            // An explicit proxy ignores NO_PROXY.
            (
                &corp,
                env("", "", "*"),
                "https://api.x",
                "Tunnel proxy.corp:3128 api.x:443",
            ),
            (
                &ProxyChoice::Environment,
                both.clone(),
                "https://api.x/v1",
                "Tunnel s:1 api.x:443",
            ),
            (
                &ProxyChoice::Environment,
                both.clone(),
                "http://api.x/v1",
                "Forward p:2 api.x",
            ),
            (
                &ProxyChoice::Environment,
                env("http://s:1", "", ""),
                "http://api.x/v1",
                "Direct",
            ),
            (
                &ProxyChoice::Environment,
                env("http://s:1", "", "x"),
                "https://api.x/v1",
                "Direct",
            ),
            (
                &ProxyChoice::Environment,
                env("http://s:1", "", "api.x:8443"),
                "https://api.x/v1",
                "Tunnel s:1 api.x:443",
            ),
            (
                &ProxyChoice::Environment,
                env("http://s:1", "", ""),
                "https://localhost:8443/v1",
                "Tunnel s:1 localhost:8443",
            ),
        ];
        let wrong: Vec<_> = table
            .iter()
            .filter_map(|(choice, env, base, want)| {
                let got = describe(&route(choice, env.clone(), base));
                (got != *want).then(|| format!("{choice:?} {base}: {got}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn client_new_refuses_an_unusable_environment_proxy_naming_the_variable() {
        let uri: Uri = "https://api.x/v1".parse().expect("URI");
        let auth = uri.authority().expect("authority");
        let env = ProxyEnv {
            all_proxy: Some("socks5://user:hunter2@proxy:1080".into()),
            ..ProxyEnv::default()
        };
        let Err(e) =
            Route::resolve(&ProxyChoice::Environment, || env, true, auth, 443)
        else {
            panic!("a socks5 proxy should be refused");
        };
        assert!(e.contains("ALL_PROXY") && e.contains("NO_PROXY"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn client_environment_is_read_only_for_the_environment_choice() {
        let uri: Uri = "https://api.x/v1".parse().expect("URI");
        let auth = uri.authority().expect("authority");
        for choice in [ProxyChoice::Direct, ProxyChoice::Url("p:1".into())] {
            let r = Route::resolve(
                &choice,
                || panic!("{choice:?} read the environment"),
                true,
                auth,
                443,
            );
            assert!(r.is_ok());
        }
    }
}
