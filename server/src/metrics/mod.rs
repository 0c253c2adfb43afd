//! Prometheus metrics of one gateway: a `prometheus-client` registry with
//! the HTTP, GenAI (OpenTelemetry semantic conventions in Prometheus
//! form), upstream, stream and background-run families. Each recording
//! is a few atomic adds behind a read-locked label lookup; label values
//! are interned by [`labels::Catalog`]. `exposition` serves the text.

pub mod exposition;
pub mod labels;
pub mod notes;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;

use crate::engine::{ErrorKind, RunOutcome};
use crate::providers::ProviderError;
use labels::Catalog;

/// `[metrics]` of the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` on this address instead of the main listener
    /// (then the main listener answers 404 there).
    pub listen: Option<String>,
    /// The environment variable holding a bearer token that scrapes
    /// must present.
    pub token_env: Option<String>,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    operation: &'static str,
    status_class: &'static str,
    provider: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: Arc<str>,
    gen_ai_request_model: Arc<str>,
    gen_ai_token_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: Arc<str>,
    gen_ai_request_model: Arc<str>,
    error_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: Arc<str>,
    gen_ai_request_model: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    provider: Arc<str>,
    kind: &'static str,
}

/// OpenTelemetry's `gen_ai.operation.name` of both front ends.
const CHAT: &str = "chat";

/// The gateway's metrics; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    catalog: Catalog,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpLabels>,
    token_usage: HistogramFamily<TokenLabels>,
    operation_duration: HistogramFamily<OperationLabels>,
    time_to_first_token: HistogramFamily<ModelLabels>,
    upstream_attempts: Family<ProviderLabels, Counter>,
    upstream_retries: Family<ProviderLabels, Counter>,
    upstream_failovers: Family<ProviderLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    sse_open: Gauge,
    websockets_open: Gauge,
    background_queued: Counter,
    background_started: Counter,
    background_running: Gauge,
    lease_expiries: Counter,
    store_duration: HistogramFamily<StoreLabels>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Catalog::default())
    }
}

fn http_seconds() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        30.0, 60.0, 120.0,
    ])
}

fn store_seconds() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        2.5, 5.0,
    ])
}

/// The bucket boundaries OpenTelemetry advises for
/// `gen_ai.client.operation.duration`.
fn operation_seconds() -> Histogram {
    Histogram::new([
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
        20.48, 40.96, 81.92,
    ])
}

/// The bucket boundaries OpenTelemetry advises for
/// `gen_ai.server.time_to_first_token`.
fn first_token_seconds() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
        2.5, 5.0, 7.5, 10.0,
    ])
}

/// The bucket boundaries OpenTelemetry advises for
/// `gen_ai.client.token.usage` (powers of four).
fn token_counts() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 4.0, 14,
    ))
}

impl Metrics {
    /// Registers every family; label values come from `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        let mut r = Registry::default();
        let http_requests = Family::default();
        r.register(
            "maniac_http_requests",
            "Requests that reached a handler, by operation, status class \
             and serving provider",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<_> =
            Family::new_with_constructor(http_seconds);
        r.register_with_unit(
            "maniac_http_request_duration",
            "Time from a handler's start to its answer (for streams: to \
             the start of the stream)",
            Unit::Seconds,
            http_duration.clone(),
        );
        let token_usage: HistogramFamily<_> =
            Family::new_with_constructor(token_counts);
        r.register(
            "gen_ai_client_token_usage",
            "Tokens used per run, by token type (input, output)",
            token_usage.clone(),
        );
        let operation_duration: HistogramFamily<_> =
            Family::new_with_constructor(operation_seconds);
        r.register_with_unit(
            "gen_ai_client_operation_duration",
            "Duration of a run, from its upstream call to its end",
            Unit::Seconds,
            operation_duration.clone(),
        );
        let time_to_first_token: HistogramFamily<_> =
            Family::new_with_constructor(first_token_seconds);
        r.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from the start of a run to its first output",
            Unit::Seconds,
            time_to_first_token.clone(),
        );
        let upstream_attempts = Family::default();
        r.register(
            "maniac_upstream_attempts",
            "Upstream calls made, retries and failovers included",
            upstream_attempts.clone(),
        );
        let upstream_retries = Family::default();
        r.register(
            "maniac_upstream_retries",
            "Upstream calls repeated on the same provider after a failure",
            upstream_retries.clone(),
        );
        let upstream_failovers = Family::default();
        r.register(
            "maniac_upstream_failovers",
            "Times a provider was given up for the next target, by the \
             provider left",
            upstream_failovers.clone(),
        );
        let upstream_errors = Family::default();
        r.register(
            "maniac_upstream_errors",
            "Failed upstream calls by provider and error kind",
            upstream_errors.clone(),
        );
        let sse_open = Gauge::default();
        r.register(
            "maniac_sse_streams_open",
            "Server-sent event streams being sent",
            sse_open.clone(),
        );
        let websockets_open = Gauge::default();
        r.register(
            "maniac_websocket_connections_open",
            "Open WebSocket connections",
            websockets_open.clone(),
        );
        let background_queued = Counter::default();
        r.register(
            "maniac_background_runs_queued",
            "Background runs queued by this process",
            background_queued.clone(),
        );
        let background_started = Counter::default();
        r.register(
            "maniac_background_runs_started",
            "Queued background runs this process claimed and started",
            background_started.clone(),
        );
        let background_running = Gauge::default();
        r.register(
            "maniac_background_runs_running",
            "Background runs executing in this process",
            background_running.clone(),
        );
        let lease_expiries = Counter::default();
        r.register(
            "maniac_background_lease_expiries",
            "Runs failed by the sweeper because their worker stopped \
             renewing its lease",
            lease_expiries.clone(),
        );
        let store_duration: HistogramFamily<_> =
            Family::new_with_constructor(store_seconds);
        r.register_with_unit(
            "maniac_store_operation_duration",
            "Store calls by operation and outcome (ok, error)",
            Unit::Seconds,
            store_duration.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry: r,
                catalog,
                http_requests,
                http_duration,
                token_usage,
                operation_duration,
                time_to_first_token,
                upstream_attempts,
                upstream_retries,
                upstream_failovers,
                upstream_errors,
                sse_open,
                websockets_open,
                background_queued,
                background_started,
                background_running,
                lease_expiries,
                store_duration,
            }),
        }
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(
            &mut out,
            &self.inner.registry,
        );
        out
    }

    /// One request that reached a handler.
    pub fn http_request(
        &self,
        operation: &'static str,
        status: u16,
        provider: &str,
        elapsed: Duration,
    ) {
        let i = &self.inner;
        let labels = HttpLabels {
            operation,
            status_class: labels::status_class(status),
            provider: i.catalog.provider(provider),
        };
        i.http_requests.get_or_create(&labels).inc();
        i.http_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// The end of a run: tokens, duration, time to first token. Runs that
    /// another actor ended (nothing written) are that actor's to count.
    pub fn run(&self, o: &RunOutcome) {
        if !o.recorded {
            return;
        }
        let i = &self.inner;
        let provider = i.catalog.provider(&o.facts.provider);
        let model = i.catalog.model(&o.facts.model);
        let tokens = |token_type, n: i64| {
            i.token_usage
                .get_or_create(&TokenLabels {
                    gen_ai_operation_name: CHAT,
                    gen_ai_provider_name: provider.clone(),
                    gen_ai_request_model: model.clone(),
                    gen_ai_token_type: token_type,
                })
                .observe(n.max(0) as f64);
        };
        tokens("input", o.usage.input);
        tokens("output", o.usage.output);
        i.operation_duration
            .get_or_create(&OperationLabels {
                gen_ai_operation_name: CHAT,
                gen_ai_provider_name: provider.clone(),
                gen_ai_request_model: model.clone(),
                error_type: o.error.map_or("", error_type),
            })
            .observe(o.duration.as_secs_f64());
        if let Some(ttft) = o.time_to_first_token {
            i.time_to_first_token
                .get_or_create(&ModelLabels {
                    gen_ai_operation_name: CHAT,
                    gen_ai_provider_name: provider,
                    gen_ai_request_model: model,
                })
                .observe(ttft.as_secs_f64());
        }
    }

    fn provider_labels(&self, provider: &str) -> ProviderLabels {
        ProviderLabels { provider: self.inner.catalog.provider(provider) }
    }

    /// An upstream call is about to be made.
    pub fn upstream_attempt(&self, provider: &str) {
        let l = self.provider_labels(provider);
        self.inner.upstream_attempts.get_or_create(&l).inc();
    }

    /// An upstream call failed.
    pub fn upstream_error(&self, provider: &str, e: &ProviderError) {
        let l = UpstreamErrorLabels {
            provider: self.inner.catalog.provider(provider),
            kind: labels::upstream_error_kind(e),
        };
        self.inner.upstream_errors.get_or_create(&l).inc();
    }

    /// The same provider is tried again (after a backoff, or with
    /// another key).
    pub fn upstream_retry(&self, provider: &str) {
        let l = self.provider_labels(provider);
        self.inner.upstream_retries.get_or_create(&l).inc();
    }

    /// `provider` was given up for the next target.
    pub fn upstream_failover(&self, provider: &str) {
        let l = self.provider_labels(provider);
        self.inner.upstream_failovers.get_or_create(&l).inc();
    }

    /// Counts an SSE stream open until the guard is dropped.
    pub fn sse_stream(&self) -> Open {
        Open::new(&self.inner.sse_open)
    }

    /// Counts a WebSocket connection open until the guard is dropped.
    pub fn websocket(&self) -> Open {
        Open::new(&self.inner.websockets_open)
    }

    /// Counts a background run executing until the guard is dropped.
    pub fn background_run(&self) -> Open {
        self.inner.background_started.inc();
        Open::new(&self.inner.background_running)
    }

    /// A background run was queued.
    pub fn background_queued(&self) {
        self.inner.background_queued.inc();
    }

    /// One store call and how long it took.
    pub fn store_operation(
        &self,
        operation: &'static str,
        ok: bool,
        elapsed: Duration,
    ) {
        let l =
            StoreLabels { operation, outcome: if ok { "ok" } else { "error" } };
        self.inner
            .store_duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    /// The sweeper failed a run whose lease expired.
    pub fn lease_expired(&self) {
        self.inner.lease_expiries.inc();
    }
}

/// The `error_type` label of a failed run (OpenTelemetry's `error.type`).
fn error_type(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::UpstreamAuth => "upstream_auth",
        ErrorKind::UpstreamRejected => "upstream_rejected",
        ErrorKind::UpstreamFailed => "upstream_failed",
        ErrorKind::UpstreamTimeout => "upstream_timeout",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Internal => "internal",
    }
}

/// One open thing counted by a gauge; leaves it when dropped.
pub struct Open {
    gauge: Gauge,
}

impl Open {
    fn new(gauge: &Gauge) -> Open {
        gauge.inc();
        Open { gauge: gauge.clone() }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
