//! The SSE reader every streaming adapter reads its upstream through:
//! eventsource-stream, behind a guard for the one input it panics on.

use std::pin::Pin;

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

/// The UTF-8 byte order mark, which SSE allows before the first event.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// A body's SSE events.
pub type Events<E> =
    Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<E>>> + Send>>;

/// An upstream body as SSE events. A leading byte order mark is dropped
/// here (held back until the first bytes show whether they are one), and
/// an empty line, which SSE ignores, put first: eventsource-stream 0.2.3
/// removes a BOM at the start as one byte of a three-byte character and
/// panics (found by `cargo xtask fuzz`, also with two BOMs in a row).
pub fn events<S, E>(body: S) -> Events<E>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    let mut head = Some(Vec::new());
    let body = body.map(move |chunk| {
        let Some(seen) = head.as_mut() else {
            return chunk;
        };
        seen.extend_from_slice(&chunk?);
        if seen.len() < BOM.len() && BOM.starts_with(seen) {
            return Ok(Bytes::new());
        }
        let all = head.take().unwrap_or_default();
        let mut first = b"\n".to_vec();
        first.extend_from_slice(all.strip_prefix(BOM).unwrap_or(&all));
        Ok(Bytes::from(first))
    });
    Box::pin(body.eventsource())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pieces: &[&[u8]]) -> Vec<String> {
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> =
            pieces.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
        let sse = events(futures::stream::iter(chunks));
        futures::executor::block_on(sse.collect::<Vec<_>>())
            .into_iter()
            .map(|e| e.map(|e| e.data).unwrap_or_else(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped_however_it_arrives() {
        let body = b"\xef\xbb\xbfdata: one\n\ndata: two\n\n";
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(read(&[a, b]), ["one", "two"], "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(read(&bytewise), ["one", "two"]);
        assert_eq!(read(&[b"data: \xef\xbb\xbf\n\n"]), ["\u{feff}"]);
        // Only one BOM is one: the second starts the field name.
        let two = b"\xef\xbb\xbf\xef\xbb\xbfdata: one\n\ndata: two\n\n";
        assert_eq!(read(&[two]), ["two"]);
    }
}
