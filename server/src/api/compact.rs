//! Wire types of the two operations beside create: compaction
//! (`POST /v1/responses/compact`) and input token counts
//! (`POST /v1/responses/input_tokens`), and the compaction item they
//! introduce.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::{
    CreateResponse, Input, ItemResource, Reasoning, ResponseUsage, TextConfig,
    Truncation,
};

/// Request body of `POST /v1/responses/compact`.
///
/// The conversation to compact is `input`, after the transcript of
/// `previous_response_id` if given. The model named by `model` writes the
/// summary, following the gateway's fixed compaction prompt.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompactResponse {
    /// Model as `provider/model` (or an alias); it writes the summary.
    #[schemars(example = "example_model")]
    pub model: String,
    /// Text or typed input items to compact.
    pub input: Option<Input>,
    /// The id of a stored response whose transcript comes first.
    pub previous_response_id: Option<String>,
    /// Instructions of the conversation; summarized with it.
    pub instructions: Option<String>,
    /// Prompt cache key (accepted).
    pub prompt_cache_key: Option<String>,
    /// Prompt cache retention (accepted).
    pub prompt_cache_retention: Option<String>,
    /// Service tier (accepted).
    pub service_tier: Option<String>,
}

fn example_model() -> &'static str {
    "echo/demo"
}

/// The `response.compaction` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum CompactionObject {
    /// A compacted conversation.
    #[default]
    #[serde(rename = "response.compaction")]
    ResponseCompaction,
}

/// A compacted conversation: pass `output` as the start of a new
/// conversation's `input` (without `previous_response_id`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct CompactedResponse {
    /// Identifier of this compaction, `resp_…`.
    pub id: String,
    /// Always `response.compaction`.
    pub object: CompactionObject,
    /// Unix time (seconds) of the compaction.
    pub created_at: i64,
    /// The user messages, kept verbatim, then one `compaction` item
    /// sealing the summary of everything.
    pub output: Vec<ItemResource>,
    /// Tokens of the compaction call.
    pub usage: ResponseUsage,
}

/// The `compaction` item type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum CompactionType {
    /// A compaction item.
    #[default]
    #[serde(rename = "compaction")]
    Compaction,
}

/// A compaction item given back as input: the gateway opens it and gives
/// the model the summary it seals.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputCompaction {
    /// Always `compaction`.
    #[serde(rename = "type")]
    pub kind: CompactionType,
    /// Item id, `cmp_…` (accepted and ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The sealed summary, exactly as `POST /v1/responses/compact`
    /// returned it. Only the organization it was made for can use it.
    pub encrypted_content: String,
    /// Who created the item (accepted and ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// Request body of `POST /v1/responses/input_tokens`: the parts of a
/// create body that make up the model's input. The same validation as
/// create applies.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCountsBody {
    /// Model as `provider/model` (or an alias): picks the tokenizer.
    #[schemars(example = "example_model")]
    pub model: String,
    /// Text or typed input items.
    pub input: Option<Input>,
    /// The id of a stored response whose transcript is prepended.
    pub previous_response_id: Option<String>,
    /// A system (developer) message inserted before the input.
    pub instructions: Option<String>,
    /// Tools. Managed tools are not yet supported: only an empty list is
    /// accepted.
    #[schemars(length(max = 0))]
    pub tools: Option<Vec<Value>>,
    /// Output text configuration.
    pub text: Option<TextConfig>,
    /// Reasoning configuration.
    pub reasoning: Option<Reasoning>,
    /// Truncation strategy.
    pub truncation: Option<Truncation>,
    /// Conversations are not supported; use `previous_response_id`.
    pub conversation: Option<Value>,
    /// Tool choice.
    pub tool_choice: Option<Value>,
    /// Whether tool calls may run in parallel.
    pub parallel_tool_calls: Option<bool>,
}

/// The `response.input_tokens` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum TokenCountsObject {
    /// An input token count.
    #[default]
    #[serde(rename = "response.input_tokens")]
    ResponseInputTokens,
}

/// How many input tokens a create body makes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct TokenCountsResource {
    /// Always `response.input_tokens`.
    pub object: TokenCountsObject,
    /// The input tokens: exact for OpenAI model families and providers
    /// that count themselves, an `o200k_base` estimate otherwise.
    pub input_tokens: i64,
}

/// The answer of the operations served under `POST /v1/responses/{name}`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ResponseAction {
    /// `POST /v1/responses/compact`.
    Compacted(CompactedResponse),
    /// `POST /v1/responses/input_tokens`.
    InputTokens(TokenCountsResource),
}

impl From<CompactResponse> for CreateResponse {
    /// The create body a compaction is checked and prepared as: the same
    /// conversation, never stored.
    fn from(req: CompactResponse) -> Self {
        CreateResponse {
            model: Some(req.model),
            input: req.input,
            previous_response_id: req.previous_response_id,
            instructions: req.instructions,
            prompt_cache_key: req.prompt_cache_key,
            store: Some(false),
            ..CreateResponse::default()
        }
    }
}

impl From<TokenCountsBody> for CreateResponse {
    /// The create body whose input is counted, never stored.
    fn from(req: TokenCountsBody) -> Self {
        CreateResponse {
            model: Some(req.model),
            input: req.input,
            previous_response_id: req.previous_response_id,
            instructions: req.instructions,
            tools: req.tools,
            text: req.text,
            reasoning: req.reasoning,
            truncation: req.truncation,
            conversation: req.conversation,
            tool_choice: req.tool_choice,
            parallel_tool_calls: req.parallel_tool_calls,
            store: Some(false),
            ..CreateResponse::default()
        }
    }
}
