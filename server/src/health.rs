//! Readiness: whether this gateway can serve (its database answers and
//! carries every migration this binary needs). A small service of its own
//! so `http` never reaches the store. Liveness needs nothing: a process
//! that answers HTTP is alive.

use crate::store::SharedStore;

/// Answers readiness probes.
pub struct Readiness {
    store: SharedStore,
}

/// Why a gateway is not ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The database did not answer.
    #[error("the database does not answer: {0}")]
    Database(String),
    /// The schema lacks a migration this binary needs.
    #[error("the database schema is missing migrations of this version")]
    Migrations,
}

impl NotReady {
    /// What a probe may be told (the cause stays in the log: the probe is
    /// unauthenticated).
    pub fn public_message(&self) -> &'static str {
        match self {
            NotReady::Database(_) => {
                "Not ready: the database does not answer. Retry later."
            }
            NotReady::Migrations => {
                "Not ready: the database lacks migrations of this version \
                 (run `maniac migrate`)."
            }
        }
    }
}

impl Readiness {
    /// Readiness over a store.
    pub fn new(store: SharedStore) -> Self {
        Readiness { store }
    }

    /// Ok when the database answers and its migrations are applied.
    pub async fn check(&self) -> Result<(), NotReady> {
        match self.store.migrations_applied().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotReady::Migrations),
            Err(e) => Err(NotReady::Database(e.to_string())),
        }
    }
}
