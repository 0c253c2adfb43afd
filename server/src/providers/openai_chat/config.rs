//! `kind = "openai-chat"` configuration and its resolved settings (keys
//! read from the environment, CA file read, timeouts with defaults).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use http::header::{HeaderName, HeaderValue};

use crate::providers::BuildContext;
use crate::providers::client::ProxyChoice;
use crate::providers::http_options::{Auth, extra_headers};
use crate::providers::keys::KeyPool;
use crate::providers::timeouts::{TimeoutFields, Timeouts};

/// `kind = "openai-chat"`: any OpenAI-compatible Chat Completions API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Name of the environment variable that holds the upstream key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Several keys, rotated per request; a key that got 429, 401 or 403
    /// is skipped for `[routing] key_cooldown_secs`. Not with
    /// `api_key_env`.
    #[serde(default)]
    pub api_key_envs: Vec<String>,
    /// Which header carries the key: `bearer` (default) or `api-key`
    /// (Azure OpenAI).
    #[serde(default)]
    pub auth: Auth,
    /// Static query parameters appended to every URL (Azure's
    /// `api-version`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra static headers sent with every call.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `max_tokens` (default) or `max_completion_tokens`.
    #[serde(default)]
    pub max_tokens_field: Option<MaxTokensField>,
    /// The first-byte timeout under its older name.
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    /// Seconds to open a connection, TCP and TLS (default 10).
    #[serde(default)]
    pub connect_timeout_secs: Option<u64>,
    /// Seconds until the upstream's answer starts (default 300).
    #[serde(default)]
    pub first_byte_timeout_secs: Option<u64>,
    /// Longest silence between streamed chunks (default 120).
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds the whole call may take, streaming included (default: no
    /// limit).
    #[serde(default)]
    pub total_timeout_secs: Option<u64>,
    /// PEM file of extra CA certificates to trust for this upstream
    /// (self-hosted models behind a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Outbound HTTP proxy (`http://[user:pass@]host:port`; CONNECT for
    /// https upstreams). Unset: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Models listed by `GET /v1/models` (others can still be called
    /// unless `strict_models`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Also list what the upstream's own `GET {base_url}/models` names
    /// (cached for five minutes; an unreachable upstream is left out of
    /// the listing and logged).
    #[serde(default)]
    pub discover_models: bool,
    /// Only listed (configured or discovered) models may be called;
    /// others are a 404 `model_not_found` before any upstream call.
    #[serde(default)]
    pub strict_models: bool,
}

/// The name of the token-limit field the upstream takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens` (most compatible servers).
    #[default]
    MaxTokens,
    /// `max_completion_tokens` (OpenAI's current name).
    MaxCompletionTokens,
}

impl ChatConfig {
    /// OpenAI's public endpoint with the key in `OPENAI_API_KEY`.
    pub fn openai_default() -> Self {
        ChatConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: Some("OPENAI_API_KEY".into()),
            api_key_envs: Vec::new(),
            auth: Auth::Bearer,
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
            max_tokens_field: Some(MaxTokensField::MaxCompletionTokens),
            request_timeout_secs: None,
            connect_timeout_secs: None,
            first_byte_timeout_secs: None,
            idle_timeout_secs: None,
            total_timeout_secs: None,
            ca_file: None,
            proxy: None,
            models: Vec::new(),
            discover_models: false,
            strict_models: false,
        }
    }

    /// A keyless upstream at `base_url` with every default.
    pub fn at(base_url: impl Into<String>) -> Self {
        ChatConfig {
            base_url: base_url.into(),
            api_key_env: None,
            max_tokens_field: None,
            ..ChatConfig::openai_default()
        }
    }
}

/// Resolved settings of one Chat Completions upstream.
#[derive(Clone)]
pub struct Settings {
    /// Base URL including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Upstream keys (none for a keyless upstream), in the header their
    /// `auth` names.
    pub keys: Arc<KeyPool>,
    /// Static query parameters of every URL.
    pub query: BTreeMap<String, String>,
    /// Extra static headers, checked.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Which token-limit field to send.
    pub max_tokens_field: MaxTokensField,
    /// Connect, first-byte, idle and total timeouts.
    pub timeouts: Timeouts,
    /// Extra trusted CA certificates (PEM), for upstreams behind a
    /// private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// How to reach the upstream: directly, through the configured proxy
    /// or through the environment's.
    pub proxy: ProxyChoice,
    /// Models to list.
    pub models: Vec<String>,
    /// Whether to list the upstream's own models too.
    pub discover_models: bool,
    /// Whether only listed models may be called.
    pub strict_models: bool,
}

/// Never shows the keys.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("keys", &self.keys.len())
            .field("max_tokens_field", &self.max_tokens_field)
            .field("discover_models", &self.discover_models)
            .field("strict_models", &self.strict_models)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Resolves `c` (the provider `name`): errors name the field.
    pub fn from_config(
        name: &str,
        c: &ChatConfig,
        ctx: &BuildContext,
    ) -> Result<Settings, String> {
        let field = |f: &str| format!("providers.{name}.{f}");
        let keys = KeyPool::from_config(
            name,
            c.api_key_env.as_ref(),
            &c.api_key_envs,
            c.auth.into(),
            ctx.key_cooldown,
        )?;
        let timeouts = Timeouts::resolve(
            name,
            TimeoutFields {
                connect: c.connect_timeout_secs,
                first_byte: c.first_byte_timeout_secs,
                request: c.request_timeout_secs,
                idle: c.idle_timeout_secs,
                total: c.total_timeout_secs,
            },
            300,
        )?;
        let ca_pem = match &c.ca_file {
            Some(f) => Some(std::fs::read(f).map_err(|e| {
                format!("{}: reading {}: {e}", field("ca_file"), f.display())
            })?),
            None => None,
        };
        let settings = Settings {
            base_url: c.base_url.clone(),
            keys: Arc::new(keys),
            query: c.query.clone(),
            headers: extra_headers(&c.headers)
                .map_err(|e| format!("providers.{name}.{e}"))?,
            max_tokens_field: c.max_tokens_field.unwrap_or_default(),
            timeouts,
            ca_pem,
            proxy: c
                .proxy
                .clone()
                .map_or(ProxyChoice::Environment, ProxyChoice::Url),
            models: c.models.clone(),
            discover_models: c.discover_models,
            strict_models: c.strict_models,
        };
        if settings.strict_models
            && settings.models.is_empty()
            && !settings.discover_models
        {
            return Err(format!(
                "providers.{name}: strict_models = true needs `models` or \
                 discover_models = true (else no model could be called)"
            ));
        }
        Ok(settings)
    }
}
