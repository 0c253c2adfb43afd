//! Configured providers by name: `provider/model` resolves here.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Provider;

/// Configured providers by name.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
}

impl Registry {
    /// Adds (or replaces) a provider.
    pub fn insert(&mut self, name: &str, p: Arc<dyn Provider>) {
        self.providers.insert(name.to_string(), p);
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    /// Every listed model as `(provider, model)`, by provider name. The
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

    /// Names of all providers, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }
}
