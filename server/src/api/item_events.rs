//! Stream events of reasoning and function-call items, each its own named
//! schema like the message events in `events.rs`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::events::event_tag;
use super::items::SummaryPart;

event_tag!(ReasoningTextDeltaType, "response.reasoning_text.delta");
event_tag!(ReasoningTextDoneType, "response.reasoning_text.done");
event_tag!(
    ReasoningSummaryPartAddedType,
    "response.reasoning_summary_part.added"
);
event_tag!(
    ReasoningSummaryPartDoneType,
    "response.reasoning_summary_part.done"
);
event_tag!(
    ReasoningSummaryTextDeltaType,
    "response.reasoning_summary_text.delta"
);
event_tag!(
    ReasoningSummaryTextDoneType,
    "response.reasoning_summary_text.done"
);
event_tag!(
    FunctionCallArgumentsDeltaType,
    "response.function_call_arguments.delta"
);
event_tag!(
    FunctionCallArgumentsDoneType,
    "response.function_call_arguments.done"
);

/// A piece of raw reasoning text.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ReasoningTextDeltaEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: ReasoningTextDeltaType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the reasoning item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `content`.
    pub content_index: i64,
    /// The new text.
    pub delta: String,
}

/// The full raw reasoning text of a part.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ReasoningTextDoneEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: ReasoningTextDoneType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the reasoning item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `content`.
    pub content_index: i64,
    /// The full text.
    pub text: String,
}

/// Declares a reasoning-summary part event.
macro_rules! summary_part_event {
    ($name:ident, $tag:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
        pub struct $name {
            /// Event type.
            #[serde(rename = "type")]
            pub kind: $tag,
            /// Position in the stream, from 0.
            pub sequence_number: i64,
            /// Id of the reasoning item.
            pub item_id: String,
            /// Index of the item in `output`.
            pub output_index: i64,
            /// Index of the part in the item's `summary`.
            pub summary_index: i64,
            /// The part.
            pub part: SummaryPart,
        }
    };
}

summary_part_event!(
    ReasoningSummaryPartAddedEvent,
    ReasoningSummaryPartAddedType,
    "A reasoning summary part was added (text still empty)."
);
summary_part_event!(
    ReasoningSummaryPartDoneEvent,
    ReasoningSummaryPartDoneType,
    "A reasoning summary part is finished."
);

/// A piece of reasoning summary text.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ReasoningSummaryTextDeltaEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: ReasoningSummaryTextDeltaType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the reasoning item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `summary`.
    pub summary_index: i64,
    /// The new text.
    pub delta: String,
}

/// The full text of a reasoning summary part.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ReasoningSummaryTextDoneEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: ReasoningSummaryTextDoneType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the reasoning item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `summary`.
    pub summary_index: i64,
    /// The full text.
    pub text: String,
}

/// A piece of a function call's arguments.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct FunctionCallArgumentsDeltaEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: FunctionCallArgumentsDeltaType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the function-call item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// The new piece of JSON text.
    pub delta: String,
}

/// A function call's full arguments.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct FunctionCallArgumentsDoneEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: FunctionCallArgumentsDoneType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the function-call item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// The function's name.
    pub name: String,
    /// The full JSON arguments, as text.
    pub arguments: String,
}
