//! Routing: which deployment serves a `model`, and what happens when it
//! fails. A `provider/model` is served by that provider; an alias
//! (`[models."smart"]`) by one of its targets, picked by its strategy.
//! Either way, failures before the first output are retried with
//! backoff and then failed over to the next target ([`attempt`]); after
//! the first output nothing is replayed.

mod attempt;
pub mod config;
mod health;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub use attempt::{Failed, Served};
pub use config::{AliasConfig, Policy, RoutingConfig, Strategy};
use health::{Gate, Health};

use crate::providers::{Capabilities, Provider};

/// One deployment a route can call.
pub struct Target {
    /// The provider's configured name (what `provider` in a response
    /// names).
    pub provider_name: String,
    /// The upstream model.
    pub model: String,
    /// The adapter.
    pub provider: Arc<dyn Provider>,
    weight: u32,
    /// `None` for a direct `provider/model` call (a lone target has no
    /// other to prefer, so a breaker would change nothing).
    health: Option<Arc<Health>>,
}

/// An alias: its targets and policy.
pub struct Route {
    /// The alias as requested.
    pub name: String,
    targets: Vec<Target>,
    strategy: Strategy,
    policy: Policy,
    next: AtomicUsize,
}

/// What serves one request's `model`.
#[derive(Clone)]
pub enum Resolved {
    /// A configured provider called directly.
    Direct {
        /// The target.
        target: Arc<Target>,
        /// Retry settings (`[routing]`).
        policy: Policy,
    },
    /// An alias with targets.
    Alias(Arc<Route>),
}

impl Resolved {
    /// A direct call of `model` on `provider`.
    pub fn direct(
        provider_name: &str,
        model: &str,
        provider: Arc<dyn Provider>,
        policy: Policy,
    ) -> Resolved {
        Resolved::Direct {
            target: Arc::new(Target {
                provider_name: provider_name.to_string(),
                model: model.to_string(),
                provider,
                weight: 1,
                health: None,
            }),
            policy,
        }
    }

    /// What every target can do: a request must fit all of them, so a
    /// failover never meets a feature the first target had.
    pub fn capabilities(&self) -> Capabilities {
        match self {
            Resolved::Direct { target, .. } => target.provider.capabilities(),
            Resolved::Alias(r) => {
                let mut caps =
                    r.targets.iter().map(|t| t.provider.capabilities());
                let first = caps.next().unwrap_or_default();
                caps.fold(first, |a, b| Capabilities {
                    images: a.images && b.images,
                    tools: a.tools && b.tools,
                    json_schema: a.json_schema && b.json_schema,
                    reasoning: a.reasoning && b.reasoning,
                    multiple_choices: a.multiple_choices && b.multiple_choices,
                    extra_fields: a.extra_fields && b.extra_fields,
                })
            }
        }
    }

    /// The name to use in messages: the provider, or the alias.
    pub fn display_name(&self) -> &str {
        match self {
            Resolved::Direct { target, .. } => &target.provider_name,
            Resolved::Alias(r) => &r.name,
        }
    }

    /// The first target: the one a call tries first.
    pub fn first_target(&self) -> Option<&Target> {
        match self {
            Resolved::Direct { target, .. } => Some(target),
            Resolved::Alias(r) => r.targets.first(),
        }
    }

    /// The upstream model of the first target (each attempt sets its
    /// own).
    pub fn first_model(&self) -> &str {
        match self {
            Resolved::Direct { target, .. } => &target.model,
            Resolved::Alias(r) => {
                r.targets.first().map_or("", |t| t.model.as_str())
            }
        }
    }

    /// The provider name a response names before any call (the first
    /// target's); the serving one replaces it.
    pub fn first_provider(&self) -> &str {
        match self {
            Resolved::Direct { target, .. } => &target.provider_name,
            Resolved::Alias(r) => {
                r.targets.first().map_or("", |t| t.provider_name.as_str())
            }
        }
    }

    /// Targets in the order this request tries them: the strategy's
    /// pick, then the others in order; targets whose breaker is open come
    /// out, unless all are, then the least recently failed one alone.
    fn plan(&self) -> Vec<(&Target, Policy, Gate)> {
        match self {
            Resolved::Direct { target, policy } => {
                vec![(target.as_ref(), *policy, Gate::Open)]
            }
            Resolved::Alias(r) => r.plan(),
        }
    }
}

impl Route {
    fn plan(&self) -> Vec<(&Target, Policy, Gate)> {
        let n = self.targets.len();
        let first = match self.strategy {
            Strategy::Fallback => 0,
            Strategy::RoundRobin => {
                self.next.fetch_add(1, Ordering::Relaxed) % n
            }
            Strategy::Weighted => {
                let total: u64 =
                    self.targets.iter().map(|t| u64::from(t.weight)).sum();
                let mut pick = rand::random_range(0..total.max(1));
                self.targets
                    .iter()
                    .position(|t| {
                        let w = u64::from(t.weight);
                        if pick < w {
                            true
                        } else {
                            pick -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            }
            Strategy::LeastBusy => (0..n)
                .min_by_key(|&i| {
                    self.targets[i].health.as_ref().map_or(0, |h| h.in_flight())
                })
                .unwrap_or(0),
        };
        let now = Instant::now();
        let ordered = (0..n).map(|i| &self.targets[(first + i) % n]);
        let mut plan = Vec::with_capacity(n);
        for t in ordered {
            let gate = t.health.as_ref().map_or(Gate::Open, |h| h.gate(now));
            if gate != Gate::Shut {
                plan.push((t, self.policy, gate));
            }
        }
        if plan.is_empty() {
            // Every breaker is open: try the one that failed longest ago
            // rather than fail without a call.
            if let Some(t) = self.targets.iter().min_by_key(|t| {
                t.health.as_ref().and_then(|h| h.last_failure())
            }) {
                plan.push((t, self.policy, Gate::Probe));
            }
        }
        plan
    }
}

/// Every alias, built from `[models]` against the configured providers.
#[derive(Default)]
pub struct Aliases {
    routes: BTreeMap<String, Arc<Route>>,
}

impl Aliases {
    /// Builds the aliases; `lookup` finds a provider by name. Errors name
    /// the alias and the target.
    pub fn build(
        configs: &BTreeMap<String, AliasConfig>,
        base: Policy,
        lookup: impl Fn(&str) -> Option<Arc<dyn Provider>>,
    ) -> Result<Aliases, String> {
        let mut health: BTreeMap<String, Arc<Health>> = BTreeMap::new();
        let mut routes = BTreeMap::new();
        for (name, c) in configs {
            if name.is_empty() {
                return Err("models: an alias name must not be empty".into());
            }
            if c.targets.is_empty() {
                return Err(format!(
                    "models.\"{name}\".targets: list at least one target"
                ));
            }
            let mut targets = Vec::with_capacity(c.targets.len());
            for t in &c.targets {
                let full = t.model();
                let Some((p, m)) = full
                    .split_once('/')
                    .filter(|(p, m)| !p.is_empty() && !m.is_empty())
                else {
                    return Err(format!(
                        "models.\"{name}\".targets: '{full}' is not of the form \
                         'provider/model'"
                    ));
                };
                let Some(provider) = lookup(p) else {
                    return Err(format!(
                        "models.\"{name}\".targets: '{full}' names no configured \
                         provider '{p}'"
                    ));
                };
                if t.weight() == 0 && c.strategy == Strategy::Weighted {
                    return Err(format!(
                        "models.\"{name}\".targets: the weight of '{full}' must be \
                         at least 1"
                    ));
                }
                let h = health.entry(full.to_string()).or_default().clone();
                targets.push(Target {
                    provider_name: p.to_string(),
                    model: m.to_string(),
                    provider,
                    weight: t.weight().max(1),
                    health: Some(h),
                });
            }
            routes.insert(
                name.clone(),
                Arc::new(Route {
                    name: name.clone(),
                    targets,
                    strategy: c.strategy,
                    policy: c.policy(base),
                    next: AtomicUsize::new(0),
                }),
            );
        }
        Ok(Aliases { routes })
    }

    /// The alias called exactly `model`.
    pub fn get(&self, model: &str) -> Option<&Arc<Route>> {
        self.routes.get(model)
    }

    /// Alias names, for `GET /v1/models`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }
}
