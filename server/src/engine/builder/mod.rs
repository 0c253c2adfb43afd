//! `ResponseBuilder`: the only code that knows the Responses event
//! taxonomy. It consumes item-level provider events for any number of
//! output items (messages, reasoning, function calls), keeps the
//! `Response` snapshot and assigns `sequence_number`s; every mode (JSON,
//! SSE, stored, background, WebSocket) consumes what it emits.

mod encoded;
mod items;
#[cfg(test)]
mod tests;

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::api::*;
use crate::ids::now_ms;
use crate::providers::{
    Completion, Delta, FinishReason, ItemKind, ProviderEvent, Usage,
};

pub use encoded::Encoded;
pub use items::stored_item;
use items::{Body, Item, Part, message_part, stream_part};

/// Builds one response and its event stream.
pub struct ResponseBuilder {
    response: Response,
    seq: i64,
    emit: bool,
    obfuscate: bool,
    /// Output items, in `output` order.
    items: Vec<Item>,
    /// Provider item index -> position in `items`.
    positions: Vec<(usize, usize)>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    out: Vec<Encoded>,
    /// The choice the provider's events are about; a response is choice 0.
    choice: u32,
    /// No generation was asked for (a WebSocket warm-up): the response
    /// completes with no output.
    warm_up: bool,
}

/// How a run ended, for the builder's terminal event.
#[derive(Clone, Debug)]
pub enum Ending {
    /// Completed (or incomplete on a token limit or content filter).
    Done,
    /// Failed after it started: `(code, type, message)` of the error.
    Failed {
        /// Error code, e.g. `server_error`.
        code: String,
        /// Error type, e.g. `server_error`.
        kind: String,
        /// What went wrong.
        message: String,
    },
    /// Cancelled by the client.
    Cancelled,
}

impl ResponseBuilder {
    /// A builder for `response` (status queued or in_progress, no output),
    /// whose next event gets `next_seq`. With `emit` false no events are
    /// produced (the JSON path).
    pub fn new(
        response: Response,
        next_seq: i64,
        emit: bool,
        obfuscate: bool,
    ) -> Self {
        ResponseBuilder {
            response,
            seq: next_seq,
            emit,
            obfuscate,
            items: Vec::new(),
            positions: Vec::new(),
            finish: None,
            usage: None,
            out: Vec::new(),
            choice: 0,
            warm_up: false,
        }
    }

    /// The current snapshot (output is filled in when the run ends).
    pub fn snapshot(&self) -> &Response {
        &self.response
    }

    /// Names the provider that serves the run (after a failover, another
    /// than the one the run was queued for).
    pub fn set_provider(&mut self, provider: &str) {
        if self.response.provider != provider {
            self.response.provider = provider.to_string();
        }
    }

    /// The snapshot with the output written so far (for polling readers).
    pub fn partial(&self) -> Response {
        let mut r = self.response.clone();
        r.output = self.items.iter().map(Item::snapshot).collect();
        r
    }

    /// Marks a run that generates nothing (`generate: false`): it
    /// completes with an empty `output`.
    pub fn skip_generation(&mut self) {
        self.warm_up = true;
    }

    /// The usage reported so far.
    pub fn usage(&self) -> Usage {
        self.usage.unwrap_or_default()
    }

    /// Takes the events emitted since the last call.
    pub fn drain(&mut self) -> Vec<Encoded> {
        std::mem::take(&mut self.out)
    }

    fn push(&mut self, make: impl FnOnce(i64) -> ResponseStreamEvent) {
        if !self.emit {
            return;
        }
        let seq = self.seq;
        self.seq += 1;
        let ev = make(seq);
        self.out.push(Encoded::new(&ev, seq));
    }

    /// `response.created` (+ `response.queued` or `response.in_progress`).
    pub fn start(&mut self) {
        let r = self.response.clone();
        let queued = r.status == ResponseStatus::Queued;
        self.push(|seq| {
            ResponseStreamEvent::Created(ResponseCreatedEvent {
                kind: Default::default(),
                sequence_number: seq,
                response: r.clone(),
            })
        });
        if queued {
            self.push(|seq| {
                ResponseStreamEvent::Queued(ResponseQueuedEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    response: r,
                })
            });
        } else {
            self.push(|seq| {
                ResponseStreamEvent::InProgress(ResponseInProgressEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    response: r,
                })
            });
        }
    }

    /// A queued background run starts: `response.in_progress`.
    pub fn begin_run(&mut self) {
        self.response.status = ResponseStatus::InProgress;
        let r = self.response.clone();
        self.push(|seq| {
            ResponseStreamEvent::InProgress(ResponseInProgressEvent {
                kind: Default::default(),
                sequence_number: seq,
                response: r,
            })
        });
    }

    /// Feeds one provider event.
    pub fn apply(&mut self, ev: ProviderEvent) {
        let other_choice = self.choice != 0;
        match ev {
            ProviderEvent::Choice(c) => self.choice = c,
            ProviderEvent::Usage(u) => {
                self.usage.get_or_insert_with(Usage::default).merge(u)
            }
            ProviderEvent::Meta(_) => {}
            _ if other_choice => {}
            ProviderEvent::ItemStarted { index, kind } => {
                if self.position(index).is_none() {
                    self.start_item(index, kind);
                }
            }
            ProviderEvent::Delta { index, delta } => self.delta(index, delta),
            ProviderEvent::ItemDone { index } => {
                if let Some(pos) = self.position(index) {
                    let status = self.item_status();
                    self.close_item(pos, status);
                }
            }
            ProviderEvent::Finish(f) => self.finish = Some(f),
        }
    }

    /// Applies a whole completion (non-streaming path).
    pub fn apply_all(&mut self, c: Completion) {
        for ev in c.events {
            self.apply(ev);
        }
    }

    fn position(&self, index: usize) -> Option<usize> {
        self.positions.iter().rev().find(|(i, _)| *i == index).map(|p| p.1)
    }

    /// Status of items closed now: an item cut by a token limit or a
    /// filter is incomplete (providers report the finish before closing
    /// the items it cut).
    fn item_status(&self) -> ItemStatus {
        match self.finish {
            Some(FinishReason::Length | FinishReason::ContentFilter) => {
                ItemStatus::Incomplete
            }
            _ => ItemStatus::Completed,
        }
    }

    fn start_item(&mut self, index: usize, kind: ItemKind) -> usize {
        let item = Item::new(kind);
        let pos = self.items.len();
        let announced = item.announced();
        self.items.push(item);
        self.positions.push((index, pos));
        self.push(|seq| {
            ResponseStreamEvent::OutputItemAdded(OutputItemAddedEvent {
                kind: Default::default(),
                sequence_number: seq,
                output_index: pos as i64,
                item: announced,
            })
        });
        pos
    }

    /// The open item a delta goes to: the item at `index` if it is open
    /// and of the delta's kind, else a new item of that kind (a slip of
    /// the upstream never loses text).
    fn target(&mut self, index: usize, delta: &Delta) -> Option<usize> {
        if let Some(pos) = self.position(index) {
            let item = &self.items[pos];
            let fits = matches!(
                (&item.body, delta),
                (Body::Message { .. }, Delta::Text(_) | Delta::Refusal(_))
                    | (Body::FunctionCall { .. }, Delta::Arguments(_))
                    | (
                        Body::Reasoning { .. },
                        Delta::ReasoningText(_)
                            | Delta::ReasoningSummary { .. }
                            | Delta::EncryptedReasoning(_)
                    )
            );
            if fits && !item.done {
                return Some(pos);
            }
        }
        let kind = delta.implied_kind()?;
        Some(self.start_item(index, kind))
    }

    fn delta(&mut self, index: usize, delta: Delta) {
        // Chat-only facts: the Responses stream has no place for them.
        if matches!(delta, Delta::Logprobs { .. } | Delta::Annotations(_)) {
            return;
        }
        let Some(pos) = self.target(index, &delta) else {
            tracing::debug!(
                index,
                "arguments for a function call that never started; dropped"
            );
            return;
        };
        match delta {
            Delta::Text(t) => self.message_delta(pos, Part::Text, &t),
            Delta::Refusal(t) => self.message_delta(pos, Part::Refusal, &t),
            Delta::Arguments(a) => {
                if let Body::FunctionCall { arguments, .. } =
                    &mut self.items[pos].body
                {
                    arguments.push_str(&a);
                }
                let id = self.items[pos].id.clone();
                self.push(|seq| {
                    ResponseStreamEvent::FunctionCallArgumentsDelta(
                        FunctionCallArgumentsDeltaEvent {
                            kind: Default::default(),
                            sequence_number: seq,
                            item_id: id,
                            output_index: pos as i64,
                            delta: a,
                        },
                    )
                });
            }
            Delta::ReasoningText(t) => self.reasoning_text(pos, t),
            Delta::ReasoningSummary { part, text } => {
                self.reasoning_summary(pos, part, text)
            }
            Delta::EncryptedReasoning(e) => {
                if let Body::Reasoning { encrypted, .. } =
                    &mut self.items[pos].body
                {
                    *encrypted = Some(e);
                }
            }
            Delta::Logprobs { .. } | Delta::Annotations(_) => {}
        }
    }

    /// Makes `p` the open part of message `pos` (closing another kind).
    fn open_message_part(&mut self, pos: usize, p: Part) -> i64 {
        let Body::Message { open, .. } = &self.items[pos].body else {
            return 0;
        };
        match open {
            Some((q, _)) if *q == p => {}
            Some(_) => {
                self.close_message_part(pos);
                return self.open_message_part(pos, p);
            }
            None => {
                let id = self.items[pos].id.clone();
                let Body::Message { parts, open } = &mut self.items[pos].body
                else {
                    return 0;
                };
                *open = Some((p, String::new()));
                let ci = parts.len() as i64;
                let part = stream_part(p, "");
                self.push(|seq| {
                    ResponseStreamEvent::ContentPartAdded(
                        ContentPartAddedEvent {
                            kind: Default::default(),
                            sequence_number: seq,
                            item_id: id,
                            output_index: pos as i64,
                            content_index: ci,
                            part,
                        },
                    )
                });
            }
        }
        match &self.items[pos].body {
            Body::Message { parts, .. } => parts.len() as i64,
            _ => 0,
        }
    }

    fn message_delta(&mut self, pos: usize, p: Part, delta: &str) {
        let ci = self.open_message_part(pos, p);
        let id = self.items[pos].id.clone();
        if let Body::Message { open: Some((_, text)), .. } =
            &mut self.items[pos].body
        {
            text.push_str(delta);
        }
        match p {
            Part::Text => {
                let obfuscation = self.obfuscate.then(|| padding(delta.len()));
                self.push(|seq| {
                    ResponseStreamEvent::OutputTextDelta(OutputTextDeltaEvent {
                        kind: Default::default(),
                        sequence_number: seq,
                        item_id: id,
                        output_index: pos as i64,
                        content_index: ci,
                        delta: delta.to_string(),
                        logprobs: vec![],
                        obfuscation,
                    })
                });
            }
            Part::Refusal => self.push(|seq| {
                ResponseStreamEvent::RefusalDelta(RefusalDeltaEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id,
                    output_index: pos as i64,
                    content_index: ci,
                    delta: delta.to_string(),
                })
            }),
        }
    }

    fn close_message_part(&mut self, pos: usize) {
        let id = self.items[pos].id.clone();
        let Body::Message { parts, open } = &mut self.items[pos].body else {
            return;
        };
        let Some((p, text)) = open.take() else { return };
        let ci = parts.len() as i64;
        parts.push(message_part(p, &text));
        let part = stream_part(p, &text);
        let id2 = id.clone();
        self.push(|seq| match p {
            Part::Text => {
                ResponseStreamEvent::OutputTextDone(OutputTextDoneEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id2,
                    output_index: pos as i64,
                    content_index: ci,
                    text,
                    logprobs: vec![],
                })
            }
            Part::Refusal => {
                ResponseStreamEvent::RefusalDone(RefusalDoneEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id2,
                    output_index: pos as i64,
                    content_index: ci,
                    refusal: text,
                })
            }
        });
        self.push(|seq| {
            ResponseStreamEvent::ContentPartDone(ContentPartDoneEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id,
                output_index: pos as i64,
                content_index: ci,
                part,
            })
        });
    }

    fn reasoning_text(&mut self, pos: usize, delta: String) {
        let id = self.items[pos].id.clone();
        let Body::Reasoning { content, open_text, .. } =
            &mut self.items[pos].body
        else {
            return;
        };
        let ci = content.len() as i64;
        let opening = open_text.is_none();
        open_text.get_or_insert_with(String::new).push_str(&delta);
        if opening {
            let id = id.clone();
            self.push(|seq| {
                ResponseStreamEvent::ContentPartAdded(ContentPartAddedEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id,
                    output_index: pos as i64,
                    content_index: ci,
                    part: StreamPart::ReasoningText { text: String::new() },
                })
            });
        }
        self.push(|seq| {
            ResponseStreamEvent::ReasoningTextDelta(ReasoningTextDeltaEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id,
                output_index: pos as i64,
                content_index: ci,
                delta,
            })
        });
    }

    fn reasoning_summary(&mut self, pos: usize, part: usize, delta: String) {
        let id = self.items[pos].id.clone();
        let Body::Reasoning { open_summary, .. } = &self.items[pos].body else {
            return;
        };
        if *open_summary != Some(part) {
            self.close_summary(pos);
            let Body::Reasoning { summary, open_summary, .. } =
                &mut self.items[pos].body
            else {
                return;
            };
            summary.push(String::new());
            *open_summary = Some(part);
            let si = summary.len() as i64 - 1;
            let id = id.clone();
            self.push(|seq| {
                ResponseStreamEvent::ReasoningSummaryPartAdded(
                    ReasoningSummaryPartAddedEvent {
                        kind: Default::default(),
                        sequence_number: seq,
                        item_id: id,
                        output_index: pos as i64,
                        summary_index: si,
                        part: SummaryPart::SummaryText { text: String::new() },
                    },
                )
            });
        }
        let Body::Reasoning { summary, .. } = &mut self.items[pos].body else {
            return;
        };
        let si = summary.len() as i64 - 1;
        if let Some(last) = summary.last_mut() {
            last.push_str(&delta);
        }
        self.push(|seq| {
            ResponseStreamEvent::ReasoningSummaryTextDelta(
                ReasoningSummaryTextDeltaEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id,
                    output_index: pos as i64,
                    summary_index: si,
                    delta,
                },
            )
        });
    }

    fn close_summary(&mut self, pos: usize) {
        let id = self.items[pos].id.clone();
        let Body::Reasoning { summary, open_summary, .. } =
            &mut self.items[pos].body
        else {
            return;
        };
        if open_summary.take().is_none() {
            return;
        }
        let si = summary.len() as i64 - 1;
        let text = summary.last().cloned().unwrap_or_default();
        let id2 = id.clone();
        let text2 = text.clone();
        self.push(|seq| {
            ResponseStreamEvent::ReasoningSummaryTextDone(
                ReasoningSummaryTextDoneEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id2,
                    output_index: pos as i64,
                    summary_index: si,
                    text: text2,
                },
            )
        });
        self.push(|seq| {
            ResponseStreamEvent::ReasoningSummaryPartDone(
                ReasoningSummaryPartDoneEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id,
                    output_index: pos as i64,
                    summary_index: si,
                    part: SummaryPart::SummaryText { text },
                },
            )
        });
    }

    fn close_reasoning_text(&mut self, pos: usize) {
        let id = self.items[pos].id.clone();
        let Body::Reasoning { content, open_text, .. } =
            &mut self.items[pos].body
        else {
            return;
        };
        let Some(text) = open_text.take() else { return };
        let ci = content.len() as i64;
        content.push(text.clone());
        let id2 = id.clone();
        let text2 = text.clone();
        self.push(|seq| {
            ResponseStreamEvent::ReasoningTextDone(ReasoningTextDoneEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id2,
                output_index: pos as i64,
                content_index: ci,
                text: text2,
            })
        });
        self.push(|seq| {
            ResponseStreamEvent::ContentPartDone(ContentPartDoneEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id,
                output_index: pos as i64,
                content_index: ci,
                part: StreamPart::ReasoningText { text },
            })
        });
    }

    /// Closes an item: its open parts, then `output_item.done`.
    fn close_item(&mut self, pos: usize, status: ItemStatus) {
        if self.items[pos].done {
            return;
        }
        match &self.items[pos].body {
            Body::Message { parts, open } => {
                if parts.is_empty() && open.is_none() {
                    // A message is never empty of parts: one empty text.
                    self.open_message_part(pos, Part::Text);
                }
                self.close_message_part(pos);
            }
            Body::Reasoning { .. } => {
                self.close_reasoning_text(pos);
                self.close_summary(pos);
            }
            Body::FunctionCall { name, arguments, .. } => {
                let (id, name, arguments) = (
                    self.items[pos].id.clone(),
                    name.clone(),
                    arguments.clone(),
                );
                self.push(|seq| {
                    ResponseStreamEvent::FunctionCallArgumentsDone(
                        FunctionCallArgumentsDoneEvent {
                            kind: Default::default(),
                            sequence_number: seq,
                            item_id: id,
                            output_index: pos as i64,
                            name,
                            arguments,
                        },
                    )
                });
            }
        }
        let item = &mut self.items[pos];
        item.done = true;
        item.status = status;
        if !self.emit {
            return;
        }
        let snapshot = item.snapshot();
        self.push(|seq| {
            ResponseStreamEvent::OutputItemDone(OutputItemDoneEvent {
                kind: Default::default(),
                sequence_number: seq,
                output_index: pos as i64,
                item: snapshot,
            })
        });
    }

    fn close_all(&mut self, status: ItemStatus) {
        for pos in 0..self.items.len() {
            self.close_item(pos, status);
        }
        // A builder resumed from a stored snapshot (the lease sweeper) has
        // no items of its own: the snapshot's partial output stands.
        if !self.items.is_empty() {
            self.response.output =
                self.items.iter().map(Item::snapshot).collect();
        }
    }

    fn set_usage(&mut self) {
        let u = self.usage.unwrap_or_default();
        self.response.usage = Some(ResponseUsage {
            input_tokens: u.input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: u.cached,
                cache_write_tokens: u.cache_write,
            },
            output_tokens: u.output,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: u.reasoning,
            },
            total_tokens: u.total(),
        });
    }

    /// Ends the run as `ending` says and emits its terminal event.
    pub fn end(&mut self, ending: &Ending) {
        match ending {
            Ending::Done => self.complete(),
            Ending::Failed { code, kind, message } => {
                self.fail(code, kind, message)
            }
            Ending::Cancelled => self.cancel(),
        }
    }

    /// Ends normally: `completed`, or `incomplete` on a token limit or
    /// content filter. Emits the terminal event.
    pub fn complete(&mut self) {
        if self.items.is_empty() && !self.warm_up {
            // An empty answer is still one message with one empty part.
            self.start_item(usize::MAX, ItemKind::Message);
        }
        let reason = match self.finish {
            Some(FinishReason::Length) => Some("max_output_tokens"),
            Some(FinishReason::ContentFilter) => Some("content_filter"),
            _ => None,
        };
        self.close_all(self.item_status());
        self.set_usage();
        let r = &mut self.response;
        match reason {
            Some(reason) => {
                r.status = ResponseStatus::Incomplete;
                r.incomplete_details =
                    Some(IncompleteDetails { reason: reason.into() });
            }
            None => {
                r.status = ResponseStatus::Completed;
                r.completed_at = Some(now_ms() / 1000);
            }
        }
        if !self.emit {
            return;
        }
        let r = r.clone();
        self.push(|seq| {
            if r.status == ResponseStatus::Completed {
                ResponseStreamEvent::Completed(ResponseCompletedEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    response: r,
                })
            } else {
                ResponseStreamEvent::Incomplete(ResponseIncompleteEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    response: r,
                })
            }
        });
    }

    /// Ends with a failure after the stream started: the snapshot becomes
    /// `failed` and the stream ends with an `error` event.
    pub fn fail(&mut self, code: &str, kind: &str, message: &str) {
        self.close_all(ItemStatus::Incomplete);
        if self.usage.is_some() {
            self.set_usage();
        }
        let r = &mut self.response;
        r.status = ResponseStatus::Failed;
        r.error =
            Some(ResponseError { code: code.into(), message: message.into() });
        let (code, kind, message) =
            (code.to_string(), kind.to_string(), message.to_string());
        self.push(|seq| {
            ResponseStreamEvent::Error(ErrorEvent {
                kind: Default::default(),
                sequence_number: seq,
                code: Some(code.clone()),
                message: message.clone(),
                param: None,
                error: StreamErrorDetail {
                    kind,
                    code: Some(code),
                    message,
                    param: None,
                },
            })
        });
    }

    /// Ends a cancelled run, keeping partial output; the stream ends with
    /// `response.failed` whose response has `status: "cancelled"`.
    pub fn cancel(&mut self) {
        self.close_all(ItemStatus::Incomplete);
        self.response.status = ResponseStatus::Cancelled;
        let r = self.response.clone();
        self.push(|seq| {
            ResponseStreamEvent::Failed(ResponseFailedEvent {
                kind: Default::default(),
                sequence_number: seq,
                response: r,
            })
        });
    }

    /// The output items to store.
    pub fn output_items(&self) -> Vec<ItemResource> {
        self.response.output.iter().map(stored_item).collect()
    }

    /// Consumes the builder, returning the final response.
    pub fn into_response(self) -> Response {
        self.response
    }
}

/// Random padding so that delta events do not leak token lengths.
fn padding(delta_len: usize) -> String {
    let n = 16 - delta_len % 16;
    rand::rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}
