//! Log output batched in memory: a formatted line is appended to a buffer
//! under a lock, and a flusher thread writes the buffer to stderr every
//! 100 ms. Warnings and errors wake the flusher at once, so the lines that
//! matter at 3 a.m. are not left waiting in memory. No task that logs ever
//! writes to stderr itself: when stderr stalls (a full pipe) the buffer
//! fills up to [`MAX_BUFFERED`] and later lines are dropped and counted,
//! and the count is logged once stderr moves again.
//!
//! Why not `tracing_appender::non_blocking`: its channel woke the writer
//! thread for every line, and each wake-up ended in a `write(2)`; at one
//! request at a time that thread took ~10% of the gateway's core.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in memory.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Most bytes held while the flusher cannot write; beyond, lines are
/// dropped.
pub const MAX_BUFFERED: usize = 1 << 20;

struct Shared {
    buf: Mutex<Vec<u8>>,
    stop: AtomicBool,
    /// Writes dropped because the buffer was full.
    dropped: AtomicU64,
    /// The flusher, woken by urgent lines.
    flusher: OnceLock<std::thread::Thread>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
        }
    }

    /// Writes out what is buffered (and how much was dropped); errors of
    /// the output are dropped (there is nowhere left to report them).
    fn flush_to(&self, out: &mut dyn Write) {
        let pending = std::mem::take(&mut *self.lock());
        if !pending.is_empty() {
            let _ = out.write_all(&pending);
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "WARN maniac::logging: {dropped} log writes were dropped: \
                 the log output was not keeping up"
            );
        }
        let _ = out.flush();
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
    thread: Option<JoinHandle<Box<dyn Write + Send>>>,
}

impl BatchedStderr {
    /// Starts the flusher thread, writing to stderr.
    pub fn start() -> (BatchedStderr, FlushGuard) {
        Self::start_with(Box::new(io::stderr()))
    }

    /// Starts the flusher thread, writing to `out`.
    pub fn start_with(
        mut out: Box<dyn Write + Send>,
    ) -> (BatchedStderr, FlushGuard) {
        let shared = Arc::new(Shared {
            buf: Mutex::new(Vec::with_capacity(64 << 10)),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            flusher: OnceLock::new(),
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || {
                while !flusher.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(FLUSH_EVERY);
                    flusher.flush_to(&mut *out);
                }
                out
            })
            .ok();
        if let Some(t) = &thread {
            let _ = shared.flusher.set(t.thread().clone());
        }
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
            if let Ok(mut out) = t.join() {
                self.shared.flush_to(&mut *out);
                return;
            }
        }
        self.shared.flush_to(&mut io::stderr());
    }
}

/// Collects one event's output; urgent events wake the flusher when
/// dropped.
pub struct EventWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buf = self.shared.lock();
        if buf.len() + bytes.len() <= MAX_BUFFERED {
            buf.extend_from_slice(bytes);
        } else {
            drop(buf);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.wake();
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
            self.shared.wake();
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
    use std::sync::mpsc;

    use super::*;

    /// An output that blocks until the test lets it go, then records.
    struct Gated {
        gate: mpsc::Receiver<()>,
        seen: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let _ = self.gate.recv();
            self.seen.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_never_blocks_a_logger_and_drops_are_counted() {
        let (open, gate) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (w, guard) = BatchedStderr::start_with(Box::new(Gated {
            gate,
            seen: seen.clone(),
        }));
        let line = [b'x'; 1023];
        // Four times what the buffer holds, while the output is stuck:
        // every write returns at once.
        let started = std::time::Instant::now();
        for _ in 0..(4 * MAX_BUFFERED / 1024) {
            let mut ev = w.make_writer();
            ev.write_all(&line).unwrap();
            ev.write_all(b"\n").unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(w.shared.lock().len() <= MAX_BUFFERED);
        assert!(w.shared.dropped.load(Ordering::Relaxed) > 0);
        // Unstick the output for good: what was kept and the drop count
        // come out.
        std::thread::spawn(move || while open.send(()).is_ok() {});
        drop(guard);
        let out = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
        assert!(out.contains("log writes were dropped"), "{}", out.len());
        assert!(out.len() >= MAX_BUFFERED / 2);
    }

    #[test]
    fn lines_reach_the_output_in_order_written_by_the_flusher() {
        let (open, gate) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (w, guard) = BatchedStderr::start_with(Box::new(Gated {
            gate,
            seen: seen.clone(),
        }));
        std::thread::spawn(move || while open.send(()).is_ok() {});
        let mut info = EventWriter { shared: &w.shared, urgent: false };
        info.write_all(b"first\n").unwrap();
        drop(info);
        let mut warn = EventWriter { shared: &w.shared, urgent: true };
        warn.write_all(b"second\n").unwrap();
        drop(warn);
        // Written by the flusher, not by us: wait for it (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().as_slice() != b"first\nsecond\n" {
            assert!(std::time::Instant::now() < deadline, "not flushed");
            std::thread::yield_now();
        }
        drop(guard);
    }
}
