//! Store operation latency, measured at one place: [`TimedStore`] wraps
//! the store every part of the gateway uses and times each call into
//! `maniac_store_operation_duration_seconds` by operation and outcome.
//! A call costs two clock reads and one histogram observation.

use std::sync::Arc;
use std::time::Instant;

use super::Metrics;
use crate::store::{
    ChatListQuery, ChatStore, ClaimedRun, EventRow, ExpiredRun, ItemRow, Items,
    KeyInfo, KeyRecord, KeyStore, MessagesQuery, NewChatCompletion,
    NewResponse, Notice, ResponseStore, RunEnd, RunQueue, SharedStore, Store,
    StoreResult, StoredChatCompletion, StoredResponse,
};

/// A store whose every call is timed.
pub struct TimedStore {
    inner: SharedStore,
    metrics: Metrics,
}

impl TimedStore {
    /// Wraps `inner`; the result is what the gateway shares.
    pub fn wrap(inner: SharedStore, metrics: Metrics) -> SharedStore {
        Arc::new(TimedStore { inner, metrics })
    }

    async fn time<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let out = call.await;
        self.metrics.store_operation(operation, out.is_ok(), started.elapsed());
        out
    }
}

/// Implements a store trait by timing each method's call to the inner
/// store. The whole `impl` is generated so `async_trait` sees the methods.
macro_rules! timed {
    ($trait:ident { $(
        fn $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty;
    )* }) => {
        #[async_trait::async_trait]
        impl $trait for TimedStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> StoreResult<$ret> {
                    self.time(stringify!($name), self.inner.$name($($arg),*))
                        .await
                }
            )*
        }
    };
}

timed!(KeyStore {
    fn find_key(key_hash: &str) -> Option<KeyRecord>;
    fn create_key(
        org_name: &str,
        label: Option<&str>,
        key_id: &str,
        key_hash: &str
    ) -> KeyInfo;
    fn list_keys() -> Vec<KeyInfo>;
    fn revoke_key(key_id: &str) -> bool;
    fn count_keys() -> i64;
    fn find_org(id_or_name: &str) -> Option<String>;
    fn server_secret(name: &str, candidate: &str) -> String;
});

timed!(ResponseStore {
    fn insert_response(r: NewResponse) -> ();
    fn get_response(org: &str, id: &str) -> Option<StoredResponse>;
    fn delete_response(org: &str, id: &str) -> bool;
    fn chain_items(org: &str, id: &str) -> Option<Items>;
    fn own_input_items(id: &str) -> Items;
    fn find_item(org: &str, item_id: &str) -> Option<String>;
});

timed!(ChatStore {
    fn insert_chat_completion(c: NewChatCompletion) -> ();
    fn get_chat_completion(
        org: &str,
        id: &str
    ) -> Option<StoredChatCompletion>;
    fn list_chat_completions(
        org: &str,
        q: &ChatListQuery
    ) -> Option<Vec<StoredChatCompletion>>;
    fn update_chat_metadata(
        org: &str,
        id: &str,
        metadata: &str
    ) -> Option<StoredChatCompletion>;
    fn delete_chat_completion(org: &str, id: &str) -> bool;
    fn chat_messages(
        org: &str,
        id: &str,
        q: &MessagesQuery
    ) -> Option<Vec<ItemRow>>;
});

#[async_trait::async_trait]
impl RunQueue for TimedStore {
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        self.inner.notices()
    }

    async fn claim_next(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> StoreResult<Option<ClaimedRun>> {
        self.time("claim_next", self.inner.claim_next(owner, lease_ms, now))
            .await
    }

    async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        until: i64,
    ) -> StoreResult<bool> {
        self.time("renew_lease", self.inner.renew_lease(id, owner, until)).await
    }

    async fn append_events(
        &self,
        id: &str,
        owner: &str,
        events: &[EventRow],
        snapshot: Option<&str>,
    ) -> StoreResult<bool> {
        let call = self.inner.append_events(id, owner, events, snapshot);
        self.time("append_events", call).await
    }

    async fn finish_run(
        &self,
        id: &str,
        owner: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        self.time("finish_run", self.inner.finish_run(id, owner, end)).await
    }

    async fn cancel_queued(
        &self,
        org: &str,
        id: &str,
        end: RunEnd,
    ) -> StoreResult<bool> {
        self.time("cancel_queued", self.inner.cancel_queued(org, id, end)).await
    }

    async fn request_cancel(&self, org: &str, id: &str) -> StoreResult<()> {
        self.time("request_cancel", self.inner.request_cancel(org, id)).await
    }

    async fn cancel_requested(&self, id: &str) -> StoreResult<bool> {
        self.time("cancel_requested", self.inner.cancel_requested(id)).await
    }

    async fn expired_runs(&self, now: i64) -> StoreResult<Vec<ExpiredRun>> {
        self.time("expired_runs", self.inner.expired_runs(now)).await
    }

    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        self.time("events_after", self.inner.events_after(id, after, limit))
            .await
    }

    async fn prune_events(&self, before: i64) -> StoreResult<u64> {
        self.time("prune_events", self.inner.prune_events(before)).await
    }
}

#[async_trait::async_trait]
impl Store for TimedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.time("ping", self.inner.ping()).await
    }

    async fn migrations_applied(&self) -> StoreResult<bool> {
        self.time("migrations_applied", self.inner.migrations_applied()).await
    }
}
