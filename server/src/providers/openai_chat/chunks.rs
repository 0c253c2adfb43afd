//! Chat Completions answers to item-level events: the streamed chunk
//! parser (reasoning, text, refusal, logprobs, annotations and tool-call
//! fragments, for every choice) and the non-streaming answer. Upstreams
//! that stream reasoning send it as `delta.reasoning_content` (DeepSeek,
//! vLLM, SGLang, llama.cpp) or `delta.reasoning` (OpenRouter).

use serde::Deserialize;
use serde_json::Value;

use crate::providers::{
    AnswerMeta, Completion, Delta, FinishReason, ItemKind, ProviderEvent, Usage,
};

/// Item slot of the reasoning item within a choice.
const REASONING: usize = 0;
/// Item slot of the message item.
const MESSAGE: usize = 1;
/// Item slot of tool call 0; call `i` is `TOOLS + i`.
const TOOLS: usize = 2;
/// Item indexes of choice `c` start at `c * CHOICE_STRIDE`.
const CHOICE_STRIDE: usize = 1 << 20;
/// The most choices a request asks for (`n` is at most 128); an upstream
/// choice index at or past it names nothing asked for.
const MAX_UPSTREAM_CHOICES: u32 = 128;

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
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    service_tier: Option<String>,
}

#[derive(Deserialize)]
struct ChatChoice {
    #[serde(default)]
    index: Option<u32>,
    message: ChunkDelta,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<ChoiceLogprobs>,
}

/// One streamed chunk.
#[derive(Deserialize)]
pub(super) struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<ChoiceLogprobs>,
}

/// `choices[].logprobs`: token entries kept verbatim.
#[derive(Deserialize, Default)]
struct ChoiceLogprobs {
    #[serde(default)]
    content: Option<Vec<Value>>,
    #[serde(default)]
    refusal: Option<Vec<Value>>,
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
    #[serde(default)]
    annotations: Option<Vec<Value>>,
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

/// The item-level state of one choice.
#[derive(Default)]
struct ChoiceState {
    /// The item now receiving deltas.
    open: Option<usize>,
    /// Tool calls started, by their chunk index.
    tools_started: Vec<usize>,
    /// A `finish_reason` was seen.
    finished: bool,
}

/// The item-level state of one answer, every choice of it.
#[derive(Default)]
pub(super) struct ChunkParser {
    /// Per choice, by choice index.
    choices: Vec<ChoiceState>,
    /// The choice the last events were about.
    current: u32,
    /// The last metadata reported.
    meta: AnswerMeta,
    /// Every choice seen has a `finish_reason`.
    pub finished: bool,
}

impl ChunkParser {
    /// Switches to choice `c`, telling the consumer when it changes.
    fn select(&mut self, c: u32, out: &mut Vec<ProviderEvent>) {
        if c != self.current {
            self.current = c;
            out.push(ProviderEvent::Choice(c));
        }
        while self.choices.len() <= c as usize {
            self.choices.push(ChoiceState::default());
        }
    }

    fn state(&mut self) -> &mut ChoiceState {
        let c = self.current as usize;
        if self.choices.len() <= c {
            self.choices.resize_with(c + 1, ChoiceState::default);
        }
        &mut self.choices[c]
    }

    fn index(&self, slot: usize) -> usize {
        self.current as usize * CHOICE_STRIDE + slot
    }

    /// Moves to item `slot` of the current choice, closing the one before.
    fn enter(
        &mut self,
        slot: usize,
        kind: ItemKind,
        out: &mut Vec<ProviderEvent>,
    ) {
        let index = self.index(slot);
        let st = self.state();
        if st.open == Some(index) {
            return;
        }
        if let Some(prev) = st.open.take() {
            out.push(ProviderEvent::ItemDone { index: prev });
        }
        st.open = Some(index);
        out.push(ProviderEvent::ItemStarted { index, kind });
    }

    fn metadata(
        &mut self,
        fingerprint: Option<String>,
        tier: Option<String>,
        out: &mut Vec<ProviderEvent>,
    ) {
        let meta = AnswerMeta {
            system_fingerprint: fingerprint
                .or_else(|| self.meta.system_fingerprint.clone()),
            service_tier: tier.or_else(|| self.meta.service_tier.clone()),
        };
        if meta != self.meta {
            self.meta = meta.clone();
            out.push(ProviderEvent::Meta(meta));
        }
    }

    /// Applies one delta of the current choice.
    fn delta(&mut self, d: ChunkDelta, out: &mut Vec<ProviderEvent>) {
        let reasoning = d.reasoning_content.or(d.reasoning);
        if let Some(t) = reasoning.filter(|t| !t.is_empty()) {
            self.enter(REASONING, ItemKind::Reasoning, out);
            out.push(ProviderEvent::Delta {
                index: self.index(REASONING),
                delta: Delta::ReasoningText(t),
            });
        }
        if let Some(t) = d.content.filter(|t| !t.is_empty()) {
            self.enter(MESSAGE, ItemKind::Message, out);
            out.push(ProviderEvent::Delta {
                index: self.index(MESSAGE),
                delta: Delta::Text(t),
            });
        }
        if let Some(r) = d.refusal.filter(|r| !r.is_empty()) {
            self.enter(MESSAGE, ItemKind::Message, out);
            out.push(ProviderEvent::Delta {
                index: self.index(MESSAGE),
                delta: Delta::Refusal(r),
            });
        }
        if let Some(a) = d.annotations.filter(|a| !a.is_empty()) {
            self.enter(MESSAGE, ItemKind::Message, out);
            out.push(ProviderEvent::Delta {
                index: self.index(MESSAGE),
                delta: Delta::Annotations(a),
            });
        }
        for (pos, call) in d.tool_calls.into_iter().enumerate() {
            let n = call.index.unwrap_or(pos);
            let index = self.index(TOOLS + n);
            let f = call.function.unwrap_or_default();
            let st = self.state();
            if !st.tools_started.contains(&n) {
                st.tools_started.push(n);
                let kind = ItemKind::FunctionCall {
                    call_id: call.id.unwrap_or_else(|| format!("call_{n}")),
                    name: f.name.unwrap_or_default(),
                };
                if let Some(prev) = st.open.take() {
                    out.push(ProviderEvent::ItemDone { index: prev });
                }
                st.open = Some(index);
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

    /// Log probabilities of the current choice's text about to be sent.
    fn logprobs(&mut self, l: ChoiceLogprobs, out: &mut Vec<ProviderEvent>) {
        let content = l.content.unwrap_or_default();
        let refusal = l.refusal.unwrap_or_default();
        if content.is_empty() && refusal.is_empty() {
            return;
        }
        out.push(ProviderEvent::Delta {
            index: self.index(MESSAGE),
            delta: Delta::Logprobs { content, refusal },
        });
    }

    /// Ends the current choice with `reason`.
    fn finish(&mut self, reason: &str, out: &mut Vec<ProviderEvent>) {
        // The finish first: the items it cut take its status.
        out.push(ProviderEvent::Finish(finish_reason(reason)));
        let st = self.state();
        st.finished = true;
        if let Some(prev) = st.open.take() {
            out.push(ProviderEvent::ItemDone { index: prev });
        }
        self.finished = self.choices.iter().all(|c| c.finished);
    }

    /// Applies one streamed chunk. Choices past the most a request can
    /// ask for are dropped: an index is a slot allocated per choice, and
    /// an upstream's `index: 4000000000` must not allocate that many.
    pub fn chunk(&mut self, chunk: ChatChunk, out: &mut Vec<ProviderEvent>) {
        self.metadata(chunk.system_fingerprint, chunk.service_tier, out);
        for (i, choice) in chunk.choices.into_iter().enumerate() {
            let c = choice.index.unwrap_or(i as u32);
            if c >= MAX_UPSTREAM_CHOICES {
                continue;
            }
            self.select(c, out);
            // Before the text they describe, so a consumer can send both
            // in one piece.
            if let Some(l) = choice.logprobs {
                self.logprobs(l, out);
            }
            if let Some(d) = choice.delta {
                self.delta(d, out);
            }
            if let Some(f) = choice.finish_reason {
                self.finish(&f, out);
            }
        }
        if let Some(u) = chunk.usage {
            out.push(ProviderEvent::Usage(u.into()));
        }
    }

    /// The events of a non-streaming answer (None: it has no choice).
    pub fn completion(body: ChatCompletion) -> Option<Completion> {
        if body.choices.is_empty() {
            return None;
        }
        let mut p = ChunkParser::default();
        let mut events = Vec::new();
        p.metadata(body.system_fingerprint, body.service_tier, &mut events);
        for (i, choice) in body.choices.into_iter().enumerate() {
            let c = choice.index.unwrap_or(i as u32);
            if c >= MAX_UPSTREAM_CHOICES {
                continue;
            }
            p.select(c, &mut events);
            if let Some(l) = choice.logprobs {
                p.logprobs(l, &mut events);
            }
            p.delta(choice.message, &mut events);
            match choice.finish_reason.as_deref() {
                Some(f) => p.finish(f, &mut events),
                None => {
                    if let Some(prev) = p.state().open.take() {
                        events.push(ProviderEvent::ItemDone { index: prev });
                    }
                }
            }
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
