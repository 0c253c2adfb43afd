//! Wire types of a Chat Completions answer: the `chat.completion` object,
//! the `chat.completion.chunk` of a stream, usage, and the stored
//! completions' list, update and deletion objects.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chat::{ChatContent, ChatToolCall, FunctionType};
use super::types::{AssistantRole, ListObject};

/// The `chat.completion` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum ChatCompletionObject {
    /// A chat completion.
    #[default]
    #[serde(rename = "chat.completion")]
    ChatCompletion,
}

/// The `chat.completion.chunk` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum ChatCompletionChunkObject {
    /// A streamed chunk.
    #[default]
    #[serde(rename = "chat.completion.chunk")]
    ChatCompletionChunk,
}

/// A chat completion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// Always `chat.completion`.
    pub object: ChatCompletionObject,
    /// Unix seconds.
    pub created: i64,
    /// The model as requested (`provider/model`).
    pub model: String,
    /// The choices (`n` of them).
    pub choices: Vec<ChatChoice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
    /// The upstream's backend configuration fingerprint.
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    /// The service tier the request ran at.
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Metadata stored with the completion (stored completions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Maniac extension: the provider that answered.
    pub provider: String,
}

/// Why a choice stopped.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChatFinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Token limit reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Stopped by a content filter.
    ContentFilter,
}

/// One choice of a completion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChatChoice {
    /// Position among the choices.
    pub index: u32,
    /// The answer.
    pub message: ChatCompletionMessage,
    /// Why it stopped.
    pub finish_reason: ChatFinishReason,
    /// Token log probabilities, when `logprobs` was asked for.
    pub logprobs: Option<ChoiceLogprobs>,
}

/// The model's message.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ChatCompletionMessage {
    /// Always `assistant`.
    pub role: AssistantRole,
    /// The text (null when the model only called tools or refused).
    pub content: Option<String>,
    /// The refusal, if the model refused.
    pub refusal: Option<String>,
    /// Tool calls the model made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ChatToolCall>>,
    /// Citations.
    #[serde(default)]
    #[schemars(with = "Vec<Annotation>")]
    pub annotations: Vec<Value>,
    /// Reasoning the upstream returned (DeepSeek's and vLLM's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

/// A citation of a URL.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Annotation {
    /// `url_citation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The cited URL and where the citation is in the text.
    #[serde(default)]
    pub url_citation: Option<Value>,
}

/// Log probabilities of a choice.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ChoiceLogprobs {
    /// Of the message text.
    #[schemars(with = "Option<Vec<TokenLogprob>>")]
    pub content: Option<Vec<Value>>,
    /// Of the refusal.
    #[schemars(with = "Option<Vec<TokenLogprob>>")]
    pub refusal: Option<Vec<Value>>,
}

/// One token's log probability and its most likely alternatives.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct TokenLogprob {
    /// The token.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// Its UTF-8 bytes.
    pub bytes: Option<Vec<i64>>,
    /// The most likely tokens at this position.
    pub top_logprobs: Vec<TopLogprob>,
}

/// An alternative token.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct TopLogprob {
    /// The token.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// Its UTF-8 bytes.
    pub bytes: Option<Vec<i64>>,
}

/// Token usage of a completion.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct CompletionUsage {
    /// Prompt tokens (cached ones included).
    pub prompt_tokens: i64,
    /// Generated tokens (reasoning included).
    pub completion_tokens: i64,
    /// Both.
    pub total_tokens: i64,
    /// Breakdown of the prompt tokens.
    pub prompt_tokens_details: PromptTokensDetails,
    /// Breakdown of the generated tokens.
    pub completion_tokens_details: CompletionTokensDetails,
}

/// Breakdown of prompt tokens.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct PromptTokensDetails {
    /// Read from the prompt cache.
    pub cached_tokens: i64,
}

/// Breakdown of generated tokens.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct CompletionTokensDetails {
    /// Spent on reasoning.
    pub reasoning_tokens: i64,
}

/// One server-sent event of a streamed completion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChatCompletionChunk {
    /// The completion's id (the same on every chunk).
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: ChatCompletionChunkObject,
    /// Unix seconds (the same on every chunk).
    pub created: i64,
    /// The model as requested.
    pub model: String,
    /// Deltas of the choices (empty on the usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Null on every chunk but the last with `include_usage`; absent
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<CompletionUsage>>,
    /// The upstream's backend configuration fingerprint.
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    /// The service tier the request ran at.
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Maniac extension: the provider that answered.
    pub provider: String,
}

/// A choice's piece in one chunk.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChunkChoice {
    /// Position among the choices.
    pub index: u32,
    /// What is new.
    pub delta: ChunkDelta,
    /// Set on the choice's last chunk.
    pub finish_reason: Option<ChatFinishReason>,
    /// Log probabilities of this chunk's tokens.
    pub logprobs: Option<ChoiceLogprobs>,
}

/// What a chunk adds to a choice.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ChunkDelta {
    /// `assistant`, on the choice's first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AssistantRole>,
    /// More text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// More refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ChunkToolCall>>,
    /// More reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Citations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<Annotation>>")]
    pub annotations: Option<Vec<Value>>,
}

/// A fragment of a tool call: `id`, `type` and the name come first, the
/// arguments in pieces after.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChunkToolCall {
    /// Position of the call among the choice's calls.
    pub index: u32,
    /// The call's id (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first fragment).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FunctionType>,
    /// The function's name and a piece of its arguments.
    pub function: ChunkFunction,
}

/// A piece of a function call.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ChunkFunction {
    /// The name (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A page of stored chat completions.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChatCompletionList {
    /// Always `list`.
    pub object: ListObject,
    /// The completions of this page.
    pub data: Vec<ChatCompletion>,
    /// Id of the first completion of this page.
    pub first_id: Option<String>,
    /// Id of the last; pass it as `after` for the next page.
    pub last_id: Option<String>,
    /// Whether more follow.
    pub has_more: bool,
}

/// A stored request message.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChatStoredMessage {
    /// `<completion id>-<position>`.
    pub id: String,
    /// The message's role.
    pub role: String,
    /// The content as sent.
    pub content: Option<ChatContent>,
    /// Participant name, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ChatToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A refusal of an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// A page of a stored completion's request messages.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChatMessageList {
    /// Always `list`.
    pub object: ListObject,
    /// The messages of this page.
    pub data: Vec<ChatStoredMessage>,
    /// Id of the first message of this page.
    pub first_id: Option<String>,
    /// Id of the last; pass it as `after` for the next page.
    pub last_id: Option<String>,
    /// Whether more follow.
    pub has_more: bool,
}

/// The `chat.completion.deleted` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum ChatDeletedObject {
    /// A deleted completion.
    #[default]
    #[serde(rename = "chat.completion.deleted")]
    ChatCompletionDeleted,
}

/// Confirmation of a deletion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChatCompletionDeleted {
    /// The deleted completion's id.
    pub id: String,
    /// Always `chat.completion.deleted`.
    pub object: ChatDeletedObject,
    /// Always true.
    pub deleted: bool,
}

/// Body of `POST /v1/chat/completions/{completion_id}`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChatCompletion {
    /// The new metadata (replaces the old; up to 16 pairs).
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Path parameter naming a stored completion.
#[derive(Deserialize, JsonSchema)]
pub struct ChatCompletionPath {
    /// The completion id, `chatcmpl-…`.
    pub completion_id: String,
}
