//! `discover_models = true`: the upstream's own `GET /models` list,
//! cached, so `GET /v1/models` shows what the upstream serves without
//! asking it on every listing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

/// How long a fetched list is served before it is fetched again.
pub const FRESH_FOR: Duration = Duration::from_secs(300);

/// How long a failed fetch is remembered, so an unreachable upstream is
/// not asked again by every listing (nor logged for every one).
pub const FAILED_FOR: Duration = Duration::from_secs(30);

/// Time allowed for one fetch: a listing never waits longer on an
/// upstream.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest model list read (OpenAI's is about 20 KiB).
pub const MAX_LIST_BYTES: usize = 4 << 20;

/// The upstream's last answer, fresh until `until`.
struct Cached {
    until: Instant,
    /// `None` after a failed fetch.
    models: Option<Arc<Vec<String>>>,
}

/// One provider's discovered models. Concurrent listings share one fetch.
#[derive(Default)]
pub struct ModelCache {
    state: Mutex<Option<Cached>>,
}

impl ModelCache {
    /// The cached list, or a fresh one from `fetch` when the cache is
    /// stale. A failure (or a fetch slower than [`FETCH_TIMEOUT`]) is
    /// logged under `provider` and answers `None`.
    pub async fn get<F>(
        &self,
        provider: &str,
        fetch: F,
    ) -> Option<Arc<Vec<String>>>
    where
        F: Future<Output = Result<Vec<String>, String>>,
    {
        let mut state = self.state.lock().await;
        if let Some(c) = state.as_ref().filter(|c| Instant::now() < c.until) {
            return c.models.clone();
        }
        let fetched = match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
            Ok(r) => r,
            Err(_) => {
                Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))
            }
        };
        let (models, fresh_for) = match fetched {
            Ok(m) => {
                tracing::debug!(
                    provider,
                    models = m.len(),
                    "models discovered"
                );
                (Some(Arc::new(m)), FRESH_FOR)
            }
            Err(e) => {
                tracing::warn!(
                    provider,
                    error = %e,
                    "model discovery failed; listing only the configured models"
                );
                (None, FAILED_FOR)
            }
        };
        *state = Some(Cached {
            until: Instant::now() + fresh_for,
            models: models.clone(),
        });
        models
    }
}

/// The ids of an OpenAI-shaped model list (`{"data": [{"id": …}]}`).
pub fn parse_model_list(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        id: String,
    }
    let list: List = serde_json::from_slice(body)
        .map_err(|e| format!("unreadable model list: {e}"))?;
    Ok(list
        .data
        .into_iter()
        .map(|e| e.id)
        .filter(|id| !id.is_empty())
        .collect())
}

/// `configured` then the discovered ids not already in it, in the
/// upstream's order.
pub fn merge(configured: &[String], discovered: &[String]) -> Vec<String> {
    let mut out = configured.to_vec();
    for m in discovered {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openai_list_and_skips_empty_ids() {
        let body = br#"{"object":"list","data":[{"id":"a","object":"model","owned_by":"x"},{"id":""},{"id":"b"}]}"#;
        assert_eq!(parse_model_list(body).unwrap(), vec!["a", "b"]);
        assert!(parse_model_list(b"{}").is_err());
        assert!(parse_model_list(b"not json").is_err());
    }

    #[test]
    fn merge_keeps_configured_first_without_duplicates() {
        let c = vec!["x".to_string(), "a".to_string()];
        let d = vec!["a".to_string(), "b".to_string(), "x".to_string()];
        assert_eq!(merge(&c, &d), vec!["x", "a", "b"]);
    }

    #[tokio::test]
    async fn caches_success_and_failure() {
        let cache = ModelCache::default();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(vec!["m".to_string()])
        };
        assert_eq!(cache.get("p", fetch()).await.unwrap().as_slice(), ["m"]);
        assert_eq!(cache.get("p", fetch()).await.unwrap().as_slice(), ["m"]);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        let failing = ModelCache::default();
        let bad = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<Vec<String>, _>("down".to_string())
        };
        assert!(failing.get("p", bad()).await.is_none());
        assert!(failing.get("p", bad()).await.is_none());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
