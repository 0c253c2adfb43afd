//! Following a background run's events: replayed from the log, then live
//! from the local feed (a run executing here) or from the log on each
//! per-run wake-up (a run executing on another replica). Leaving never
//! affects the run.

use std::time::Duration;

use super::builder::Encoded;
use super::*;
use crate::store::StoreError;

/// Events read from the log per query.
const PAGE: i64 = 1000;

/// Sent after 15 s of silence so proxies keep the stream open.
const KEEPALIVE: &[u8] = b": keep-alive\n\n";

impl Engine {
    /// Streams a run's events with `sequence_number > after`: from the log,
    /// then live until the terminal event. Leaving never affects the run.
    pub(crate) fn follow(
        &self,
        org: String,
        id: String,
        after: i64,
    ) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.follow_into(&org, &id, after, &tx).await {
                tracing::warn!(response_id = %id, error = %e, "event stream reader stopped");
            }
        });
        rx
    }

    async fn follow_into(
        &self,
        org: &str,
        id: &str,
        mut last: i64,
        tx: &mpsc::Sender<Bytes>,
    ) -> Result<(), StoreError> {
        let hub = &self.inner.hub;
        let waiter = hub.waiter(id);
        let poll = Duration::from_millis(self.inner.config.poll_ms.min(250));
        let mut idle = Duration::ZERO;
        loop {
            let woken = waiter.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(feed) = hub.feed(id) {
                return self.follow_feed(&feed, id, last, tx).await;
            }
            let rows = self.inner.store.events_after(id, last, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            if rows.is_empty() && self.run_ended(org, id).await? {
                // Ended (or deleted) with nothing after the cursor; read
                // once more in case it ended between the two queries.
                for row in self.inner.store.events_after(id, last, PAGE).await?
                {
                    let ev = Encoded::from_log(row.seq, &row.body);
                    if tx.send(ev.frame).await.is_err() {
                        return Ok(());
                    }
                }
                return Ok(());
            }
            if !rows.is_empty() {
                idle = Duration::ZERO;
            }
            if send_rows(rows, &mut last, tx).await {
                return Ok(());
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(poll) => idle += poll,
                _ = tx.closed() => return Ok(()),
            }
            if idle >= Duration::from_secs(15) {
                idle = Duration::ZERO;
                if tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// Follows a local run's feed from `after` until it closes; events
    /// older than the feed's tail are read from the log first.
    async fn follow_feed(
        &self,
        feed: &hub::Feed,
        id: &str,
        mut last: i64,
        tx: &mpsc::Sender<Bytes>,
    ) -> Result<(), StoreError> {
        let mut changes = feed.subscribe();
        loop {
            changes.borrow_and_update();
            let read = feed.read_after(last);
            if read.behind {
                // Durable before published: the log has all of them.
                let rows =
                    self.inner.store.events_after(id, last, PAGE).await?;
                let caught_up = rows.is_empty();
                if send_rows(rows, &mut last, tx).await {
                    return Ok(());
                }
                if !caught_up {
                    continue;
                }
            }
            for frame in read.frames {
                if tx.send(frame).await.is_err() {
                    return Ok(());
                }
            }
            last = read.last_seq;
            if read.closed {
                // Events published with the close are already read.
                let tail = feed.read_after(last);
                for frame in tail.frames {
                    if tx.send(frame).await.is_err() {
                        return Ok(());
                    }
                }
                return Ok(());
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return Ok(()) },
                _ = tx.closed() => return Ok(()),
            }
        }
    }

    /// Whether a run can produce no more events.
    async fn run_ended(&self, org: &str, id: &str) -> Result<bool, StoreError> {
        Ok(match self.inner.store.get_response(org, id).await? {
            Some(r) => r.status.is_terminal(),
            None => true,
        })
    }
}

/// Drops the `obfuscation` padding from replayed delta events (for
/// `include_obfuscation=false`). The field is always serialized last.
/// Sends logged events in order, moving `last`; true when the stream is
/// over (its terminal event was sent, or the client left).
async fn send_rows(
    rows: Vec<crate::store::EventRow>,
    last: &mut i64,
    tx: &mpsc::Sender<Bytes>,
) -> bool {
    for row in rows {
        let ev = Encoded::from_log(row.seq, &row.body);
        *last = ev.seq;
        if tx.send(ev.frame).await.is_err() || ev.terminal {
            return true;
        }
    }
    false
}

pub(crate) fn without_obfuscation(
    mut rx: mpsc::Receiver<Bytes>,
) -> mpsc::Receiver<Bytes> {
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if tx.send(strip_obfuscation(frame)).await.is_err() {
                return;
            }
        }
    });
    out
}

fn strip_obfuscation(frame: Bytes) -> Bytes {
    const DELTA: &[u8] = b"event: response.output_text.delta\n";
    const FIELD: &str = ",\"obfuscation\":\"";
    if !frame.starts_with(DELTA) {
        return frame;
    }
    let Ok(text) = std::str::from_utf8(&frame) else { return frame };
    match text.rfind(FIELD) {
        Some(start) => match text[start + FIELD.len()..].find('"') {
            Some(len) => {
                let end = start + FIELD.len() + len + 1;
                Bytes::from(format!("{}{}", &text[..start], &text[end..]))
            }
            None => frame,
        },
        None => frame,
    }
}
