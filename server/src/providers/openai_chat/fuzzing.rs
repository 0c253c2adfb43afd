//! The fuzz targets' entry point into this adapter's private parsers
//! (`maniac_server::fuzzing::openai_chat_chunks`): stream chunks as
//! `ChunkReader` applies them, and a whole answer as `complete` reads it.

use super::chunks::{ChatChunk, ChatCompletion, ChunkParser};
use crate::providers::ProviderEvent;

/// Applies each chunk payload (one SSE event's `data`) in order, as the
/// stream reader does, stopping where it would; then reads `whole` as a
/// non-streaming answer. Returns the events (decoding errors are fine;
/// only a panic is a finding).
pub(crate) fn parse<'a>(
    chunks: impl IntoIterator<Item = &'a str>,
    whole: &[u8],
) -> Vec<ProviderEvent> {
    let mut parser = ChunkParser::default();
    let mut out = Vec::new();
    for data in chunks {
        if data.trim() == "[DONE]" {
            break;
        }
        let Ok(mut chunk) = serde_json::from_str::<ChatChunk>(data) else {
            break;
        };
        if chunk.error.take().is_some() {
            break;
        }
        parser.chunk(chunk, &mut out);
    }
    if let Ok(body) = serde_json::from_slice::<ChatCompletion>(whole)
        && let Some(c) = ChunkParser::completion(body)
    {
        out.extend(c.events);
    }
    out
}
