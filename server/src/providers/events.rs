//! What a provider emits: item-level events. An upstream answer is a list
//! of output items (messages, function calls, reasoning), each started,
//! fed deltas addressed to it, and done; plus usage and a finish reason.
//! Front ends (the Responses builder, the chat encoder) turn these into
//! their wire taxonomy; providers never see one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kind of an output item, given when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemKind {
    /// An assistant message (text and refusal parts).
    Message,
    /// A call of a function tool.
    FunctionCall {
        /// The upstream's call id, echoed back with the tool's output.
        call_id: String,
        /// The function's name.
        name: String,
    },
    /// The model's reasoning (raw text and/or summaries).
    Reasoning,
}

/// A piece of an output item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    /// More message text.
    Text(String),
    /// More refusal text.
    Refusal(String),
    /// More of a function call's JSON arguments.
    Arguments(String),
    /// More raw reasoning text.
    ReasoningText(String),
    /// More text of reasoning summary number `part`.
    ReasoningSummary {
        /// Index of the summary part (0, 1, …).
        part: usize,
        /// The text.
        text: String,
    },
    /// Opaque reasoning state to replay to the same upstream (Anthropic's
    /// thinking signature, OpenAI's `encrypted_content`); replaces any
    /// earlier value.
    EncryptedReasoning(String),
    /// Token log probabilities of the text (or refusal) just sent, as the
    /// upstream reported them (OpenAI's `{token, logprob, bytes,
    /// top_logprobs}` entries), kept verbatim so nothing is lost.
    Logprobs {
        /// Entries of message text.
        content: Vec<Value>,
        /// Entries of refusal text.
        refusal: Vec<Value>,
    },
    /// Annotations of the message (citations), verbatim.
    Annotations(Vec<Value>),
}

impl Delta {
    /// The kind of item a delta belongs to when its item was never
    /// started explicitly (`None`: a function call needs a name first).
    pub fn implied_kind(&self) -> Option<ItemKind> {
        match self {
            Delta::Text(_)
            | Delta::Refusal(_)
            | Delta::Logprobs { .. }
            | Delta::Annotations(_) => Some(ItemKind::Message),
            Delta::Arguments(_) => None,
            Delta::ReasoningText(_)
            | Delta::ReasoningSummary { .. }
            | Delta::EncryptedReasoning(_) => Some(ItemKind::Reasoning),
        }
    }
}

/// One step of an upstream generation. `index` names an item within the
/// generation: chosen by the provider, unique per item, in any order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderEvent {
    /// An item starts.
    ItemStarted {
        /// The item's index.
        index: usize,
        /// What it is.
        kind: ItemKind,
    },
    /// A piece of an item (started implicitly if it was not).
    Delta {
        /// The item's index.
        index: usize,
        /// The piece.
        delta: Delta,
    },
    /// An item is complete (items still open at the end are closed then).
    /// Report `Finish` before closing the items a token limit or filter
    /// cut, so they take its status (`incomplete`).
    ItemDone {
        /// The item's index.
        index: usize,
    },
    /// Token usage; see [`Usage::merge`] for how reports combine.
    Usage(Usage),
    /// Generation stopped (of the current choice).
    Finish(FinishReason),
    /// The events that follow belong to choice `n` (of `n > 1` on Chat
    /// Completions) until the next `Choice`; before any, choice 0. Item
    /// indexes stay unique across choices. Front ends without choices
    /// (Responses) keep choice 0 only.
    Choice(u32),
    /// Facts about the answer that are not output: passed through to
    /// clients of the same protocol.
    Meta(AnswerMeta),
}

/// Upstream facts about an answer (Chat Completions' top-level fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerMeta {
    /// `system_fingerprint`.
    pub system_fingerprint: Option<String>,
    /// `service_tier` the upstream ran the request at.
    pub service_tier: Option<String>,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum FinishReason {
    /// Natural end (or a stop sequence).
    Stop,
    /// Token limit reached.
    Length,
    /// Stopped by a content filter.
    ContentFilter,
    /// The model called tools and waits for their output.
    ToolCalls,
}

/// Token counts reported by the upstream, in OpenAI's convention: `input`
/// includes cached and cache-written tokens, `output` includes reasoning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (all of them).
    pub input: i64,
    /// Of which read from the prompt cache.
    pub cached: i64,
    /// Of which written to the prompt cache.
    pub cache_write: i64,
    /// Completion tokens.
    pub output: i64,
    /// Of which reasoning.
    pub reasoning: i64,
}

impl Usage {
    /// Combines a later report into this one. Upstreams report usage as
    /// running totals, some in several pieces (Anthropic: input counts at
    /// the start, output at the end), so each count takes the later value
    /// when that is non-zero and keeps the earlier one otherwise. Reports
    /// are never added up: that would double count.
    pub fn merge(&mut self, later: Usage) {
        fn pick(a: &mut i64, b: i64) {
            if b != 0 {
                *a = b;
            }
        }
        pick(&mut self.input, later.input);
        pick(&mut self.cached, later.cached);
        pick(&mut self.cache_write, later.cache_write);
        pick(&mut self.output, later.output);
        pick(&mut self.reasoning, later.reasoning);
    }

    /// Input plus output.
    pub fn total(&self) -> i64 {
        self.input + self.output
    }
}

/// A whole generation, for the non-streaming path: the events of a stream,
/// collected in order (so one builder serves both paths).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// The events, in order.
    pub events: Vec<ProviderEvent>,
}

impl Completion {
    /// A completion of a single message with `text` (convenience for
    /// simple providers).
    pub fn text(
        text: String,
        usage: Option<Usage>,
        finish: FinishReason,
    ) -> Self {
        let mut events = vec![
            ProviderEvent::ItemStarted { index: 0, kind: ItemKind::Message },
            ProviderEvent::Delta { index: 0, delta: Delta::Text(text) },
            ProviderEvent::Finish(finish),
            ProviderEvent::ItemDone { index: 0 },
        ];
        if let Some(u) = usage {
            events.push(ProviderEvent::Usage(u));
        }
        Completion { events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_merge_keeps_running_totals_without_double_counting() {
        // Anthropic-like: input at the start, output at the end.
        let mut u = Usage { input: 10, cached: 4, ..Usage::default() };
        u.merge(Usage { output: 7, ..Usage::default() });
        assert_eq!(u, Usage { input: 10, cached: 4, output: 7, ..u });
        // A cumulative update replaces, never adds.
        u.merge(Usage { output: 9, ..Usage::default() });
        assert_eq!(u.output, 9);
        assert_eq!(u.input, 10);
        assert_eq!(u.total(), 19);
    }
}
