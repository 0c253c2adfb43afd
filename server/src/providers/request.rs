//! What a front end asks a provider for, in neutral terms: the transcript
//! as typed items, tools, sampling, output format and reasoning. Both
//! front ends (Responses, Chat Completions) build one; every provider
//! translates it to its own protocol.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::api::{ContentPart, Role, TextFormat};

/// One message of the transcript.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Content parts (input or output text, images, files, refusals).
    pub parts: Vec<ContentPart>,
}

/// One item of the transcript sent upstream.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TranscriptItem {
    /// A message.
    Message(Message),
    /// A function call the assistant made.
    FunctionCall {
        /// The call id the output refers to.
        call_id: String,
        /// Function name.
        name: String,
        /// JSON arguments, as text.
        arguments: String,
    },
    /// The output of a function call, given back to the model.
    FunctionCallOutput {
        /// The call it answers.
        call_id: String,
        /// The output text.
        output: String,
    },
    /// Reasoning the assistant did.
    Reasoning {
        /// Raw reasoning text.
        #[serde(default)]
        text: String,
        /// Summary texts.
        #[serde(default)]
        summary: Vec<String>,
        /// Opaque state for the upstream that produced it.
        #[serde(default)]
        encrypted_content: Option<String>,
    },
}

impl TranscriptItem {
    /// The message, if this item is one.
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            TranscriptItem::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// A function tool the model may call.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct FunctionTool {
    /// Function name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// Whether and which tools the model must call.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// Never call tools.
    None,
    /// The model decides.
    Auto,
    /// The model must call some tool.
    Required,
    /// The model must call this function.
    Function(String),
}

/// Sampling and length parameters.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Sampling {
    /// Token limit of the answer.
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Presence penalty (-2..2).
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (-2..2).
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Seed for reproducible sampling.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Return log probabilities.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// How many top alternatives per token.
    #[serde(default)]
    pub top_logprobs: Option<i64>,
    /// Number of choices (chat only; 1 when unset).
    #[serde(default)]
    pub n: Option<u32>,
    /// Token id to bias (-100..100), as Chat Completions takes it.
    #[serde(default)]
    pub logit_bias: Option<Map<String, Value>>,
}

/// What a provider is asked to generate.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ProviderRequest {
    /// Upstream model name (after the `provider/` prefix).
    pub model: String,
    /// System instructions for this turn only.
    #[serde(default)]
    pub instructions: Option<String>,
    /// The transcript: inherited chain, then this turn's input.
    #[serde(default)]
    pub transcript: Vec<TranscriptItem>,
    /// Function tools.
    #[serde(default)]
    pub tools: Vec<FunctionTool>,
    /// Tool choice (None: the upstream's default).
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come at once.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Sampling and length.
    #[serde(default)]
    pub sampling: Sampling,
    /// Output format.
    #[serde(default)]
    pub output_format: Option<TextFormat>,
    /// Reasoning effort.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// End-user id, forwarded as `user`.
    #[serde(default)]
    pub user: Option<String>,
    /// Service tier asked for, forwarded where the upstream takes it.
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Fields forwarded verbatim to upstreams that speak the front end's
    /// own protocol (e.g. vLLM's `top_k` on chat); others never see them.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl ProviderRequest {
    /// The transcript's messages (other items skipped).
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.transcript.iter().filter_map(TranscriptItem::as_message)
    }

    /// Whether any message has an image.
    pub fn has_images(&self) -> bool {
        self.messages().any(|m| {
            m.parts.iter().any(|p| matches!(p, ContentPart::InputImage { .. }))
        })
    }
}

/// Who is calling and until when: travels beside the request.
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    /// The request's id, for upstream logs and ours.
    pub request_id: String,
    /// The caller's organization.
    pub org_id: String,
    /// The caller's key id (never the key).
    pub key_id: Option<String>,
    /// Cancelled when nobody waits for the answer any more.
    pub cancel: CancellationToken,
    /// When the whole call must be over, if bounded.
    pub deadline: Option<tokio::time::Instant>,
    /// Where attempts, retries, failovers and errors are counted.
    pub metrics: Option<crate::metrics::Metrics>,
}

/// What a provider can do, so validation answers 400 before any call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Image inputs.
    pub images: bool,
    /// Function tools.
    pub tools: bool,
    /// `json_schema` output format.
    pub json_schema: bool,
    /// Reasoning output.
    pub reasoning: bool,
    /// More than one choice (`n > 1`).
    pub multiple_choices: bool,
    /// Speaks Chat Completions itself, so unknown top-level chat fields
    /// can be forwarded verbatim (`ProviderRequest::extra`).
    pub extra_fields: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            images: true,
            tools: false,
            json_schema: true,
            reasoning: false,
            multiple_choices: false,
            extra_fields: false,
        }
    }
}
