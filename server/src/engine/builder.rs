//! `ResponseBuilder`: the only code that knows the OpenAI event taxonomy.
//! It consumes provider events, keeps the `Response` snapshot and assigns
//! `sequence_number`s; every mode (JSON, SSE, stored, background) is a
//! consumer of what it emits.

use bytes::Bytes;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::api::*;
use crate::providers::{Completion, FinishReason, Usage};

use crate::ids;

/// An event serialized once: its JSON for the event log, and its SSE frame.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// `sequence_number`.
    pub seq: i64,
    /// The event JSON (`data:` payload).
    pub json: String,
    /// The whole SSE frame (`event: …\ndata: …\n\n`).
    pub frame: Bytes,
    /// Whether this event ends the stream.
    pub terminal: bool,
}

impl Encoded {
    /// Serializes an event.
    pub fn new(ev: &ResponseStreamEvent, seq: i64) -> Encoded {
        let json = serde_json::to_string(ev).unwrap_or_else(|_| {
            // Our own types always serialize; keep the stream well-formed
            // even if that ever changes.
            format!(r#"{{"type":"error","sequence_number":{seq}}}"#)
        });
        Encoded::from_json(ev.type_name(), json, seq, ev.is_terminal())
    }

    /// Wraps stored event JSON (replay from the event log).
    pub fn from_json(
        kind: &str,
        json: String,
        seq: i64,
        terminal: bool,
    ) -> Self {
        let mut frame = String::with_capacity(json.len() + kind.len() + 16);
        frame.push_str("event: ");
        frame.push_str(kind);
        frame.push_str("\ndata: ");
        frame.push_str(&json);
        frame.push_str("\n\n");
        Encoded { seq, json, frame: Bytes::from(frame), terminal }
    }

    /// Re-frames an event read back from the log.
    pub fn from_log(seq: i64, json: String) -> Self {
        let kind = event_type(&json).unwrap_or("message").to_string();
        let terminal = is_terminal_type(&kind);
        Encoded::from_json(&kind, json, seq, terminal)
    }
}

/// The `type` of a serialized event (always its first field).
fn event_type(json: &str) -> Option<&str> {
    let rest = json.strip_prefix(r#"{"type":""#)?;
    rest.split('"').next()
}

fn is_terminal_type(t: &str) -> bool {
    matches!(
        t,
        "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "error"
    )
}

/// The part currently being written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Refusal,
}

/// Builds one response and its event stream.
pub struct ResponseBuilder {
    response: Response,
    seq: i64,
    emit: bool,
    obfuscate: bool,
    msg_id: String,
    item_open: bool,
    parts: Vec<OutputContent>,
    open: Option<Part>,
    current_text: String,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    out: Vec<Encoded>,
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
            msg_id: ids::message_id(),
            item_open: false,
            parts: Vec::new(),
            open: None,
            current_text: String::new(),
            finish: None,
            usage: None,
            out: Vec::new(),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> &Response {
        &self.response
    }

    /// The snapshot with the output written so far (for polling readers).
    pub fn partial(&self) -> Response {
        let mut r = self.response.clone();
        if self.item_open {
            r.output = vec![self.message(ItemStatus::InProgress)];
        }
        r
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

    fn message(&self, status: ItemStatus) -> OutputItem {
        let mut content = self.parts.clone();
        if let Some(p) = self.open {
            content.push(self.open_part(p));
        }
        OutputItem::Message {
            id: self.msg_id.clone(),
            status,
            role: AssistantRole::Assistant,
            content,
        }
    }

    fn open_part(&self, p: Part) -> OutputContent {
        match p {
            Part::Text => OutputContent::OutputText {
                text: self.current_text.clone(),
                annotations: vec![],
                logprobs: vec![],
            },
            Part::Refusal => {
                OutputContent::Refusal { refusal: self.current_text.clone() }
            }
        }
    }

    fn open_item(&mut self) {
        if self.item_open {
            return;
        }
        self.item_open = true;
        let id = self.msg_id.clone();
        self.push(|seq| {
            ResponseStreamEvent::OutputItemAdded(OutputItemAddedEvent {
                kind: Default::default(),
                sequence_number: seq,
                output_index: 0,
                item: OutputItem::Message {
                    id,
                    status: ItemStatus::InProgress,
                    role: AssistantRole::Assistant,
                    content: vec![],
                },
            })
        });
    }

    fn open(&mut self, p: Part) {
        if self.open == Some(p) {
            return;
        }
        self.close_part();
        self.open_item();
        self.open = Some(p);
        self.current_text.clear();
        let (id, ci) = (self.msg_id.clone(), self.parts.len() as i64);
        let part = self.open_part(p);
        self.push(|seq| {
            ResponseStreamEvent::ContentPartAdded(ContentPartAddedEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id,
                output_index: 0,
                content_index: ci,
                part,
            })
        });
    }

    fn close_part(&mut self) {
        let Some(p) = self.open.take() else { return };
        let part = self.open_part(p);
        let (id, ci) = (self.msg_id.clone(), self.parts.len() as i64);
        let text = std::mem::take(&mut self.current_text);
        let id2 = id.clone();
        self.push(|seq| match p {
            Part::Text => {
                ResponseStreamEvent::OutputTextDone(OutputTextDoneEvent {
                    kind: Default::default(),
                    sequence_number: seq,
                    item_id: id2,
                    output_index: 0,
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
                    output_index: 0,
                    content_index: ci,
                    refusal: text,
                })
            }
        });
        let done = part.clone();
        self.push(|seq| {
            ResponseStreamEvent::ContentPartDone(ContentPartDoneEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id,
                output_index: 0,
                content_index: ci,
                part: done,
            })
        });
        self.parts.push(part);
    }

    /// More answer text.
    pub fn text(&mut self, delta: &str) {
        self.open(Part::Text);
        self.current_text.push_str(delta);
        let (id, ci) = (self.msg_id.clone(), self.parts.len() as i64);
        let obfuscation = self.obfuscate.then(|| padding(delta.len()));
        self.push(|seq| {
            ResponseStreamEvent::OutputTextDelta(OutputTextDeltaEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id,
                output_index: 0,
                content_index: ci,
                delta: delta.to_string(),
                logprobs: vec![],
                obfuscation,
            })
        });
    }

    /// More refusal text.
    pub fn refusal(&mut self, delta: &str) {
        self.open(Part::Refusal);
        self.current_text.push_str(delta);
        let (id, ci) = (self.msg_id.clone(), self.parts.len() as i64);
        self.push(|seq| {
            ResponseStreamEvent::RefusalDelta(RefusalDeltaEvent {
                kind: Default::default(),
                sequence_number: seq,
                item_id: id,
                output_index: 0,
                content_index: ci,
                delta: delta.to_string(),
            })
        });
    }

    /// Records usage.
    pub fn usage(&mut self, u: Usage) {
        self.usage = Some(u);
    }

    /// Records why generation stopped.
    pub fn finish_reason(&mut self, f: FinishReason) {
        self.finish = Some(f);
    }

    /// Applies a whole completion (non-streaming path).
    pub fn apply(&mut self, c: Completion) {
        if let Some(r) = c.refusal.as_deref().filter(|r| !r.is_empty()) {
            if !c.text.is_empty() {
                self.text(&c.text);
            }
            self.refusal(r);
        } else {
            self.text(&c.text);
        }
        if let Some(u) = c.usage {
            self.usage(u);
        }
        if let Some(f) = c.finish {
            self.finish_reason(f);
        }
    }

    fn close_item(&mut self, status: ItemStatus) {
        if !self.item_open {
            return;
        }
        self.close_part();
        let item = self.message(status);
        self.response.output = vec![item];
        if !self.emit {
            return;
        }
        let item = self.response.output[0].clone();
        self.push(|seq| {
            ResponseStreamEvent::OutputItemDone(OutputItemDoneEvent {
                kind: Default::default(),
                sequence_number: seq,
                output_index: 0,
                item,
            })
        });
    }

    fn set_usage(&mut self) {
        let u = self.usage.unwrap_or_default();
        self.response.usage = Some(ResponseUsage {
            input_tokens: u.input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: u.cached,
                cache_write_tokens: 0,
            },
            output_tokens: u.output,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: u.reasoning,
            },
            total_tokens: u.input + u.output,
        });
    }

    /// Ends normally: `completed`, or `incomplete` on a token limit or
    /// content filter. Emits the terminal event.
    pub fn complete(&mut self) {
        if !self.item_open {
            // An empty answer is still one message with one empty part.
            self.open(Part::Text);
        }
        let reason = match self.finish {
            Some(FinishReason::Length) => Some("max_output_tokens"),
            Some(FinishReason::ContentFilter) => Some("content_filter"),
            _ => None,
        };
        let item_status = if reason.is_some() {
            ItemStatus::Incomplete
        } else {
            ItemStatus::Completed
        };
        self.close_item(item_status);
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
                r.completed_at = Some(crate::store::now_ms() / 1000);
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
        self.close_item(ItemStatus::Incomplete);
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
        self.close_item(ItemStatus::Incomplete);
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
    pub fn output_items(&self) -> Vec<crate::store::ItemRow> {
        self.response
            .output
            .iter()
            .map(|item| match item {
                OutputItem::Message { id, content, .. } => {
                    let parts = content
                        .iter()
                        .map(|c| match c {
                            OutputContent::OutputText {
                                text,
                                annotations,
                                logprobs,
                            } => ContentPart::OutputText {
                                text: text.clone(),
                                annotations: annotations.clone(),
                                logprobs: logprobs.clone(),
                            },
                            OutputContent::Refusal { refusal } => {
                                ContentPart::Refusal {
                                    refusal: refusal.clone(),
                                }
                            }
                        })
                        .collect();
                    super::transcript::item_for(
                        id.clone(),
                        Role::Assistant,
                        parts,
                    )
                }
            })
            .collect()
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
