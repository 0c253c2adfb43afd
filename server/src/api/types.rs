//! Wire types of the Responses API: the create request, the `Response`
//! object, input and output items. Names follow the OpenAI spec so users of
//! both find their way; field docs become the published spec.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compact::InputCompaction;
use super::items::{InputReasoning, ReasoningContent, SummaryPart};

/// Request body of `POST /v1/responses`.
///
/// Every field of OpenAI's `CreateResponse` is accepted. Fields the gateway
/// cannot honour (`conversation`, `prompt`, a non-empty `tools`) are rejected
/// with a 400 that says what to do. Unknown fields are rejected with
/// `unknown_parameter`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResponse {
    /// Model as `provider/model`, for example `openai/gpt-4o-mini` or
    /// `echo/any`. Required.
    // Optional here so that our validation, not serde, answers its absence
    // (with the form to use); the spec documents it as required.
    #[schemars(example = "example_model", with = "String")]
    pub model: Option<String>,
    /// Text or typed input items. A string is one user message.
    #[schemars(example = "example_input")]
    pub input: Option<Input>,
    /// A system (developer) message inserted before the input. Not carried
    /// over to later turns chained with `previous_response_id`.
    pub instructions: Option<String>,
    /// Whether to store the response for later retrieval. Defaults to true.
    pub store: Option<bool>,
    /// The id of a stored response whose transcript is prepended.
    pub previous_response_id: Option<String>,
    /// Stream the response as server-sent events.
    pub stream: Option<bool>,
    /// Options for streaming; only with `stream: true`.
    pub stream_options: Option<StreamOptions>,
    /// Run in the background: return at once with `status: "queued"`.
    /// Requires `store: true`.
    pub background: Option<bool>,
    /// Upper bound on generated tokens; at least 16.
    pub max_output_tokens: Option<i64>,
    /// Maximum number of built-in tool calls (echoed; tools are not
    /// supported).
    pub max_tool_calls: Option<i64>,
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 to 1.
    pub top_p: Option<f64>,
    /// Penalty for tokens already present, -2 to 2 (forwarded upstream).
    pub presence_penalty: Option<f64>,
    /// Penalty by token frequency so far, -2 to 2 (forwarded upstream).
    pub frequency_penalty: Option<f64>,
    /// Number of most likely tokens to return per position, 0 to 20.
    pub top_logprobs: Option<i64>,
    /// Up to 16 key-value pairs; keys up to 64 characters, values up to 512.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Output text configuration (plain text, JSON object or JSON schema).
    pub text: Option<TextConfig>,
    /// Tools. Managed tools are not yet supported: only an empty list is
    /// accepted.
    #[schemars(length(max = 0))]
    pub tools: Option<Vec<Value>>,
    /// Tool choice (echoed).
    pub tool_choice: Option<Value>,
    /// Whether tool calls may run in parallel (echoed).
    pub parallel_tool_calls: Option<bool>,
    /// Truncation strategy (echoed).
    pub truncation: Option<Truncation>,
    /// Deprecated end-user identifier (echoed).
    pub user: Option<String>,
    /// A stable identifier of the end user, for abuse detection (echoed).
    pub safety_identifier: Option<String>,
    /// Prompt cache key (echoed and forwarded where supported).
    pub prompt_cache_key: Option<String>,
    /// Prompt cache retention (echoed).
    pub prompt_cache_retention: Option<String>,
    /// Reasoning configuration; `effort` is forwarded upstream.
    pub reasoning: Option<Reasoning>,
    /// Extra output to include (accepted, not all values have an effect).
    pub include: Option<Vec<String>>,
    /// Service tier (echoed).
    pub service_tier: Option<String>,
    /// Conversations are not supported; use `previous_response_id`.
    pub conversation: Option<Value>,
    /// Stored prompt templates are not supported.
    pub prompt: Option<Value>,
    /// Maniac extension: free-form tags stored with the response and logged.
    pub tags: Option<Vec<String>>,
    /// Maniac extension: trace context stored with the response and logged.
    pub trace: Option<BTreeMap<String, Value>>,
}

fn example_model() -> &'static str {
    "echo/demo"
}

fn example_input() -> &'static str {
    "Summarize the Maniac gateway in one line."
}

/// Streaming options.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Include the random `obfuscation` padding on delta events (default
    /// true).
    pub include_obfuscation: Option<bool>,
}

/// `input`: a string (one user message) or a list of input items.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Input {
    /// A single user message.
    Text(String),
    /// Typed input items.
    Items(Vec<InputItem>),
}

/// One input item: a message (easy, typed, or an earlier assistant output
/// re-sent) or a reference to a stored item.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum InputItem {
    /// A message with a role and text or content parts.
    Message(InputMessage),
    /// A reference to a stored item by id.
    ItemReference(ItemReference),
    /// Reasoning from an earlier answer, given back.
    Reasoning(InputReasoning),
    /// A compaction item from `POST /v1/responses/compact`.
    Compaction(InputCompaction),
}

impl JsonSchema for InputItem {
    fn schema_name() -> String {
        "InputItem".to_string()
    }

    /// `oneOf` rather than serde's `anyOf`: the two shapes never overlap
    /// (`role` and `content` are required of a message, and a reference
    /// allows only `type` and `id`), and typed clients then get an enum.
    fn json_schema(
        g: &mut schemars::r#gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        use schemars::schema::{Metadata, SchemaObject, SubschemaValidation};
        SchemaObject {
            metadata: Some(Box::new(Metadata {
                description: Some(
                    "One input item: a message, a reference to a stored \
                     item, reasoning from an earlier answer, or a \
                     compaction item."
                        .to_string(),
                ),
                ..Default::default()
            })),
            subschemas: Some(Box::new(SubschemaValidation {
                one_of: Some(vec![
                    g.subschema_for::<InputMessage>(),
                    g.subschema_for::<ItemReference>(),
                    g.subschema_for::<InputReasoning>(),
                    g.subschema_for::<InputCompaction>(),
                ]),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

/// A message given as input.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputMessage {
    /// Always `message` when present.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MessageType>,
    /// Item id (present on assistant outputs re-sent as input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Who wrote the message.
    pub role: Role,
    /// Text, or a list of content parts.
    pub content: MessageContent,
    /// Item status (accepted and ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// Assistant message phase (accepted and ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// A reference to a stored item.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemReference {
    /// Always `item_reference` when present.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ItemReferenceType>,
    /// The id of a stored item of the same organization.
    pub id: String,
}

/// The `item_reference` type tag.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
pub enum ItemReferenceType {
    /// An item reference.
    #[serde(rename = "item_reference")]
    ItemReference,
}

/// The `message` type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum MessageType {
    /// A message.
    #[default]
    #[serde(rename = "message")]
    Message,
}

/// Message author role.
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// System instructions.
    System,
    /// Developer instructions.
    Developer,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Developer => "developer",
        }
    }
}

/// Message content: a string or content parts.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed content parts.
    Parts(Vec<ContentPart>),
}

/// A content part of a message, input or output.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text written by the user, system or developer.
    InputText {
        /// The text.
        text: String,
    },
    /// An image by URL, data URI or file id.
    InputImage {
        /// An `https:` URL or a `data:` URI.
        #[serde(default)]
        image_url: Option<String>,
        /// An uploaded file id (not supported by every provider).
        #[serde(default)]
        file_id: Option<String>,
        /// Detail level: `low`, `high` or `auto`.
        #[serde(default)]
        detail: Option<String>,
    },
    /// A file (forwarded where the provider supports it).
    InputFile {
        /// File id.
        #[serde(default)]
        file_id: Option<String>,
        /// File name.
        #[serde(default)]
        filename: Option<String>,
        /// Base64 data or a data URI.
        #[serde(default)]
        file_data: Option<String>,
        /// File URL.
        #[serde(default)]
        file_url: Option<String>,
    },
    /// Text written by the model.
    OutputText {
        /// The text.
        text: String,
        /// Annotations (citations).
        #[serde(default)]
        annotations: Vec<Value>,
        /// Token log probabilities.
        #[serde(default)]
        logprobs: Vec<Value>,
    },
    /// A refusal written by the model.
    Refusal {
        /// The refusal text.
        refusal: String,
    },
}

/// Item status.
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Still being generated.
    InProgress,
    /// Finished.
    Completed,
    /// Cut short (token limit, content filter, cancellation).
    Incomplete,
}

/// Text output configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Output format.
    #[serde(default)]
    pub format: Option<TextFormat>,
    /// Verbosity: `low`, `medium` or `high`.
    #[serde(default)]
    pub verbosity: Option<Verbosity>,
}

/// Output text format.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    /// Plain text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name: letters, digits, `_` and `-`, up to 64 characters.
        name: String,
        /// The JSON schema.
        schema: BTreeMap<String, Value>,
        /// What the format is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Strict schema adherence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// Verbosity of the answer.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    /// Short.
    Low,
    /// Default.
    Medium,
    /// Long.
    High,
}

/// Truncation strategy.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Drop items from the start of the context when it is too long.
    Auto,
    /// Fail when the context is too long.
    Disabled,
}

/// Reasoning configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct Reasoning {
    /// Effort: `none`, `minimal`, `low`, `medium`, `high`, `xhigh`.
    #[serde(default)]
    pub effort: Option<String>,
    /// Summary style: `auto`, `concise`, `detailed`.
    #[serde(default)]
    pub summary: Option<String>,
}

/// The `response` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum ResponseObject {
    /// A response.
    #[default]
    #[serde(rename = "response")]
    Response,
}

/// A model response.
///
/// The full OpenAI `Response` object, plus `provider` (the upstream that
/// served it) and the Maniac extensions `tags` and `trace`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Response {
    /// Unique id, `resp_…`.
    pub id: String,
    /// Always `response`.
    pub object: ResponseObject,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Lifecycle status.
    pub status: ResponseStatus,
    /// Completion time, Unix seconds; set when `status` is `completed`.
    pub completed_at: Option<i64>,
    /// Whether the response ran in the background.
    pub background: bool,
    /// Why the response failed; null unless `status` is `failed`.
    pub error: Option<ResponseError>,
    /// Why the response is incomplete.
    pub incomplete_details: Option<IncompleteDetails>,
    /// Echo of the request's `instructions`.
    pub instructions: Option<String>,
    /// Echo of `max_output_tokens`.
    pub max_output_tokens: Option<i64>,
    /// Echo of `max_tool_calls`.
    pub max_tool_calls: Option<i64>,
    /// The model as requested (`provider/model`).
    pub model: String,
    /// Output items.
    pub output: Vec<OutputItem>,
    /// Echo of `parallel_tool_calls`.
    pub parallel_tool_calls: bool,
    /// Echo of `previous_response_id`.
    pub previous_response_id: Option<String>,
    /// Echo of `reasoning`.
    pub reasoning: Reasoning,
    /// Service tier.
    pub service_tier: Option<String>,
    /// Whether the response is stored.
    pub store: bool,
    /// Echo of `temperature`.
    pub temperature: f64,
    /// Echo of `top_p`.
    pub top_p: f64,
    /// Echo of `presence_penalty` (0 when not given).
    #[serde(default)]
    pub presence_penalty: f64,
    /// Echo of `frequency_penalty` (0 when not given).
    #[serde(default)]
    pub frequency_penalty: f64,
    /// Echo of `top_logprobs`.
    pub top_logprobs: i64,
    /// Echo of `text`.
    pub text: TextConfig,
    /// Echo of `tool_choice`.
    pub tool_choice: Value,
    /// Echo of `tools` (always empty).
    pub tools: Vec<Value>,
    /// Echo of `truncation`.
    pub truncation: Truncation,
    /// Token usage; null until the response ends.
    pub usage: Option<ResponseUsage>,
    /// Echo of `user`.
    pub user: Option<String>,
    /// Echo of `safety_identifier`.
    pub safety_identifier: Option<String>,
    /// Echo of `prompt_cache_key`.
    pub prompt_cache_key: Option<String>,
    /// Echo of `metadata` (`{}` when unset).
    pub metadata: BTreeMap<String, String>,
    /// The provider that served the response (the part of `model` before
    /// the slash).
    pub provider: String,
    /// Maniac extension: echo of `tags`.
    pub tags: Vec<String>,
    /// Maniac extension: echo of `trace`.
    pub trace: Option<BTreeMap<String, Value>>,
}

/// Response lifecycle status.
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Waiting for a worker (background only).
    Queued,
    /// Generating.
    InProgress,
    /// Finished normally.
    Completed,
    /// Ended early (token limit or content filter).
    Incomplete,
    /// Failed; see `error`.
    Failed,
    /// Cancelled (background only).
    Cancelled,
}

impl ResponseStatus {
    /// The status's wire name, also used in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Queued => "queued",
            ResponseStatus::InProgress => "in_progress",
            ResponseStatus::Completed => "completed",
            ResponseStatus::Incomplete => "incomplete",
            ResponseStatus::Failed => "failed",
            ResponseStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no further change can happen.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ResponseStatus::Queued | ResponseStatus::InProgress)
    }
}

/// Why a response failed.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ResponseError {
    /// Error code, for example `server_error` or `rate_limit_exceeded`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// Why a response is incomplete.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: String,
}

/// Token usage.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ResponseUsage {
    /// Input tokens.
    pub input_tokens: i64,
    /// Input token breakdown.
    pub input_tokens_details: InputTokensDetails,
    /// Output tokens.
    pub output_tokens: i64,
    /// Output token breakdown.
    pub output_tokens_details: OutputTokensDetails,
    /// Input plus output tokens.
    pub total_tokens: i64,
}

/// Input token breakdown.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct InputTokensDetails {
    /// Tokens read from the provider's prompt cache.
    pub cached_tokens: i64,
    /// Tokens written to the provider's prompt cache.
    pub cache_write_tokens: i64,
}

/// Output token breakdown.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct OutputTokensDetails {
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
}

/// The `assistant` role tag of output messages.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum AssistantRole {
    /// The model.
    #[default]
    #[serde(rename = "assistant")]
    Assistant,
}

/// An output item.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// A message written by the model.
    Message {
        /// Item id, `msg_…`.
        id: String,
        /// Item status.
        status: ItemStatus,
        /// Always `assistant`.
        role: AssistantRole,
        /// Text and refusal parts.
        content: Vec<OutputContent>,
    },
    /// The model's reasoning, before its answer.
    Reasoning {
        /// Item id, `rs_…`.
        id: String,
        /// Summary parts (empty when the upstream gives none).
        summary: Vec<SummaryPart>,
        /// Raw reasoning text parts.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        content: Vec<ReasoningContent>,
        /// Opaque reasoning state for the upstream that produced it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
        /// Item status.
        status: ItemStatus,
    },
    /// A call of a function tool.
    FunctionCall {
        /// Item id, `fc_…`.
        id: String,
        /// The call id, echoed with the function's output.
        call_id: String,
        /// Function name.
        name: String,
        /// JSON arguments, as text.
        arguments: String,
        /// Item status.
        status: ItemStatus,
    },
}

/// A content part of an output message.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// Text.
    OutputText {
        /// The text.
        text: String,
        /// Annotations (citations).
        annotations: Vec<Value>,
        /// Token log probabilities.
        logprobs: Vec<Value>,
    },
    /// A refusal.
    Refusal {
        /// The refusal text.
        refusal: String,
    },
}

/// A stored item, as listed by `GET /v1/responses/{id}/input_items`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemResource {
    /// A message.
    Message {
        /// Item id, `msg_…`.
        id: String,
        /// Who wrote it.
        role: Role,
        /// Item status.
        status: ItemStatus,
        /// Content parts.
        content: Vec<ContentPart>,
    },
    /// Reasoning the model did in an earlier turn.
    Reasoning {
        /// Item id, `rs_…`.
        id: String,
        /// Summary parts.
        summary: Vec<SummaryPart>,
        /// Raw reasoning text parts.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        content: Vec<ReasoningContent>,
        /// Opaque reasoning state for the upstream that produced it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
        /// Item status.
        status: ItemStatus,
    },
    /// A function call the model made in an earlier turn.
    FunctionCall {
        /// Item id, `fc_…`.
        id: String,
        /// The call id.
        call_id: String,
        /// Function name.
        name: String,
        /// JSON arguments, as text.
        arguments: String,
        /// Item status.
        status: ItemStatus,
    },
    /// A compaction item: the sealed summary of a compacted conversation.
    Compaction {
        /// Item id, `cmp_…`.
        id: String,
        /// The sealed summary; give it back as input unchanged.
        encrypted_content: String,
    },
}

impl ItemResource {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            ItemResource::Message { id, .. }
            | ItemResource::Reasoning { id, .. }
            | ItemResource::FunctionCall { id, .. }
            | ItemResource::Compaction { id, .. } => id,
        }
    }
}

/// The `list` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum ListObject {
    /// A list.
    #[default]
    #[serde(rename = "list")]
    List,
}

/// A page of input items.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ResponseItemList {
    /// Always `list`.
    pub object: ListObject,
    /// The items of this page.
    pub data: Vec<ItemResource>,
    /// Id of the first item of this page.
    pub first_id: Option<String>,
    /// Id of the last item of this page; pass it as `after` for the next.
    pub last_id: Option<String>,
    /// Whether more items follow.
    pub has_more: bool,
}

/// The `response.deleted` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum DeletedObject {
    /// A deleted response.
    #[default]
    #[serde(rename = "response.deleted")]
    ResponseDeleted,
}

/// Confirmation of a deletion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ResponseDeleted {
    /// The deleted response's id.
    pub id: String,
    /// Always `response.deleted`.
    pub object: DeletedObject,
    /// Always true.
    pub deleted: bool,
}

/// Path parameter naming a response.
#[derive(Deserialize, JsonSchema)]
pub struct ResponsePath {
    /// The response id, `resp_…`.
    pub response_id: String,
}

/// Sort order of listed items.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (default).
    #[default]
    Desc,
}
