//! API keys: random, shown once, stored only as SHA-256. Lookups are served
//! from a small in-memory cache whose entries live two seconds, so the hot
//! path skips the database while revocation still takes effect within
//! seconds on every replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::{KeyRecord, SharedStore, StoreResult};

/// How long a looked-up key (or a miss) is trusted.
const TTL: Duration = Duration::from_secs(2);
/// Most cached entries; the cache is cleared when full.
const MAX_ENTRIES: usize = 100_000;

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

/// Keys by hash, cached.
pub struct KeyCache {
    store: SharedStore,
    entries: Mutex<HashMap<String, (Instant, Option<KeyRecord>)>>,
}

impl KeyCache {
    /// A cache over the store.
    pub fn new(store: SharedStore) -> Self {
        KeyCache { store, entries: Mutex::new(HashMap::new()) }
    }

    /// An organization's id by id or name (for the internal service key).
    pub async fn find_org(
        &self,
        id_or_name: &str,
    ) -> StoreResult<Option<String>> {
        self.store.find_org(id_or_name).await
    }

    /// The key record for a presented secret (None: unknown).
    pub async fn lookup(&self, secret: &str) -> StoreResult<Option<KeyRecord>> {
        let h = hash(secret);
        if let Ok(entries) = self.entries.lock()
            && let Some((at, rec)) = entries.get(&h)
            && at.elapsed() < TTL
        {
            return Ok(rec.clone());
        }
        let rec = self.store.find_key(&h).await?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(h, (Instant::now(), rec.clone()));
        }
        Ok(rec)
    }
}
