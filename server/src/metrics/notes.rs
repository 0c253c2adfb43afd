//! What a request learns on its way (who called, which model and
//! provider, its tokens), noted by the layers that learn it and read by
//! the request's one access line and its HTTP metrics. The notes live in
//! a task-local set by the handler wrapper: the engine notes facts
//! without knowing about HTTP, and noting outside a request (background
//! runs, WebSocket turns) does nothing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

tokio::task_local! {
    static NOTES: Arc<Notes>;
}

/// The notes of one request.
#[derive(Debug, Default)]
pub struct Notes {
    noted: Mutex<Noted>,
}

/// The facts noted so far.
#[derive(Clone, Debug, Default)]
pub struct Noted {
    /// The caller's organization, once authenticated.
    pub org: Option<String>,
    /// The caller's key id (never the key).
    pub key_id: Option<String>,
    /// The model as requested.
    pub model: Option<String>,
    /// The provider that served (or was about to).
    pub provider: Option<String>,
    /// The response or chat completion id.
    pub object_id: Option<String>,
    /// Tokens, when the run ended inside the request.
    pub input_tokens: Option<i64>,
    /// Tokens, when the run ended inside the request.
    pub output_tokens: Option<i64>,
    /// Time to the first output, when known.
    pub time_to_first_token: Option<Duration>,
    /// The answer is a stream that outlives the handler.
    pub streamed: bool,
}

impl Notes {
    /// The facts noted so far.
    pub fn lock(&self) -> MutexGuard<'_, Noted> {
        self.noted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `fut` with these notes as the current request's.
    pub async fn scope<F: Future>(self: Arc<Self>, fut: F) -> F::Output {
        NOTES.scope(self, fut).await
    }
}

/// Notes a fact about the current request; nothing outside one.
pub fn note(f: impl FnOnce(&mut Noted)) {
    let _ = NOTES.try_with(|n| f(&mut n.lock()));
}
