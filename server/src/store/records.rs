//! What goes into the store and what comes back out: plain records that
//! both backends read and write the same way, so callers never see a row
//! type of either database.

use crate::api::ResponseStatus;

/// An API key as the store knows it (never the key itself).
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// Key id, `key_…`.
    pub key_id: String,
    /// Owning organization id.
    pub org_id: String,
    /// Owning organization name.
    pub org_name: String,
    /// Whether the key was revoked.
    pub revoked: bool,
}

/// A key as listed to operators.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Key id.
    pub key_id: String,
    /// Organization name.
    pub org_name: String,
    /// Label.
    pub name: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Revocation time (ms).
    pub revoked_at: Option<i64>,
}

/// An item to store: its id and JSON (`ItemResource`).
#[derive(Clone, Debug)]
pub struct ItemRow {
    /// Item id.
    pub id: String,
    /// The `ItemResource` JSON.
    pub body: String,
}

/// A stream event to store: sequence number and JSON.
#[derive(Clone, Debug)]
pub struct EventRow {
    /// `sequence_number`.
    pub seq: i64,
    /// The event JSON.
    pub body: String,
}

/// A response to insert, with everything written in one transaction.
#[derive(Clone, Debug)]
pub struct NewResponse {
    /// Response id.
    pub id: String,
    /// Organization id.
    pub org_id: String,
    /// Chained predecessor.
    pub previous_response_id: Option<String>,
    /// Status.
    pub status: ResponseStatus,
    /// Background run.
    pub background: bool,
    /// The `Response` JSON.
    pub body: String,
    /// For background runs: what the worker needs to run it.
    pub run_request: Option<String>,
    /// The response's own input items.
    pub input_items: Vec<ItemRow>,
    /// Output items.
    pub output_items: Vec<ItemRow>,
    /// Initial stream events (background runs).
    pub events: Vec<EventRow>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A stored response as read back.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    /// The `Response` JSON.
    pub body: String,
    /// Status.
    pub status: ResponseStatus,
    /// Background run.
    pub background: bool,
    /// Replica holding the run's lease, if running.
    pub lease_owner: Option<String>,
}

/// A background run claimed by a worker.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    /// Response id.
    pub id: String,
    /// Organization id.
    pub org_id: String,
    /// The queued `Response` JSON.
    pub body: String,
    /// The run request JSON.
    pub run_request: String,
    /// Next free sequence number in the event log.
    pub next_seq: i64,
}

/// A run whose lease expired (its worker died).
#[derive(Clone, Debug)]
pub struct ExpiredRun {
    /// Response id.
    pub id: String,
    /// The stale lease owner.
    pub lease_owner: String,
    /// Latest `Response` snapshot JSON.
    pub body: String,
    /// Next free sequence number in the event log.
    pub next_seq: i64,
}

/// The end of a run, written in one transaction guarded by the lease.
#[derive(Clone, Debug)]
pub struct RunEnd {
    /// Final status.
    pub status: ResponseStatus,
    /// Final `Response` JSON.
    pub body: String,
    /// Output items.
    pub output_items: Vec<ItemRow>,
    /// Remaining events, terminal one last.
    pub events: Vec<EventRow>,
}

/// A wake-up from another gateway process sharing the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A background run was queued.
    Queued,
    /// A run appended events (or ended).
    Events(String),
    /// Cancellation of a run was requested.
    Cancel(String),
}

/// A chat completion to store (`store: true`), written in one transaction.
#[derive(Clone, Debug)]
pub struct NewChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// Organization id.
    pub org_id: String,
    /// Model as requested (`provider/model`), for the `model` filter.
    pub model: String,
    /// The `metadata` object as JSON text (`{}` when none).
    pub metadata: String,
    /// The `ChatCompletion` JSON as answered.
    pub body: String,
    /// The request's messages, in order: ids `<completion id>-<n>` and JSON.
    pub messages: Vec<ItemRow>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A stored chat completion as read back.
#[derive(Clone, Debug)]
pub struct StoredChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// The `ChatCompletion` JSON as answered at creation.
    pub body: String,
    /// The current `metadata` JSON object text (updates change only this).
    pub metadata: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// Which stored chat completions to list.
#[derive(Clone, Debug, Default)]
pub struct ChatListQuery {
    /// Start after this completion id (keyset cursor).
    pub after: Option<String>,
    /// At most this many rows.
    pub limit: i64,
    /// Newest first when true, oldest first otherwise.
    pub descending: bool,
    /// Only this model (exact match).
    pub model: Option<String>,
    /// Only completions whose metadata has every one of these key/value
    /// pairs.
    pub metadata: Vec<(String, String)>,
}

/// A page of a stored completion's request messages.
#[derive(Clone, Debug, Default)]
pub struct MessagesQuery {
    /// Start after this message id.
    pub after: Option<String>,
    /// At most this many rows.
    pub limit: i64,
    /// Last message first when true.
    pub descending: bool,
}

/// Page of a response's input items, in transcript order.
pub type Items = Vec<ItemRow>;
