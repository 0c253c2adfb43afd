//! Configuration: a TOML file, `MANIAC_*` environment variables and CLI
//! flags (flags win). Providers are configured as `[providers.<name>]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::engine::EngineConfig;
use crate::providers::openai_chat::ChatConfig;
use crate::providers::{BuildContext, ProviderConfig, Registry, echo::Echo};
use crate::routing::{AliasConfig, Aliases, RoutingConfig};
use crate::store::PoolOptions;

/// The TOML file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address.
    pub listen: Option<String>,
    /// Database URL.
    pub database_url: Option<String>,
    /// Providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Background runs.
    #[serde(default)]
    pub background: BackgroundConfig,
    /// Database pool.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Retry, backoff, key and breaker defaults.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Aliases served by several targets (`[models."smart"]`).
    #[serde(default)]
    pub models: BTreeMap<String, AliasConfig>,
    /// WebSocket mode.
    #[serde(default)]
    pub websocket: WebsocketConfig,
    /// Compaction (`POST /v1/responses/compact`).
    #[serde(default)]
    pub compaction: CompactionConfig,
    /// Server-sent event streams.
    #[serde(default)]
    pub streaming: StreamingConfig,
    /// Memory bounds.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `/metrics`: where it is served and its token.
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
}

/// `[limits]`: memory bounds.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most request body bytes held by all requests at once (default
    /// 256 MiB). Requests past it are answered 503 `server_overloaded`
    /// with `Retry-After` before their body is read.
    pub max_inflight_body_bytes: Option<u64>,
}

impl LimitsConfig {
    /// The body byte budget.
    pub fn max_inflight_body_bytes(&self) -> u64 {
        self.max_inflight_body_bytes.unwrap_or(256 << 20)
    }
}

/// `[streaming]`: server-sent event streams.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingConfig {
    /// Seconds of silence after which a stream sends the comment line
    /// `: keep-alive` (default 15), so proxies and load balancers that cut
    /// idle connections do not cut a long reasoning pause.
    pub keepalive_secs: Option<u64>,
}

impl StreamingConfig {
    /// Silence before a keep-alive comment.
    pub fn keepalive(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.keepalive_secs.unwrap_or(15).max(1))
    }
}

/// `[compaction]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionConfig {
    /// Environment variable holding the 32-byte key (base64 or hex) that
    /// seals compaction items. Unset: a key is generated once and kept in
    /// the database, shared by every replica.
    pub key_env: Option<String>,
}

impl CompactionConfig {
    /// The sealer from `key_env`, if one is named; an error names the
    /// variable (never its value).
    pub fn sealer_from_env(
        &self,
    ) -> Result<Option<crate::engine::seal::Sealer>, String> {
        let Some(var) = &self.key_env else { return Ok(None) };
        let text = std::env::var(var).map_err(|_| {
            format!(
                "[compaction] key_env names `{var}`, which is not set: set \
                 it to a 32-byte key (`openssl rand -base64 32`)"
            )
        })?;
        crate::engine::seal::Sealer::from_text(&text)
            .map(Some)
            .map_err(|e| format!("[compaction] key_env `{var}`: {e}"))
    }
}

/// `[websocket]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsocketConfig {
    /// Longest life of a connection in seconds (default 3600, as OpenAI).
    pub max_connection_secs: Option<u64>,
    /// An idle connection is pinged this often, in seconds (default 30).
    pub ping_interval_secs: Option<u64>,
}

impl WebsocketConfig {
    /// Longest life of a connection.
    pub fn max_connection(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.max_connection_secs.unwrap_or(3600).max(1),
        )
    }

    /// Ping interval of an idle connection.
    pub fn ping_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.ping_interval_secs.unwrap_or(30).max(1),
        )
    }
}

/// `[background]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackgroundConfig {
    /// Most concurrent runs in this process (default: 8 per database
    /// connection, so runs never queue behind the pool).
    pub workers: Option<usize>,
    /// Lease in milliseconds.
    pub lease_ms: Option<i64>,
    /// Queue and sweep poll interval in milliseconds.
    pub poll_ms: Option<u64>,
    /// Event log retention in hours.
    pub event_retention_hours: Option<f64>,
    /// Grace period after SIGTERM in milliseconds.
    pub shutdown_grace_ms: Option<u64>,
}

/// `[database]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Pool size.
    pub max_connections: Option<u32>,
    /// Wait for a connection before answering 503 (ms).
    pub acquire_timeout_ms: Option<u64>,
    /// PostgreSQL statement timeout (ms).
    pub statement_timeout_ms: Option<u64>,
    /// SQLite durability of a commit: `full` (default: fsync at every
    /// commit, survives power loss) or `normal` (survives a crash of the
    /// gateway, not of the machine; faster).
    pub sqlite_synchronous: Option<SqliteSynchronous>,
}

/// `[database] sqlite_synchronous`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// fsync at every commit.
    Full,
    /// fsync only at checkpoints.
    Normal,
}

impl FileConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| format!("parsing {}: {e}", path.display()))
    }

    /// Engine settings with defaults filled in.
    pub fn engine(&self) -> EngineConfig {
        let d = EngineConfig::default();
        let b = &self.background;
        EngineConfig {
            workers: b
                .workers
                .unwrap_or_else(|| {
                    (self.pool().max_connections as usize * 8).clamp(8, 1024)
                })
                .max(1),
            lease_ms: b.lease_ms.unwrap_or(d.lease_ms).max(300),
            poll_ms: b.poll_ms.unwrap_or(d.poll_ms).max(10),
            event_retention_ms: b
                .event_retention_hours
                .map_or(d.event_retention_ms, |h| (h * 3600.0 * 1000.0) as i64),
            shutdown_grace_ms: b
                .shutdown_grace_ms
                .unwrap_or(d.shutdown_grace_ms),
        }
    }

    /// Pool settings with defaults filled in.
    pub fn pool(&self) -> PoolOptions {
        let d = PoolOptions::default();
        PoolOptions {
            max_connections: self
                .database
                .max_connections
                .unwrap_or(d.max_connections),
            acquire_timeout_ms: self
                .database
                .acquire_timeout_ms
                .unwrap_or(d.acquire_timeout_ms),
            statement_timeout_ms: self
                .database
                .statement_timeout_ms
                .unwrap_or(d.statement_timeout_ms),
            sqlite_fsync_commits: self
                .database
                .sqlite_synchronous
                .map_or(d.sqlite_fsync_commits, |s| {
                    s == SqliteSynchronous::Full
                }),
        }
    }

    /// Builds the providers (`echo` always, the configured ones, and
    /// `openai` when `OPENAI_API_KEY` is set and none is configured) and
    /// the aliases over them.
    pub fn providers(&self) -> Result<Registry, String> {
        let mut reg = Registry::default();
        reg.insert("echo", Arc::new(Echo));
        let ctx = BuildContext { key_cooldown: self.routing.key_cooldown() };
        let mut all = self.providers.clone();
        if !all.contains_key("openai")
            && std::env::var_os("OPENAI_API_KEY").is_some()
        {
            all.insert(
                "openai".into(),
                ProviderConfig::OpenAiChat(ChatConfig::openai_default()),
            );
        }
        for (name, p) in all {
            if name.is_empty() || name.contains('/') {
                return Err(format!(
                    "provider name '{name}' must be non-empty and contain no '/'"
                ));
            }
            reg.insert(&name, p.build(&name, &ctx)?);
        }
        let policy = self.routing.policy();
        let aliases = Aliases::build(&self.models, policy, |name| {
            reg.get(name).cloned()
        })?;
        reg.set_routes(aliases, policy);
        Ok(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::FileConfig;

    fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn sqlite_commits_are_fsynced_unless_configured_otherwise() {
        assert!(FileConfig::default().pool().sqlite_fsync_commits);
        let full = parse("[database]\nsqlite_synchronous = \"full\"\n");
        assert!(full.expect("full").pool().sqlite_fsync_commits);
        let normal = parse("[database]\nsqlite_synchronous = \"normal\"\n");
        assert!(!normal.expect("normal").pool().sqlite_fsync_commits);
        let bad = parse("[database]\nsqlite_synchronous = \"off\"\n");
        let msg = bad.expect_err("off is refused").to_string();
        assert!(msg.contains("full") && msg.contains("normal"), "{msg}");
    }

    #[test]
    fn provider_kind_and_field_typos_are_errors_naming_them() {
        let ok = parse(
            "[providers.local]\nkind = \"openai-chat\"\n\
             base_url = \"http://127.0.0.1:1/v1\"\n\
             max_tokens_field = \"max_completion_tokens\"\n",
        );
        assert!(ok.expect("valid").providers().is_ok());
        let kind = parse("[providers.x]\nkind = \"open-ai\"\n");
        let msg = kind.expect_err("unknown kind").to_string();
        assert!(
            msg.contains("open-ai") && msg.contains("openai-chat"),
            "{msg}"
        );
        let field = parse(
            "[providers.x]\nkind = \"openai-chat\"\n\
             base_url = \"http://h/v1\"\nbase_ulr = \"x\"\n",
        );
        let msg = field.expect_err("unknown field").to_string();
        assert!(msg.contains("base_ulr"), "{msg}");
        let missing = parse("[providers.x]\nkind = \"openai-chat\"\n");
        let msg = missing.expect_err("missing base_url").to_string();
        assert!(msg.contains("base_url"), "{msg}");
        let echo = parse("[providers.e]\nkind = \"echo\"\nbase_url = \"x\"\n");
        assert!(echo.is_err(), "echo takes no fields");
    }
}
