//! SSE keep-alives: after a stretch of silence (a long reasoning pause, a
//! slow upstream) a stream sends the comment line `: keep-alive`, which
//! every SSE client (the official SDKs included) ignores, so load
//! balancers and proxies that cut idle connections leave it open.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// The comment frame sent after [`KeepAlive`]'s silence.
pub const KEEPALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// A stream of SSE frames with a keep-alive comment after every `every`
/// of silence. It ends when the frames end; dropping it drops the
/// receiver, which tells the run that the client left.
pub struct KeepAlive {
    frames: mpsc::Receiver<Bytes>,
    every: Duration,
    timer: Pin<Box<Sleep>>,
}

impl KeepAlive {
    /// Wraps `frames`.
    pub fn new(frames: mpsc::Receiver<Bytes>, every: Duration) -> Self {
        let timer = Box::pin(tokio::time::sleep(every));
        KeepAlive { frames, every, timer }
    }

    fn rearm(&mut self) {
        let next = Instant::now() + self.every;
        self.timer.as_mut().reset(next);
    }
}

impl Stream for KeepAlive {
    type Item = Bytes;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Bytes>> {
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(frame)) => {
                self.rearm();
                Poll::Ready(Some(frame))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.rearm();
                    Poll::Ready(Some(Bytes::from_static(KEEPALIVE_FRAME)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn silence_gets_a_comment_and_frames_pass_through() {
        let (tx, rx) = mpsc::channel(4);
        let mut s = KeepAlive::new(rx, Duration::from_millis(20));
        tx.send(Bytes::from_static(b"data: 1\n\n")).await.unwrap();
        assert_eq!(s.next().await.unwrap(), &b"data: 1\n\n"[..]);
        // Silence: a comment, then another.
        assert_eq!(s.next().await.unwrap(), KEEPALIVE_FRAME);
        assert_eq!(s.next().await.unwrap(), KEEPALIVE_FRAME);
        tx.send(Bytes::from_static(b"data: 2\n\n")).await.unwrap();
        drop(tx);
        assert_eq!(s.next().await.unwrap(), &b"data: 2\n\n"[..]);
        assert!(s.next().await.is_none(), "ends with its frames");
    }
}
