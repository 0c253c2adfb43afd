//! Label values with a bounded set: providers and models named by the
//! configuration (anything else collapses to [`OTHER`]), status classes
//! and upstream error kinds. Organizations and keys are never labels: the
//! number of series must not grow with the number of customers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::providers::ProviderError;

/// The label of a provider or model that the configuration does not name.
pub const OTHER: &str = "other";

/// The provider label of a request that reached no provider.
pub const NO_PROVIDER: &str = "none";

/// The provider and model names the configuration allows as labels,
/// interned once so recording a sample clones an `Arc`, never a string.
#[derive(Debug)]
pub struct Catalog {
    providers: HashMap<String, Arc<str>>,
    models: HashMap<String, Arc<str>>,
    other: Arc<str>,
    none: Arc<str>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new(std::iter::empty::<String>(), std::iter::empty::<String>())
    }
}

impl Catalog {
    /// A catalog of provider names and full model ids (`provider/model`
    /// and alias names).
    pub fn new(
        providers: impl IntoIterator<Item = impl Into<String>>,
        models: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let intern = |names: &mut dyn Iterator<Item = String>| {
            names
                .map(|n| {
                    let label: Arc<str> = Arc::from(n.as_str());
                    (n, label)
                })
                .collect::<HashMap<_, _>>()
        };
        Catalog {
            providers: intern(&mut providers.into_iter().map(Into::into)),
            models: intern(&mut models.into_iter().map(Into::into)),
            other: Arc::from(OTHER),
            none: Arc::from(NO_PROVIDER),
        }
    }

    /// The catalog of a configuration: its providers, their listed
    /// models, `echo/echo` and the aliases. Discovered models are not
    /// labels: an upstream must not be able to grow the series.
    pub fn configured(
        file: &crate::config::FileConfig,
        registry: &crate::providers::Registry,
    ) -> Self {
        let providers = registry.names();
        let mut models = vec!["echo/echo".to_string()];
        for (name, p) in &file.providers {
            for m in p.configured_models() {
                models.push(format!("{name}/{m}"));
            }
        }
        models.extend(registry.alias_names().map(str::to_string));
        Catalog::new(providers.into_iter().map(str::to_string), models)
    }

    /// The label of a provider name; empty means no provider was reached.
    pub fn provider(&self, name: &str) -> Arc<str> {
        if name.is_empty() {
            return self.none.clone();
        }
        self.providers.get(name).unwrap_or(&self.other).clone()
    }

    /// The label of a model id as requested (`provider/model` or alias).
    pub fn model(&self, id: &str) -> Arc<str> {
        self.models.get(id).unwrap_or(&self.other).clone()
    }
}

/// `2xx`, `4xx`, …: the status class label.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The error kind label of a failed upstream attempt: a fixed set, so
/// an upstream's messages never become label values.
pub fn upstream_error_kind(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::Status { status: 429, .. } => "rate_limited",
        ProviderError::Status { status: 401 | 403, .. } => "auth",
        ProviderError::Status { status: 529, .. } => "overloaded",
        ProviderError::Status { status, .. } if *status < 500 => "rejected",
        ProviderError::Status { .. } => "server_error",
        ProviderError::Unavailable(_) => "unavailable",
        ProviderError::Timeout(_) => "first_byte_timeout",
        ProviderError::IdleTimeout(_) => "idle_timeout",
        ProviderError::TotalTimeout(_) => "total_timeout",
        ProviderError::Stream(_) => "stream",
        ProviderError::Protocol(_) => "protocol",
        ProviderError::Unsupported(_) => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_providers_and_models_collapse_to_other() {
        let c = Catalog::new(["fake"], ["fake/listed", "smart"]);
        assert_eq!(&*c.provider("fake"), "fake");
        assert_eq!(&*c.provider("nope"), OTHER);
        assert_eq!(&*c.provider(""), NO_PROVIDER);
        assert_eq!(&*c.model("fake/listed"), "fake/listed");
        assert_eq!(&*c.model("smart"), "smart");
        assert_eq!(&*c.model("fake/anything-a-client-sends"), OTHER);
    }

    #[test]
    fn status_classes() {
        for (s, c) in [
            (101, "1xx"),
            (200, "2xx"),
            (401, "4xx"),
            (499, "4xx"),
            (503, "5xx"),
        ] {
            assert_eq!(status_class(s), c, "{s}");
        }
    }
}
