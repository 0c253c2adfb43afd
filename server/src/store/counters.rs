//! Process-wide counters of the store's run traffic: how many write
//! transactions background runs cost, how many NOTIFYs they send and how
//! many event-log reads their followers make. They cost one relaxed atomic
//! add each; the bench reads them from the line logged at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters (process-wide, like a metrics registry).
#[derive(Debug, Default)]
pub struct Counters {
    /// Write transactions on a run (claim, append, renew, finish).
    pub run_writes: AtomicU64,
    /// NOTIFYs sent (PostgreSQL).
    pub notifies: AtomicU64,
    /// Event-log reads (`events_after`).
    pub event_reads: AtomicU64,
    /// Response reads (`get_response`).
    pub response_reads: AtomicU64,
}

/// This process's counters.
pub static COUNTERS: Counters = Counters {
    run_writes: AtomicU64::new(0),
    notifies: AtomicU64::new(0),
    event_reads: AtomicU64::new(0),
    response_reads: AtomicU64::new(0),
};

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Logs the counters (at shutdown).
pub fn log() {
    let c = &COUNTERS;
    tracing::info!(
        run_writes = c.run_writes.load(Ordering::Relaxed),
        notifies = c.notifies.load(Ordering::Relaxed),
        event_reads = c.event_reads.load(Ordering::Relaxed),
        response_reads = c.response_reads.load(Ordering::Relaxed),
        "store counters"
    );
}
