//! API keys: random, shown once, stored only as SHA-256. Lookups are served
//! from bounded in-memory caches whose entries live two seconds, so the hot
//! path skips the database while revocation still takes effect within
//! seconds on every replica.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::{KeyRecord, SharedStore, StoreResult};

/// How long a looked-up key (or a miss) is trusted.
pub const TTL: Duration = Duration::from_secs(2);

/// A new key and its id; the key is shown once and never stored.
pub struct NewKey {
    /// Key id (`key_…`), safe to log.
    pub key_id: String,
    /// The secret key.
    pub secret: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
}

/// Generates a new random key.
pub fn generate() -> NewKey {
    let secret = format!("sk-mn-{}", crate::ids::random_hex(24));
    let hash = hash(&secret);
    NewKey {
        key_id: format!("key_{}", crate::ids::random_hex(8)),
        secret,
        hash,
    }
}

/// SHA-256 of a key, hex.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` has the shape of a key [`generate`] makes
/// (`sk-mn-` and 48 lowercase hex digits): anything else is refused
/// before any database access.
pub fn looks_like_key(secret: &str) -> bool {
    secret.strip_prefix("sk-mn-").is_some_and(|hex| {
        hex.len() == 48
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Keys by hash, cached: valid keys in a bounded cache (the busiest stay
/// when it is full; nothing is cleared wholesale), unknown keys in a
/// separate small one, so a flood of random tokens neither queries the
/// database per request (beyond each new token's first) nor evicts the
/// valid keys. Entries live [`TTL`], so a revocation is seen within it.
pub struct KeyCache {
    store: SharedStore,
    known: quick_cache::sync::Cache<String, (Instant, KeyRecord)>,
    unknown: quick_cache::sync::Cache<String, Instant>,
    /// Organizations of the internal service key, by id or name.
    orgs: quick_cache::sync::Cache<String, (Instant, Option<String>)>,
}

/// Most cached valid keys.
const MAX_KNOWN: usize = 100_000;
/// Most cached unknown keys.
const MAX_UNKNOWN: usize = 10_000;
/// Most cached organization lookups of the internal key.
const MAX_ORGS: usize = 10_000;

impl KeyCache {
    /// A cache over the store.
    pub fn new(store: SharedStore) -> Self {
        KeyCache {
            store,
            known: quick_cache::sync::Cache::new(MAX_KNOWN),
            unknown: quick_cache::sync::Cache::new(MAX_UNKNOWN),
            orgs: quick_cache::sync::Cache::new(MAX_ORGS),
        }
    }

    /// An organization's id by id or name (for the internal service key),
    /// cached like keys.
    pub async fn find_org(
        &self,
        id_or_name: &str,
    ) -> StoreResult<Option<String>> {
        if let Some((at, org)) = self.orgs.get(id_or_name)
            && at.elapsed() < TTL
        {
            return Ok(org);
        }
        let org = self.store.find_org(id_or_name).await?;
        self.orgs.insert(id_or_name.to_string(), (Instant::now(), org.clone()));
        Ok(org)
    }

    /// The key record for a presented secret (None: unknown).
    pub async fn lookup(&self, secret: &str) -> StoreResult<Option<KeyRecord>> {
        if !looks_like_key(secret) {
            return Ok(None);
        }
        let h = hash(secret);
        if let Some((at, rec)) = self.known.get(&h)
            && at.elapsed() < TTL
        {
            return Ok(Some(rec));
        }
        if let Some(at) = self.unknown.get(&h)
            && at.elapsed() < TTL
        {
            return Ok(None);
        }
        let rec = self.store.find_key(&h).await?;
        match &rec {
            Some(r) => {
                self.unknown.remove(&h);
                self.known.insert(h, (Instant::now(), r.clone()));
            }
            None => {
                self.known.remove(&h);
                self.unknown.insert(h, Instant::now());
            }
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_generated_shape_looks_like_a_key() {
        assert!(looks_like_key(&generate().secret));
        for bad in [
            "",
            "sk-mn-",
            "sk-mn-xyz",
            "sk-proj-0123456789abcdef0123456789abcdef0123456789abcdef",
            "sk-mn-0123456789ABCDEF0123456789abcdef0123456789abcdef",
            "sk-mn-0123456789abcdef0123456789abcdef0123456789abcdef0",
        ] {
            assert!(!looks_like_key(bad), "{bad}");
        }
    }
}
