//! The state of one output item while it is being built, and its
//! snapshot as a wire `OutputItem` or a stored `ItemResource`.

use crate::api::*;
use crate::providers::ItemKind;

/// The part of a message currently being written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Part {
    Text,
    Refusal,
}

/// What an item holds.
pub(super) enum Body {
    Message {
        /// Closed parts.
        parts: Vec<OutputContent>,
        /// The open part and its text so far.
        open: Option<(Part, String)>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    Reasoning {
        /// Closed raw-text parts.
        content: Vec<String>,
        /// The open raw-text part.
        open_text: Option<String>,
        /// Summary parts (the last may be open).
        summary: Vec<String>,
        /// The provider's part number of the open summary part.
        open_summary: Option<usize>,
        encrypted: Option<String>,
    },
}

/// One output item.
pub(super) struct Item {
    pub id: String,
    pub body: Body,
    /// `output_item.done` was emitted.
    pub done: bool,
    pub status: ItemStatus,
}

impl Item {
    pub fn new(kind: ItemKind) -> Item {
        let (id, body) = match kind {
            ItemKind::Message => (
                crate::ids::message_id(),
                Body::Message { parts: Vec::new(), open: None },
            ),
            ItemKind::FunctionCall { call_id, name } => (
                crate::ids::function_call_id(),
                Body::FunctionCall { call_id, name, arguments: String::new() },
            ),
            ItemKind::Reasoning => (
                crate::ids::reasoning_id(),
                Body::Reasoning {
                    content: Vec::new(),
                    open_text: None,
                    summary: Vec::new(),
                    open_summary: None,
                    encrypted: None,
                },
            ),
        };
        Item { id, body, done: false, status: ItemStatus::InProgress }
    }

    /// The item as it stands (open parts included).
    pub fn snapshot(&self) -> OutputItem {
        let id = self.id.clone();
        let status = self.status;
        match &self.body {
            Body::Message { parts, open } => {
                let mut content = parts.clone();
                if let Some((p, text)) = open {
                    content.push(message_part(*p, text));
                }
                OutputItem::Message {
                    id,
                    status,
                    role: AssistantRole::Assistant,
                    content,
                }
            }
            Body::FunctionCall { call_id, name, arguments } => {
                OutputItem::FunctionCall {
                    id,
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                    status,
                }
            }
            Body::Reasoning {
                content, open_text, summary, encrypted, ..
            } => OutputItem::Reasoning {
                id,
                summary: summary
                    .iter()
                    .map(|t| SummaryPart::SummaryText { text: t.clone() })
                    .collect(),
                content: content
                    .iter()
                    .chain(open_text)
                    .map(|t| ReasoningContent::ReasoningText {
                        text: t.clone(),
                    })
                    .collect(),
                encrypted_content: encrypted.clone(),
                status,
            },
        }
    }

    /// The item with no content, as `output_item.added` announces it.
    pub fn announced(&self) -> OutputItem {
        let id = self.id.clone();
        let status = ItemStatus::InProgress;
        match &self.body {
            Body::Message { .. } => OutputItem::Message {
                id,
                status,
                role: AssistantRole::Assistant,
                content: vec![],
            },
            Body::FunctionCall { call_id, name, .. } => {
                OutputItem::FunctionCall {
                    id,
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                    status,
                }
            }
            Body::Reasoning { .. } => OutputItem::Reasoning {
                id,
                summary: vec![],
                content: vec![],
                encrypted_content: None,
                status,
            },
        }
    }
}

/// A message part with its text.
pub(super) fn message_part(p: Part, text: &str) -> OutputContent {
    match p {
        Part::Text => OutputContent::OutputText {
            text: text.to_string(),
            annotations: vec![],
            logprobs: vec![],
        },
        Part::Refusal => OutputContent::Refusal { refusal: text.to_string() },
    }
}

/// A message part as a content-part event carries it.
pub(super) fn stream_part(p: Part, text: &str) -> StreamPart {
    match p {
        Part::Text => StreamPart::OutputText {
            text: text.to_string(),
            annotations: vec![],
            logprobs: vec![],
        },
        Part::Refusal => StreamPart::Refusal { refusal: text.to_string() },
    }
}

/// An output item as stored (and listed by `input_items`, and read back
/// into later transcripts).
pub fn stored_item(item: &OutputItem) -> ItemResource {
    match item.clone() {
        OutputItem::Message { id, content, .. } => ItemResource::Message {
            id,
            role: Role::Assistant,
            status: ItemStatus::Completed,
            content: content
                .into_iter()
                .map(|c| match c {
                    OutputContent::OutputText {
                        text,
                        annotations,
                        logprobs,
                    } => {
                        ContentPart::OutputText { text, annotations, logprobs }
                    }
                    OutputContent::Refusal { refusal } => {
                        ContentPart::Refusal { refusal }
                    }
                })
                .collect(),
        },
        OutputItem::Reasoning {
            id,
            summary,
            content,
            encrypted_content,
            status,
        } => ItemResource::Reasoning {
            id,
            summary,
            content,
            encrypted_content,
            status,
        },
        OutputItem::FunctionCall { id, call_id, name, arguments, status } => {
            ItemResource::FunctionCall { id, call_id, name, arguments, status }
        }
    }
}
