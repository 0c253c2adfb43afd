//! `ChatBuilder`: the only code that knows the Chat Completions answer
//! shapes. It consumes item-level provider events for every choice and
//! yields `chat.completion.chunk` frames as they come (one `id` and
//! `created` for the stream, `role` first, `finish_reason` last, the usage
//! chunk only when asked for, then `[DONE]`), and the whole
//! `chat.completion` at the end.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::api::*;
use crate::engine::builder::Ending;
use crate::engine::run::RunBuilder;
use crate::providers::{
    AnswerMeta, Delta, FinishReason, ItemKind, ProviderEvent, Usage,
};

/// The last frame of every stream.
const DONE: &[u8] = b"data: [DONE]\n\n";

/// What the builder needs to know about the request.
#[derive(Clone, Debug)]
pub(crate) struct ChatHead {
    /// `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The model as requested.
    pub model: String,
    /// The provider's name.
    pub provider: String,
    /// Number of choices.
    pub n: u32,
    /// The service tier asked for (the upstream's answer wins).
    pub service_tier: Option<String>,
}

/// One choice while it is being built.
#[derive(Default)]
struct Choice {
    content: Option<String>,
    refusal: Option<String>,
    reasoning: Option<String>,
    tool_calls: Vec<ChatToolCall>,
    annotations: Vec<Value>,
    logprobs: Option<ChoiceLogprobs>,
    /// Logprobs waiting for the text they describe.
    pending_logprobs: Option<ChoiceLogprobs>,
    finish: Option<FinishReason>,
    /// Its first chunk (with `role`) was sent.
    opened: bool,
    /// Its `finish_reason` chunk was sent.
    closed: bool,
}

/// What a provider item is within its choice.
#[derive(Clone, Copy)]
enum Slot {
    Message,
    Reasoning,
    Call(usize),
}

/// Builds one chat completion and, when streaming, its chunks.
pub(crate) struct ChatBuilder {
    head: ChatHead,
    emit: bool,
    include_usage: bool,
    meta: AnswerMeta,
    /// `data: {"id":…,"choices":[` of every chunk.
    prefix: String,
    choices: Vec<Choice>,
    current: usize,
    /// Provider item index -> (choice, slot).
    items: Vec<(usize, usize, Slot)>,
    usage: Option<Usage>,
    status: ResponseStatus,
    out: Vec<Bytes>,
}

/// The top-level fields every chunk repeats, in OpenAI's order.
#[derive(Serialize)]
struct ChunkFields<'a> {
    id: &'a str,
    object: ChatCompletionChunkObject,
    created: i64,
    model: &'a str,
    service_tier: Option<&'a str>,
    system_fingerprint: Option<&'a str>,
    provider: &'a str,
}

impl ChatBuilder {
    /// A builder for `head`; with `emit` false no chunks are produced
    /// (the JSON path).
    pub(crate) fn new(head: ChatHead, emit: bool, include_usage: bool) -> Self {
        let n = head.n.max(1) as usize;
        let mut b = ChatBuilder {
            meta: AnswerMeta {
                system_fingerprint: None,
                service_tier: head.service_tier.clone(),
            },
            head,
            emit,
            include_usage,
            prefix: String::new(),
            choices: (0..n).map(|_| Choice::default()).collect(),
            current: 0,
            items: Vec::new(),
            usage: None,
            status: ResponseStatus::InProgress,
            out: Vec::new(),
        };
        b.set_prefix();
        b
    }

    fn set_prefix(&mut self) {
        if !self.emit {
            return;
        }
        let fields = ChunkFields {
            id: &self.head.id,
            object: ChatCompletionChunkObject::ChatCompletionChunk,
            created: self.head.created,
            model: &self.head.model,
            service_tier: self.meta.service_tier.as_deref(),
            system_fingerprint: self.meta.system_fingerprint.as_deref(),
            provider: &self.head.provider,
        };
        let mut json = serde_json::to_string(&fields).unwrap_or_default();
        // Reopen the object for `choices`.
        json.pop();
        self.prefix = format!("data: {json},\"choices\":[");
    }

    /// A chunk of `choices` (JSON array items), with `usage` if given.
    fn frame(&self, choices: &str, usage: Option<&CompletionUsage>) -> Bytes {
        let mut f =
            String::with_capacity(self.prefix.len() + choices.len() + 32);
        f.push_str(&self.prefix);
        f.push_str(choices);
        f.push(']');
        if self.include_usage {
            f.push_str(",\"usage\":");
            match usage.and_then(|u| serde_json::to_string(u).ok()) {
                Some(u) => f.push_str(&u),
                None => f.push_str("null"),
            }
        }
        f.push_str("}\n\n");
        Bytes::from(f)
    }

    /// Emits one choice's piece.
    fn send(
        &mut self,
        c: usize,
        delta: ChunkDelta,
        finish: Option<ChatFinishReason>,
        logprobs: Option<ChoiceLogprobs>,
    ) {
        if !self.emit {
            return;
        }
        let choice = ChunkChoice {
            index: c as u32,
            delta,
            finish_reason: finish,
            logprobs,
        };
        let json = serde_json::to_string(&choice).unwrap_or_default();
        let frame = self.frame(&json, None);
        self.out.push(frame);
    }

    /// The first chunk of every choice: `role` and empty content.
    fn open(&mut self) {
        for c in 0..self.choices.len() {
            if !self.choices[c].opened {
                self.choices[c].opened = true;
                let delta = ChunkDelta {
                    role: Some(AssistantRole::Assistant),
                    content: Some(String::new()),
                    ..ChunkDelta::default()
                };
                self.send(c, delta, None, None);
            }
        }
    }

    fn choice(&mut self, c: usize) -> &mut Choice {
        if c >= self.choices.len() {
            // An upstream sent more choices than asked: keep them all.
            self.choices.resize_with(c + 1, Choice::default);
        }
        &mut self.choices[c]
    }

    fn slot(&self, index: usize) -> Option<(usize, Slot)> {
        self.items
            .iter()
            .rev()
            .find(|(i, ..)| *i == index)
            .map(|&(_, c, s)| (c, s))
    }

    fn start_item(&mut self, index: usize, kind: ItemKind) {
        let c = self.current;
        let slot = match kind {
            ItemKind::Message => Slot::Message,
            ItemKind::Reasoning => Slot::Reasoning,
            ItemKind::FunctionCall { call_id, name } => {
                let calls = &mut self.choice(c).tool_calls;
                let k = calls.len();
                calls.push(ChatToolCall {
                    id: call_id.clone(),
                    kind: FunctionType::Function,
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: String::new(),
                    },
                });
                let delta = ChunkDelta {
                    tool_calls: Some(vec![ChunkToolCall {
                        index: k as u32,
                        id: Some(call_id),
                        kind: Some(FunctionType::Function),
                        function: ChunkFunction {
                            name: Some(name),
                            arguments: Some(String::new()),
                        },
                    }]),
                    ..ChunkDelta::default()
                };
                self.send(c, delta, None, None);
                Slot::Call(k)
            }
        };
        self.items.push((index, c, slot));
    }

    fn delta(&mut self, index: usize, delta: Delta) {
        let (c, slot) = match self.slot(index) {
            Some(found) => found,
            None => {
                let Some(kind) = delta.implied_kind() else {
                    tracing::debug!(
                        index,
                        "arguments of a call that never started; dropped"
                    );
                    return;
                };
                self.start_item(index, kind);
                (self.current, self.slot(index).map_or(Slot::Message, |s| s.1))
            }
        };
        match delta {
            Delta::Text(t) => {
                let ch = self.choice(c);
                ch.content.get_or_insert_with(String::new).push_str(&t);
                let lp = ch.pending_logprobs.take();
                let d =
                    ChunkDelta { content: Some(t), ..ChunkDelta::default() };
                self.send(c, d, None, lp);
            }
            Delta::Refusal(t) => {
                let ch = self.choice(c);
                ch.refusal.get_or_insert_with(String::new).push_str(&t);
                let lp = ch.pending_logprobs.take();
                let d =
                    ChunkDelta { refusal: Some(t), ..ChunkDelta::default() };
                self.send(c, d, None, lp);
            }
            Delta::Arguments(a) => {
                let Slot::Call(k) = slot else { return };
                if let Some(call) = self.choice(c).tool_calls.get_mut(k) {
                    call.function.arguments.push_str(&a);
                }
                let d = ChunkDelta {
                    tool_calls: Some(vec![ChunkToolCall {
                        index: k as u32,
                        id: None,
                        kind: None,
                        function: ChunkFunction {
                            name: None,
                            arguments: Some(a),
                        },
                    }]),
                    ..ChunkDelta::default()
                };
                self.send(c, d, None, None);
            }
            Delta::ReasoningText(t)
            | Delta::ReasoningSummary { text: t, .. } => {
                let ch = self.choice(c);
                ch.reasoning.get_or_insert_with(String::new).push_str(&t);
                let d = ChunkDelta {
                    reasoning_content: Some(t),
                    ..ChunkDelta::default()
                };
                self.send(c, d, None, None);
            }
            // Opaque state of another protocol: chat has no place for it.
            Delta::EncryptedReasoning(_) => {}
            Delta::Logprobs { content, refusal } => {
                let ch = self.choice(c);
                let all =
                    ch.logprobs.get_or_insert_with(ChoiceLogprobs::default);
                extend(&mut all.content, &content);
                extend(&mut all.refusal, &refusal);
                let pending = ch
                    .pending_logprobs
                    .get_or_insert_with(ChoiceLogprobs::default);
                extend(&mut pending.content, &content);
                extend(&mut pending.refusal, &refusal);
            }
            Delta::Annotations(a) => {
                self.choice(c).annotations.extend(a.iter().cloned());
                let d = ChunkDelta {
                    annotations: Some(a),
                    ..ChunkDelta::default()
                };
                self.send(c, d, None, None);
            }
        }
    }

    /// Sends logprobs that no text followed.
    fn flush_logprobs(&mut self) {
        for c in 0..self.choices.len() {
            if let Some(lp) = self.choices[c].pending_logprobs.take() {
                self.send(c, ChunkDelta::default(), None, Some(lp));
            }
        }
    }

    /// The finish reason of choice `c` (what the upstream said, else what
    /// its output shows).
    fn finish_reason(&self, c: usize) -> ChatFinishReason {
        let ch = &self.choices[c];
        match ch.finish {
            Some(FinishReason::Stop) => ChatFinishReason::Stop,
            Some(FinishReason::Length) => ChatFinishReason::Length,
            Some(FinishReason::ContentFilter) => {
                ChatFinishReason::ContentFilter
            }
            Some(FinishReason::ToolCalls) => ChatFinishReason::ToolCalls,
            None if !ch.tool_calls.is_empty() => ChatFinishReason::ToolCalls,
            None => ChatFinishReason::Stop,
        }
    }

    fn close(&mut self, c: usize) {
        if self.choices[c].closed {
            return;
        }
        if let Some(lp) = self.choices[c].pending_logprobs.take() {
            self.send(c, ChunkDelta::default(), None, Some(lp));
        }
        self.choices[c].closed = true;
        let reason = self.finish_reason(c);
        self.send(c, ChunkDelta::default(), Some(reason), None);
    }

    /// The usage in Chat Completions' shape.
    fn wire_usage(&self) -> Option<CompletionUsage> {
        self.usage.map(|u| CompletionUsage {
            prompt_tokens: u.input,
            completion_tokens: u.output,
            total_tokens: u.total(),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning,
            },
        })
    }

    /// The completion's id.
    pub(crate) fn id(&self) -> &str {
        &self.head.id
    }

    /// The whole completion (after `end`).
    pub(crate) fn completion(&self) -> ChatCompletion {
        let choices = (0..self.choices.len())
            .map(|c| {
                let ch = &self.choices[c];
                let calls =
                    (!ch.tool_calls.is_empty()).then(|| ch.tool_calls.clone());
                let content = match (&ch.content, &calls, &ch.refusal) {
                    (Some(t), ..) => Some(t.clone()),
                    (None, None, None) => Some(String::new()),
                    _ => None,
                };
                ChatChoice {
                    index: c as u32,
                    message: ChatCompletionMessage {
                        role: AssistantRole::Assistant,
                        content,
                        refusal: ch.refusal.clone(),
                        tool_calls: calls,
                        annotations: ch.annotations.clone(),
                        reasoning_content: ch.reasoning.clone(),
                    },
                    finish_reason: self.finish_reason(c),
                    logprobs: ch.logprobs.clone(),
                }
            })
            .collect();
        ChatCompletion {
            id: self.head.id.clone(),
            object: ChatCompletionObject::ChatCompletion,
            created: self.head.created,
            model: self.head.model.clone(),
            choices,
            usage: Some(self.wire_usage().unwrap_or_default()),
            system_fingerprint: self.meta.system_fingerprint.clone(),
            service_tier: self.meta.service_tier.clone(),
            metadata: None,
            provider: self.head.provider.clone(),
        }
    }

    /// The error frame of a stream that failed after it started.
    fn error_frame(code: &str, kind: &str, message: &str) -> Bytes {
        let body = serde_json::json!({"error": {
            "message": message, "type": kind, "param": null, "code": code,
        }});
        Bytes::from(format!("data: {body}\n\n"))
    }
}

fn extend(into: &mut Option<Vec<Value>>, more: &[Value]) {
    if !more.is_empty() {
        into.get_or_insert_with(Vec::new).extend(more.iter().cloned());
    }
}

impl RunBuilder for ChatBuilder {
    type Event = Bytes;

    fn apply(&mut self, ev: ProviderEvent) {
        match ev {
            ProviderEvent::Meta(m) => {
                if m.system_fingerprint.is_some() {
                    self.meta.system_fingerprint = m.system_fingerprint;
                }
                if m.service_tier.is_some() {
                    self.meta.service_tier = m.service_tier;
                }
                self.set_prefix();
                return;
            }
            ProviderEvent::Usage(u) => {
                self.usage.get_or_insert_with(Usage::default).merge(u);
                return;
            }
            _ => {}
        }
        // The first output opens every choice (after the upstream's
        // metadata, which the chunks repeat).
        self.open();
        match ev {
            ProviderEvent::Choice(c) => {
                self.current = c as usize;
                self.choice(c as usize);
                self.open();
            }
            ProviderEvent::ItemStarted { index, kind } => {
                if self.slot(index).is_none() {
                    self.start_item(index, kind);
                }
            }
            ProviderEvent::Delta { index, delta } => self.delta(index, delta),
            ProviderEvent::ItemDone { .. } => {}
            ProviderEvent::Finish(f) => {
                let c = self.current;
                self.choice(c).finish = Some(f);
                self.close(c);
            }
            ProviderEvent::Meta(_) | ProviderEvent::Usage(_) => {}
        }
    }

    fn drain(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.out)
    }

    fn end(&mut self, ending: &Ending) {
        match ending {
            Ending::Done => {
                self.open();
                self.flush_logprobs();
                for c in 0..self.choices.len() {
                    self.close(c);
                }
                let cut = self.choices.iter().any(|c| {
                    matches!(
                        c.finish,
                        Some(
                            FinishReason::Length | FinishReason::ContentFilter
                        )
                    )
                });
                self.status = if cut {
                    ResponseStatus::Incomplete
                } else {
                    ResponseStatus::Completed
                };
                if self.emit {
                    if self.include_usage {
                        let usage = self.wire_usage().unwrap_or_default();
                        let frame = self.frame("", Some(&usage));
                        self.out.push(frame);
                    }
                    self.out.push(Bytes::from_static(DONE));
                }
            }
            Ending::Failed { code, kind, message } => {
                self.status = ResponseStatus::Failed;
                if self.emit {
                    self.out.push(Self::error_frame(code, kind, message));
                    self.out.push(Bytes::from_static(DONE));
                }
            }
            Ending::Cancelled => self.status = ResponseStatus::Cancelled,
        }
    }

    fn status(&self) -> ResponseStatus {
        self.status
    }

    fn usage(&self) -> Usage {
        self.usage.unwrap_or_default()
    }
}
