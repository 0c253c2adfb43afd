//! Upstream key pools (`api_key_envs = ["KEY_A", "KEY_B"]`): keys rotate
//! per request, and a key the upstream refused (429, 401, 403) cools down
//! and is skipped until then, so one exhausted or revoked key does not
//! fail the requests the others could serve.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};

/// How a key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI and compatible hosts).
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
}

impl KeyHeader {
    fn header(self, key: &str) -> Result<(HeaderName, HeaderValue), String> {
        let (name, value) = match self {
            KeyHeader::Bearer => {
                (http::header::AUTHORIZATION, format!("Bearer {key}"))
            }
            KeyHeader::ApiKey => {
                (HeaderName::from_static("api-key"), key.to_string())
            }
            KeyHeader::XApiKey => {
                (HeaderName::from_static("x-api-key"), key.to_string())
            }
        };
        let mut v = HeaderValue::from_str(&value)
            .map_err(|_| "an upstream key is not a valid header value")?;
        v.set_sensitive(true);
        Ok((name, v))
    }
}

impl From<super::http_options::Auth> for KeyHeader {
    fn from(a: super::http_options::Auth) -> KeyHeader {
        match a {
            super::http_options::Auth::Bearer => KeyHeader::Bearer,
            super::http_options::Auth::ApiKey => KeyHeader::ApiKey,
        }
    }
}

/// One key of a pool, ready to send.
pub struct PoolKey {
    /// Position in the pool, to report on it.
    pub index: usize,
    /// The header carrying it (marked sensitive).
    pub header: (HeaderName, HeaderValue),
}

struct Entry {
    header: (HeaderName, HeaderValue),
    /// The raw key, only to scrub it from upstream messages.
    secret: String,
}

/// A provider's keys (none for keyless upstreams).
pub struct KeyPool {
    keys: Vec<Entry>,
    next: AtomicUsize,
    /// Per key: cooling until then.
    cooling: Mutex<Vec<Option<Instant>>>,
    cooldown: Duration,
}

/// Default time a refused key is skipped.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);

impl KeyPool {
    /// A pool of `keys`, sent as `style`; a refused key is skipped for
    /// `cooldown`.
    pub fn new(
        keys: Vec<String>,
        style: KeyHeader,
        cooldown: Duration,
    ) -> Result<KeyPool, String> {
        let keys = keys
            .into_iter()
            .map(|k| Ok(Entry { header: style.header(&k)?, secret: k }))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(KeyPool {
            cooling: Mutex::new(vec![None; keys.len()]),
            keys,
            next: AtomicUsize::new(0),
            cooldown,
        })
    }

    /// The keys named by environment variables, with errors naming the
    /// field and the variable (never the value).
    pub fn from_env(
        field: &str,
        vars: &[String],
        style: KeyHeader,
        cooldown: Duration,
    ) -> Result<KeyPool, String> {
        let keys = vars
            .iter()
            .map(|var| {
                std::env::var(var).map_err(|_| {
                    format!("{field}: environment variable {var} is not set")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        KeyPool::new(keys, style, cooldown)
    }

    /// The pool of a provider's `api_key_env` or `api_key_envs` (not
    /// both), read from the environment.
    pub fn from_config(
        provider: &str,
        api_key_env: Option<&String>,
        api_key_envs: &[String],
        style: KeyHeader,
        cooldown: Duration,
    ) -> Result<KeyPool, String> {
        if api_key_env.is_some() && !api_key_envs.is_empty() {
            return Err(format!(
                "providers.{provider}.api_key_envs: set either api_key_env \
                 or api_key_envs, not both"
            ));
        }
        let vars: Vec<String> = match api_key_env {
            Some(v) => vec![v.clone()],
            None => api_key_envs.to_vec(),
        };
        KeyPool::from_env(
            &format!("providers.{provider}"),
            &vars,
            style,
            cooldown,
        )
    }

    /// The headers of one call: `base` plus the next key's header (the
    /// pool key is returned to report a refusal on).
    pub fn headers<'a>(
        &self,
        base: &'a [(HeaderName, HeaderValue)],
    ) -> (std::borrow::Cow<'a, [(HeaderName, HeaderValue)]>, Option<PoolKey>)
    {
        let Some(key) = self.pick() else {
            return (std::borrow::Cow::Borrowed(base), None);
        };
        let mut h = Vec::with_capacity(base.len() + 1);
        h.extend_from_slice(base);
        h.push(key.header.clone());
        (std::borrow::Cow::Owned(h), Some(key))
    }

    /// The next key in rotation that is not cooling down; when all are,
    /// the one whose cooldown ends first (a call is better than none).
    /// `None` only for a keyless pool.
    pub fn pick(&self) -> Option<PoolKey> {
        let n = self.keys.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let index = if n == 1 {
            0
        } else {
            let now = Instant::now();
            let cooling = self.lock();
            (0..n)
                .map(|i| (start + i) % n)
                .find(|&i| cooling[i].is_none_or(|t| t <= now))
                .unwrap_or_else(|| {
                    (0..n).min_by_key(|&i| cooling[i]).unwrap_or(0)
                })
        };
        Some(PoolKey { index, header: self.keys[index].header.clone() })
    }

    /// Reports that the upstream refused `key` with `status`: 429, 401
    /// and 403 cool it down.
    pub fn refused(&self, key: &PoolKey, status: u16) {
        if matches!(status, 401 | 403 | 429) && key.index < self.keys.len() {
            self.lock()[key.index] = Some(Instant::now() + self.cooldown);
        }
    }

    /// The header the keys go in (none for a keyless pool).
    pub fn header_name(&self) -> Option<&HeaderName> {
        self.keys.first().map(|e| &e.header.0)
    }

    /// Keys not cooling down now.
    pub fn available(&self) -> usize {
        let now = Instant::now();
        self.lock().iter().filter(|c| c.is_none_or(|t| t <= now)).count()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the pool has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `text` with every key of the pool replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for e in &self.keys {
            if e.secret.len() >= 4 && out.contains(e.secret.as_str()) {
                out = out.replace(e.secret.as_str(), "[redacted]");
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
        self.cooling.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool").field("keys", &self.keys.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> KeyPool {
        let keys = (0..n).map(|i| format!("sk-key-{i}")).collect();
        KeyPool::new(keys, KeyHeader::Bearer, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn rotates_and_skips_cooling_keys() {
        let p = pool(3);
        let seq: Vec<usize> = (0..6).map(|_| p.pick().unwrap().index).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        let k1 = PoolKey { index: 1, header: p.pick().unwrap().header };
        p.refused(&k1, 401);
        assert_eq!(p.available(), 2);
        for _ in 0..6 {
            assert_ne!(p.pick().unwrap().index, 1);
        }
        // 400 and 500 are not the key's fault.
        let k0 = p.pick().unwrap();
        p.refused(&k0, 500);
        p.refused(&k0, 400);
        assert_eq!(p.available(), 2);
    }

    #[test]
    fn all_cooling_picks_the_one_that_ends_first() {
        let p = pool(2);
        let a = p.pick().unwrap();
        let b = p.pick().unwrap();
        p.refused(&b, 429);
        p.refused(&a, 429);
        assert_eq!(p.available(), 0);
        assert_eq!(p.pick().unwrap().index, b.index);
    }

    #[test]
    fn headers_are_sensitive_and_keys_scrubbed() {
        let p = KeyPool::new(
            vec!["sk-secret-1".into()],
            KeyHeader::XApiKey,
            DEFAULT_COOLDOWN,
        )
        .unwrap();
        let k = p.pick().unwrap();
        assert_eq!(k.header.0.as_str(), "x-api-key");
        assert!(k.header.1.is_sensitive());
        assert_eq!(p.scrub("bad key sk-secret-1!"), "bad key [redacted]!");
        assert!(format!("{p:?}").find("sk-secret").is_none());
        assert!(pool(0).pick().is_none());
    }
}
