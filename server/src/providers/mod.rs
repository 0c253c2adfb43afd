//! Upstream model providers behind one trait. A provider receives a
//! neutral [`ProviderRequest`] with a [`CallContext`] and answers with
//! item-level [`ProviderEvent`]s; only the front ends know a wire
//! taxonomy. Each protocol module owns its configuration and constructor.

pub mod anthropic;
pub mod client;
mod discovery;
pub mod echo;
mod error;
mod events;
pub mod http_options;
pub mod keys;
pub mod openai_chat;
pub mod openai_responses;
pub mod proxy;
mod registry;
mod request;
pub(crate) mod sse;
pub mod timeouts;
mod upstream;

use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use serde::Deserialize;

pub use error::{ProviderError, UpstreamReport};
pub use events::{
    AnswerMeta, Completion, Delta, FinishReason, ItemKind, ProviderEvent, Usage,
};
pub use registry::{Registry, Unresolved};
pub use request::{
    CallContext, Capabilities, FunctionTool, Message, ProviderRequest,
    Sampling, ToolChoice, TranscriptItem,
};

use crate::api::ContentPart;

/// Provider event stream.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<ProviderEvent, ProviderError>> + Send>>;

/// An upstream protocol adapter.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// What this provider can do.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The models this provider lists in `GET /v1/models` (names after
    /// the `provider/` prefix). May ask the upstream (`discover_models`),
    /// but never fails: an upstream that cannot be asked lists only its
    /// configured models.
    async fn models(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether only listed models may be called (`strict_models`); then
    /// a call is checked against [`Provider::models`] first.
    fn strict_models(&self) -> bool {
        false
    }

    /// The upstream keys this provider rotates through, if it has a
    /// pool: after a refused key the router tries another while some are
    /// not cooling down.
    fn keys(&self) -> Option<&keys::KeyPool> {
        None
    }

    /// The upstream's own count of `req`'s input tokens, where it has a
    /// counting endpoint (Anthropic's `count_tokens`); None: the gateway
    /// counts with a tokenizer instead.
    async fn count_tokens(
        &self,
        _req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Option<Result<i64, ProviderError>> {
        None
    }

    /// Starts a streaming generation. Resolves once the upstream accepted
    /// the request, so failures before the first event are plain errors.
    async fn stream(
        &self,
        req: &ProviderRequest,
        ctx: &CallContext,
    ) -> Result<EventStream, ProviderError>;

    /// Runs a whole generation. The default collects [`Provider::stream`];
    /// adapters override it where a non-streaming upstream call is
    /// cheaper (the hot path).
    async fn complete(
        &self,
        req: &ProviderRequest,
        ctx: &CallContext,
    ) -> Result<Completion, ProviderError> {
        let mut s = self.stream(req, ctx).await?;
        let mut events = Vec::new();
        while let Some(ev) = s.next().await {
            events.push(ev?);
        }
        Ok(Completion { events })
    }
}

/// `[providers.<name>]` of the configuration file: a tagged enum, so a
/// typo in `kind` or in any field is an error naming it.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind")]
// Read once at startup: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum ProviderConfig {
    /// The local `echo` provider.
    #[serde(rename = "echo")]
    Echo(echo::EchoConfig),
    /// An OpenAI-compatible Chat Completions upstream.
    #[serde(rename = "openai-chat")]
    OpenAiChat(openai_chat::ChatConfig),
    /// Anthropic's Messages API.
    #[serde(rename = "anthropic")]
    Anthropic(anthropic::AnthropicConfig),
    /// An upstream that serves the Responses API itself.
    #[serde(rename = "openai-responses")]
    OpenAiResponses(openai_responses::ResponsesConfig),
}

/// Gateway-wide settings every provider is built with.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// How long a refused upstream key is skipped (`[routing]`).
    pub key_cooldown: std::time::Duration,
}

impl Default for BuildContext {
    fn default() -> Self {
        BuildContext { key_cooldown: keys::DEFAULT_COOLDOWN }
    }
}

impl ProviderConfig {
    /// The models the configuration lists (without the `provider/`
    /// prefix): what metrics may name as labels.
    pub fn configured_models(&self) -> &[String] {
        match self {
            ProviderConfig::Echo(_) => &[],
            ProviderConfig::OpenAiChat(c) => &c.models,
            ProviderConfig::Anthropic(c) => &c.models,
            ProviderConfig::OpenAiResponses(c) => &c.models,
        }
    }

    /// Builds the provider called `name`.
    pub fn build(
        &self,
        name: &str,
        ctx: &BuildContext,
    ) -> Result<std::sync::Arc<dyn Provider>, String> {
        match self {
            ProviderConfig::Echo(c) => Ok(echo::Echo::from_config(c)),
            ProviderConfig::OpenAiChat(c) => {
                openai_chat::OpenAiChat::from_config(name, c, ctx)
            }
            ProviderConfig::Anthropic(c) => {
                anthropic::Anthropic::from_config(name, c, ctx)
            }
            ProviderConfig::OpenAiResponses(c) => {
                openai_responses::OpenAiResponses::from_config(name, c, ctx)
            }
        }
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
