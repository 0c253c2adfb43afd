//! A Chat Completions request checked and turned into a run: ranges and
//! limits answered with a 400 naming `param`, the messages as a neutral
//! transcript, and the provider's capabilities checked before any call.

use serde_json::{Map, Value};

use super::builder::ChatHead;
use crate::api::*;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::validate::{metadata, range_f, range_i, schema_name, tags};
use crate::engine::{Caller, Engine};
use crate::ids::{self, now_ms};
use crate::providers::{
    CallContext, FunctionTool, Message, ProviderRequest, Sampling, ToolChoice,
    TranscriptItem,
};
use crate::routing::Resolved;
use crate::store::ItemRow;

/// Most messages per request.
const MAX_MESSAGES: usize = 10_000;
/// Most tools per request.
const MAX_TOOLS: usize = 128;
/// Most choices per request.
const MAX_CHOICES: i64 = 128;

/// A checked chat request, ready to run.
pub(crate) struct PreparedChat {
    pub(crate) caller: Caller,
    pub(crate) route: Resolved,
    pub(crate) request: ProviderRequest,
    pub(crate) head: ChatHead,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// With `store: true`: the metadata and the request messages to keep.
    pub(crate) store: Option<StoreChat>,
}

/// What storing a completion needs besides the answer.
pub(crate) struct StoreChat {
    pub(crate) metadata: String,
    pub(crate) messages: Vec<ItemRow>,
}

impl PreparedChat {
    /// The provider call context.
    pub(crate) fn context(
        &self,
        metrics: &crate::metrics::Metrics,
    ) -> CallContext {
        CallContext {
            metrics: Some(metrics.clone()),
            request_id: self.caller.request_id.clone(),
            org_id: self.caller.org_id.clone(),
            key_id: self.caller.key_id.clone(),
            ..CallContext::default()
        }
    }
}

impl Engine {
    pub(crate) async fn prepare_chat(
        &self,
        caller: &Caller,
        req: CreateChatCompletion,
    ) -> EngineResult<PreparedChat> {
        check(&req)?;
        let route = self.resolve(&req.model).await?;
        let provider_name = route.display_name();
        let model = route.first_model();
        let caps = route.capabilities();
        let unsupported = |msg: String, param: &str| {
            EngineError::invalid(
                msg,
                Some(param),
                Some("unsupported_parameter"),
            )
        };
        if let Some(field) = req.extra.keys().next()
            && !caps.extra_fields
        {
            return Err(EngineError::invalid(
                format!(
                    "Unrecognized request argument supplied: '{field}'. The \
                     provider '{provider_name}' translates the protocol and \
                     cannot forward unknown fields: remove it."
                ),
                Some(field),
                Some("unknown_parameter"),
            ));
        }
        let tools = req.tools.as_deref().unwrap_or_default();
        if !tools.is_empty() && !caps.tools {
            return Err(unsupported(
                format!(
                    "The provider '{provider_name}' does not support tools: \
                     remove `tools`."
                ),
                "tools",
            ));
        }
        let n = req.n.unwrap_or(1);
        if n > 1 && !caps.multiple_choices {
            return Err(unsupported(
                format!(
                    "The provider '{provider_name}' answers one choice only: \
                     remove `n` or set it to 1."
                ),
                "n",
            ));
        }
        let transcript = transcript(&req.messages);
        let request = ProviderRequest {
            model: model.to_string(),
            instructions: None,
            transcript,
            tools: tools.iter().map(function_tool).collect(),
            tool_choice: req.tool_choice.as_ref().map(tool_choice),
            parallel_tool_calls: req.parallel_tool_calls,
            sampling: Sampling {
                max_output_tokens: req.max_completion_tokens.or(req.max_tokens),
                temperature: req.temperature,
                top_p: req.top_p,
                presence_penalty: req.presence_penalty,
                frequency_penalty: req.frequency_penalty,
                seed: req.seed,
                stop: match &req.stop {
                    None => Vec::new(),
                    Some(StopSequences::One(s)) => vec![s.clone()],
                    Some(StopSequences::Many(v)) => v.clone(),
                },
                logprobs: req.logprobs,
                top_logprobs: req.top_logprobs,
                n: req.n.filter(|&n| n != 1).map(|n| n as u32),
                logit_bias: req.logit_bias.as_ref().map(|b| {
                    b.iter()
                        .map(|(k, v)| (k.clone(), Value::from(*v)))
                        .collect::<Map<_, _>>()
                }),
            },
            output_format: req.response_format.as_ref().and_then(text_format),
            reasoning_effort: req.reasoning_effort.clone(),
            user: req.user.clone().or_else(|| req.safety_identifier.clone()),
            service_tier: req.service_tier.clone(),
            extra: req.extra,
        };
        if !caps.images && request.has_images() {
            return Err(unsupported(
                format!(
                    "The provider '{provider_name}' does not accept images: \
                     remove the `image_url` parts."
                ),
                "messages",
            ));
        }
        if !caps.json_schema
            && matches!(
                request.output_format,
                Some(TextFormat::JsonSchema { .. })
            )
        {
            return Err(unsupported(
                format!(
                    "The provider '{provider_name}' does not support \
                     `json_schema` output: use `json_object` or plain text."
                ),
                "response_format",
            ));
        }
        let id = ids::chat_completion_id();
        let store = req.store.unwrap_or(false).then(|| StoreChat {
            metadata: serde_json::to_string(&req.metadata.unwrap_or_default())
                .unwrap_or_else(|_| "{}".into()),
            messages: stored_messages(&id, &req.messages),
        });
        let stream = req.stream.unwrap_or(false);
        let first_provider = route.first_provider().to_string();
        Ok(PreparedChat {
            caller: caller.clone(),
            route,
            request,
            head: ChatHead {
                id,
                created: now_ms() / 1000,
                model: req.model.clone(),
                provider: first_provider,
                n: n as u32,
                service_tier: req.service_tier.map(|t| {
                    if t == "auto" { "default".to_string() } else { t }
                }),
            },
            stream,
            include_usage: req
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            store,
        })
    }
}

/// Checks a chat request; the first problem found is returned.
pub(crate) fn check(req: &CreateChatCompletion) -> EngineResult<()> {
    if req.model.is_empty() {
        return Err(EngineError::invalid(
            "Missing required parameter: 'model'. Use the form \
             'provider/model', for example 'echo/echo'.",
            Some("model"),
            Some("missing_required_parameter"),
        ));
    }
    if req.messages.is_empty() {
        return Err(EngineError::invalid_value(
            "messages",
            "Invalid 'messages': empty array. Expected an array with at \
             least 1 message.",
        ));
    }
    if req.messages.len() > MAX_MESSAGES {
        return Err(EngineError::invalid_value(
            "messages",
            format!("Too many messages: at most {MAX_MESSAGES}."),
        ));
    }
    let unsupported = |msg: &str, param: &str| {
        EngineError::invalid(msg, Some(param), Some("unsupported_parameter"))
    };
    if req.audio.as_ref().is_some_and(|a| !a.is_null())
        || req
            .modalities
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m != "text"))
    {
        let param = if req.audio.as_ref().is_some_and(|a| !a.is_null()) {
            "audio"
        } else {
            "modalities"
        };
        return Err(unsupported(
            "Audio output is not supported: remove `audio` and ask for \
             `modalities: [\"text\"]` only.",
            param,
        ));
    }
    if req.prediction.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(unsupported(
            "Predicted outputs are not supported: remove `prediction`.",
            "prediction",
        ));
    }
    if req.stream_options.is_some() && req.stream != Some(true) {
        return Err(EngineError::invalid_value(
            "stream_options",
            "`stream_options` is only allowed with `stream: true`.",
        ));
    }
    range_f("temperature", req.temperature, 0.0, 2.0)?;
    range_f("top_p", req.top_p, 0.0, 1.0)?;
    range_f("presence_penalty", req.presence_penalty, -2.0, 2.0)?;
    range_f("frequency_penalty", req.frequency_penalty, -2.0, 2.0)?;
    range_i("n", req.n, 1, MAX_CHOICES)?;
    range_i("top_logprobs", req.top_logprobs, 0, 20)?;
    range_i("max_tokens", req.max_tokens, 1, i64::MAX)?;
    range_i("max_completion_tokens", req.max_completion_tokens, 1, i64::MAX)?;
    if req.top_logprobs.is_some() && req.logprobs != Some(true) {
        return Err(EngineError::invalid_value(
            "top_logprobs",
            "`top_logprobs` requires `logprobs: true`.",
        ));
    }
    if let Some(StopSequences::Many(v)) = &req.stop
        && v.len() > 4
    {
        return Err(EngineError::invalid_value(
            "stop",
            "Invalid 'stop': at most 4 sequences.",
        ));
    }
    if let Some(bias) = &req.logit_bias {
        for (token, v) in bias {
            if token.parse::<u64>().is_err() {
                return Err(EngineError::invalid_value(
                    "logit_bias",
                    format!(
                        "Invalid 'logit_bias': '{token}' is not a token id."
                    ),
                ));
            }
            range_f("logit_bias", Some(*v), -100.0, 100.0)?;
        }
    }
    metadata(req.metadata.as_ref())?;
    tags(req.tags.as_deref())?;
    if let Some(ResponseFormat::JsonSchema { json_schema }) =
        &req.response_format
    {
        schema_name("response_format.json_schema.name", &json_schema.name)?;
    }
    check_tools(req)?;
    check_messages(&req.messages)
}

fn check_tools(req: &CreateChatCompletion) -> EngineResult<()> {
    let tools = req.tools.as_deref().unwrap_or_default();
    if tools.len() > MAX_TOOLS {
        return Err(EngineError::invalid_value(
            "tools",
            format!("Too many tools: at most {MAX_TOOLS}."),
        ));
    }
    for (i, t) in tools.iter().enumerate() {
        schema_name(&format!("tools[{i}].function.name"), &t.function.name)?;
    }
    match &req.tool_choice {
        Some(ChatToolChoice::Mode(ToolChoiceMode::Required))
            if tools.is_empty() =>
        {
            Err(EngineError::invalid_value(
                "tool_choice",
                "`tool_choice: \"required\"` needs at least one tool in \
                 `tools`.",
            ))
        }
        Some(ChatToolChoice::Named(named))
            if !tools
                .iter()
                .any(|t| t.function.name == named.function.name) =>
        {
            Err(EngineError::invalid_value(
                "tool_choice",
                format!(
                    "`tool_choice` names the function '{}', which is not in \
                     `tools`.",
                    named.function.name
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn check_messages(messages: &[ChatMessage]) -> EngineResult<()> {
    let mut open_calls: Vec<&str> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let bad = |field: &str, msg: String| {
            Err(EngineError::invalid_value(
                &format!("messages[{i}].{field}"),
                msg,
            ))
        };
        let (content, allowed): (Option<&ChatContent>, &[&str]) = match m {
            ChatMessage::System { content, .. }
            | ChatMessage::Developer { content, .. } => {
                (Some(content), &["text"])
            }
            ChatMessage::User { content, .. } => {
                (Some(content), &["text", "image_url", "file"])
            }
            ChatMessage::Assistant { content, .. } => {
                (content.as_ref(), &["text", "refusal"])
            }
            ChatMessage::Tool { content, .. } => (Some(content), &["text"]),
        };
        if let Some(ChatContent::Parts(parts)) = content {
            for (j, p) in parts.iter().enumerate() {
                let kind = part_kind(p);
                if kind == "input_audio" {
                    return Err(EngineError::invalid(
                        "Audio input is not supported: send text, images or \
                         files.",
                        Some(&format!("messages[{i}].content[{j}]")),
                        Some("unsupported_parameter"),
                    ));
                }
                if !allowed.contains(&kind) {
                    return bad(
                        &format!("content[{j}].type"),
                        format!(
                            "Invalid content part type '{kind}' in a '{}' \
                             message: expected one of {}.",
                            role_name(m),
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        match m {
            ChatMessage::Assistant {
                tool_calls, audio, function_call, ..
            } => {
                if audio.as_ref().is_some_and(|a| !a.is_null()) {
                    return Err(EngineError::invalid(
                        "Audio is not supported: remove `audio` from the \
                         assistant message.",
                        Some(&format!("messages[{i}].audio")),
                        Some("unsupported_parameter"),
                    ));
                }
                if function_call.as_ref().is_some_and(|f| !f.is_null()) {
                    return bad(
                        "function_call",
                        "The deprecated `function_call` is not supported: \
                         use `tool_calls`."
                            .into(),
                    );
                }
                open_calls = tool_calls
                    .iter()
                    .flatten()
                    .map(|c| c.id.as_str())
                    .collect();
            }
            ChatMessage::Tool { tool_call_id, .. } => {
                if !open_calls.contains(&tool_call_id.as_str()) {
                    return bad(
                        "tool_call_id",
                        format!(
                            "Invalid parameter: a 'tool' message must answer a \
                             tool call of the preceding assistant message; \
                             '{tool_call_id}' is not one."
                        ),
                    );
                }
            }
            _ => open_calls.clear(),
        }
    }
    Ok(())
}

fn part_kind(p: &ChatContentPart) -> &'static str {
    match p {
        ChatContentPart::Text { .. } => "text",
        ChatContentPart::ImageUrl { .. } => "image_url",
        ChatContentPart::InputAudio { .. } => "input_audio",
        ChatContentPart::File { .. } => "file",
        ChatContentPart::Refusal { .. } => "refusal",
    }
}

fn role_name(m: &ChatMessage) -> &'static str {
    match m {
        ChatMessage::System { .. } => "system",
        ChatMessage::Developer { .. } => "developer",
        ChatMessage::User { .. } => "user",
        ChatMessage::Assistant { .. } => "assistant",
        ChatMessage::Tool { .. } => "tool",
    }
}

/// Text of content (text parts joined; others skipped).
fn content_text(c: &ChatContent) -> String {
    match c {
        ChatContent::Text(t) => t.clone(),
        ChatContent::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ChatContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect(),
    }
}

/// Content as neutral parts (`output` for the assistant's own text).
fn parts(c: &ChatContent, output: bool) -> Vec<ContentPart> {
    let text = |text: String| {
        if output {
            ContentPart::OutputText {
                text,
                annotations: Vec::new(),
                logprobs: Vec::new(),
            }
        } else {
            ContentPart::InputText { text }
        }
    };
    match c {
        ChatContent::Text(t) => vec![text(t.clone())],
        ChatContent::Parts(ps) => ps
            .iter()
            .filter_map(|p| match p {
                ChatContentPart::Text { text: t } => Some(text(t.clone())),
                ChatContentPart::ImageUrl { image_url } => {
                    Some(ContentPart::InputImage {
                        image_url: Some(image_url.url.clone()),
                        file_id: None,
                        detail: image_url.detail.clone(),
                    })
                }
                ChatContentPart::File { file } => {
                    Some(ContentPart::InputFile {
                        file_id: file.file_id.clone(),
                        filename: file.filename.clone(),
                        file_data: file.file_data.clone(),
                        file_url: None,
                    })
                }
                ChatContentPart::Refusal { refusal } => {
                    Some(ContentPart::Refusal { refusal: refusal.clone() })
                }
                ChatContentPart::InputAudio { .. } => None,
            })
            .collect(),
    }
}

/// The messages as a neutral transcript: assistant tool calls become
/// function-call items, tool messages their outputs.
fn transcript(messages: &[ChatMessage]) -> Vec<TranscriptItem> {
    let mut out = Vec::with_capacity(messages.len());
    let msg = |role, parts| TranscriptItem::Message(Message { role, parts });
    for m in messages {
        match m {
            ChatMessage::System { content, .. } => {
                out.push(msg(Role::System, parts(content, false)))
            }
            ChatMessage::Developer { content, .. } => {
                out.push(msg(Role::Developer, parts(content, false)))
            }
            ChatMessage::User { content, .. } => {
                out.push(msg(Role::User, parts(content, false)))
            }
            ChatMessage::Assistant { content, refusal, tool_calls, .. } => {
                let mut ps = content
                    .as_ref()
                    .map(|c| parts(c, true))
                    .unwrap_or_default();
                if let Some(r) = refusal {
                    ps.push(ContentPart::Refusal { refusal: r.clone() });
                }
                let has_text = ps.iter().any(|p| match p {
                    ContentPart::OutputText { text, .. } => !text.is_empty(),
                    ContentPart::Refusal { .. } => true,
                    _ => false,
                });
                if has_text || tool_calls.as_ref().is_none_or(|c| c.is_empty())
                {
                    out.push(msg(Role::Assistant, ps));
                }
                for c in tool_calls.iter().flatten() {
                    out.push(TranscriptItem::FunctionCall {
                        call_id: c.id.clone(),
                        name: c.function.name.clone(),
                        arguments: c.function.arguments.clone(),
                    });
                }
            }
            ChatMessage::Tool { content, tool_call_id } => {
                out.push(TranscriptItem::FunctionCallOutput {
                    call_id: tool_call_id.clone(),
                    output: content_text(content),
                })
            }
        }
    }
    out
}

fn function_tool(t: &ChatTool) -> FunctionTool {
    FunctionTool {
        name: t.function.name.clone(),
        description: t.function.description.clone(),
        parameters: t.function.parameters.clone().map(Value::Object),
        strict: t.function.strict,
    }
}

fn tool_choice(c: &ChatToolChoice) -> ToolChoice {
    match c {
        ChatToolChoice::Mode(ToolChoiceMode::None) => ToolChoice::None,
        ChatToolChoice::Mode(ToolChoiceMode::Auto) => ToolChoice::Auto,
        ChatToolChoice::Mode(ToolChoiceMode::Required) => ToolChoice::Required,
        ChatToolChoice::Named(n) => {
            ToolChoice::Function(n.function.name.clone())
        }
    }
}

fn text_format(f: &ResponseFormat) -> Option<TextFormat> {
    Some(match f {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => TextFormat::JsonObject,
        ResponseFormat::JsonSchema { json_schema } => TextFormat::JsonSchema {
            name: json_schema.name.clone(),
            schema: json_schema.schema.clone().unwrap_or_default(),
            description: json_schema.description.clone(),
            strict: json_schema.strict,
        },
    })
}

/// The request messages as stored rows (`<id>-<position>`).
fn stored_messages(id: &str, messages: &[ChatMessage]) -> Vec<ItemRow> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mid = format!("{id}-{i}");
            let stored = match m {
                ChatMessage::System { content, name }
                | ChatMessage::Developer { content, name }
                | ChatMessage::User { content, name } => ChatStoredMessage {
                    id: mid.clone(),
                    role: role_name(m).into(),
                    content: Some(content.clone()),
                    name: name.clone(),
                    tool_calls: None,
                    tool_call_id: None,
                    refusal: None,
                },
                ChatMessage::Assistant {
                    content,
                    refusal,
                    tool_calls,
                    name,
                    ..
                } => ChatStoredMessage {
                    id: mid.clone(),
                    role: "assistant".into(),
                    content: content.clone(),
                    name: name.clone(),
                    tool_calls: tool_calls.clone(),
                    tool_call_id: None,
                    refusal: refusal.clone(),
                },
                ChatMessage::Tool { content, tool_call_id } => {
                    ChatStoredMessage {
                        id: mid.clone(),
                        role: "tool".into(),
                        content: Some(content.clone()),
                        name: None,
                        tool_calls: None,
                        tool_call_id: Some(tool_call_id.clone()),
                        refusal: None,
                    }
                }
            };
            ItemRow {
                id: mid,
                body: serde_json::to_string(&stored).unwrap_or_default(),
            }
        })
        .collect()
}
