//! Turns request input (and an inherited chain) into provider messages and
//! the items we store, giving every input message an id.

use crate::api::{
    ApiError, ContentPart, Input, InputItem, ItemResource, ItemStatus,
    MessageContent, Role,
};
use crate::providers::Message;
use crate::store::ItemRow;

use crate::ids;

/// A stored item converted back to a provider message.
pub fn message_from_item(body: &str) -> Option<Message> {
    match serde_json::from_str::<ItemResource>(body).ok()? {
        ItemResource::Message { role, content, .. } => {
            Some(Message { role, parts: content })
        }
    }
}

/// The item we store for one message.
pub fn item_for(id: String, role: Role, parts: Vec<ContentPart>) -> ItemRow {
    let item = ItemResource::Message {
        id: id.clone(),
        role,
        status: ItemStatus::Completed,
        content: parts,
    };
    let body = serde_json::to_string(&item).unwrap_or_default();
    ItemRow { id, body }
}

/// Resolved input of one turn: messages for the provider and rows to store.
pub struct TurnInput {
    /// This turn's messages.
    pub messages: Vec<Message>,
    /// This turn's items, with ids.
    pub items: Vec<ItemRow>,
}

/// Converts the request's `input`. Item references are resolved with
/// `lookup` (a stored item's JSON, or None). Stored items are only built
/// when `keep_items` (the hot `store: false` path skips them).
pub async fn resolve_input<F, Fut>(
    input: Option<&Input>,
    keep_items: bool,
    lookup: F,
) -> Result<TurnInput, ApiError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, ApiError>>,
{
    let mut turn = TurnInput { messages: Vec::new(), items: Vec::new() };
    let items = match input {
        None => return Ok(turn),
        Some(Input::Text(text)) => {
            let parts = vec![ContentPart::InputText { text: text.clone() }];
            push(&mut turn, keep_items, None, Role::User, parts);
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
                        return Err(ApiError::invalid_value(
                            &format!("input[{i}].content[{j}].image_url"),
                            "Images must be given by `image_url` (an https \
                             URL or a data URI); `file_id` is not supported.",
                        ));
                    }
                }
                push(&mut turn, keep_items, m.id.clone(), m.role, parts);
            }
            InputItem::ItemReference(r) => {
                let body = lookup(r.id.clone()).await?.ok_or_else(|| {
                    ApiError::new(
                        404,
                        "invalid_request_error",
                        format!("Item with id '{}' not found.", r.id),
                        Some("input"),
                        None,
                    )
                })?;
                let msg = message_from_item(&body).ok_or_else(|| {
                    ApiError::internal("unreadable stored item")
                })?;
                push(&mut turn, keep_items, None, msg.role, msg.parts);
            }
        }
    }
    Ok(turn)
}

fn push(
    turn: &mut TurnInput,
    keep_items: bool,
    id: Option<String>,
    role: Role,
    parts: Vec<ContentPart>,
) {
    if keep_items {
        let id = id.unwrap_or_else(ids::message_id);
        turn.items.push(item_for(id, role, parts.clone()));
    }
    turn.messages.push(Message { role, parts });
}
