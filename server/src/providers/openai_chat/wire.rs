//! The Chat Completions request body, borrowed from the provider request
//! so the hot path serializes without building an intermediate tree, and
//! the transcript-to-`messages` translation.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::api::{ContentPart, Role, TextFormat};
use crate::providers::{
    FunctionTool, Message, ProviderRequest, ToolChoice, TranscriptItem,
    plain_text,
};

/// The body of `POST …/chat/completions`.
#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<ChatMessage<'a>>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Same-protocol passthrough fields (never one of the above).
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

#[derive(Serialize)]
pub(super) struct StreamOptions {
    pub include_usage: bool,
}

#[derive(Serialize)]
pub(super) struct ChatMessage<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ChatContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Value>),
}

impl<'a> ChatRequest<'a> {
    /// The body for `req`; `completion_field` picks
    /// `max_completion_tokens` over `max_tokens`.
    pub fn new(
        req: &'a ProviderRequest,
        stream: bool,
        completion_field: bool,
    ) -> Self {
        let s = &req.sampling;
        ChatRequest {
            model: &req.model,
            messages: messages(req),
            stream,
            stream_options: stream
                .then_some(StreamOptions { include_usage: true }),
            max_tokens: s.max_output_tokens.filter(|_| !completion_field),
            max_completion_tokens: s
                .max_output_tokens
                .filter(|_| completion_field),
            temperature: s.temperature,
            top_p: s.top_p,
            presence_penalty: s.presence_penalty,
            frequency_penalty: s.frequency_penalty,
            seed: s.seed,
            stop: &s.stop,
            logprobs: s.logprobs,
            top_logprobs: s.top_logprobs,
            n: s.n,
            logit_bias: s.logit_bias.as_ref(),
            service_tier: req.service_tier.as_deref(),
            reasoning_effort: req.reasoning_effort.as_deref(),
            user: req.user.as_deref(),
            response_format: response_format(req.output_format.as_ref()),
            tools: req.tools.iter().map(tool).collect(),
            tool_choice: req.tool_choice.as_ref().map(tool_choice),
            parallel_tool_calls: req.parallel_tool_calls,
            extra: &req.extra,
        }
    }
}

/// The transcript as chat messages. Consecutive function calls join one
/// assistant message (after its text, if the message just before is the
/// assistant's); function outputs become `tool` messages. Reasoning items
/// are left out: chat upstreams do not take reasoning back.
fn messages(req: &ProviderRequest) -> Vec<ChatMessage<'_>> {
    let mut out: Vec<ChatMessage<'_>> =
        Vec::with_capacity(req.transcript.len() + 1);
    if let Some(i) = &req.instructions {
        out.push(ChatMessage {
            role: "system",
            content: Some(ChatContent::Text(Cow::Borrowed(i))),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
    }
    let mut joinable = false;
    for item in &req.transcript {
        match item {
            TranscriptItem::Message(m) => {
                out.push(chat_message(m));
                joinable = m.role == Role::Assistant;
            }
            TranscriptItem::FunctionCall { call_id, name, arguments } => {
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                });
                match out.last_mut() {
                    Some(last) if joinable => last.tool_calls.push(call),
                    _ => out.push(ChatMessage {
                        role: "assistant",
                        content: None,
                        tool_calls: vec![call],
                        tool_call_id: None,
                    }),
                }
                joinable = true;
            }
            TranscriptItem::FunctionCallOutput { call_id, output } => {
                out.push(ChatMessage {
                    role: "tool",
                    content: Some(ChatContent::Text(Cow::Borrowed(output))),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call_id),
                });
                joinable = false;
            }
            TranscriptItem::Reasoning { .. } => {}
        }
    }
    out
}

fn tool(t: &FunctionTool) -> Value {
    let mut f = json!({"name": t.name});
    if let Some(d) = &t.description {
        f["description"] = json!(d);
    }
    if let Some(p) = &t.parameters {
        f["parameters"] = p.clone();
    }
    if let Some(s) = t.strict {
        f["strict"] = json!(s);
    }
    json!({"type": "function", "function": f})
}

fn tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::None => json!("none"),
        ToolChoice::Auto => json!("auto"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => {
            json!({"type": "function", "function": {"name": name}})
        }
    }
}

fn response_format(format: Option<&TextFormat>) -> Option<Value> {
    match format? {
        TextFormat::JsonObject => Some(json!({"type": "json_object"})),
        TextFormat::JsonSchema { name, schema, description, strict } => {
            let mut js = json!({"name": name, "schema": schema});
            if let Some(d) = description {
                js["description"] = json!(d);
            }
            if let Some(s) = strict {
                js["strict"] = json!(s);
            }
            Some(json!({"type": "json_schema", "json_schema": js}))
        }
        TextFormat::Text => None,
    }
}

/// Text of text-only parts; borrowed when there is a single part.
fn text_of(parts: &[ContentPart]) -> Cow<'_, str> {
    match parts {
        [ContentPart::InputText { text }]
        | [ContentPart::OutputText { text, .. }]
        | [ContentPart::Refusal { refusal: text }] => Cow::Borrowed(text),
        _ => Cow::Owned(plain_text(parts)),
    }
}

fn chat_message(m: &Message) -> ChatMessage<'_> {
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::System | Role::Developer => "system",
    };
    let has_media = m.parts.iter().any(|p| {
        matches!(
            p,
            ContentPart::InputImage { .. } | ContentPart::InputFile { .. }
        )
    });
    let content = if has_media {
        ChatContent::Parts(m.parts.iter().filter_map(media_part).collect())
    } else {
        ChatContent::Text(text_of(&m.parts))
    };
    ChatMessage {
        role,
        content: Some(content),
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

fn media_part(p: &ContentPart) -> Option<Value> {
    match p {
        ContentPart::InputText { text }
        | ContentPart::OutputText { text, .. } => {
            Some(json!({"type": "text", "text": text}))
        }
        ContentPart::Refusal { refusal } => {
            Some(json!({"type": "text", "text": refusal}))
        }
        ContentPart::InputImage { image_url: Some(url), detail, .. } => {
            let mut img = json!({"url": url});
            if let Some(d) = detail {
                img["detail"] = json!(d);
            }
            Some(json!({"type": "image_url", "image_url": img}))
        }
        ContentPart::InputFile { file_data, filename, file_id, .. } => {
            let mut f = serde_json::Map::new();
            if let Some(d) = file_data {
                f.insert("file_data".into(), json!(d));
            }
            if let Some(n) = filename {
                f.insert("filename".into(), json!(n));
            }
            if let Some(i) = file_id {
                f.insert("file_id".into(), json!(i));
            }
            Some(json!({"type": "file", "file": f}))
        }
        ContentPart::InputImage { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Sampling;

    fn user(text: &str) -> TranscriptItem {
        TranscriptItem::Message(Message {
            role: Role::User,
            parts: vec![ContentPart::InputText { text: text.into() }],
        })
    }

    #[test]
    fn reasoning_is_left_out_and_tool_calls_join_the_assistant_turn() {
        let req = ProviderRequest {
            model: "m".into(),
            instructions: Some("be brief".into()),
            transcript: vec![
                user("weather?"),
                TranscriptItem::Reasoning {
                    text: "think".into(),
                    summary: vec![],
                    encrypted_content: None,
                },
                TranscriptItem::Message(Message {
                    role: Role::Assistant,
                    parts: vec![ContentPart::OutputText {
                        text: "Let me check.".into(),
                        annotations: vec![],
                        logprobs: vec![],
                    }],
                }),
                TranscriptItem::FunctionCall {
                    call_id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: "{}".into(),
                },
                TranscriptItem::FunctionCallOutput {
                    call_id: "call_1".into(),
                    output: "sunny".into(),
                },
            ],
            sampling: Sampling { seed: Some(7), ..Sampling::default() },
            ..ProviderRequest::default()
        };
        let body =
            serde_json::to_value(ChatRequest::new(&req, false, false)).unwrap();
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 4, "{body}");
        assert_eq!(msgs[0]["role"], "system");
        assert_eq!(msgs[2]["content"], "Let me check.");
        assert_eq!(msgs[2]["tool_calls"][0]["id"], "call_1");
        assert_eq!(msgs[3]["role"], "tool");
        assert_eq!(msgs[3]["tool_call_id"], "call_1");
        assert_eq!(body["seed"], 7);
        assert!(body.get("stop").is_none());
    }
}
