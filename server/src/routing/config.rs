//! `[routing]` (retry, backoff, key and breaker defaults) and
//! `[models."<alias>"]` (an alias served by several targets) of the
//! configuration file.

use std::time::Duration;

use serde::Deserialize;

/// `[routing]`: defaults of every route, each overridable per alias.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Retries of one target before the next is tried (default 2).
    pub max_retries: Option<u32>,
    /// First backoff (ms, default 200); doubled per retry, with jitter.
    pub backoff_initial_ms: Option<u64>,
    /// Longest backoff, and the cap on an upstream's `Retry-After` (ms,
    /// default 5000).
    pub backoff_max_ms: Option<u64>,
    /// How long an upstream key that got 429, 401 or 403 is skipped (s,
    /// default 30).
    pub key_cooldown_secs: Option<u64>,
    /// Failures in a row that open a target's circuit breaker (default 5).
    pub breaker_failures: Option<u32>,
    /// How long an open breaker skips its target before one probe (s,
    /// default 30).
    pub breaker_cooldown_secs: Option<u64>,
}

/// `[models."<alias>"]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasConfig {
    /// `provider/model` deployments that can serve the alias.
    pub targets: Vec<TargetConfig>,
    /// How a target is picked (default `fallback`).
    #[serde(default)]
    pub strategy: Strategy,
    /// Overrides of `[routing]`.
    pub max_retries: Option<u32>,
    /// Overrides `[routing] backoff_initial_ms`.
    pub backoff_initial_ms: Option<u64>,
    /// Overrides `[routing] backoff_max_ms`.
    pub backoff_max_ms: Option<u64>,
    /// Overrides `[routing] breaker_failures`.
    pub breaker_failures: Option<u32>,
    /// Overrides `[routing] breaker_cooldown_secs`.
    pub breaker_cooldown_secs: Option<u64>,
}

/// One target: `"openai/gpt-4.1"` or `{ model = "openai/gpt-4.1",
/// weight = 3 }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TargetConfig {
    /// Just the deployment (weight 1).
    Model(String),
    /// A deployment with a weight.
    Weighted {
        /// `provider/model`.
        model: String,
        /// Share of `weighted` picks (default 1).
        #[serde(default = "one")]
        weight: u32,
    },
}

fn one() -> u32 {
    1
}

impl TargetConfig {
    /// `provider/model`.
    pub fn model(&self) -> &str {
        match self {
            TargetConfig::Model(m)
            | TargetConfig::Weighted { model: m, .. } => m,
        }
    }

    /// Its weight.
    pub fn weight(&self) -> u32 {
        match self {
            TargetConfig::Model(_) => 1,
            TargetConfig::Weighted { weight, .. } => *weight,
        }
    }
}

/// How an alias picks its first target (the others follow in order as
/// fallbacks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In the configured order.
    #[default]
    Fallback,
    /// Each request starts one target further.
    RoundRobin,
    /// Picked at random by weight.
    Weighted,
    /// The target with the fewest calls in flight.
    LeastBusy,
}

/// Resolved retry and breaker settings of one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Retries of one target.
    pub max_retries: u32,
    /// First backoff.
    pub backoff_initial: Duration,
    /// Longest backoff and `Retry-After` cap.
    pub backoff_max: Duration,
    /// Failures in a row that open the breaker.
    pub breaker_failures: u32,
    /// Open breaker duration.
    pub breaker_cooldown: Duration,
}

impl RoutingConfig {
    /// The defaults of every route.
    pub fn policy(&self) -> Policy {
        Policy {
            max_retries: self.max_retries.unwrap_or(2),
            backoff_initial: Duration::from_millis(
                self.backoff_initial_ms.unwrap_or(200),
            ),
            backoff_max: Duration::from_millis(
                self.backoff_max_ms.unwrap_or(5_000),
            ),
            breaker_failures: self.breaker_failures.unwrap_or(5).max(1),
            breaker_cooldown: Duration::from_secs(
                self.breaker_cooldown_secs.unwrap_or(30),
            ),
        }
    }

    /// The key cooldown.
    pub fn key_cooldown(&self) -> Duration {
        Duration::from_secs(self.key_cooldown_secs.unwrap_or(30))
    }
}

impl AliasConfig {
    /// `base` with this alias's overrides.
    pub fn policy(&self, base: Policy) -> Policy {
        Policy {
            max_retries: self.max_retries.unwrap_or(base.max_retries),
            backoff_initial: self
                .backoff_initial_ms
                .map_or(base.backoff_initial, Duration::from_millis),
            backoff_max: self
                .backoff_max_ms
                .map_or(base.backoff_max, Duration::from_millis),
            breaker_failures: self
                .breaker_failures
                .unwrap_or(base.breaker_failures)
                .max(1),
            breaker_cooldown: self
                .breaker_cooldown_secs
                .map_or(base.breaker_cooldown, Duration::from_secs),
        }
    }
}
