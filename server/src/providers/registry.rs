//! Configured providers by name and the aliases routed over them:
//! `provider/model` and alias names resolve here.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Provider;
use crate::routing::{Aliases, Policy, Resolved, RoutingConfig};

/// Configured providers by name, and the aliases over them.
#[derive(Default)]
pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    aliases: Aliases,
    policy: Option<Policy>,
}

/// Why a `model` names nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Not `provider/model` and no alias.
    Malformed,
    /// `provider/…` with an unknown provider.
    UnknownProvider(String),
}

impl Registry {
    /// Adds (or replaces) a provider.
    pub fn insert(&mut self, name: &str, p: Arc<dyn Provider>) {
        self.providers.insert(name.to_string(), p);
    }

    /// Sets the aliases and the default retry policy.
    pub fn set_routes(&mut self, aliases: Aliases, policy: Policy) {
        self.aliases = aliases;
        self.policy = Some(policy);
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    /// What serves `model`: an alias of that exact name (which may itself
    /// look like `provider/model`), else the provider before the `/`.
    pub fn resolve(&self, model: &str) -> Result<Resolved, Unresolved> {
        if let Some(route) = self.aliases.get(model) {
            return Ok(Resolved::Alias(route.clone()));
        }
        let (name, m) = model
            .split_once('/')
            .filter(|(p, m)| !p.is_empty() && !m.is_empty())
            .ok_or(Unresolved::Malformed)?;
        let provider = self
            .providers
            .get(name)
            .ok_or_else(|| Unresolved::UnknownProvider(name.to_string()))?;
        Ok(Resolved::direct(name, m, provider.clone(), self.policy()))
    }

    /// The retry policy of direct `provider/model` calls.
    pub fn policy(&self) -> Policy {
        self.policy.unwrap_or_else(|| RoutingConfig::default().policy())
    }

    /// Whether `model` is an alias.
    pub fn is_alias(&self, model: &str) -> bool {
        self.aliases.get(model).is_some()
    }

    /// Every listed model as `(owner, model id after the owner's /)` by
    /// provider name, then the aliases as `(owner, whole alias)`. The
    /// providers are asked concurrently, so one slow upstream's discovery
    /// is the whole wait.
    pub async fn models(&self) -> Vec<(&str, String)> {
        let lists = futures::future::join_all(
            self.providers.values().map(|p| p.models()),
        )
        .await;
        self.providers
            .keys()
            .zip(lists)
            .flat_map(|(name, ms)| {
                ms.into_iter().map(move |m| (name.as_str(), m))
            })
            .collect()
    }

    /// Alias names.
    pub fn alias_names(&self) -> impl Iterator<Item = &str> {
        self.aliases.names()
    }

    /// Names of all providers, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }
}
