//! Turns request input (and an inherited chain) into transcript items for
//! the provider and the items we store, giving every input item an id.
//! Stored items read back into transcript items the same way, so a chain
//! keeps messages, reasoning and function calls.

use super::error::EngineError;
use super::seal::Sealer;
use crate::api::{
    ContentPart, Input, InputCompaction, InputItem, InputReasoning,
    ItemResource, ItemStatus, MessageContent, ReasoningContent, Role,
    SummaryPart,
};
use crate::ids;
use crate::providers::{Message, TranscriptItem};
use crate::store::ItemRow;

/// Opens the compaction items of one organization: the summary they seal
/// reaches the model as a system message.
#[derive(Clone, Copy)]
pub struct Unseal<'a> {
    /// The server's sealer.
    pub sealer: &'a Sealer,
    /// The caller's organization; items sealed for another do not open.
    pub org: &'a str,
}

impl Unseal<'_> {
    /// The transcript item a compaction item stands for.
    pub fn open(
        &self,
        encrypted_content: &str,
    ) -> Result<TranscriptItem, EngineError> {
        let compacted =
            self.sealer.open(self.org, encrypted_content).ok_or_else(|| {
                EngineError::invalid(
                    "The compaction item's `encrypted_content` could not be \
                     opened: it was altered, or made for another \
                     organization or by another server key. Send it exactly \
                     as `POST /v1/responses/compact` returned it.",
                    Some("input"),
                    Some("invalid_encrypted_content"),
                )
            })?;
        let text = format!("{SUMMARY_PREAMBLE}\n\n{}", compacted.summary);
        Ok(TranscriptItem::Message(Message {
            role: Role::System,
            parts: vec![ContentPart::InputText { text }],
        }))
    }
}

/// Introduces an opened compaction summary to the model.
const SUMMARY_PREAMBLE: &str = "Summary of the earlier part of this \
    conversation (compacted); continue from it:";

/// A stored item as a transcript item (None: unreadable).
pub fn from_stored(
    body: &str,
    unseal: Unseal<'_>,
) -> Result<Option<TranscriptItem>, EngineError> {
    match serde_json::from_str::<ItemResource>(body) {
        Ok(item) => from_resource(item, unseal).map(Some),
        Err(_) => Ok(None),
    }
}

/// An item resource as a transcript item.
pub fn from_resource(
    item: ItemResource,
    unseal: Unseal<'_>,
) -> Result<TranscriptItem, EngineError> {
    Ok(match item {
        ItemResource::Message { role, content, .. } => {
            TranscriptItem::Message(Message { role, parts: content })
        }
        ItemResource::Reasoning {
            summary, content, encrypted_content, ..
        } => reasoning(&summary, &content, encrypted_content),
        ItemResource::FunctionCall { call_id, name, arguments, .. } => {
            TranscriptItem::FunctionCall { call_id, name, arguments }
        }
        ItemResource::Compaction { encrypted_content, .. } => {
            return unseal.open(&encrypted_content);
        }
    })
}

fn reasoning(
    summary: &[SummaryPart],
    content: &[ReasoningContent],
    encrypted_content: Option<String>,
) -> TranscriptItem {
    TranscriptItem::Reasoning {
        text: content
            .iter()
            .map(|ReasoningContent::ReasoningText { text }| text.as_str())
            .collect(),
        summary: summary
            .iter()
            .map(|SummaryPart::SummaryText { text }| text.clone())
            .collect(),
        encrypted_content,
    }
}

/// The stored row of an item resource.
pub fn row(item: &ItemResource) -> ItemRow {
    let body = serde_json::to_string(item).unwrap_or_default();
    ItemRow { id: item.id().to_string(), body }
}

/// The item we store for one message.
pub fn message_row(id: String, role: Role, parts: Vec<ContentPart>) -> ItemRow {
    row(&ItemResource::Message {
        id,
        role,
        status: ItemStatus::Completed,
        content: parts,
    })
}

/// Resolved input of one turn: transcript items for the provider and rows
/// to store.
pub struct TurnInput {
    /// This turn's items.
    pub transcript: Vec<TranscriptItem>,
    /// This turn's items as stored, with ids.
    pub items: Vec<ItemRow>,
}

/// Converts the request's `input`. Item references are resolved with
/// `lookup` (a stored item's JSON, or None), compaction items opened with
/// `unseal`. Stored items are only built when `keep_items` (the hot
/// `store: false` path skips them).
pub async fn resolve_input<F, Fut>(
    input: Option<&Input>,
    keep_items: bool,
    unseal: Unseal<'_>,
    lookup: F,
) -> Result<TurnInput, EngineError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, EngineError>>,
{
    let mut turn = TurnInput { transcript: Vec::new(), items: Vec::new() };
    let items = match input {
        None => return Ok(turn),
        Some(Input::Text(text)) => {
            let parts = vec![ContentPart::InputText { text: text.clone() }];
            push_message(&mut turn, keep_items, None, Role::User, parts);
            return Ok(turn);
        }
        Some(Input::Items(items)) => items,
    };
    for (i, item) in items.iter().enumerate() {
        match item {
            InputItem::Message(m) => {
                let parts = match &m.content {
                    MessageContent::Text(t) => {
                        if m.role == Role::Assistant {
                            vec![ContentPart::OutputText {
                                text: t.clone(),
                                annotations: vec![],
                                logprobs: vec![],
                            }]
                        } else {
                            vec![ContentPart::InputText { text: t.clone() }]
                        }
                    }
                    MessageContent::Parts(p) => p.clone(),
                };
                for (j, part) in parts.iter().enumerate() {
                    if let ContentPart::InputImage { image_url: None, .. } =
                        part
                    {
                        return Err(EngineError::invalid_value(
                            &format!("input[{i}].content[{j}].image_url"),
                            "Images must be given by `image_url` (an https \
                             URL or a data URI); `file_id` is not supported.",
                        ));
                    }
                }
                push_message(
                    &mut turn,
                    keep_items,
                    m.id.clone(),
                    m.role,
                    parts,
                );
            }
            InputItem::ItemReference(r) => {
                let body = lookup(r.id.clone()).await?.ok_or_else(|| {
                    EngineError::NotFound {
                        message: format!("Item with id '{}' not found.", r.id),
                        param: Some("input".into()),
                        code: None,
                    }
                })?;
                let stored: ItemResource = serde_json::from_str(&body)
                    .map_err(|e| {
                        EngineError::Internal(format!(
                            "unreadable stored item {}: {e}",
                            r.id
                        ))
                    })?;
                if keep_items {
                    // A fresh id: the same item may be referenced again.
                    turn.items.push(row(&with_new_id(stored.clone())));
                }
                turn.transcript.push(from_resource(stored, unseal)?);
            }
            InputItem::Reasoning(r) => push_reasoning(&mut turn, keep_items, r),
            InputItem::Compaction(c) => {
                push_compaction(&mut turn, keep_items, unseal, c)?
            }
        }
    }
    Ok(turn)
}

fn with_new_id(item: ItemResource) -> ItemResource {
    match item {
        ItemResource::Message { role, status, content, .. } => {
            ItemResource::Message {
                id: ids::message_id(),
                role,
                status,
                content,
            }
        }
        ItemResource::Reasoning {
            summary,
            content,
            encrypted_content,
            status,
            ..
        } => ItemResource::Reasoning {
            id: ids::reasoning_id(),
            summary,
            content,
            encrypted_content,
            status,
        },
        ItemResource::FunctionCall {
            call_id, name, arguments, status, ..
        } => ItemResource::FunctionCall {
            id: ids::function_call_id(),
            call_id,
            name,
            arguments,
            status,
        },
        ItemResource::Compaction { encrypted_content, .. } => {
            ItemResource::Compaction {
                id: ids::compaction_id(),
                encrypted_content,
            }
        }
    }
}

fn push_message(
    turn: &mut TurnInput,
    keep_items: bool,
    id: Option<String>,
    role: Role,
    parts: Vec<ContentPart>,
) {
    if keep_items {
        let id = id.unwrap_or_else(ids::message_id);
        turn.items.push(message_row(id, role, parts.clone()));
    }
    turn.transcript.push(TranscriptItem::Message(Message { role, parts }));
}

fn push_reasoning(turn: &mut TurnInput, keep_items: bool, r: &InputReasoning) {
    let content = r.content.clone().unwrap_or_default();
    if keep_items {
        turn.items.push(row(&ItemResource::Reasoning {
            id: ids::reasoning_id(),
            summary: r.summary.clone(),
            content: content.clone(),
            encrypted_content: r.encrypted_content.clone(),
            status: ItemStatus::Completed,
        }));
    }
    turn.transcript.push(reasoning(
        &r.summary,
        &content,
        r.encrypted_content.clone(),
    ));
}

fn push_compaction(
    turn: &mut TurnInput,
    keep_items: bool,
    unseal: Unseal<'_>,
    c: &InputCompaction,
) -> Result<(), EngineError> {
    turn.transcript.push(unseal.open(&c.encrypted_content)?);
    if keep_items {
        // Stored sealed, as given: input_items lists it as the client sent
        // it, and a later turn opens it again.
        turn.items.push(row(&ItemResource::Compaction {
            id: c.id.clone().unwrap_or_else(ids::compaction_id),
            encrypted_content: c.encrypted_content.clone(),
        }));
    }
    Ok(())
}
