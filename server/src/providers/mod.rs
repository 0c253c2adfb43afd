//! Upstream model providers behind one trait, and the registry that maps
//! `provider/model` to an adapter. Providers see a neutral transcript and
//! emit a small event stream; only the engine knows the OpenAI taxonomy.

pub mod client;
pub mod echo;
pub mod openai_chat;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::api::{ContentPart, Role, TextFormat};

/// One message of the transcript sent upstream.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Content parts (input or output text, images, refusals).
    pub parts: Vec<ContentPart>,
}

/// What a provider is asked to generate.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ProviderRequest {
    /// Upstream model name (after the `provider/` prefix).
    pub model: String,
    /// System instructions for this turn only.
    pub instructions: Option<String>,
    /// The transcript: inherited chain, then this turn's input.
    pub messages: Vec<Message>,
    /// Token limit.
    pub max_output_tokens: Option<i64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Reasoning effort.
    pub reasoning_effort: Option<String>,
    /// Output format.
    pub text_format: Option<TextFormat>,
    /// End-user id, forwarded as `user`.
    pub user: Option<String>,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum FinishReason {
    /// Natural end.
    Stop,
    /// Token limit reached.
    Length,
    /// Stopped by a content filter.
    ContentFilter,
}

/// Token counts reported by the upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input: i64,
    /// Of which read from cache.
    pub cached: i64,
    /// Completion tokens.
    pub output: i64,
    /// Of which reasoning.
    pub reasoning: i64,
}

/// One step of an upstream generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderEvent {
    /// More answer text.
    Text(String),
    /// More refusal text.
    Refusal(String),
    /// Token usage (may come after `Finish`).
    Usage(Usage),
    /// Generation stopped.
    Finish(FinishReason),
}

/// A whole generation, for the non-streaming path.
#[derive(Clone, Debug, Default)]
pub struct Completion {
    /// Answer text.
    pub text: String,
    /// Refusal text, if the model refused.
    pub refusal: Option<String>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// Why it stopped (None: upstream did not say).
    pub finish: Option<FinishReason>,
}

/// Upstream failures, mapped to HTTP answers by the engine.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    /// The upstream answered with an error status.
    #[error("upstream answered {status}: {message}")]
    Status {
        /// Upstream HTTP status.
        status: u16,
        /// Upstream message (never contains our upstream key).
        message: String,
        /// Retry-After seconds, for 429.
        retry_after: Option<u64>,
    },
    /// The upstream could not be reached or broke the connection.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out after {0} s")]
    Timeout(u64),
    /// The upstream sent something we cannot read.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
}

/// Provider event stream.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<ProviderEvent, ProviderError>> + Send>>;

/// An upstream protocol adapter.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Starts a streaming generation. Resolves once the upstream accepted
    /// the request, so failures before the first event are plain errors.
    async fn stream(
        &self,
        req: &ProviderRequest,
    ) -> Result<EventStream, ProviderError>;

    /// Runs a whole generation (the hot non-streaming path).
    async fn complete(
        &self,
        req: &ProviderRequest,
    ) -> Result<Completion, ProviderError>;
}

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

    /// Names of all providers, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }
}

/// Plain text of a message's parts (text, output text and refusals).
pub fn plain_text(parts: &[ContentPart]) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            ContentPart::InputText { text }
            | ContentPart::OutputText { text, .. } => out.push_str(text),
            ContentPart::Refusal { refusal } => out.push_str(refusal),
            _ => {}
        }
    }
    out
}
