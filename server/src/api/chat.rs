//! Wire types of a Chat Completions request: the create body with its
//! messages, content parts, tools and formats. Names follow OpenAI's spec.
//! Nested objects are closed (unknown fields are rejected) except for the
//! fields the official SDKs echo back when a message is re-sent; unknown
//! top-level fields are kept in `extra` for same-protocol upstreams.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Request body of `POST /v1/chat/completions`.
///
/// Every field of OpenAI's `CreateChatCompletionRequest` is accepted.
/// Unknown top-level fields are forwarded verbatim to OpenAI-compatible
/// upstreams (for example vLLM's `guided_json` or `top_k`) and rejected
/// with `unknown_parameter` by providers that translate the protocol.
/// `tags` and `trace` are never forwarded.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct CreateChatCompletion {
    /// Model as `provider/model`, for example `openai/gpt-4o-mini` or
    /// `echo/echo`.
    #[schemars(example = "example_model")]
    pub model: String,
    /// The conversation so far, oldest first.
    #[schemars(length(min = 1))]
    pub messages: Vec<ChatMessage>,
    /// Function tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ChatTool>>,
    /// `none`, `auto`, `required`, or a named function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ChatToolChoice>,
    /// Whether the model may call several tools at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Output format: text, any JSON object, or JSON matching a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Deprecated name of `max_completion_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Upper bound on generated tokens (reasoning included), at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// How many choices to generate, 1 to 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// Up to 4 sequences where generation stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Seed for best-effort reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty for tokens already present, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Penalty by token frequency so far, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Token id to bias, -100 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    /// Return log probabilities of the output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Most likely tokens per position, 0 to 20; requires `logprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    /// Deprecated end-user identifier, forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A stable identifier of the end user, forwarded as `user` where the
    /// upstream has no field of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    /// Up to 16 key-value pairs stored with the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Store the completion for later retrieval (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Stream the answer as `chat.completion.chunk` server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Options for streaming; only with `stream: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<ChatStreamOptions>,
    /// Reasoning effort of reasoning models (`minimal` to `high`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Service tier, forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Output modalities: only `["text"]` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Vec<String>>,
    /// Audio output is not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Value>,
    /// Predicted outputs are not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Value>,
    /// Maniac extension: free-form tags, logged and stored with the
    /// completion; never forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Maniac extension: trace context, logged and stored; never
    /// forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<BTreeMap<String, Value>>,
    /// Unknown top-level fields, kept for same-protocol upstreams.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Map<String, Value>,
}

fn example_model() -> &'static str {
    "echo/echo"
}

/// One message of the conversation, by `role`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "role", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChatMessage {
    /// Instructions from the application.
    System {
        /// Text or text parts.
        content: ChatContent,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Instructions from the developer (newer name of `system`).
    Developer {
        /// Text or text parts.
        content: ChatContent,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// What the user said: text, images and files.
    User {
        /// Text or content parts.
        content: ChatContent,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// An earlier answer of the model, given back.
    Assistant {
        /// Text or text and refusal parts; null with `tool_calls`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<ChatContent>,
        /// A refusal the model gave.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
        /// Tool calls the model made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<ChatToolCall>>,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Citations of the answer (accepted when re-sent, not forwarded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        annotations: Option<Vec<Value>>,
        /// Reasoning of the answer (accepted when re-sent, not forwarded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<String>,
        /// Audio of the answer: must be null.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<Value>,
        /// Deprecated function call: must be null.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function_call: Option<Value>,
    },
    /// The output of a tool call.
    Tool {
        /// The output: text or text parts.
        content: ChatContent,
        /// The `id` of the tool call this answers.
        tool_call_id: String,
    },
}

/// Message content: a string, or a list of parts.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ChatContent {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<ChatContentPart>),
}

/// One part of a message's content.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChatContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image by URL or `data:` URI (user messages only).
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
    /// Audio input is not supported.
    InputAudio {
        /// The audio.
        input_audio: Value,
    },
    /// A file (user messages only).
    File {
        /// The file.
        file: ChatFile,
    },
    /// A refusal (assistant messages only).
    Refusal {
        /// The refusal text.
        refusal: String,
    },
}

/// An image reference.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUrl {
    /// An `https:` URL or a `data:` URI.
    pub url: String,
    /// `low`, `high` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A file given inline or by id.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatFile {
    /// Base64 data or a data URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
    /// An uploaded file's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// The file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// The `function` type tag of tools and tool calls.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FunctionType {
    /// A function.
    #[default]
    Function,
}

/// A call of a function tool, made by the model.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatToolCall {
    /// The call's id; the `tool` message with the output names it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionType,
    /// The function and its arguments.
    pub function: FunctionCall,
}

/// The function a tool call calls.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as JSON text (not always valid JSON: models err).
    pub arguments: String,
}

/// A function tool the model may call.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionType,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function's name, purpose and argument schema.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDefinition {
    /// Letters, digits, `_` and `-`, up to 64 characters.
    pub name: String,
    /// What the function does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Which tools the model must call.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ChatToolChoice {
    /// `none`, `auto` or `required`.
    Mode(ToolChoiceMode),
    /// This function.
    Named(NamedToolChoice),
}

impl JsonSchema for ChatToolChoice {
    fn schema_name() -> String {
        "ChatToolChoice".to_string()
    }

    /// `oneOf` rather than serde's `anyOf`: a mode is a string and a named
    /// choice an object, and typed clients then get an enum.
    fn json_schema(
        g: &mut schemars::r#gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        use schemars::schema::{Metadata, SchemaObject, SubschemaValidation};
        SchemaObject {
            metadata: Some(Box::new(Metadata {
                description: Some(
                    "`none`, `auto`, `required`, or a named function."
                        .to_string(),
                ),
                ..Default::default()
            })),
            subschemas: Some(Box::new(SubschemaValidation {
                one_of: Some(vec![
                    g.subschema_for::<ToolChoiceMode>(),
                    g.subschema_for::<NamedToolChoice>(),
                ]),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

/// Tool choice modes.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceMode {
    /// Never call tools.
    None,
    /// The model decides.
    Auto,
    /// The model must call at least one tool.
    Required,
}

/// A tool choice naming one function.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionType,
    /// The function.
    pub function: NamedFunction,
}

/// A function by name.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedFunction {
    /// Function name.
    pub name: String,
}

/// The output format.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormat {
    /// Plain text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema.
        json_schema: JsonSchemaFormat,
    },
}

/// A named JSON schema for structured output.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaFormat {
    /// Letters, digits, `_` and `-`, up to 64 characters.
    pub name: String,
    /// What the format is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<BTreeMap<String, Value>>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `stop`: one sequence or several.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StopSequences {
    /// One sequence.
    One(String),
    /// Up to 4 sequences.
    Many(Vec<String>),
}

/// Streaming options of Chat Completions.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatStreamOptions {
    /// Send a last chunk with `usage` (and `usage: null` on the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Accepted for compatibility; chunks carry no padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_obfuscation: Option<bool>,
}
