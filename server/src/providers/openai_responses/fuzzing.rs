//! The fuzz targets' entry point into this adapter's private parsers
//! (`maniac_server::fuzzing::openai_responses_events`): Responses stream
//! events as `EventReader` applies them, and a whole response object as
//! `complete` reads it.

use super::events::{EventParser, ResponseObject, StreamEvent};
use crate::providers::ProviderEvent;

/// Applies each event payload (one SSE event's `data`) in order, as the
/// stream reader does, stopping where it would; then reads `whole` as a
/// non-streaming answer. Returns the events (decoding errors are fine;
/// only a panic is a finding).
pub(crate) fn parse<'a>(
    events: impl IntoIterator<Item = &'a str>,
    whole: &[u8],
) -> Vec<ProviderEvent> {
    let mut parser = EventParser::default();
    let mut out = Vec::new();
    for data in events {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            continue;
        }
        let Ok(event) = serde_json::from_str::<StreamEvent>(data) else {
            break;
        };
        if parser.event(event, &mut out).is_err() || parser.finished {
            break;
        }
    }
    if let Ok(body) = serde_json::from_slice::<ResponseObject>(whole)
        && let Ok(c) = EventParser::completion(body)
    {
        out.extend(c.events);
    }
    out
}
