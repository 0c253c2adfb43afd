//! In-process live state of background runs: the event feed of each run
//! running here (so local readers follow it without touching the
//! database), cancellation tokens, queue wake-ups, and per-run wake-ups
//! for readers of runs that execute on other replicas. Events reach a feed
//! only after they are durable in the store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::builder::Encoded;

/// Events a feed keeps in memory; readers further behind read the log.
pub const FEED_TAIL: usize = 512;

/// The latest events of one running run.
pub struct Feed {
    tail: Mutex<VecDeque<Encoded>>,
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
    /// Events after the cursor left the tail: read them from the log
    /// (up to `frames`' first) before these.
    pub behind: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Feed {
    fn new(prelude: Vec<Encoded>) -> Feed {
        let mut tail: VecDeque<Encoded> = prelude.into();
        while tail.len() > FEED_TAIL {
            tail.pop_front();
        }
        Feed {
            tail: Mutex::new(tail),
            version: watch::channel(0).0,
            closed: AtomicBool::new(false),
        }
    }

    /// Adds durable events and wakes readers.
    pub fn publish(&self, evs: &[Encoded]) {
        if evs.is_empty() {
            return;
        }
        {
            let mut tail = lock(&self.tail);
            tail.extend(evs.iter().cloned());
            while tail.len() > FEED_TAIL {
                tail.pop_front();
            }
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

    /// Frames with `seq > after` that the tail holds.
    pub fn read_after(&self, after: i64) -> FeedRead {
        let closed = self.closed.load(Ordering::SeqCst);
        let tail = lock(&self.tail);
        // Saturating: `after` comes from the client (`starting_after`
        // may be i64::MAX).
        let next = after.saturating_add(1);
        let behind = tail.front().is_some_and(|e| next < e.seq);
        let frames: Vec<Bytes> = tail
            .iter()
            .filter(|e| e.seq > after)
            .map(|e| e.frame.clone())
            .collect();
        let last_seq = tail.back().map_or(after, |e| e.seq.max(after));
        FeedRead { frames, last_seq, closed, behind }
    }
}

/// Live state shared by the engine's tasks.
#[derive(Default)]
pub struct Hub {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    /// Readers of runs without a local feed, by run.
    waiters: Mutex<HashMap<String, Weak<Notify>>>,
    /// Woken when a feed opens (readers waiting for a queued run).
    pub feed_opened: Notify,
    /// Woken when a run is queued (the dispatcher).
    pub queue: Notify,
}

impl Hub {
    /// Opens the feed of a run starting here.
    pub fn open_feed(&self, id: &str, prelude: Vec<Encoded>) -> Arc<Feed> {
        let feed = Arc::new(Feed::new(prelude));
        lock(&self.feeds).insert(id.to_string(), feed.clone());
        self.feed_opened.notify_waiters();
        self.wake(id);
        feed
    }

    /// The feed of a run running here.
    pub fn feed(&self, id: &str) -> Option<Arc<Feed>> {
        lock(&self.feeds).get(id).cloned()
    }

    /// Closes and forgets a run's feed and cancellation token.
    pub fn finish(&self, id: &str) {
        let feed = lock(&self.feeds).remove(id);
        if let Some(feed) = feed {
            feed.close();
        }
        lock(&self.cancels).remove(id);
    }

    /// The cancellation token of a run running here (created on demand).
    pub fn cancel_token(&self, id: &str) -> CancellationToken {
        lock(&self.cancels).entry(id.to_string()).or_default().clone()
    }

    /// Cancels a run if it runs here; true if it did.
    pub fn cancel(&self, id: &str) -> bool {
        match lock(&self.cancels).get(id).cloned() {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Number of runs executing here.
    pub fn running(&self) -> usize {
        lock(&self.feeds).len()
    }

    /// The wake-up of readers of run `id` (shared by all its readers here).
    pub fn waiter(&self, id: &str) -> Arc<Notify> {
        let mut w = lock(&self.waiters);
        if let Some(n) = w.get(id).and_then(Weak::upgrade) {
            return n;
        }
        if w.len() >= 1024 {
            w.retain(|_, n| n.strong_count() > 0);
        }
        let n = Arc::new(Notify::new());
        w.insert(id.to_string(), Arc::downgrade(&n));
        n
    }

    /// Wakes the readers of run `id` (new events on another replica).
    pub fn wake(&self, id: &str) {
        let n = lock(&self.waiters).get(id).and_then(Weak::upgrade);
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Wakes every reader (a lost notice: nobody knows which run moved).
    pub fn wake_all(&self) {
        let all: Vec<Arc<Notify>> =
            lock(&self.waiters).values().filter_map(Weak::upgrade).collect();
        for n in all {
            n.notify_waiters();
        }
        self.feed_opened.notify_waiters();
    }
}
