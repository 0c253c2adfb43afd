//! The store's contract, one trait per concern: keys and organizations,
//! responses and their items, the queue of background runs with its event
//! log, and stored chat completions. `Store` is all four plus what a whole
//! database answers.

use async_trait::async_trait;

use super::StoreResult;
use super::records::*;

/// Everything the gateway keeps: one database holds all four concerns.
#[async_trait]
pub trait Store: KeyStore + ResponseStore + RunQueue + ChatStore {
    /// Backend name for logs (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether every migration this binary knows is applied (and none
    /// failed half way): readiness, since a replica on an older schema
    /// cannot serve.
    async fn migrations_applied(&self) -> StoreResult<bool>;
}

/// API keys and the organizations that own them.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Looks up a key by its SHA-256 hash (hex).
    async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyRecord>>;
    /// Creates a key (and its organization if needed).
    async fn create_key(
        &self,
        org_name: &str,
        label: Option<&str>,
        key_id: &str,
        key_hash: &str,
    ) -> StoreResult<KeyInfo>;
    /// Lists all keys.
    async fn list_keys(&self) -> StoreResult<Vec<KeyInfo>>;
    /// Revokes a key; false if there is no such key.
    async fn revoke_key(&self, key_id: &str) -> StoreResult<bool>;
    /// Number of keys, revoked ones included.
    async fn count_keys(&self) -> StoreResult<i64>;
    /// An organization id by id or name.
    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<String>>;
    /// The server secret `name`: the one already kept, or else `candidate`,
    /// kept from now on. Every replica gets the same answer.
    async fn server_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> StoreResult<String>;
}

/// Responses with their input and output items, always read within an
/// organization.
#[async_trait]
pub trait ResponseStore: Send + Sync + 'static {
    /// Inserts a response with its items and events in one transaction.
    async fn insert_response(&self, r: NewResponse) -> StoreResult<()>;
    /// Reads a response of `org`.
    async fn get_response(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<StoredResponse>>;
    /// Deletes a response of `org` with its items and events.
    async fn delete_response(&self, org: &str, id: &str) -> StoreResult<bool>;
    /// The transcript a chained turn inherits from `id`: the input and
    /// output items of `id` and its predecessors, oldest first, read with
    /// one recursive query. None if `id` is not a response of `org`.
    async fn chain_items(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<Items>>;
    /// The response's own input items, in order.
    async fn own_input_items(&self, id: &str) -> StoreResult<Items>;
    /// A stored item of `org` by item id.
    async fn find_item(
        &self,
        org: &str,
        item_id: &str,
    ) -> StoreResult<Option<String>>;
}

/// Background runs: queued rows claimed under a lease, their event log,
/// and the wake-ups that tell other processes about them.
#[async_trait]
pub trait RunQueue: Send + Sync + 'static {
    /// Wake-ups published by other processes (PostgreSQL LISTEN/NOTIFY).
    /// None for a backend used by one process only (SQLite). Implementations
    /// publish them from `insert_response` (background), `append_events`,
    /// `finish_run`, `cancel_queued` and `request_cancel`.
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        None
    }

    /// Claims the oldest queued run under a lease for `owner`.
    async fn claim_next(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> StoreResult<Option<ClaimedRun>>;
    /// Extends the lease; false when the run is no longer ours.
    async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        until: i64,
    ) -> StoreResult<bool>;
    /// Appends events (and updates the snapshot) while `owner` holds the
    /// lease; false when the run is no longer ours.
    async fn append_events(
        &self,
        id: &str,
        owner: &str,
        events: &[EventRow],
        snapshot: Option<&str>,
    ) -> StoreResult<bool>;
    /// Ends a run held by `owner`; false when it is no longer ours.
    async fn finish_run(
        &self,
        id: &str,
        owner: &str,
        end: RunEnd,
    ) -> StoreResult<bool>;
    /// Cancels a run that is still queued; false if it was claimed or ended.
    async fn cancel_queued(
        &self,
        org: &str,
        id: &str,
        end: RunEnd,
    ) -> StoreResult<bool>;
    /// Flags a running run for cancellation (seen by its worker).
    async fn request_cancel(&self, org: &str, id: &str) -> StoreResult<()>;
    /// Whether cancellation was requested.
    async fn cancel_requested(&self, id: &str) -> StoreResult<bool>;
    /// Runs whose lease expired before `now`.
    async fn expired_runs(&self, now: i64) -> StoreResult<Vec<ExpiredRun>>;
    /// Events of a response of `org` with `seq > after`, in order.
    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>>;
    /// Deletes event logs of finished runs older than `before`.
    async fn prune_events(&self, before: i64) -> StoreResult<u64>;
}

/// Stored chat completions and their request messages, always read within
/// an organization.
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// Inserts a completion with its messages in one transaction; durable
    /// when it returns.
    async fn insert_chat_completion(
        &self,
        c: NewChatCompletion,
    ) -> StoreResult<()>;
    /// A completion of `org`.
    async fn get_chat_completion(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<Option<StoredChatCompletion>>;
    /// A page of `org`'s completions ordered by (created_at, id); None when
    /// `after` is not a completion of `org`.
    async fn list_chat_completions(
        &self,
        org: &str,
        q: &ChatListQuery,
    ) -> StoreResult<Option<Vec<StoredChatCompletion>>>;
    /// Replaces the metadata of a completion of `org`; None if there is none.
    async fn update_chat_metadata(
        &self,
        org: &str,
        id: &str,
        metadata: &str,
    ) -> StoreResult<Option<StoredChatCompletion>>;
    /// Deletes a completion of `org` and its messages; false if there is none.
    async fn delete_chat_completion(
        &self,
        org: &str,
        id: &str,
    ) -> StoreResult<bool>;
    /// A page of a completion's messages in order (ItemRow: message id +
    /// JSON); None if the completion is not `org`'s, or `after` is not one
    /// of its messages.
    async fn chat_messages(
        &self,
        org: &str,
        id: &str,
        q: &MessagesQuery,
    ) -> StoreResult<Option<Vec<ItemRow>>>;
}
