//! Readiness: whether this gateway can serve (its database answers). A
//! small service of its own so `http` never reaches the store.

use crate::store::SharedStore;

/// Answers readiness probes.
pub struct Readiness {
    store: SharedStore,
}

impl Readiness {
    /// Readiness over a store.
    pub fn new(store: SharedStore) -> Self {
        Readiness { store }
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }
}
