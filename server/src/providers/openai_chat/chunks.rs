//! Chat Completions answers to item-level events: the streamed chunk
//! parser (reasoning, text, refusal and tool-call fragments) and the
//! non-streaming answer. Upstreams that stream reasoning send it as
//! `delta.reasoning_content` (DeepSeek, vLLM, SGLang, llama.cpp) or
//! `delta.reasoning` (OpenRouter).

use serde::Deserialize;
use serde_json::Value;

use crate::providers::{
    Completion, Delta, FinishReason, ItemKind, ProviderEvent, Usage,
};

/// Item index of the reasoning item.
const REASONING: usize = 0;
/// Item index of the message item.
const MESSAGE: usize = 1;
/// Item index of tool call 0; call `i` is `TOOLS + i`.
const TOOLS: usize = 2;

#[derive(Deserialize)]
pub(super) struct ChatUsage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<i64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<i64>,
}

impl From<ChatUsage> for Usage {
    fn from(u: ChatUsage) -> Usage {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write: 0,
            reasoning: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// A non-streaming answer.
#[derive(Deserialize)]
pub(super) struct ChatCompletion {
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChunkDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// One streamed chunk.
#[derive(Deserialize)]
pub(super) struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// A streamed delta, or a whole answer's message (same fields).
#[derive(Deserialize, Default)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize, Default)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

fn finish_reason(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// The item-level state of one answer (choice 0).
#[derive(Default)]
pub(super) struct ChunkParser {
    /// The item now receiving deltas.
    open: Option<usize>,
    /// Tool calls started, by their chunk index.
    tools_started: Vec<usize>,
    /// A `finish_reason` was seen.
    pub finished: bool,
}

impl ChunkParser {
    /// Moves to item `index`, closing the one before it.
    fn enter(
        &mut self,
        index: usize,
        kind: ItemKind,
        out: &mut Vec<ProviderEvent>,
    ) {
        if self.open == Some(index) {
            return;
        }
        if let Some(prev) = self.open.take() {
            out.push(ProviderEvent::ItemDone { index: prev });
        }
        self.open = Some(index);
        out.push(ProviderEvent::ItemStarted { index, kind });
    }

    /// Applies one delta of choice 0.
    fn delta(&mut self, d: ChunkDelta, out: &mut Vec<ProviderEvent>) {
        let reasoning = d.reasoning_content.or(d.reasoning);
        if let Some(t) = reasoning.filter(|t| !t.is_empty()) {
            self.enter(REASONING, ItemKind::Reasoning, out);
            out.push(ProviderEvent::Delta {
                index: REASONING,
                delta: Delta::ReasoningText(t),
            });
        }
        if let Some(t) = d.content.filter(|t| !t.is_empty()) {
            self.enter(MESSAGE, ItemKind::Message, out);
            out.push(ProviderEvent::Delta {
                index: MESSAGE,
                delta: Delta::Text(t),
            });
        }
        if let Some(r) = d.refusal.filter(|r| !r.is_empty()) {
            self.enter(MESSAGE, ItemKind::Message, out);
            out.push(ProviderEvent::Delta {
                index: MESSAGE,
                delta: Delta::Refusal(r),
            });
        }
        for (pos, call) in d.tool_calls.into_iter().enumerate() {
            let n = call.index.unwrap_or(pos);
            let index = TOOLS + n;
            let f = call.function.unwrap_or_default();
            if !self.tools_started.contains(&n) {
                self.tools_started.push(n);
                let kind = ItemKind::FunctionCall {
                    call_id: call.id.unwrap_or_else(|| format!("call_{n}")),
                    name: f.name.unwrap_or_default(),
                };
                if let Some(prev) = self.open.take() {
                    out.push(ProviderEvent::ItemDone { index: prev });
                }
                self.open = Some(index);
                out.push(ProviderEvent::ItemStarted { index, kind });
            }
            if let Some(a) = f.arguments.filter(|a| !a.is_empty()) {
                out.push(ProviderEvent::Delta {
                    index,
                    delta: Delta::Arguments(a),
                });
            }
        }
    }

    /// Applies one streamed chunk.
    pub fn chunk(&mut self, chunk: ChatChunk, out: &mut Vec<ProviderEvent>) {
        for (i, choice) in chunk.choices.into_iter().enumerate() {
            // Only the first choice is an answer here (`n` is 1).
            if i > 0 {
                continue;
            }
            if let Some(d) = choice.delta {
                self.delta(d, out);
            }
            if let Some(f) = choice.finish_reason {
                self.finished = true;
                // The finish first: the items it cut take its status.
                out.push(ProviderEvent::Finish(finish_reason(&f)));
                if let Some(prev) = self.open.take() {
                    out.push(ProviderEvent::ItemDone { index: prev });
                }
            }
        }
        if let Some(u) = chunk.usage {
            out.push(ProviderEvent::Usage(u.into()));
        }
    }

    /// The events of a non-streaming answer (None: it has no choice).
    pub fn completion(body: ChatCompletion) -> Option<Completion> {
        let choice = body.choices.into_iter().next()?;
        let mut p = ChunkParser::default();
        let mut events = Vec::new();
        p.delta(choice.message, &mut events);
        if let Some(f) = choice.finish_reason.as_deref() {
            events.push(ProviderEvent::Finish(finish_reason(f)));
        }
        if let Some(prev) = p.open.take() {
            events.push(ProviderEvent::ItemDone { index: prev });
        }
        if let Some(u) = body.usage {
            events.push(ProviderEvent::Usage(u.into()));
        }
        Some(Completion { events })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    /// Splits `s` at random char boundaries.
    fn split(rng: &mut StdRng, s: &str) -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let n = rng.random_range(1..=4.min(chars.len() - i));
            out.push(chars[i..i + n].iter().collect());
            i += n;
        }
        out
    }

    /// What the events say, item by item: (kind, text) in start order.
    fn fold(events: &[ProviderEvent]) -> Vec<(ItemKind, String)> {
        let mut items: Vec<(usize, ItemKind, String)> = Vec::new();
        for ev in events {
            match ev {
                ProviderEvent::ItemStarted { index, kind } => {
                    assert!(
                        items.iter().all(|(i, ..)| i != index),
                        "item {index} started twice"
                    );
                    items.push((*index, kind.clone(), String::new()));
                }
                ProviderEvent::Delta { index, delta } => {
                    let item = items
                        .iter_mut()
                        .find(|(i, ..)| i == index)
                        .expect("delta after its item started");
                    match delta {
                        Delta::Text(t)
                        | Delta::Refusal(t)
                        | Delta::Arguments(t)
                        | Delta::ReasoningText(t) => item.2.push_str(t),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                _ => {}
            }
        }
        items.into_iter().map(|(_, k, t)| (k, t)).collect()
    }

    #[test]
    fn any_split_of_an_answer_parses_to_the_same_items() {
        let words = ["alpha ", "βeta ", "gamma", "{\"a\":1}", "ok ", "日本"];
        for seed in 0..300u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let pick = |rng: &mut StdRng| -> String {
                (0..rng.random_range(1..5))
                    .map(|_| words[rng.random_range(0..words.len())])
                    .collect()
            };
            let reasoning = rng.random_bool(0.5).then(|| pick(&mut rng));
            let text = rng.random_bool(0.7).then(|| pick(&mut rng));
            let calls: Vec<(String, String)> = (0..rng.random_range(0..3))
                .map(|i| (format!("fn{i}"), pick(&mut rng)))
                .collect();
            let field = if rng.random_bool(0.5) {
                "reasoning_content"
            } else {
                "reasoning"
            };
            let mut chunks = vec![
                json!({"choices": [{"delta": {"role": "assistant", "content": ""}}]}),
            ];
            if let Some(r) = &reasoning {
                for piece in split(&mut rng, r) {
                    chunks
                        .push(json!({"choices": [{"delta": {field: piece}}]}));
                }
            }
            if let Some(t) = &text {
                for piece in split(&mut rng, t) {
                    chunks.push(
                        json!({"choices": [{"delta": {"content": piece}}]}),
                    );
                }
            }
            for (i, (name, args)) in calls.iter().enumerate() {
                chunks.push(json!({"choices": [{"delta": {"tool_calls": [
                    {"index": i, "id": format!("call_{seed}_{i}"), "type": "function",
                     "function": {"name": name, "arguments": ""}}]}}]}));
                for piece in split(&mut rng, args) {
                    chunks.push(json!({"choices": [{"delta": {"tool_calls": [
                        {"index": i, "function": {"arguments": piece}}]}}]}));
                }
            }
            let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
            chunks.push(
                json!({"choices": [{"delta": {}, "finish_reason": finish}]}),
            );
            chunks.push(json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9,
                "completion_tokens_details": {"reasoning_tokens": 4}}}));

            let mut p = ChunkParser::default();
            let mut events = Vec::new();
            for c in chunks {
                p.chunk(serde_json::from_value(c).unwrap(), &mut events);
            }
            let mut expected = Vec::new();
            if let Some(r) = reasoning {
                expected.push((ItemKind::Reasoning, r));
            }
            if let Some(t) = text {
                expected.push((ItemKind::Message, t));
            }
            for (i, (name, args)) in calls.into_iter().enumerate() {
                expected.push((
                    ItemKind::FunctionCall {
                        call_id: format!("call_{seed}_{i}"),
                        name,
                    },
                    args,
                ));
            }
            assert_eq!(fold(&events), expected, "seed {seed}");
            let n = events.len();
            let finish = events
                .iter()
                .find(|e| matches!(e, ProviderEvent::Finish(_)))
                .cloned();
            assert_eq!(
                finish,
                Some(ProviderEvent::Finish(
                    if expected.iter().any(|(k, _)| matches!(
                        k,
                        ItemKind::FunctionCall { .. }
                    )) {
                        FinishReason::ToolCalls
                    } else {
                        FinishReason::Stop
                    }
                )),
                "seed {seed}"
            );
            assert_eq!(
                events[n - 1],
                ProviderEvent::Usage(Usage {
                    input: 3,
                    output: 9,
                    reasoning: 4,
                    ..Usage::default()
                })
            );
            // Every started item is done before the finish.
            let started = events
                .iter()
                .filter(|e| matches!(e, ProviderEvent::ItemStarted { .. }))
                .count();
            let done = events
                .iter()
                .filter(|e| matches!(e, ProviderEvent::ItemDone { .. }))
                .count();
            assert_eq!(started, done, "seed {seed}");
        }
    }

    #[test]
    fn a_whole_answer_with_reasoning_and_tool_calls() {
        let body: ChatCompletion = serde_json::from_value(json!({
            "choices": [{"message": {"role": "assistant", "content": null,
                "reasoning_content": "why",
                "tool_calls": [{"id": "call_9", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2}
        }))
        .unwrap();
        let c = ChunkParser::completion(body).unwrap();
        assert_eq!(
            fold(&c.events),
            vec![
                (ItemKind::Reasoning, "why".to_string()),
                (
                    ItemKind::FunctionCall {
                        call_id: "call_9".into(),
                        name: "f".into()
                    },
                    "{}".to_string()
                ),
            ]
        );
    }
}
