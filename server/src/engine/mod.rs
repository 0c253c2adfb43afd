//! The engine: a request becomes a prepared run, one driver runs it into
//! a sink, and one `finish()` ends it. Every mode (JSON, SSE, stored,
//! background, WebSocket) consumes the one event stream of a `ResponseBuilder`. No
//! HTTP types here: handlers call these methods and map `EngineError`.

pub mod background;
pub mod builder;
pub mod chat;
mod compact;
pub mod error;
pub mod follow;
pub mod hub;
mod models;
mod prepare;
pub mod responses;
pub mod run;
pub mod seal;
pub mod socket;
mod sync;
mod tokens;
pub mod transcript;
pub mod validate;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::*;
use crate::ids;
use crate::metrics::Metrics;
use crate::metrics::notes::note;
use crate::providers::Registry;
use crate::store::SharedStore;

pub use error::{EngineError, EngineResult, ErrorKind};
pub use run::{RunMode, RunOutcome};

use hub::Hub;

/// Background-run settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most runs executing at once in this process.
    pub workers: usize,
    /// Lease of a running run; renewed every third of it.
    pub lease_ms: i64,
    /// How often to look for queued runs and expired leases without a
    /// wake-up (other replicas' submissions, crashes).
    pub poll_ms: u64,
    /// How long event logs of finished runs are kept.
    pub event_retention_ms: i64,
    /// How long running runs may finish after SIGTERM.
    pub shutdown_grace_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 128,
            lease_ms: 30_000,
            poll_ms: 1_000,
            event_retention_ms: 24 * 3600 * 1000,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// Who is asking.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Organization id; every read is scoped to it.
    pub org_id: String,
    /// The key's id (never the key); None for the internal service key.
    pub key_id: Option<String>,
    /// The request's id, for logs.
    pub request_id: String,
}

/// What a create or view produces: a `Response`, or a `ChatCompletion`
/// on the chat front end.
pub enum Reply<T = Response> {
    /// The object (boxed: it is large and streams are common).
    Json(Box<T>),
    /// A response object already serialized: a stored response is encoded
    /// once, for the database and the client alike.
    Encoded(Bytes),
    /// SSE frames; dropping the receiver means the client left.
    Stream(mpsc::Receiver<Bytes>),
}

/// The engine, cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: SharedStore,
    providers: Registry,
    hub: Hub,
    config: EngineConfig,
    /// Identifies this process as a lease owner.
    replica_id: String,
    /// When this engine started (Unix seconds), the `created` of models.
    started_at: i64,
    /// Stop claiming new runs.
    draining: CancellationToken,
    /// Abandon running runs (after the grace period); stops every
    /// background task.
    abort: CancellationToken,
    /// WebSocket turns running now (shutdown lets them finish too).
    socket_turns: std::sync::atomic::AtomicUsize,
    /// Seals and opens compaction items.
    sealer: seal::Sealer,
    /// What runs are counted in.
    metrics: Metrics,
}

impl Engine {
    /// An engine over a store and providers. Background tasks start with
    /// [`Engine::start_background`].
    pub fn new(
        store: SharedStore,
        providers: Registry,
        config: EngineConfig,
        sealer: seal::Sealer,
        metrics: Metrics,
    ) -> Self {
        Engine {
            inner: Arc::new(Inner {
                store,
                providers,
                hub: Hub::default(),
                config,
                replica_id: format!("replica_{}", ids::random_hex(8)),
                started_at: ids::now_ms() / 1000,
                draining: CancellationToken::new(),
                abort: CancellationToken::new(),
                socket_turns: Default::default(),
                sealer,
                metrics,
            }),
        }
    }

    /// The metrics of this gateway.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// `POST /v1/responses`.
    pub async fn create(
        &self,
        caller: &Caller,
        req: CreateResponse,
    ) -> EngineResult<Reply> {
        let stream = req.stream.unwrap_or(false);
        let background = req.background.unwrap_or(false);
        let p = self.prepare(caller, req).await?;
        note(|n| {
            n.model = Some(p.response.model.clone());
            n.object_id = Some(p.response.id.clone());
            // The first target's; the attempt that serves replaces it.
            n.provider = Some(p.response.provider.clone());
        });
        // The request's access line (http/instrument.rs) has the model and
        // id; this one is for debugging. Tags and trace are client data
        // and stay out of the logs.
        tracing::debug!(
            request_id = %caller.request_id,
            org = %caller.org_id,
            response_id = %p.response.id,
            model = %p.response.model,
            stream, background,
            store = p.response.store,
            "response create"
        );
        if background {
            return self.submit(p, stream).await;
        }
        if stream {
            return self.run_stream(p).await;
        }
        self.run_json(p).await
    }
}

impl Engine {
    /// Opens compaction items for `org`.
    pub(crate) fn unseal<'a>(&'a self, org: &'a str) -> transcript::Unseal<'a> {
        transcript::Unseal { sealer: &self.inner.sealer, org }
    }
}

/// A response object as JSON text.
pub(crate) fn encode(r: &Response) -> String {
    let mut out = Vec::with_capacity(2048);
    // Serializing plain data into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, r);
    String::from_utf8(out).unwrap_or_default()
}
