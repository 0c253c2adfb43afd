//! A real gateway for tests: `maniac_server::server::start` on 127.0.0.1
//! with a fresh database (a SQLite file, or a PostgreSQL database when
//! `MANIAC_TEST_BACKEND=postgres`) and a fake upstream provider `fake`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use maniac_server::config::{
    BackgroundConfig, CompactionConfig, FileConfig, LimitsConfig,
    StreamingConfig, WebsocketConfig,
};
use maniac_server::metrics::MetricsConfig;
use maniac_server::providers::ProviderConfig;
use maniac_server::providers::openai_chat::ChatConfig;
use maniac_server::routing::{AliasConfig, RoutingConfig};
use maniac_server::server::{self, Running, ServeOptions};
use maniac_server::store::SharedStore;
use serde_json::Value;

use crate::upstream::{FakeUpstream, TestTls};

/// Where PostgreSQL runs on CI machines (trust auth).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Starts a [`Gateway`] (optionally with [`Options`]) or returns from the
/// test when its backend is unavailable (a skipped test).
#[macro_export]
macro_rules! gateway {
    () => {
        match $crate::harness::Gateway::start().await {
            Some(gw) => gw,
            None => return,
        }
    };
    ($opts:expr) => {
        match $crate::harness::Gateway::start_with($opts).await {
            Some(gw) => gw,
            None => return,
        }
    };
}

/// Gateway settings a test may change.
#[derive(Clone, Debug)]
pub struct Options {
    /// Background workers.
    pub workers: usize,
    /// Lease of running runs (ms).
    pub lease_ms: i64,
    /// Upstream request timeout (s).
    pub request_timeout_secs: u64,
    /// Upstream idle timeout (s).
    pub idle_timeout_secs: u64,
    /// Internal service key.
    pub internal_key: Option<String>,
    /// The fake upstream speaks HTTPS (certificate from a throwaway CA).
    pub upstream_tls: bool,
    /// With `upstream_tls`: the gateway is given the CA (`ca_file`).
    pub trust_upstream_ca: bool,
    /// Provider `fake` lists the upstream's own models too.
    pub discover_models: bool,
    /// Provider `fake` serves only listed models.
    pub strict_models: bool,
    /// More providers beside `echo` and `fake`.
    pub extra_providers: Vec<(String, ProviderConfig)>,
    /// `[routing]`.
    pub routing: RoutingConfig,
    /// `[models]` aliases.
    pub aliases: BTreeMap<String, AliasConfig>,
    /// `[websocket] max_connection_secs`.
    pub websocket_max_connection_secs: Option<u64>,
    /// `[websocket] ping_interval_secs`.
    pub websocket_ping_interval_secs: Option<u64>,
    /// `[compaction] key_env`.
    pub compaction_key_env: Option<String>,
    /// `[streaming] keepalive_secs`.
    pub sse_keepalive_secs: Option<u64>,
    /// `[limits] max_inflight_body_bytes`.
    pub max_inflight_body_bytes: Option<u64>,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 16,
            lease_ms: 3_000,
            request_timeout_secs: 30,
            idle_timeout_secs: 30,
            internal_key: None,
            upstream_tls: false,
            trust_upstream_ca: true,
            discover_models: false,
            strict_models: false,
            extra_providers: Vec::new(),
            routing: RoutingConfig::default(),
            aliases: BTreeMap::new(),
            websocket_max_connection_secs: None,
            websocket_ping_interval_secs: None,
            compaction_key_env: None,
            sse_keepalive_secs: None,
            max_inflight_body_bytes: None,
            metrics: MetricsConfig::default(),
        }
    }
}

/// Which database the suite runs on.
pub fn backend() -> &'static str {
    match std::env::var("MANIAC_TEST_BACKEND").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// A fresh database that is removed when dropped.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    sqlite_dir: Option<PathBuf>,
    pg_name: Option<String>,
}

impl TestDb {
    /// Creates an empty database on the suite's backend; None when the
    /// backend is PostgreSQL and none is reachable (a skipped test), unless
    /// `MANIAC_REQUIRE_POSTGRES=1`, which makes that a failure.
    pub async fn create() -> Option<TestDb> {
        let tag = format!("{}_{}", std::process::id(), rand_hex());
        if backend() == "sqlite" {
            let dir = std::env::temp_dir().join(format!("maniac-test-{tag}"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let url = format!("sqlite://{}", dir.join("maniac.db").display());
            return Some(TestDb { url, sqlite_dir: Some(dir), pg_name: None });
        }
        let name = format!("maniac_test_{tag}");
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(PG_ADMIN_URL)
            .await;
        let admin = match admin {
            Ok(p) => p,
            Err(e) => {
                if std::env::var("MANIAC_REQUIRE_POSTGRES").as_deref()
                    == Ok("1")
                {
                    panic!("PostgreSQL required but unreachable: {e}");
                }
                eprintln!("skipped: no PostgreSQL at 127.0.0.1:5432 ({e})");
                return None;
            }
        };
        let sql = format!("CREATE DATABASE {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        Some(TestDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            sqlite_dir: None,
            pg_name: Some(name),
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside any runtime we may block: use a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async move {
                        if let Ok(admin) = sqlx::postgres::PgPoolOptions::new()
                            .max_connections(1)
                            .connect(PG_ADMIN_URL)
                            .await
                        {
                            let sql = format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            );
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                                .execute(&admin)
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

fn rand_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

/// A running gateway with its upstream and database.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// An API key of organization `default`.
    pub key: String,
    /// The fake upstream behind provider `fake`.
    pub upstream: FakeUpstream,
    /// A second connection to the same store.
    pub store: SharedStore,
    /// `http://ADDR` of the `[metrics] listen` listener, if configured.
    pub metrics_base: Option<String>,
    running: Option<Running>,
    /// The database (kept alive for the gateway's lifetime).
    pub db: TestDb,
}

/// The gateway configuration used by tests.
pub fn file_config(upstream_url: &str, o: &Options) -> FileConfig {
    let mut providers = BTreeMap::new();
    providers.insert(
        "fake".to_string(),
        ProviderConfig::OpenAiChat(ChatConfig {
            request_timeout_secs: Some(o.request_timeout_secs),
            idle_timeout_secs: Some(o.idle_timeout_secs),
            models: vec!["listed-model".into()],
            discover_models: o.discover_models,
            strict_models: o.strict_models,
            ..ChatConfig::at(upstream_url)
        }),
    );
    for (name, p) in &o.extra_providers {
        providers.insert(name.clone(), p.clone());
    }
    FileConfig {
        providers,
        routing: o.routing.clone(),
        models: o.aliases.clone(),
        websocket: WebsocketConfig {
            max_connection_secs: o.websocket_max_connection_secs,
            ping_interval_secs: o.websocket_ping_interval_secs,
        },
        compaction: CompactionConfig { key_env: o.compaction_key_env.clone() },
        streaming: StreamingConfig { keepalive_secs: o.sse_keepalive_secs },
        limits: LimitsConfig {
            max_inflight_body_bytes: o.max_inflight_body_bytes,
        },
        metrics: o.metrics.clone(),
        background: BackgroundConfig {
            workers: Some(o.workers),
            lease_ms: Some(o.lease_ms),
            poll_ms: Some(100),
            event_retention_hours: None,
            shutdown_grace_ms: Some(2_000),
        },
        ..Default::default()
    }
}

impl Gateway {
    /// Starts a gateway with default options; None if the backend is
    /// unavailable (skipped).
    pub async fn start() -> Option<Gateway> {
        Self::start_with(Options::default()).await
    }

    /// Starts a gateway; None if the backend is unavailable (skipped).
    pub async fn start_with(o: Options) -> Option<Gateway> {
        let db = TestDb::create().await?;
        let (upstream, ca_file) = if o.upstream_tls {
            let tls = TestTls::generate();
            let path = std::env::temp_dir()
                .join(format!("maniac-test-ca-{}.pem", rand_hex()));
            std::fs::write(&path, &tls.ca_pem).expect("write CA file");
            (FakeUpstream::start_tls(&tls).await, Some(path))
        } else {
            (FakeUpstream::start().await, None)
        };
        let mut file = file_config(&upstream.base_url(), &o);
        if o.trust_upstream_ca
            && let Some(ProviderConfig::OpenAiChat(p)) =
                file.providers.get_mut("fake")
        {
            p.ca_file = ca_file.clone();
        }
        let store = server::open_store(&db.url, &file).await.expect("store");
        let running = server::start(ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: db.url.clone(),
            file,
            internal_key: o.internal_key.clone().map(Into::into),
        })
        .await
        .expect("gateway starts");
        // Read at start-up; not needed any more.
        if let Some(p) = ca_file {
            let _ = std::fs::remove_file(p);
        }
        let key = running.bootstrap_key.clone().expect("bootstrap key");
        Some(Gateway {
            base: format!("http://{}", running.addr),
            key,
            upstream,
            store,
            metrics_base: running.metrics_addr().map(|a| format!("http://{a}")),
            running: Some(running),
            db,
        })
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a key in another organization.
    pub async fn key_for_org(&self, org: &str) -> String {
        let key = maniac_server::auth::generate();
        self.store
            .create_key(org, Some("test"), &key.key_id, &key.hash)
            .await
            .expect("create key");
        key.secret
    }

    /// The typed SDK client for a key.
    pub fn sdk(&self, key: &str) -> maniac_sdk::Client {
        maniac_sdk::Client::with_key(&self.base, key).expect("sdk client")
    }

    /// POST a JSON body with a key.
    pub async fn post(
        &self,
        key: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        http()
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// GET with a key.
    pub async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        http()
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    /// DELETE with a key.
    pub async fn delete(&self, key: &str, path: &str) -> reqwest::Response {
        http()
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    /// Creates a response and returns its JSON (asserting 200).
    pub async fn create(&self, body: Value) -> Value {
        let rsp = self.post(&self.key, "/v1/responses", &body).await;
        let status = rsp.status();
        let json: Value = rsp.json().await.expect("json");
        assert_eq!(status, 200, "create failed: {json}");
        json
    }

    /// Stops the gateway gracefully.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// A plain HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Reads a whole SSE body into `(event name, data JSON)` pairs.
pub async fn sse_events(rsp: reqwest::Response) -> Vec<(String, Value)> {
    let text = rsp.text().await.expect("body");
    parse_sse(&text)
}

/// Parses SSE text into `(event name, data JSON)` pairs.
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if !data.is_empty() {
            let json = serde_json::from_str(&data).expect("event JSON");
            out.push((event, json));
        }
    }
    out
}

/// The `type`s of events, in order.
pub fn types(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, v)| v["type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Asserts sequence numbers count up by one from `first`.
pub fn assert_consecutive(events: &[(String, Value)], first: i64) {
    for (i, (_, v)) in events.iter().enumerate() {
        assert_eq!(
            v["sequence_number"].as_i64(),
            Some(first + i as i64),
            "event {i}: {v}"
        );
    }
}

/// Polls GET until the response leaves queued/in_progress.
pub async fn wait_terminal(
    gw: &Gateway,
    key: &str,
    id: &str,
    within: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v: Value = gw
            .get(key, &format!("/v1/responses/{id}"))
            .await
            .json()
            .await
            .expect("json");
        let status = v["status"].as_str().unwrap_or("").to_string();
        if status != "queued" && status != "in_progress" {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} still {status}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
