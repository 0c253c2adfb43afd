//! Log output batched in memory: a formatted line is appended to a buffer
//! under a lock, and a flusher thread writes the buffer to stderr every
//! 100 ms. Warnings and errors are written at once, with whatever was
//! buffered before them, so the lines that matter at 3 a.m. are never
//! waiting in memory when the process dies.
//!
//! Why not `tracing_appender::non_blocking`: its channel woke the writer
//! thread for every line, and each wake-up ended in a `write(2)`; at one
//! request at a time that thread took ~10% of the gateway's core.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in memory.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A buffer this large is written by the logging thread itself.
const MAX_BUFFERED: usize = 1 << 20;

struct Shared {
    buf: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes out what is buffered; stderr errors are dropped (there is
    /// nowhere left to report them).
    fn flush(&self) {
        let pending = std::mem::take(&mut *self.lock());
        if !pending.is_empty() {
            let _ = io::stderr().lock().write_all(&pending);
        }
    }
}

/// The writer handed to `tracing_subscriber::fmt`.
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Flushes what is left and stops the flusher when dropped: keep it for
/// the life of the process.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchedStderr {
    /// Starts the flusher thread.
    pub fn start() -> (BatchedStderr, FlushGuard) {
        let shared = Arc::new(Shared {
            buf: Mutex::new(Vec::with_capacity(64 << 10)),
            stop: AtomicBool::new(false),
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || {
                while !flusher.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(FLUSH_EVERY);
                    flusher.flush();
                }
            })
            .ok();
        (
            BatchedStderr { shared: shared.clone() },
            FlushGuard { shared, thread },
        )
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.shared.flush();
    }
}

/// Collects one event's output; urgent events are written when dropped.
pub struct EventWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buf = self.shared.lock();
        buf.extend_from_slice(bytes);
        if buf.len() >= MAX_BUFFERED {
            let pending = std::mem::take(&mut *buf);
            drop(buf);
            io::stderr().lock().write_all(&pending)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.shared.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { shared: &self.shared, urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_wait_and_warnings_flush_everything_before_them() {
        let (w, guard) = BatchedStderr::start();
        let writer = |urgent| EventWriter { shared: &w.shared, urgent };
        let mut info = writer(false);
        info.write_all(b"first\n").unwrap();
        drop(info);
        assert_eq!(w.shared.lock().as_slice(), b"first\n", "info is held");
        let mut warn = writer(true);
        warn.write_all(b"second\n").unwrap();
        assert_eq!(w.shared.lock().len(), 13, "written when the event ends");
        drop(warn);
        assert!(w.shared.lock().is_empty(), "a warning flushes all");
        writer(false).write_all(b"third\n").unwrap();
        drop(guard);
        assert!(w.shared.lock().is_empty(), "the guard flushes the rest");
    }
}
