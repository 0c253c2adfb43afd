//! Responses answers to item-level events: the streamed event parser
//! (`response.output_item.added`, the text, refusal, reasoning and
//! argument deltas, `output_item.done`, the terminal events) and the
//! non-streaming `Response` object. The upstream's `output_index` is our
//! item index. Items whose deltas never came (some servers send only
//! `output_item.done`) are filled from the finished item, so nothing is
//! lost either way.

use serde::Deserialize;
use serde_json::Value;

use super::REASONING_TAG;
use crate::providers::upstream::openai_error_report;
use crate::providers::{
    AnswerMeta, Completion, Delta, FinishReason, ItemKind, ProviderError,
    ProviderEvent, UpstreamReport, Usage,
};

/// One streamed event (only the fields we read; others are ignored, and
/// so are event types we do not know).
#[derive(Deserialize)]
pub(super) struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    output_index: Option<usize>,
    #[serde(default)]
    item: Option<OutputItem>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    summary_index: Option<usize>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    logprobs: Option<Vec<Value>>,
    #[serde(default)]
    annotation: Option<Value>,
    #[serde(default)]
    response: Option<ResponseObject>,
    /// The `error` event: OpenAI nests `{code, message}` here.
    #[serde(default)]
    error: Option<Value>,
    /// The `error` event in the spec's flat shape.
    #[serde(default)]
    message: Option<String>,
}

/// An output item (message, function call, reasoning, or a kind we do
/// not serve, which is skipped).
#[derive(Deserialize, Default)]
pub(super) struct OutputItem {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    /// Message parts (`output_text`, `refusal`) or raw reasoning parts
    /// (`reasoning_text`).
    #[serde(default)]
    content: Option<Vec<Value>>,
    #[serde(default)]
    summary: Option<Vec<Value>>,
    #[serde(default)]
    encrypted_content: Option<String>,
}

/// The `Response` object (non-streaming answer, terminal events).
#[derive(Deserialize)]
pub(super) struct ResponseObject {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    output: Vec<OutputItem>,
    #[serde(default)]
    usage: Option<ResponsesUsage>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    service_tier: Option<String>,
}

#[derive(Deserialize)]
struct IncompleteDetails {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: i64,
    #[serde(default)]
    output_tokens: i64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<i64>,
    #[serde(default)]
    cache_write_tokens: Option<i64>,
}

#[derive(Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<i64>,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Usage {
        let (cached, cache_write) = u
            .input_tokens_details
            .map(|d| {
                (
                    d.cached_tokens.unwrap_or(0),
                    d.cache_write_tokens.unwrap_or(0),
                )
            })
            .unwrap_or_default();
        Usage {
            input: u.input_tokens,
            cached,
            cache_write,
            output: u.output_tokens,
            reasoning: u
                .output_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// What we know of one upstream item.
struct ItemState {
    index: usize,
    /// Some delta reached it (so its finished copy adds nothing).
    streamed: bool,
    /// Done upstream but cut (`status: incomplete`): closed after the
    /// finish, so it takes the finish's status.
    cut: bool,
    closed: bool,
}

/// The item-level state of one streamed answer.
#[derive(Default)]
pub(super) struct EventParser {
    items: Vec<ItemState>,
    /// A function call was among the items.
    called: bool,
    /// A terminal event was seen.
    pub finished: bool,
}

/// The opaque reasoning state as we keep it: tagged as ours.
fn tag(encrypted: &str) -> String {
    format!("{REASONING_TAG}{encrypted}")
}

fn text_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// What a `response.failed` or `error` event reports.
fn error_report(error: Option<&Value>, flat: Option<&str>) -> UpstreamReport {
    error.and_then(openai_error_report).unwrap_or_else(|| {
        UpstreamReport::new(
            None,
            flat.unwrap_or("the upstream failed without a message"),
        )
    })
}

impl EventParser {
    fn position(&self, index: usize) -> Option<usize> {
        self.items.iter().position(|i| i.index == index)
    }

    /// Starts item `index` as `item` says (None: a kind we skip).
    fn start(
        &mut self,
        index: usize,
        item: &OutputItem,
        out: &mut Vec<ProviderEvent>,
    ) -> Option<usize> {
        if let Some(pos) = self.position(index) {
            return Some(pos);
        }
        let kind = match item.kind.as_str() {
            "message" => ItemKind::Message,
            "reasoning" => ItemKind::Reasoning,
            "function_call" => {
                self.called = true;
                ItemKind::FunctionCall {
                    call_id: item
                        .call_id
                        .clone()
                        .or_else(|| item.id.clone())
                        .unwrap_or_else(|| format!("call_{index}")),
                    name: item.name.clone().unwrap_or_default(),
                }
            }
            _ => return None,
        };
        out.push(ProviderEvent::ItemStarted { index, kind });
        self.items.push(ItemState {
            index,
            streamed: false,
            cut: false,
            closed: false,
        });
        Some(self.items.len() - 1)
    }

    /// A delta for a started item (dropped for items we skip).
    fn delta(
        &mut self,
        index: Option<usize>,
        delta: Delta,
        out: &mut Vec<ProviderEvent>,
    ) {
        let Some(pos) = index.and_then(|i| self.position(i)) else {
            return;
        };
        let st = &mut self.items[pos];
        if st.closed {
            return;
        }
        st.streamed = true;
        out.push(ProviderEvent::Delta { index: st.index, delta });
    }

    /// The content of a finished item that never streamed, as deltas.
    fn fill(index: usize, item: &OutputItem, out: &mut Vec<ProviderEvent>) {
        let mut push = |delta| out.push(ProviderEvent::Delta { index, delta });
        match item.kind.as_str() {
            "message" => {
                for part in item.content.iter().flatten() {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            if let Some(t) = text_of(part, "text") {
                                push(Delta::Text(t));
                            }
                            let notes = part
                                .get("annotations")
                                .and_then(Value::as_array)
                                .filter(|a| !a.is_empty());
                            if let Some(a) = notes {
                                push(Delta::Annotations(a.clone()));
                            }
                        }
                        Some("refusal") => {
                            if let Some(t) = text_of(part, "refusal") {
                                push(Delta::Refusal(t));
                            }
                        }
                        _ => {}
                    }
                }
            }
            "reasoning" => {
                for (n, part) in item.summary.iter().flatten().enumerate() {
                    if let Some(t) = text_of(part, "text") {
                        push(Delta::ReasoningSummary { part: n, text: t });
                    }
                }
                for part in item.content.iter().flatten() {
                    if let Some(t) = text_of(part, "text") {
                        push(Delta::ReasoningText(t));
                    }
                }
            }
            "function_call" => {
                if let Some(a) =
                    item.arguments.clone().filter(|a| !a.is_empty())
                {
                    push(Delta::Arguments(a));
                }
            }
            _ => {}
        }
    }

    /// Item `index` is finished upstream as `item`.
    fn done(
        &mut self,
        index: usize,
        item: &OutputItem,
        out: &mut Vec<ProviderEvent>,
    ) {
        let Some(pos) = self.start(index, item, out) else {
            return;
        };
        if self.items[pos].closed {
            return;
        }
        if !self.items[pos].streamed {
            Self::fill(index, item, out);
        }
        if let Some(e) =
            item.encrypted_content.as_deref().filter(|e| !e.is_empty())
        {
            out.push(ProviderEvent::Delta {
                index,
                delta: Delta::EncryptedReasoning(tag(e)),
            });
        }
        let st = &mut self.items[pos];
        st.streamed = true;
        if item.status.as_deref() == Some("incomplete") {
            st.cut = true;
        } else {
            st.closed = true;
            out.push(ProviderEvent::ItemDone { index });
        }
    }

    /// The terminal `Response`: usage, the finish, then every item still
    /// open closed.
    fn terminal(&mut self, r: ResponseObject, out: &mut Vec<ProviderEvent>) {
        // A server that sent no item events at all: the output is here.
        if self.items.is_empty() {
            for (i, item) in r.output.iter().enumerate() {
                self.done(i, item, out);
            }
        }
        if r.service_tier.is_some() {
            out.push(ProviderEvent::Meta(AnswerMeta {
                system_fingerprint: None,
                service_tier: r.service_tier,
            }));
        }
        if let Some(u) = r.usage {
            out.push(ProviderEvent::Usage(u.into()));
        }
        let reason = r.incomplete_details.and_then(|d| d.reason);
        let finish = match (r.status.as_deref(), reason.as_deref()) {
            (Some("incomplete"), Some("content_filter")) => {
                FinishReason::ContentFilter
            }
            (Some("incomplete"), _) => FinishReason::Length,
            _ if self.called => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        };
        out.push(ProviderEvent::Finish(finish));
        for st in &mut self.items {
            if !st.closed {
                st.closed = true;
                out.push(ProviderEvent::ItemDone { index: st.index });
            }
        }
        self.finished = true;
    }

    /// Applies one streamed event. A `response.failed` or `error` event
    /// is a mid-stream failure.
    pub fn event(
        &mut self,
        ev: StreamEvent,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let delta = || match &ev.delta {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        match ev.kind.as_str() {
            "response.output_item.added" => {
                if let (Some(i), Some(item)) = (ev.output_index, &ev.item) {
                    self.start(i, item, out);
                }
            }
            "response.output_item.done" => {
                if let (Some(i), Some(item)) = (ev.output_index, &ev.item) {
                    self.done(i, item, out);
                }
            }
            "response.output_text.delta" => {
                if let Some(l) = ev.logprobs.clone().filter(|l| !l.is_empty()) {
                    let lp = Delta::Logprobs { content: l, refusal: vec![] };
                    self.delta(ev.output_index, lp, out);
                }
                if let Some(t) = delta() {
                    self.delta(ev.output_index, Delta::Text(t), out);
                }
            }
            "response.output_text.annotation.added" => {
                if let Some(a) = ev.annotation.clone() {
                    let d = Delta::Annotations(vec![a]);
                    self.delta(ev.output_index, d, out);
                }
            }
            "response.refusal.delta" => {
                if let Some(t) = delta() {
                    self.delta(ev.output_index, Delta::Refusal(t), out);
                }
            }
            "response.reasoning_summary_text.delta" => {
                if let Some(t) = delta() {
                    let part = ev.summary_index.unwrap_or(0);
                    let d = Delta::ReasoningSummary { part, text: t };
                    self.delta(ev.output_index, d, out);
                }
            }
            "response.reasoning_text.delta" => {
                if let Some(t) = delta() {
                    self.delta(ev.output_index, Delta::ReasoningText(t), out);
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(t) = delta() {
                    self.delta(ev.output_index, Delta::Arguments(t), out);
                }
            }
            "response.function_call_arguments.done" => {
                // Only when no delta came: the whole arguments at once.
                let quiet = ev
                    .output_index
                    .and_then(|i| self.position(i))
                    .is_some_and(|p| !self.items[p].streamed);
                if let Some(a) = ev.arguments.filter(|a| quiet && !a.is_empty())
                {
                    self.delta(ev.output_index, Delta::Arguments(a), out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let r = ev.response.ok_or_else(|| {
                    ProviderError::Protocol(format!(
                        "`{}` without its response",
                        ev.kind
                    ))
                })?;
                self.terminal(r, out);
            }
            "response.failed" => {
                let error = ev.response.and_then(|r| r.error);
                return Err(ProviderError::Stream(error_report(
                    error.as_ref(),
                    None,
                )));
            }
            "error" => {
                return Err(ProviderError::Stream(error_report(
                    ev.error.as_ref(),
                    ev.message.as_deref(),
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// The events of a non-streaming answer; a `failed` one is an error.
    pub fn completion(r: ResponseObject) -> Result<Completion, ProviderError> {
        if r.status.as_deref() == Some("failed") {
            return Err(ProviderError::Stream(error_report(
                r.error.as_ref(),
                None,
            )));
        }
        let mut p = EventParser::default();
        let mut events = Vec::new();
        p.terminal(r, &mut events);
        Ok(Completion { events })
    }
}

#[cfg(test)]
mod tests;
