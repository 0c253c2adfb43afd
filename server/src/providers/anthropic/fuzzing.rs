//! The fuzz targets' entry point into this adapter's private parsers
//! (`maniac_server::fuzzing::anthropic_events`): Messages stream events as
//! `EventReader` applies them, and a whole message as `complete` reads it.

use super::stream::{EventParser, MessageBody, StreamEvent};
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
        let Ok(event) = serde_json::from_str::<StreamEvent>(data) else {
            break;
        };
        if parser.event(event, &mut out).is_err() || parser.finished {
            break;
        }
    }
    if let Ok(body) = serde_json::from_slice::<MessageBody>(whole) {
        out.extend(EventParser::completion(body).events);
    }
    out
}
