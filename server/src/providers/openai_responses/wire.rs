//! The `POST …/responses` body, borrowed from the provider request so the
//! hot path serializes without building an intermediate tree: the
//! neutral request as a stateless Responses call. The gateway keeps the state, so every call has
//! `store: false` and the whole transcript inlined as input items, never
//! `previous_response_id`.
//!
//! Reasoning replay: reasoning whose `encrypted_content` carries our tag
//! ([`REASONING_TAG`], added when we received it) came from a Responses
//! upstream and goes back as a reasoning item with the untagged
//! `encrypted_content`. Other reasoning (another provider's, e.g.
//! Anthropic's `anthropic:` signatures, or plain text) goes as a reasoning
//! item with its summary and text only: never an opaque blob this
//! upstream cannot read; without text it is left out.

use serde::Serialize;
use serde_json::{Value, json};

use super::REASONING_TAG;
use crate::api::{ContentPart, Role, TextFormat};
use crate::providers::{
    FunctionTool, Message, ProviderRequest, ToolChoice, TranscriptItem,
};

/// The body of `POST …/responses`.
#[derive(Serialize)]
pub(super) struct ResponsesRequest<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<&'a str>,
    pub input: Vec<InputItem<'a>>,
    pub stream: bool,
    /// Always false: the gateway stores, the upstream must not.
    pub store: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<&'a str>,
}

impl<'a> ResponsesRequest<'a> {
    /// The body for `req`. Sampling the Responses API does not take
    /// (`presence_penalty`, `frequency_penalty`, `seed`, `stop`, `n`,
    /// `logit_bias`: absent from its spec) is not sent.
    pub fn new(req: &'a ProviderRequest, stream: bool) -> Self {
        let s = &req.sampling;
        let replays = req.transcript.iter().any(|i| {
            matches!(i, TranscriptItem::Reasoning { encrypted_content: Some(e), .. }
                if e.starts_with(REASONING_TAG))
        });
        let mut include = Vec::new();
        if req.reasoning_effort.is_some() || replays {
            include.push("reasoning.encrypted_content");
        }
        let top_logprobs = match (s.logprobs, s.top_logprobs) {
            (Some(false), _) => None,
            (Some(true), n) => Some(n.unwrap_or(0)),
            (None, n) => n,
        };
        if top_logprobs.is_some() {
            include.push("message.output_text.logprobs");
        }
        ResponsesRequest {
            model: &req.model,
            instructions: req.instructions.as_deref(),
            input: input(req),
            stream,
            store: false,
            include,
            max_output_tokens: s.max_output_tokens,
            temperature: s.temperature,
            top_p: s.top_p,
            top_logprobs,
            tools: req.tools.iter().map(tool).collect(),
            tool_choice: req.tool_choice.as_ref().map(tool_choice),
            parallel_tool_calls: req.parallel_tool_calls,
            text: text_format(req.output_format.as_ref())
                .map(|f| json!({"format": f})),
            reasoning: req
                .reasoning_effort
                .as_deref()
                .map(|e| json!({"effort": e})),
            user: req.user.as_deref(),
            service_tier: req.service_tier.as_deref(),
        }
    }
}

/// One input item, borrowed from the transcript.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InputItem<'a> {
    Message {
        role: &'static str,
        content: Vec<InputPart<'a>>,
    },
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: &'a str,
    },
    /// No `id`: with `store: false` the upstream would look it up and fail.
    Reasoning {
        summary: Vec<SummaryText<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<ReasoningText<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'a str>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "summary_text")]
pub(super) struct SummaryText<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "reasoning_text")]
pub(super) struct ReasoningText<'a> {
    text: &'a str,
}

/// A content part of an input message.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InputPart<'a> {
    InputText {
        text: &'a str,
    },
    OutputText {
        text: &'a str,
        annotations: &'static [Value],
    },
    Refusal {
        refusal: &'a str,
    },
    InputImage {
        detail: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        image_url: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file_id: Option<&'a str>,
    },
    InputFile {
        #[serde(skip_serializing_if = "Option::is_none")]
        file_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        filename: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file_data: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file_url: Option<&'a str>,
    },
}

/// A function tool.
#[derive(Serialize)]
#[serde(tag = "type", rename = "function")]
pub(super) struct Tool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

/// The transcript as input items.
fn input(req: &ProviderRequest) -> Vec<InputItem<'_>> {
    let mut out = Vec::with_capacity(req.transcript.len());
    for item in &req.transcript {
        match item {
            TranscriptItem::Message(m) => out.push(message(m)),
            TranscriptItem::FunctionCall { call_id, name, arguments } => {
                out.push(InputItem::FunctionCall { call_id, name, arguments });
            }
            TranscriptItem::FunctionCallOutput { call_id, output } => {
                out.push(InputItem::FunctionCallOutput { call_id, output });
            }
            TranscriptItem::Reasoning { text, summary, encrypted_content } => {
                if let Some(r) =
                    reasoning(text, summary, encrypted_content.as_deref())
                {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// A reasoning input item, by the replay rule of this module.
fn reasoning<'a>(
    text: &'a str,
    summary: &'a [String],
    encrypted: Option<&'a str>,
) -> Option<InputItem<'a>> {
    let ours = encrypted.and_then(|e| e.strip_prefix(REASONING_TAG));
    if ours.is_none() && text.is_empty() && summary.iter().all(String::is_empty)
    {
        return None;
    }
    let summary = summary
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| SummaryText { text: s })
        .collect();
    let content = match ours {
        None if !text.is_empty() => vec![ReasoningText { text }],
        _ => Vec::new(),
    };
    Some(InputItem::Reasoning { summary, content, encrypted_content: ours })
}

fn message(m: &Message) -> InputItem<'_> {
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::System => "system",
        Role::Developer => "developer",
    };
    let assistant = m.role == Role::Assistant;
    let content = m.parts.iter().map(|p| part(p, assistant)).collect();
    InputItem::Message { role, content }
}

/// A content part: the assistant's text is `output_text`, everyone
/// else's `input_text`.
fn part(p: &ContentPart, assistant: bool) -> InputPart<'_> {
    match p {
        ContentPart::InputText { text }
        | ContentPart::OutputText { text, .. } => {
            if assistant {
                InputPart::OutputText { text, annotations: &[] }
            } else {
                InputPart::InputText { text }
            }
        }
        ContentPart::Refusal { refusal } => {
            if assistant {
                InputPart::Refusal { refusal }
            } else {
                InputPart::InputText { text: refusal }
            }
        }
        ContentPart::InputImage { image_url, file_id, detail } => {
            InputPart::InputImage {
                detail: detail.as_deref().unwrap_or("auto"),
                image_url: image_url.as_deref(),
                file_id: file_id.as_deref(),
            }
        }
        ContentPart::InputFile { file_id, filename, file_data, file_url } => {
            InputPart::InputFile {
                file_id: file_id.as_deref(),
                filename: filename.as_deref(),
                file_data: file_data.as_deref(),
                file_url: file_url.as_deref(),
            }
        }
    }
}

fn tool(t: &FunctionTool) -> Tool<'_> {
    Tool {
        name: &t.name,
        description: t.description.as_deref(),
        parameters: t.parameters.as_ref(),
        strict: t.strict,
    }
}

fn tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::None => json!("none"),
        ToolChoice::Auto => json!("auto"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => {
            json!({"type": "function", "name": name})
        }
    }
}

/// `text.format` (None: plain text, the upstream's default).
fn text_format(format: Option<&TextFormat>) -> Option<Value> {
    match format? {
        TextFormat::Text => None,
        TextFormat::JsonObject => Some(json!({"type": "json_object"})),
        TextFormat::JsonSchema { name, schema, description, strict } => {
            let mut f =
                json!({"type": "json_schema", "name": name, "schema": schema});
            if let Some(d) = description {
                f["description"] = json!(d);
            }
            if let Some(s) = strict {
                f["strict"] = json!(s);
            }
            Some(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Sampling;

    fn text(role: Role, t: &str) -> TranscriptItem {
        TranscriptItem::Message(Message {
            role,
            parts: vec![ContentPart::InputText { text: t.into() }],
        })
    }

    fn reasoning_item(enc: Option<&str>, text: &str) -> TranscriptItem {
        TranscriptItem::Reasoning {
            text: text.into(),
            summary: vec!["sum".into()],
            encrypted_content: enc.map(str::to_string),
        }
    }

    #[test]
    fn the_transcript_is_inlined_statelessly() {
        let req = ProviderRequest {
            model: "m".into(),
            instructions: Some("be brief".into()),
            transcript: vec![
                text(Role::User, "hi"),
                reasoning_item(Some("openai:enc-1"), ""),
                text(Role::Assistant, "hello"),
                TranscriptItem::FunctionCall {
                    call_id: "call_1".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                },
                TranscriptItem::FunctionCallOutput {
                    call_id: "call_1".into(),
                    output: "ok".into(),
                },
                reasoning_item(Some("anthropic:sig"), "raw thoughts"),
                TranscriptItem::Reasoning {
                    text: String::new(),
                    summary: vec![],
                    encrypted_content: Some("anthropic:sig".into()),
                },
            ],
            tools: vec![FunctionTool {
                name: "f".into(),
                description: None,
                parameters: Some(json!({"type": "object"})),
                strict: Some(true),
            }],
            tool_choice: Some(ToolChoice::Function("f".into())),
            sampling: Sampling {
                max_output_tokens: Some(50),
                presence_penalty: Some(1.0),
                seed: Some(3),
                ..Sampling::default()
            },
            output_format: Some(TextFormat::JsonObject),
            ..ProviderRequest::default()
        };
        let body =
            serde_json::to_value(ResponsesRequest::new(&req, true)).unwrap();
        assert_eq!(body["store"], false);
        assert!(body.get("previous_response_id").is_none());
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(body["instructions"], "be brief");
        assert_eq!(body["max_output_tokens"], 50);
        assert!(body.get("presence_penalty").is_none());
        assert!(body.get("seed").is_none());
        assert_eq!(body["text"]["format"]["type"], "json_object");
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "name": "f"})
        );
        assert_eq!(body["tools"][0]["strict"], true);
        let input = body["input"].as_array().unwrap();
        assert_eq!(input.len(), 6, "{body}");
        assert_eq!(input[0]["content"][0]["type"], "input_text");
        assert_eq!(input[1]["encrypted_content"], "enc-1");
        assert!(input[1].get("id").is_none());
        assert_eq!(input[2]["content"][0]["type"], "output_text");
        assert_eq!(input[3]["type"], "function_call");
        assert_eq!(input[4]["type"], "function_call_output");
        // Another provider's reasoning: its text, never its blob.
        assert!(input[5].get("encrypted_content").is_none());
        assert_eq!(input[5]["content"][0]["text"], "raw thoughts");
        assert!(!body.to_string().contains("anthropic:"));
    }

    #[test]
    fn no_include_without_reasoning() {
        let req = ProviderRequest {
            model: "m".into(),
            transcript: vec![text(Role::User, "hi")],
            ..ProviderRequest::default()
        };
        let body =
            serde_json::to_value(ResponsesRequest::new(&req, false)).unwrap();
        assert!(body.get("include").is_none());
        assert!(body.get("reasoning").is_none());
        let req =
            ProviderRequest { reasoning_effort: Some("low".into()), ..req };
        let body =
            serde_json::to_value(ResponsesRequest::new(&req, false)).unwrap();
        assert_eq!(body["reasoning"]["effort"], "low");
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
    }

    #[test]
    fn images_and_files_keep_their_fields() {
        let req = ProviderRequest {
            model: "m".into(),
            transcript: vec![TranscriptItem::Message(Message {
                role: Role::User,
                parts: vec![
                    ContentPart::InputText { text: "look".into() },
                    ContentPart::InputImage {
                        image_url: Some("https://x/cat.png".into()),
                        file_id: None,
                        detail: None,
                    },
                    ContentPart::InputFile {
                        file_id: Some("file_1".into()),
                        filename: None,
                        file_data: None,
                        file_url: None,
                    },
                ],
            })],
            ..ProviderRequest::default()
        };
        let body =
            serde_json::to_value(ResponsesRequest::new(&req, false)).unwrap();
        assert_eq!(
            body["input"][0]["content"],
            json!([
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "detail": "auto",
                    "image_url": "https://x/cat.png"},
                {"type": "input_file", "file_id": "file_1"}
            ])
        );
    }
}
