//! Starting and stopping a gateway: open the store, build providers and
//! the engine, serve the API. Used by `maniac serve` and by the tests.

use std::net::SocketAddr;
use std::time::Duration;

use dropshot::{ConfigDropshot, ServerBuilder};

use crate::api::{MAX_REQUEST_BYTES, maniac_api_mod};
use crate::auth::KeyCache;
use crate::config::FileConfig;
use crate::engine::Engine;
use crate::engine::seal::Sealer;
use crate::http::websocket::{Connections, Limits};
use crate::http::{ManiacApiImpl, ServerState};
use crate::metrics::Metrics;
use crate::metrics::exposition::Exposition;
use crate::metrics::labels::Catalog;
use crate::metrics::store::TimedStore;
use crate::store::{self, SharedStore};

/// Everything needed to start a gateway.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    /// File configuration (providers, background, pool).
    pub file: FileConfig,
    /// Internal service key, if any.
    pub internal_key: Option<crate::secret::Secret>,
}

/// A running gateway.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// A key created on an empty store (print it once, never log it).
    pub bootstrap_key: Option<String>,
    server: dropshot::HttpServer<ServerState>,
    metrics_server: Option<dropshot::HttpServer<Exposition>>,
    engine: Engine,
    sockets: Connections,
    grace: Duration,
}

/// Opens the store named by the options, applying migrations.
pub async fn open_store(
    url: &str,
    file: &FileConfig,
) -> anyhow::Result<SharedStore> {
    let url = normalize_sqlite_url(url);
    store::open(&url, &file.pool())
        .await
        .map_err(|e| anyhow::anyhow!("opening the database: {e}"))
}

/// `sqlite://maniac.db` and `sqlite:maniac.db` both mean a relative file.
fn normalize_sqlite_url(url: &str) -> String {
    url.to_string()
}

/// The compaction key kept in the database (made by the first replica
/// that needs one).
async fn stored_sealer(store: &SharedStore) -> anyhow::Result<Sealer> {
    let key = store
        .server_secret("compaction_key", &Sealer::generate_key())
        .await
        .map_err(|e| anyhow::anyhow!("reading the compaction key: {e}"))?;
    Sealer::from_text(&key)
        .map_err(|e| anyhow::anyhow!("the stored compaction key: {e}"))
}

/// Starts serving.
pub async fn start(opts: ServeOptions) -> anyhow::Result<Running> {
    // Configuration first: a typo fails before the database is touched.
    let providers = opts.file.providers().map_err(anyhow::Error::msg)?;
    let configured_sealer =
        opts.file.compaction.sealer_from_env().map_err(anyhow::Error::msg)?;
    let metrics = Metrics::new(Catalog::configured(&opts.file, &providers));
    let exposition =
        Exposition::from_config(&opts.file.metrics, metrics.clone())
            .map_err(anyhow::Error::msg)?;
    let store = open_store(&opts.database_url, &opts.file).await?;
    let store = TimedStore::wrap(store, metrics.clone());
    let bootstrap_key = if store.count_keys().await? == 0 {
        let key = crate::auth::generate();
        store
            .create_key("default", Some("bootstrap"), &key.key_id, &key.hash)
            .await?;
        tracing::info!(key_id = %key.key_id, "created organization 'default' and its first key");
        Some(key.secret)
    } else {
        None
    };
    let sealer = match configured_sealer {
        Some(sealer) => sealer,
        None => stored_sealer(&store).await?,
    };
    let engine = Engine::new(
        store.clone(),
        providers,
        opts.file.engine(),
        sealer,
        metrics,
    );
    engine.start_background();
    let sockets = Connections::default();
    let grace = Duration::from_millis(opts.file.engine().shutdown_grace_ms);
    let state = ServerState {
        engine: engine.clone(),
        keys: KeyCache::new(store.clone()),
        readiness: crate::health::Readiness::new(store),
        internal_key_hash: opts
            .internal_key
            .as_ref()
            .map(|k| crate::auth::hash(k.expose())),
        sockets: sockets.clone(),
        socket_limits: Limits {
            max_age: opts.file.websocket.max_connection(),
            ping_every: opts.file.websocket.ping_interval(),
        },
        sse_keepalive: opts.file.streaming.keepalive(),
        body_budget: crate::api::budget::BodyBudget::new(
            opts.file.limits.max_inflight_body_bytes(),
        ),
        metrics: exposition.clone(),
    };
    crate::api::budget::register_context::<ServerState>();
    let mut api = maniac_api_mod::api_description::<ManiacApiImpl>()
        .map_err(|e| anyhow::anyhow!("API description: {e}"))?;
    crate::http::not_allowed::register(&mut api)
        .map_err(|e| anyhow::anyhow!("API description: {e}"))?;
    let log = crate::slog_bridge::logger();
    let config = ConfigDropshot {
        bind_address: opts.listen,
        default_request_body_max_bytes: MAX_REQUEST_BYTES,
        // A client that leaves cancels its request's work (and upstream
        // call); background runs are not tied to requests.
        default_handler_task_mode:
            dropshot::HandlerTaskMode::CancelOnDisconnect,
        ..Default::default()
    };
    let server =
        ServerBuilder::new(api, state, log).config(config).start().map_err(
            |e| anyhow::anyhow!("starting the server on {}: {e}", opts.listen),
        )?;
    let addr = server.local_addr();
    if !crate::nodelay::set_on_listener(addr) {
        tracing::warn!(%addr, "could not set TCP_NODELAY; streamed events may be delayed");
    }
    let metrics_server = match exposition.separate() {
        Some(at) => {
            let s = crate::metrics::exposition::listen(at, exposition)
                .map_err(anyhow::Error::msg)?;
            tracing::info!(addr = %s.local_addr(), "metrics listening");
            Some(s)
        }
        None => None,
    };
    tracing::info!(%addr, "maniac gateway listening");
    Ok(Running {
        addr,
        bootstrap_key,
        server,
        metrics_server,
        engine,
        sockets,
        grace,
    })
}

impl Running {
    /// The bound address of the `[metrics] listen` listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|s| s.local_addr())
    }

    /// Graceful stop: stop accepting, let in-flight requests and background
    /// runs finish (bounded), then return.
    pub async fn shutdown(self) {
        let engine = self.engine.clone();
        let runs = tokio::spawn(async move { engine.shutdown().await });
        // WebSocket connections close after their running turn; upgraded
        // connections are not the HTTP server's to wait for.
        let sockets = self.sockets.clone();
        let grace = self.grace + Duration::from_secs(1);
        let sockets = tokio::spawn(async move { sockets.drain(grace).await });
        let closing = self.server.close();
        if tokio::time::timeout(Duration::from_secs(15), closing).await.is_err()
        {
            tracing::warn!(
                "in-flight requests did not finish in 15 s; stopping anyway"
            );
        }
        if let Some(m) = self.metrics_server {
            let _ = m.close().await;
        }
        let _ = runs.await;
        let _ = sockets.await;
        crate::store::counters::log();
    }
}
