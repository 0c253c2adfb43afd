//! The Messages request body, borrowed from the provider request, and the
//! transcript-to-`messages` translation: instructions, system and
//! developer messages to `system`; turns merged so roles alternate;
//! function calls to `tool_use` blocks and their outputs to `tool_result`
//! blocks at the start of the next user turn; our own reasoning items back
//! to (redacted) thinking blocks; images to base64 or URL sources.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::thinking::{self, Replay};
use crate::api::{ContentPart, Role, TextFormat};
use crate::providers::{
    FunctionTool, ProviderError, ProviderRequest, ToolChoice, TranscriptItem,
    plain_text,
};

/// The body of `POST /v1/messages`.
#[derive(Debug, Serialize)]
pub(super) struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: i64,
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System<'a>>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// Structured outputs (GA: `output_config.format`, no beta header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
}

/// The body of `POST /v1/messages/count_tokens`: what makes up the input
/// of a Messages request, nothing about its generation.
#[derive(Debug, Serialize)]
pub(super) struct CountTokensRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
}

impl<'a> From<MessagesRequest<'a>> for CountTokensRequest<'a> {
    fn from(m: MessagesRequest<'a>) -> Self {
        CountTokensRequest {
            model: m.model,
            messages: m.messages,
            system: m.system,
            tools: m.tools,
            tool_choice: m.tool_choice,
            thinking: m.thinking,
        }
    }
}

/// The answer of `POST /v1/messages/count_tokens`.
#[derive(Debug, Deserialize)]
pub(super) struct TokenCount {
    pub input_tokens: i64,
}

/// `system`: one string, or text blocks when there are several parts (so
/// they stay separate).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum System<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

#[derive(Debug, Serialize)]
pub(super) struct Metadata<'a> {
    user_id: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct Tool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: Cow<'a, Value>,
}

/// One turn of `messages`.
#[derive(Debug, Serialize)]
pub(super) struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

/// A content block.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: Source<'a>,
    },
    Document {
        source: Source<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        content: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// A request the translation cannot express: the client's to fix, so it
/// answers 400 with what to do.
fn rejected(message: String) -> ProviderError {
    ProviderError::Unsupported(message)
}

impl<'a> MessagesRequest<'a> {
    /// The body for `req`; `default_max_tokens` when it sets no limit.
    pub fn new(
        req: &'a ProviderRequest,
        stream: bool,
        default_max_tokens: i64,
    ) -> Result<Self, ProviderError> {
        let s = &req.sampling;
        let mut max_tokens = s
            .max_output_tokens
            .filter(|m| *m > 0)
            .unwrap_or(default_max_tokens);
        let thinking =
            thinking::budget(req.reasoning_effort.as_deref(), max_tokens).map(
                |(budget, max)| {
                    max_tokens = max;
                    json!({"type": "enabled", "budget_tokens": budget})
                },
            );
        let (system_parts, messages) = translate(req)?;
        let mut system_parts = system_parts;
        if matches!(req.output_format, Some(TextFormat::JsonObject)) {
            // No JSON mode at Anthropic: ask for it in words.
            system_parts.push(Cow::Borrowed(
                "Respond with a single JSON object and nothing else.",
            ));
        }
        let system = match system_parts.len() {
            0 => None,
            1 => system_parts.pop().map(System::Text),
            _ => Some(System::Blocks(
                system_parts
                    .into_iter()
                    .map(|text| Block::Text { text })
                    .collect(),
            )),
        };
        let tools: Vec<Tool<'a>> = req.tools.iter().map(tool).collect();
        let tool_choice = if tools.is_empty() {
            None
        } else {
            tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)
        };
        let output_config = match &req.output_format {
            Some(TextFormat::JsonSchema { schema, .. }) => Some(json!({
                "format": {"type": "json_schema", "schema": schema}
            })),
            _ => None,
        };
        Ok(MessagesRequest {
            model: &req.model,
            max_tokens,
            messages,
            system,
            stream,
            temperature: s.temperature,
            top_p: s.top_p,
            stop_sequences: &s.stop,
            metadata: req.user.as_deref().map(|user_id| Metadata { user_id }),
            tools,
            tool_choice,
            thinking,
            output_config,
        })
    }
}

fn tool(t: &FunctionTool) -> Tool<'_> {
    Tool {
        name: &t.name,
        description: t.description.as_deref(),
        input_schema: match &t.parameters {
            Some(p) => Cow::Borrowed(p),
            None => Cow::Owned(json!({"type": "object"})),
        },
    }
}

/// `tool_choice`, with `disable_parallel_tool_use` when parallel calls are
/// off (on `auto` when no choice is given).
fn tool_choice(
    choice: Option<&ToolChoice>,
    parallel: Option<bool>,
) -> Option<Value> {
    let serial = parallel == Some(false);
    let mut v = match choice {
        None if serial => json!({"type": "auto"}),
        None => return None,
        Some(ToolChoice::None) => return Some(json!({"type": "none"})),
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Function(name)) => {
            json!({"type": "tool", "name": name})
        }
    };
    if serial {
        v["disable_parallel_tool_use"] = json!(true);
    }
    Some(v)
}

/// Builds `messages` turn by turn, merging same-role neighbours.
#[derive(Default)]
struct Turns<'a> {
    turns: Vec<Turn<'a>>,
}

impl<'a> Turns<'a> {
    /// The turn of `role` to add to: the last one if it has that role.
    fn of(&mut self, role: &'static str) -> &mut Vec<Block<'a>> {
        if self.turns.last().is_none_or(|t| t.role != role) {
            self.turns.push(Turn { role, content: Vec::new() });
        }
        let last = self.turns.len() - 1;
        &mut self.turns[last].content
    }

    /// A `tool_result` goes before any other block of its user turn.
    fn tool_result(&mut self, block: Block<'a>) {
        let content = self.of("user");
        let at = content
            .iter()
            .take_while(|b| matches!(b, Block::ToolResult { .. }))
            .count();
        content.insert(at, block);
    }
}

/// `(system texts, messages)` of the request.
fn translate(
    req: &ProviderRequest,
) -> Result<(Vec<Cow<'_, str>>, Vec<Turn<'_>>), ProviderError> {
    let mut system: Vec<Cow<'_, str>> = Vec::new();
    if let Some(i) = req.instructions.as_deref().filter(|i| !i.is_empty()) {
        system.push(Cow::Borrowed(i));
    }
    let mut turns = Turns::default();
    for (n, item) in req.transcript.iter().enumerate() {
        match item {
            TranscriptItem::Message(m) => match m.role {
                Role::System | Role::Developer => {
                    let text = text_of(&m.parts);
                    if !text.is_empty() {
                        system.push(text);
                    }
                }
                Role::User => {
                    let blocks = user_blocks(&m.parts, n)?;
                    turns.of("user").extend(blocks);
                }
                Role::Assistant => {
                    let text = text_of(&m.parts);
                    if !text.is_empty() {
                        turns.of("assistant").push(Block::Text { text });
                    }
                }
            },
            TranscriptItem::FunctionCall { call_id, name, arguments } => {
                let input = serde_json::from_str::<Value>(arguments)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                turns.of("assistant").push(Block::ToolUse {
                    id: call_id,
                    name,
                    input,
                });
            }
            TranscriptItem::FunctionCallOutput { call_id, output } => {
                turns.tool_result(Block::ToolResult {
                    tool_use_id: call_id,
                    content: output,
                });
            }
            TranscriptItem::Reasoning { text, encrypted_content, .. } => {
                let block = match encrypted_content
                    .as_deref()
                    .and_then(thinking::decode)
                {
                    Some(Replay::Thinking(signature)) => {
                        Block::Thinking { thinking: text, signature }
                    }
                    Some(Replay::Redacted(data)) => {
                        Block::RedactedThinking { data }
                    }
                    // Another provider's reasoning: nothing Anthropic
                    // could verify.
                    None => continue,
                };
                turns.of("assistant").push(block);
            }
        }
    }
    // Anthropic rejects empty turns; a turn of only empty text is dropped.
    turns.turns.retain(|t| !t.content.is_empty());
    Ok((system, turns.turns))
}

/// Text of text parts; borrowed when there is a single part.
fn text_of(parts: &[ContentPart]) -> Cow<'_, str> {
    match parts {
        [ContentPart::InputText { text }]
        | [ContentPart::OutputText { text, .. }]
        | [ContentPart::Refusal { refusal: text }] => Cow::Borrowed(text),
        _ => Cow::Owned(plain_text(parts)),
    }
}

fn user_blocks(
    parts: &[ContentPart],
    item: usize,
) -> Result<Vec<Block<'_>>, ProviderError> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        match p {
            ContentPart::InputText { text }
            | ContentPart::OutputText { text, .. }
            | ContentPart::Refusal { refusal: text } => {
                if !text.is_empty() {
                    out.push(Block::Text { text: Cow::Borrowed(text) });
                }
            }
            ContentPart::InputImage { image_url, .. } => {
                let url = image_url.as_deref().unwrap_or_default();
                let source = source(url).ok_or_else(|| {
                    rejected(format!(
                        "Image {j} of input item {item} cannot be sent to \
                         Anthropic: give it as an https URL or a base64 data \
                         URI (`data:image/png;base64,…`)."
                    ))
                })?;
                out.push(Block::Image { source });
            }
            ContentPart::InputFile { file_data, file_url, .. } => {
                let source = match (file_data.as_deref(), file_url.as_deref()) {
                    (Some(d), _) => source(d).or(Some(Source::Base64 {
                        media_type: "application/pdf",
                        data: d,
                    })),
                    (None, Some(u)) => source(u),
                    (None, None) => None,
                };
                let source = source.ok_or_else(|| {
                    rejected(format!(
                        "File {j} of input item {item} cannot be sent to \
                         Anthropic: give `file_data` (base64 PDF or a data \
                         URI) or `file_url`; file ids are not supported."
                    ))
                })?;
                out.push(Block::Document { source });
            }
        }
    }
    Ok(out)
}

/// The source of a base64 `data:` URI or an http(s) URL.
fn source(url: &str) -> Option<Source<'_>> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        if media_type.is_empty() || data.is_empty() {
            return None;
        }
        return Some(Source::Base64 { media_type, data });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        .then_some(Source::Url { url })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Message, Sampling};

    fn msg(role: Role, text: &str) -> TranscriptItem {
        let part = match role {
            Role::Assistant => ContentPart::OutputText {
                text: text.into(),
                annotations: vec![],
                logprobs: vec![],
            },
            _ => ContentPart::InputText { text: text.into() },
        };
        TranscriptItem::Message(Message { role, parts: vec![part] })
    }

    fn body(req: &ProviderRequest) -> Value {
        serde_json::to_value(MessagesRequest::new(req, true, 4096).unwrap())
            .unwrap()
    }

    #[test]
    fn system_parts_stay_separate_and_turns_alternate() {
        let req = ProviderRequest {
            model: "claude".into(),
            instructions: Some("be brief".into()),
            transcript: vec![
                msg(Role::System, "sys"),
                msg(Role::Developer, "dev"),
                msg(Role::User, "a"),
                msg(Role::User, "b"),
                msg(Role::Assistant, "c"),
            ],
            user: Some("u1".into()),
            sampling: Sampling {
                stop: vec!["END".into()],
                temperature: Some(0.5),
                ..Sampling::default()
            },
            ..ProviderRequest::default()
        };
        let b = body(&req);
        assert_eq!(
            b["system"],
            json!([{"type": "text", "text": "be brief"},
                   {"type": "text", "text": "sys"},
                   {"type": "text", "text": "dev"}])
        );
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "a"},
                                             {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "c"}]}
            ])
        );
        assert_eq!(b["max_tokens"], 4096);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["metadata"], json!({"user_id": "u1"}));
        assert_eq!(b["temperature"], 0.5);
        assert!(b.get("tools").is_none() && b.get("thinking").is_none());
        // One system text is a plain string.
        let one = ProviderRequest {
            instructions: Some("only".into()),
            transcript: vec![msg(Role::User, "x")],
            ..ProviderRequest::default()
        };
        assert_eq!(body(&one)["system"], "only");
    }

    #[test]
    fn tool_calls_results_and_reasoning_replay_in_place() {
        let req = ProviderRequest {
            model: "claude".into(),
            transcript: vec![
                msg(Role::User, "weather?"),
                TranscriptItem::Reasoning {
                    text: "hmm".into(),
                    summary: vec![],
                    encrypted_content: Some(thinking::encode_thinking("S")),
                },
                TranscriptItem::Reasoning {
                    text: String::new(),
                    summary: vec![],
                    encrypted_content: Some(thinking::encode_redacted("R")),
                },
                TranscriptItem::Reasoning {
                    text: "foreign".into(),
                    summary: vec![],
                    encrypted_content: Some("gAAAA-openai".into()),
                },
                msg(Role::Assistant, "Let me check."),
                TranscriptItem::FunctionCall {
                    call_id: "toolu_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                },
                TranscriptItem::FunctionCall {
                    call_id: "toolu_2".into(),
                    name: "get_time".into(),
                    arguments: "not json".into(),
                },
                msg(Role::User, "and hurry"),
                TranscriptItem::FunctionCallOutput {
                    call_id: "toolu_1".into(),
                    output: "sunny".into(),
                },
                TranscriptItem::FunctionCallOutput {
                    call_id: "toolu_2".into(),
                    output: "noon".into(),
                },
            ],
            tools: vec![FunctionTool {
                name: "get_weather".into(),
                description: Some("w".into()),
                parameters: None,
                strict: None,
            }],
            parallel_tool_calls: Some(false),
            ..ProviderRequest::default()
        };
        let b = body(&req);
        assert_eq!(
            b["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "hmm", "signature": "S"},
                {"type": "redacted_thinking", "data": "R"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time",
                 "input": {}}
            ]),
            "{b}"
        );
        assert_eq!(
            b["messages"][2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
                {"type": "text", "text": "and hurry"}
            ]})
        );
        assert_eq!(
            b["tools"],
            json!([{"name": "get_weather", "description": "w",
                    "input_schema": {"type": "object"}}])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn tool_choices_map_to_anthropic_types() {
        let cases = [
            (None, None, None),
            (Some(ToolChoice::Auto), None, Some(json!({"type": "auto"}))),
            (Some(ToolChoice::Required), None, Some(json!({"type": "any"}))),
            (
                Some(ToolChoice::None),
                Some(false),
                Some(json!({"type": "none"})),
            ),
            (
                Some(ToolChoice::Function("f".into())),
                Some(false),
                Some(
                    json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}),
                ),
            ),
            (
                Some(ToolChoice::Required),
                Some(true),
                Some(json!({"type": "any"})),
            ),
        ];
        for (choice, parallel, want) in cases {
            assert_eq!(
                tool_choice(choice.as_ref(), parallel),
                want,
                "{choice:?} {parallel:?}"
            );
        }
    }

    #[test]
    fn images_become_base64_or_url_sources() {
        let cases = [
            (
                "data:image/png;base64,AAAA",
                Some(
                    json!({"type": "base64", "media_type": "image/png", "data": "AAAA"}),
                ),
            ),
            (
                "https://example.com/cat.jpg",
                Some(
                    json!({"type": "url", "url": "https://example.com/cat.jpg"}),
                ),
            ),
            ("data:image/png,notbase64", None),
            ("ftp://example.com/x.png", None),
            ("", None),
        ];
        for (url, want) in cases {
            let req = ProviderRequest {
                transcript: vec![TranscriptItem::Message(Message {
                    role: Role::User,
                    parts: vec![ContentPart::InputImage {
                        image_url: Some(url.into()),
                        file_id: None,
                        detail: None,
                    }],
                })],
                ..ProviderRequest::default()
            };
            match (MessagesRequest::new(&req, false, 10), want) {
                (Ok(b), Some(want)) => {
                    let v = serde_json::to_value(b).unwrap();
                    assert_eq!(v["messages"][0]["content"][0]["source"], want);
                }
                (Err(ProviderError::Unsupported(_)), None) => {}
                (other, want) => panic!("{url}: {other:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn effort_sets_thinking_and_schema_sets_output_config() {
        let mut schema = std::collections::BTreeMap::new();
        schema.insert("type".to_string(), json!("object"));
        let req = ProviderRequest {
            transcript: vec![msg(Role::User, "x")],
            reasoning_effort: Some("high".into()),
            sampling: Sampling {
                max_output_tokens: Some(500),
                ..Sampling::default()
            },
            output_format: Some(TextFormat::JsonSchema {
                name: "n".into(),
                schema,
                description: None,
                strict: Some(true),
            }),
            ..ProviderRequest::default()
        };
        let b = body(&req);
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        assert_eq!(b["max_tokens"], 1025);
        assert_eq!(
            b["output_config"],
            json!({"format": {"type": "json_schema", "schema": {"type": "object"}}})
        );
    }
}
