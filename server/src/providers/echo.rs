//! `echo`: a deterministic local provider, so the gateway runs and can be
//! tried with no upstream keys. It answers with the last user message.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream;
use serde::Deserialize;

use super::*;
use crate::api::Role;

/// `kind = "echo"`: no settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoConfig {}

/// Answers with the text of the last user message, a few words per delta;
/// usage counts words.
pub struct Echo;

/// Words per streamed delta.
const WORDS_PER_DELTA: usize = 2;

impl Echo {
    /// The provider for a configuration.
    pub fn from_config(_: &EchoConfig) -> Arc<dyn Provider> {
        Arc::new(Echo)
    }

    /// The answer's events: for every choice (`n`), the echo of the last
    /// user message, or the last tool output, or a call of the tool that
    /// `tool_choice` demands; then usage.
    fn events(req: &ProviderRequest) -> Vec<ProviderEvent> {
        let last_user = req
            .messages()
            .filter(|m| m.role == Role::User)
            .last()
            .map(|m| plain_text(&m.parts))
            .unwrap_or_default();
        let input = req
            .messages()
            .map(|m| plain_text(&m.parts).split_whitespace().count() as i64)
            .sum::<i64>()
            + req
                .instructions
                .as_deref()
                .map_or(0, |i| i.split_whitespace().count() as i64);
        let tool_output = match req.transcript.last() {
            Some(TranscriptItem::FunctionCallOutput { output, .. }) => {
                Some(output.as_str())
            }
            _ => None,
        };
        let call = match (&req.tool_choice, tool_output) {
            (_, Some(_)) => None,
            (Some(ToolChoice::Required), _) => req.tools.first(),
            (Some(ToolChoice::Function(name)), _) => {
                req.tools.iter().find(|t| &t.name == name)
            }
            _ => None,
        };
        let text = tool_output.unwrap_or(&last_user);
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        let limit =
            req.sampling.max_output_tokens.map_or(usize::MAX, |m| m as usize);
        let (kept, finish) = if words.len() > limit {
            (&words[..limit], FinishReason::Length)
        } else if call.is_some() {
            (&words[..], FinishReason::ToolCalls)
        } else {
            (&words[..], FinishReason::Stop)
        };
        let n = req.sampling.n.unwrap_or(1).max(1);
        let mut events = Vec::new();
        for choice in 0..n {
            if n > 1 {
                events.push(ProviderEvent::Choice(choice));
            }
            let index = choice as usize;
            match call {
                Some(tool) if finish == FinishReason::ToolCalls => {
                    events.push(ProviderEvent::ItemStarted {
                        index,
                        kind: ItemKind::FunctionCall {
                            call_id: format!("call_echo_{choice}"),
                            name: tool.name.clone(),
                        },
                    });
                    events.push(ProviderEvent::Delta {
                        index,
                        delta: Delta::Arguments(arguments(tool, &last_user)),
                    });
                }
                _ => {
                    events.push(ProviderEvent::ItemStarted {
                        index,
                        kind: ItemKind::Message,
                    });
                    for c in kept.chunks(WORDS_PER_DELTA) {
                        events.push(ProviderEvent::Delta {
                            index,
                            delta: Delta::Text(c.concat()),
                        });
                    }
                }
            }
            events.push(ProviderEvent::Finish(finish));
            events.push(ProviderEvent::ItemDone { index });
        }
        events.push(ProviderEvent::Usage(Usage {
            input,
            output: kept.len() as i64 * n as i64,
            ..Usage::default()
        }));
        events
    }
}

/// Arguments of an echo tool call: every string property of the tool's
/// schema holds `text`, others are left out (a schema without properties
/// gets `input`).
fn arguments(tool: &FunctionTool, text: &str) -> String {
    let mut args = serde_json::Map::new();
    let props = tool
        .parameters
        .as_ref()
        .and_then(|p| p.get("properties"))
        .and_then(|p| p.as_object());
    match props {
        Some(props) if !props.is_empty() => {
            for (name, schema) in props {
                if schema.get("type").and_then(|t| t.as_str()) == Some("string")
                {
                    args.insert(name.clone(), text.into());
                }
            }
        }
        _ => {
            args.insert("input".into(), text.into());
        }
    }
    serde_json::Value::Object(args).to_string()
}

#[async_trait]
impl Provider for Echo {
    async fn models(&self) -> Vec<String> {
        vec!["echo".into()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tools: true,
            multiple_choices: true,
            extra_fields: true,
            ..Capabilities::default()
        }
    }

    async fn stream(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<EventStream, ProviderError> {
        let events = Self::events(req).into_iter().map(Ok);
        Ok(Box::pin(stream::iter(events)))
    }

    async fn complete(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<Completion, ProviderError> {
        Ok(Completion { events: Self::events(req) })
    }
}
