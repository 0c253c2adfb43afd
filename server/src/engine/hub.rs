//! In-process live state of background runs: the event feed of each run
//! running here (so local readers follow it without touching the
//! database), cancellation tokens, and queue wake-ups. Events reach a feed
//! only after they are durable in the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::builder::Encoded;

/// Every event of one running run, from `sequence_number` 0.
pub struct Feed {
    events: Mutex<Vec<Encoded>>,
    version: watch::Sender<u64>,
    closed: AtomicBool,
}

/// What a reader got from a feed.
pub struct FeedRead {
    /// SSE frames after the requested sequence number.
    pub frames: Vec<Bytes>,
    /// Sequence number of the last frame returned (or the cursor).
    pub last_seq: i64,
    /// Whether the run ended (no more events will come).
    pub closed: bool,
}

impl Feed {
    fn new(prelude: Vec<Encoded>) -> Feed {
        Feed {
            events: Mutex::new(prelude),
            version: watch::channel(0).0,
            closed: AtomicBool::new(false),
        }
    }

    /// Adds durable events and wakes readers.
    pub fn publish(&self, evs: &[Encoded]) {
        if evs.is_empty() {
            return;
        }
        if let Ok(mut events) = self.events.lock() {
            events.extend_from_slice(evs);
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Marks the run ended and wakes readers.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.version.send_modify(|v| *v += 1);
    }

    /// A receiver that changes whenever events are published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Frames with `seq > after`.
    pub fn read_after(&self, after: i64) -> FeedRead {
        let closed = self.closed.load(Ordering::SeqCst);
        let events = match self.events.lock() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        let first = events.first().map_or(0, |e| e.seq);
        let start = (after + 1 - first).max(0) as usize;
        let frames: Vec<Bytes> =
            events.iter().skip(start).map(|e| e.frame.clone()).collect();
        let last_seq = events.last().map_or(after, |e| e.seq.max(after));
        FeedRead { frames, last_seq, closed }
    }
}

/// Live state shared by the engine's tasks.
#[derive(Default)]
pub struct Hub {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    /// Woken when a feed opens (readers waiting for a queued run).
    pub feed_opened: Notify,
    /// Woken when a run is queued (the dispatcher).
    pub queue: Notify,
}

impl Hub {
    /// Opens the feed of a run starting here.
    pub fn open_feed(&self, id: &str, prelude: Vec<Encoded>) -> Arc<Feed> {
        let feed = Arc::new(Feed::new(prelude));
        if let Ok(mut feeds) = self.feeds.lock() {
            feeds.insert(id.to_string(), feed.clone());
        }
        self.feed_opened.notify_waiters();
        feed
    }

    /// The feed of a run running here.
    pub fn feed(&self, id: &str) -> Option<Arc<Feed>> {
        self.feeds.lock().ok()?.get(id).cloned()
    }

    /// Closes and forgets a run's feed and cancellation token.
    pub fn finish(&self, id: &str) {
        if let Some(feed) =
            self.feeds.lock().ok().and_then(|mut f| f.remove(id))
        {
            feed.close();
        }
        if let Ok(mut c) = self.cancels.lock() {
            c.remove(id);
        }
    }

    /// The cancellation token of a run running here (created on demand).
    pub fn cancel_token(&self, id: &str) -> CancellationToken {
        match self.cancels.lock() {
            Ok(mut c) => c.entry(id.to_string()).or_default().clone(),
            Err(_) => CancellationToken::new(),
        }
    }

    /// Cancels a run if it runs here; true if it did.
    pub fn cancel(&self, id: &str) -> bool {
        match self.cancels.lock().ok().and_then(|c| c.get(id).cloned()) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Number of runs executing here.
    pub fn running(&self) -> usize {
        self.feeds.lock().map_or(0, |f| f.len())
    }
}
