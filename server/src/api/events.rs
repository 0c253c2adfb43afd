//! Server-sent stream events. Each event is its own named schema so typed
//! clients (our SDK included) get one type per event; `ResponseStreamEvent`
//! is the `oneOf` of all of them.

use schemars::JsonSchema;
use schemars::r#gen::SchemaGenerator;
use schemars::schema::{Schema, SchemaObject, SubschemaValidation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::item_events::*;
use super::items::StreamPart;
use super::types::{OutputItem, Response};

/// Declares a one-value string enum used as an event's `type` tag.
macro_rules! event_tag_impl {
    ($name:ident, $wire:literal) => {
        #[doc = concat!("The `", $wire, "` event type.")]
        #[derive(
            Clone,
            Copy,
            Debug,
            Default,
            Deserialize,
            Serialize,
            JsonSchema,
            PartialEq,
            Eq,
        )]
        pub enum $name {
            #[doc = concat!("`", $wire, "`")]
            #[default]
            #[serde(rename = $wire)]
            Tag,
        }
    };
}
pub(crate) use event_tag_impl as event_tag;

event_tag!(ResponseCreatedType, "response.created");
event_tag!(ResponseQueuedType, "response.queued");
event_tag!(ResponseInProgressType, "response.in_progress");
event_tag!(ResponseCompletedType, "response.completed");
event_tag!(ResponseIncompleteType, "response.incomplete");
event_tag!(ResponseFailedType, "response.failed");
event_tag!(OutputItemAddedType, "response.output_item.added");
event_tag!(OutputItemDoneType, "response.output_item.done");
event_tag!(ContentPartAddedType, "response.content_part.added");
event_tag!(ContentPartDoneType, "response.content_part.done");
event_tag!(OutputTextDeltaType, "response.output_text.delta");
event_tag!(OutputTextDoneType, "response.output_text.done");
event_tag!(RefusalDeltaType, "response.refusal.delta");
event_tag!(RefusalDoneType, "response.refusal.done");
event_tag!(ErrorEventType, "error");

/// Declares a lifecycle event carrying the full `Response` snapshot.
macro_rules! lifecycle_event {
    ($name:ident, $tag:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
        pub struct $name {
            /// Event type.
            #[serde(rename = "type")]
            pub kind: $tag,
            /// Position in the stream, from 0.
            pub sequence_number: i64,
            /// The full response snapshot.
            pub response: Response,
        }
    };
}

lifecycle_event!(
    ResponseCreatedEvent,
    ResponseCreatedType,
    "The response was created (always the first event)."
);
lifecycle_event!(
    ResponseQueuedEvent,
    ResponseQueuedType,
    "A background response is waiting for a worker."
);
lifecycle_event!(
    ResponseInProgressEvent,
    ResponseInProgressType,
    "Generation started."
);
lifecycle_event!(
    ResponseCompletedEvent,
    ResponseCompletedType,
    "Terminal: the response completed; carries full output and usage."
);
lifecycle_event!(
    ResponseIncompleteEvent,
    ResponseIncompleteType,
    "Terminal: the response ended early; see `incomplete_details`."
);
lifecycle_event!(
    ResponseFailedEvent,
    ResponseFailedType,
    "Terminal: the response failed (see `response.error`) or, for a \
     background run, was cancelled (`response.status` is `cancelled`)."
);

/// Declares an output-item event.
macro_rules! item_event {
    ($name:ident, $tag:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
        pub struct $name {
            /// Event type.
            #[serde(rename = "type")]
            pub kind: $tag,
            /// Position in the stream, from 0.
            pub sequence_number: i64,
            /// Index of the item in `output`.
            pub output_index: i64,
            /// The item.
            pub item: OutputItem,
        }
    };
}

item_event!(
    OutputItemAddedEvent,
    OutputItemAddedType,
    "An output item was added (content still empty)."
);
item_event!(
    OutputItemDoneEvent,
    OutputItemDoneType,
    "An output item is finished."
);

/// Declares a content-part event.
macro_rules! part_event {
    ($name:ident, $tag:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
        pub struct $name {
            /// Event type.
            #[serde(rename = "type")]
            pub kind: $tag,
            /// Position in the stream, from 0.
            pub sequence_number: i64,
            /// Id of the output item.
            pub item_id: String,
            /// Index of the item in `output`.
            pub output_index: i64,
            /// Index of the part in the item's `content`.
            pub content_index: i64,
            /// The part.
            pub part: StreamPart,
        }
    };
}

part_event!(
    ContentPartAddedEvent,
    ContentPartAddedType,
    "A content part was added (text still empty)."
);
part_event!(
    ContentPartDoneEvent,
    ContentPartDoneType,
    "A content part is finished."
);

/// A piece of output text.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct OutputTextDeltaEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: OutputTextDeltaType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the output item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `content`.
    pub content_index: i64,
    /// The new text.
    pub delta: String,
    /// Token log probabilities.
    pub logprobs: Vec<Value>,
    /// Random padding that normalizes event sizes (see
    /// `include_obfuscation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obfuscation: Option<String>,
}

/// The full output text of a part.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct OutputTextDoneEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: OutputTextDoneType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the output item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `content`.
    pub content_index: i64,
    /// The full text.
    pub text: String,
    /// Token log probabilities.
    pub logprobs: Vec<Value>,
}

/// A piece of a refusal.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct RefusalDeltaEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: RefusalDeltaType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the output item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `content`.
    pub content_index: i64,
    /// The new refusal text.
    pub delta: String,
}

/// The full refusal text of a part.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct RefusalDoneEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: RefusalDoneType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Id of the output item.
    pub item_id: String,
    /// Index of the item in `output`.
    pub output_index: i64,
    /// Index of the part in the item's `content`.
    pub content_index: i64,
    /// The full refusal.
    pub refusal: String,
}

/// The error object nested in an `error` event.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct StreamErrorDetail {
    /// Error type, for example `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Error code.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
    /// The parameter at fault, if any.
    pub param: Option<String>,
}

/// Terminal: the stream failed after it started.
///
/// Carries the spec's flat fields (`code`, `message`, `param`) and the
/// nested `error` object that OpenAI sends, so both typed clients and the
/// official SDKs (which raise on it) see it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ErrorEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: ErrorEventType,
    /// Position in the stream, from 0.
    pub sequence_number: i64,
    /// Error code.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
    /// The parameter at fault, if any.
    pub param: Option<String>,
    /// The same error, nested as OpenAI sends it.
    pub error: StreamErrorDetail,
}

/// Any server-sent event of a response stream.
///
/// Each SSE message has `event: <type>` and `data: <one JSON event>`.
/// Clients should ignore event types they do not know.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ResponseStreamEvent {
    /// `response.created`
    Created(ResponseCreatedEvent),
    /// `response.queued`
    Queued(ResponseQueuedEvent),
    /// `response.in_progress`
    InProgress(ResponseInProgressEvent),
    /// `response.completed`
    Completed(ResponseCompletedEvent),
    /// `response.incomplete`
    Incomplete(ResponseIncompleteEvent),
    /// `response.failed`
    Failed(ResponseFailedEvent),
    /// `response.output_item.added`
    OutputItemAdded(OutputItemAddedEvent),
    /// `response.output_item.done`
    OutputItemDone(OutputItemDoneEvent),
    /// `response.content_part.added`
    ContentPartAdded(ContentPartAddedEvent),
    /// `response.content_part.done`
    ContentPartDone(ContentPartDoneEvent),
    /// `response.output_text.delta`
    OutputTextDelta(OutputTextDeltaEvent),
    /// `response.output_text.done`
    OutputTextDone(OutputTextDoneEvent),
    /// `response.refusal.delta`
    RefusalDelta(RefusalDeltaEvent),
    /// `response.refusal.done`
    RefusalDone(RefusalDoneEvent),
    /// `response.reasoning_text.delta`
    ReasoningTextDelta(ReasoningTextDeltaEvent),
    /// `response.reasoning_text.done`
    ReasoningTextDone(ReasoningTextDoneEvent),
    /// `response.reasoning_summary_part.added`
    ReasoningSummaryPartAdded(ReasoningSummaryPartAddedEvent),
    /// `response.reasoning_summary_part.done`
    ReasoningSummaryPartDone(ReasoningSummaryPartDoneEvent),
    /// `response.reasoning_summary_text.delta`
    ReasoningSummaryTextDelta(ReasoningSummaryTextDeltaEvent),
    /// `response.reasoning_summary_text.done`
    ReasoningSummaryTextDone(ReasoningSummaryTextDoneEvent),
    /// `response.function_call_arguments.delta`
    FunctionCallArgumentsDelta(FunctionCallArgumentsDeltaEvent),
    /// `response.function_call_arguments.done`
    FunctionCallArgumentsDone(FunctionCallArgumentsDoneEvent),
    /// `error`
    Error(ErrorEvent),
}

impl ResponseStreamEvent {
    /// The wire `type` of the event (also its SSE `event:` name).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Created(_) => "response.created",
            Self::Queued(_) => "response.queued",
            Self::InProgress(_) => "response.in_progress",
            Self::Completed(_) => "response.completed",
            Self::Incomplete(_) => "response.incomplete",
            Self::Failed(_) => "response.failed",
            Self::OutputItemAdded(_) => "response.output_item.added",
            Self::OutputItemDone(_) => "response.output_item.done",
            Self::ContentPartAdded(_) => "response.content_part.added",
            Self::ContentPartDone(_) => "response.content_part.done",
            Self::OutputTextDelta(_) => "response.output_text.delta",
            Self::OutputTextDone(_) => "response.output_text.done",
            Self::RefusalDelta(_) => "response.refusal.delta",
            Self::RefusalDone(_) => "response.refusal.done",
            Self::ReasoningTextDelta(_) => "response.reasoning_text.delta",
            Self::ReasoningTextDone(_) => "response.reasoning_text.done",
            Self::ReasoningSummaryPartAdded(_) => {
                "response.reasoning_summary_part.added"
            }
            Self::ReasoningSummaryPartDone(_) => {
                "response.reasoning_summary_part.done"
            }
            Self::ReasoningSummaryTextDelta(_) => {
                "response.reasoning_summary_text.delta"
            }
            Self::ReasoningSummaryTextDone(_) => {
                "response.reasoning_summary_text.done"
            }
            Self::FunctionCallArgumentsDelta(_) => {
                "response.function_call_arguments.delta"
            }
            Self::FunctionCallArgumentsDone(_) => {
                "response.function_call_arguments.done"
            }
            Self::Error(_) => "error",
        }
    }

    /// Whether the event ends the stream.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed(_)
                | Self::Incomplete(_)
                | Self::Failed(_)
                | Self::Error(_)
        )
    }
}

impl JsonSchema for ResponseStreamEvent {
    fn schema_name() -> String {
        "ResponseStreamEvent".to_string()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let one_of = vec![
            g.subschema_for::<ResponseCreatedEvent>(),
            g.subschema_for::<ResponseQueuedEvent>(),
            g.subschema_for::<ResponseInProgressEvent>(),
            g.subschema_for::<ResponseCompletedEvent>(),
            g.subschema_for::<ResponseIncompleteEvent>(),
            g.subschema_for::<ResponseFailedEvent>(),
            g.subschema_for::<OutputItemAddedEvent>(),
            g.subschema_for::<OutputItemDoneEvent>(),
            g.subschema_for::<ContentPartAddedEvent>(),
            g.subschema_for::<ContentPartDoneEvent>(),
            g.subschema_for::<OutputTextDeltaEvent>(),
            g.subschema_for::<OutputTextDoneEvent>(),
            g.subschema_for::<RefusalDeltaEvent>(),
            g.subschema_for::<RefusalDoneEvent>(),
            g.subschema_for::<ReasoningTextDeltaEvent>(),
            g.subschema_for::<ReasoningTextDoneEvent>(),
            g.subschema_for::<ReasoningSummaryPartAddedEvent>(),
            g.subschema_for::<ReasoningSummaryPartDoneEvent>(),
            g.subschema_for::<ReasoningSummaryTextDeltaEvent>(),
            g.subschema_for::<ReasoningSummaryTextDoneEvent>(),
            g.subschema_for::<FunctionCallArgumentsDeltaEvent>(),
            g.subschema_for::<FunctionCallArgumentsDoneEvent>(),
            g.subschema_for::<ErrorEvent>(),
        ];
        SchemaObject {
            metadata: Some(Box::new(schemars::schema::Metadata {
                description: Some(
                    "Any server-sent event of a response stream. Clients \
                     should ignore event types they do not know."
                        .to_string(),
                ),
                ..Default::default()
            })),
            subschemas: Some(Box::new(SubschemaValidation {
                one_of: Some(one_of),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

/// An `error` event of a WebSocket connection that belongs to no run (a
/// malformed frame, a refused `response.create`, the connection limit):
/// the nested `error` object OpenAI sends plus the flat fields of the
/// stream's `error` event.
#[derive(Clone, Debug, Serialize)]
pub struct WebsocketErrorEvent {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: ErrorEventType,
    /// The HTTP status the same error has over HTTP (400, 401, 404, …).
    pub status: u16,
    /// Error code.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
    /// The parameter at fault, if any.
    pub param: Option<String>,
    /// The same error, nested as OpenAI sends it.
    pub error: StreamErrorDetail,
}

impl From<super::ApiError> for WebsocketErrorEvent {
    fn from(e: super::ApiError) -> Self {
        let status = e.status;
        let super::ErrorObject { message, kind, param, code } = e.error;
        WebsocketErrorEvent {
            kind: ErrorEventType::default(),
            status,
            code: code.clone(),
            message: message.clone(),
            param: param.clone(),
            error: StreamErrorDetail { kind, code, message, param },
        }
    }
}
