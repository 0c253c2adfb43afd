//! Messages answers to item-level events: the streamed event parser
//! (`message_start`, content blocks of text, thinking, redacted thinking
//! and tool use, `message_delta`, `message_stop`, `error`) and the
//! non-streaming message, which is replayed through the same parser.
//!
//! Each content block is an item whose index is the block's; consecutive
//! text blocks (Anthropic splits text at citations) join one message. An
//! item is closed when the next block starts or at the stop reason, after
//! the `Finish`, so items a token limit cut take its status.

use serde::Deserialize;
use serde_json::Value;

use super::errors::ErrorBody;
use super::thinking;
use super::usage::RawUsage;
use crate::providers::{
    Completion, Delta, FinishReason, ItemKind, ProviderError, ProviderEvent,
};

/// One streamed event (the `data:` of an SSE event).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum StreamEvent {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockStart {
        index: usize,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<RawUsage>,
    },
    MessageStop,
    Ping,
    Error {
        #[serde(default)]
        error: ErrorBody,
    },
    /// Events of newer API versions we do not know: ignored.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
pub(super) struct MessageStart {
    #[serde(default)]
    usage: Option<RawUsage>,
}

/// A block as it starts (streamed) or whole (non-streaming answer).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockStart {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    /// Server tools, search results, …: not ours to show.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// A non-streaming answer.
#[derive(Debug, Deserialize)]
pub(super) struct MessageBody {
    #[serde(default)]
    content: Vec<BlockStart>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

fn finish_reason(s: &str) -> FinishReason {
    match s {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => FinishReason::Stop,
    }
}

#[derive(Debug)]
enum Kind {
    Text,
    Thinking {
        signature: String,
    },
    Tool {
        arguments_sent: bool,
        input: Option<Value>,
    },
    /// A block we do not show; its deltas are dropped.
    Ignored,
}

#[derive(Debug)]
struct Block {
    /// Anthropic's block index.
    index: usize,
    /// The item it feeds.
    item: usize,
    kind: Kind,
    stopped: bool,
}

/// The item-level state of one answer.
#[derive(Debug, Default)]
pub(super) struct EventParser {
    /// Blocks whose items are not done yet, in start order.
    blocks: Vec<Block>,
    /// Counts so far, as Anthropic reports them.
    usage: RawUsage,
    /// `message_stop` was seen.
    pub finished: bool,
}

impl EventParser {
    /// Applies one event. An `error` event is the upstream failing
    /// mid-stream: never a silent end.
    pub fn event(
        &mut self,
        ev: StreamEvent,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        match ev {
            StreamEvent::MessageStart { message } => {
                if let Some(u) = message.usage {
                    self.report(u, out);
                }
            }
            StreamEvent::ContentBlockStart { index, content_block } => {
                self.start(index, content_block, out)
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                self.delta(index, delta, out)
            }
            StreamEvent::ContentBlockStop { index } => self.stop(index, out),
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(r) = delta.stop_reason {
                    out.push(ProviderEvent::Finish(finish_reason(&r)));
                    self.close_all(out);
                }
                if let Some(u) = usage {
                    self.report(u, out);
                }
            }
            StreamEvent::MessageStop => {
                self.close_all(out);
                self.finished = true;
            }
            StreamEvent::Ping | StreamEvent::Unknown => {}
            StreamEvent::Error { error } => {
                return Err(ProviderError::Stream(error.report()));
            }
        }
        Ok(())
    }

    fn report(&mut self, u: RawUsage, out: &mut Vec<ProviderEvent>) {
        self.usage.update(u);
        out.push(ProviderEvent::Usage(self.usage.to_usage()));
    }

    /// Closes the items of blocks that stopped.
    fn close_stopped(&mut self, out: &mut Vec<ProviderEvent>) {
        let mut i = 0;
        while i < self.blocks.len() {
            if self.blocks[i].stopped {
                let b = self.blocks.remove(i);
                out.push(ProviderEvent::ItemDone { index: b.item });
            } else {
                i += 1;
            }
        }
    }

    fn close_all(&mut self, out: &mut Vec<ProviderEvent>) {
        for b in self.blocks.drain(..) {
            out.push(ProviderEvent::ItemDone { index: b.item });
        }
    }

    fn start(
        &mut self,
        index: usize,
        block: BlockStart,
        out: &mut Vec<ProviderEvent>,
    ) {
        // Text right after a stopped text block continues its message.
        if let BlockStart::Text { text } = &block
            && let Some(last) = self.blocks.last_mut()
            && last.stopped
            && matches!(last.kind, Kind::Text)
        {
            last.index = index;
            last.stopped = false;
            let item = last.item;
            if !text.is_empty() {
                out.push(ProviderEvent::Delta {
                    index: item,
                    delta: Delta::Text(text.clone()),
                });
            }
            return;
        }
        self.close_stopped(out);
        let item = index;
        let kind = match block {
            BlockStart::Text { text } => {
                out.push(ProviderEvent::ItemStarted {
                    index: item,
                    kind: ItemKind::Message,
                });
                if !text.is_empty() {
                    out.push(ProviderEvent::Delta {
                        index: item,
                        delta: Delta::Text(text),
                    });
                }
                Kind::Text
            }
            BlockStart::Thinking { thinking, signature } => {
                out.push(ProviderEvent::ItemStarted {
                    index: item,
                    kind: ItemKind::Reasoning,
                });
                if !thinking.is_empty() {
                    out.push(ProviderEvent::Delta {
                        index: item,
                        delta: Delta::ReasoningText(thinking),
                    });
                }
                let signature = signature.unwrap_or_default();
                if !signature.is_empty() {
                    out.push(ProviderEvent::Delta {
                        index: item,
                        delta: Delta::EncryptedReasoning(
                            thinking::encode_thinking(&signature),
                        ),
                    });
                }
                Kind::Thinking { signature }
            }
            BlockStart::RedactedThinking { data } => {
                out.push(ProviderEvent::ItemStarted {
                    index: item,
                    kind: ItemKind::Reasoning,
                });
                if !data.is_empty() {
                    out.push(ProviderEvent::Delta {
                        index: item,
                        delta: Delta::EncryptedReasoning(
                            thinking::encode_redacted(&data),
                        ),
                    });
                }
                Kind::Ignored
            }
            BlockStart::ToolUse { id, name, input } => {
                out.push(ProviderEvent::ItemStarted {
                    index: item,
                    kind: ItemKind::FunctionCall { call_id: id, name },
                });
                Kind::Tool { arguments_sent: false, input }
            }
            BlockStart::Other => {
                // Not an item: nothing to close later.
                return;
            }
        };
        self.blocks.push(Block { index, item, kind, stopped: false });
    }

    fn delta(
        &mut self,
        index: usize,
        delta: BlockDelta,
        out: &mut Vec<ProviderEvent>,
    ) {
        let Some(b) =
            self.blocks.iter_mut().find(|b| b.index == index && !b.stopped)
        else {
            return;
        };
        let item = b.item;
        let d = match (&mut b.kind, delta) {
            (Kind::Text, BlockDelta::TextDelta { text }) => Delta::Text(text),
            (Kind::Thinking { .. }, BlockDelta::ThinkingDelta { thinking }) => {
                Delta::ReasoningText(thinking)
            }
            (
                Kind::Thinking { signature },
                BlockDelta::SignatureDelta { signature: more },
            ) => {
                signature.push_str(&more);
                Delta::EncryptedReasoning(thinking::encode_thinking(signature))
            }
            (
                Kind::Tool { arguments_sent, .. },
                BlockDelta::InputJsonDelta { partial_json },
            ) => {
                if partial_json.is_empty() {
                    return;
                }
                *arguments_sent = true;
                Delta::Arguments(partial_json)
            }
            _ => return,
        };
        if matches!(&d, Delta::Text(t) | Delta::ReasoningText(t) if t.is_empty())
        {
            return;
        }
        out.push(ProviderEvent::Delta { index: item, delta: d });
    }

    /// A block is complete; its item closes when the next block starts or
    /// at the stop reason.
    fn stop(&mut self, index: usize, out: &mut Vec<ProviderEvent>) {
        let Some(b) =
            self.blocks.iter_mut().find(|b| b.index == index && !b.stopped)
        else {
            return;
        };
        b.stopped = true;
        // A call whose input never streamed (no parameters, or a whole
        // answer) still has JSON arguments.
        if let Kind::Tool { arguments_sent: false, input } = &mut b.kind {
            let args = match input.take() {
                Some(v @ Value::Object(_)) => v.to_string(),
                _ => "{}".to_string(),
            };
            out.push(ProviderEvent::Delta {
                index: b.item,
                delta: Delta::Arguments(args),
            });
        }
    }

    /// The events of a non-streaming answer: its blocks replayed as a
    /// stream would bring them.
    pub fn completion(body: MessageBody) -> Completion {
        let mut p = EventParser::default();
        let mut events = Vec::new();
        for (i, block) in body.content.into_iter().enumerate() {
            p.start(i, block, &mut events);
            p.stop(i, &mut events);
        }
        if let Some(r) = body.stop_reason {
            events.push(ProviderEvent::Finish(finish_reason(&r)));
        }
        p.close_all(&mut events);
        if let Some(u) = body.usage {
            p.report(u, &mut events);
        }
        Completion { events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(
        events: &[Value],
    ) -> (Vec<ProviderEvent>, Result<(), ProviderError>) {
        let mut p = EventParser::default();
        let mut out = Vec::new();
        for e in events {
            let ev: StreamEvent = serde_json::from_value(e.clone()).unwrap();
            if let Err(err) = p.event(ev, &mut out) {
                return (out, Err(err));
            }
        }
        assert!(p.finished, "no message_stop");
        (out, Ok(()))
    }

    fn start(usage: Value) -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "content": [], "model": "claude", "stop_reason": null,
            "usage": usage}})
    }

    #[test]
    fn thinking_then_text_then_tool_use_stream_as_items() {
        let (evs, r) = run(&[
            start(
                json!({"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}),
            ),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "signature_delta", "signature": "SIG"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1,
                   "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2,
                   "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
            json!({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                   "usage": {"output_tokens": 9}}),
            json!({"type": "message_stop"}),
        ]);
        r.unwrap();
        let usage = |output| {
            ProviderEvent::Usage(crate::providers::Usage {
                input: 15,
                cached: 5,
                output,
                ..crate::providers::Usage::default()
            })
        };
        use ProviderEvent::{Delta, Finish, ItemDone, ItemStarted};
        assert_eq!(
            evs,
            vec![
                usage(1),
                ItemStarted { index: 0, kind: ItemKind::Reasoning },
                Delta {
                    index: 0,
                    delta: super::Delta::ReasoningText("hmm".into())
                },
                Delta {
                    index: 0,
                    delta: super::Delta::EncryptedReasoning(
                        "anthropic:thinking:SIG".into()
                    )
                },
                ItemDone { index: 0 },
                ItemStarted { index: 1, kind: ItemKind::Message },
                Delta { index: 1, delta: super::Delta::Text("Hi".into()) },
                ItemDone { index: 1 },
                ItemStarted {
                    index: 2,
                    kind: ItemKind::FunctionCall {
                        call_id: "toolu_1".into(),
                        name: "f".into()
                    }
                },
                Delta {
                    index: 2,
                    delta: super::Delta::Arguments("{\"q\":".into())
                },
                Delta { index: 2, delta: super::Delta::Arguments("1}".into()) },
                Finish(FinishReason::ToolCalls),
                ItemDone { index: 2 },
                usage(9),
            ]
        );
    }

    #[test]
    fn text_blocks_join_and_a_cut_message_closes_after_the_finish() {
        let (evs, r) = run(&[
            start(json!({"input_tokens": 3})),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": "a"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1,
                   "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "text_delta", "text": "b"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                   "usage": {"output_tokens": 2}}),
            json!({"type": "message_stop"}),
        ]);
        r.unwrap();
        let started = evs
            .iter()
            .filter(|e| matches!(e, ProviderEvent::ItemStarted { .. }))
            .count();
        assert_eq!(started, 1, "{evs:?}");
        let finish = evs
            .iter()
            .position(|e| *e == ProviderEvent::Finish(FinishReason::Length))
            .unwrap();
        let done = evs
            .iter()
            .position(|e| *e == ProviderEvent::ItemDone { index: 0 })
            .unwrap();
        assert!(finish < done, "{evs:?}");
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("pause_turn", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("something_new", FinishReason::Stop),
        ];
        for (reason, want) in cases {
            assert_eq!(finish_reason(reason), want, "{reason}");
        }
    }

    #[test]
    fn an_error_event_fails_the_stream_and_unknown_events_are_ignored() {
        let mut p = EventParser::default();
        let mut out = Vec::new();
        let unknown: StreamEvent =
            serde_json::from_value(json!({"type": "brand_new", "x": 1}))
                .unwrap();
        p.event(unknown, &mut out).unwrap();
        let err: StreamEvent = serde_json::from_value(json!({"type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"}}))
        .unwrap();
        match p.event(err, &mut out) {
            Err(ProviderError::Stream(r)) => {
                assert_eq!(r.code.as_deref(), Some("overloaded_error"));
                assert_eq!(r.message, "Overloaded");
            }
            other => panic!("{other:?}"),
        }
        assert!(!p.finished);
    }

    #[test]
    fn a_whole_message_with_redacted_thinking_and_a_tool_call() {
        let body: MessageBody = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": "BLOB"},
                {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 4, "cache_creation_input_tokens": 2, "output_tokens": 6}
        }))
        .unwrap();
        let c = EventParser::completion(body);
        use ProviderEvent::{Delta, Finish, ItemDone, Usage};
        assert!(c.events.contains(&Delta {
            index: 0,
            delta: super::Delta::EncryptedReasoning(
                "anthropic:redacted:BLOB".into()
            )
        }));
        assert!(c.events.contains(&Delta {
            index: 2,
            delta: super::Delta::Arguments("{\"a\":1}".into())
        }));
        assert_eq!(
            c.events.last(),
            Some(&Usage(crate::providers::Usage {
                input: 6,
                cache_write: 2,
                output: 6,
                ..crate::providers::Usage::default()
            }))
        );
        let finish = c
            .events
            .iter()
            .position(|e| *e == Finish(FinishReason::ToolCalls))
            .unwrap();
        assert_eq!(c.events[finish + 1], ItemDone { index: 2 });
    }
}
