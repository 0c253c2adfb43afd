//! Fuzz targets: each a thin call into the server's own decoding of
//! untrusted bytes (request bodies, upstream stream chunks, SSE, WebSocket
//! frames). The coverage-guided fuzzer in `fuzz/` (`cargo xtask fuzz`)
//! calls them, and a plain test replays every committed corpus file
//! through them, so a crash once found stays a regression test. The
//! property is that none panics on any input; decoding errors are fine.

use std::convert::Infallible;

use eventsource_stream::Event;
use futures::StreamExt;

use crate::api::{
    CompactResponse, CreateChatCompletion, CreateResponse, TokenCountsBody,
    UpdateChatCompletion,
};
use crate::engine::socket::Incoming;
use crate::engine::validate;
use crate::providers::{anthropic, openai_chat, openai_responses, sse};

/// A fuzz target: bytes in, a panic the only failure.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/` names its binaries and
/// `fuzz/corpus/<name>/` its corpus.
pub const TARGETS: &[(&str, Target)] = &[
    ("create_body", create_body),
    ("chat_body", chat_body),
    ("compact_body", compact_body),
    ("token_counts_body", token_counts_body),
    ("chat_update_body", chat_update_body),
    ("openai_chat_chunks", openai_chat_chunks),
    ("anthropic_events", anthropic_events),
    ("openai_responses_events", openai_responses_events),
    ("sse_reader", sse_reader),
    ("websocket_frame", websocket_frame),
];

/// `POST /v1/responses`: the body as `TypedBody` decodes it, then the
/// engine's checks.
pub fn create_body(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<CreateResponse>(data) {
        let _ = validate::check(&req);
    }
}

/// `POST /v1/chat/completions`: the body as `TypedBody` decodes it, then
/// the chat front end's checks.
pub fn chat_body(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<CreateChatCompletion>(data) {
        let _ = crate::engine::chat::check(&req);
    }
}

/// `POST /v1/responses/compact`: decoded as the handler does (with the
/// failing field's path), then checked as the create body it becomes.
pub fn compact_body(data: &[u8]) {
    if let Some(req) = decode::<CompactResponse>(data) {
        let _ = validate::check(&CreateResponse::from(req));
    }
}

/// `POST /v1/responses/input_tokens`: decoded as the handler does, then
/// checked as the create body it becomes.
pub fn token_counts_body(data: &[u8]) {
    if let Some(req) = decode::<TokenCountsBody>(data) {
        let _ = validate::check(&CreateResponse::from(req));
    }
}

/// `POST /v1/chat/completions/{id}`: the body, then its metadata check.
pub fn chat_update_body(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<UpdateChatCompletion>(data) {
        let _ = validate::metadata(req.metadata.as_ref());
    }
}

/// An OpenAI-compatible chat upstream: each line of `data` one streamed
/// chunk's JSON, applied in order; the whole input also read as a
/// non-streaming answer.
pub fn openai_chat_chunks(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    openai_chat::fuzzing::parse(text.lines(), data);
}

/// An Anthropic upstream: each line of `data` one Messages stream event's
/// JSON, applied in order; the whole input also read as a message.
pub fn anthropic_events(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    anthropic::fuzzing::parse(text.lines(), data);
}

/// A Responses upstream: each line of `data` one stream event's JSON,
/// applied in order; the whole input also read as a response object.
pub fn openai_responses_events(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    openai_responses::fuzzing::parse(text.lines(), data);
}

/// The SSE reader over an upstream body, as the adapters use it
/// (`providers::sse::events` over the body's byte chunks). The first byte picks
/// the size of the pieces the rest arrives in; a body that reads without
/// error must give the same events whatever its pieces, as a network
/// splits them anywhere.
pub fn sse_reader(data: &[u8]) {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let piece = usize::from(size % 64) + 1;
    let split = read_sse(body.chunks(piece));
    let whole = read_sse(std::iter::once(body));
    if let (Some(split), Some(whole)) = (split, whole) {
        assert_eq!(split, whole, "SSE events depend on how the body is cut");
    }
}

/// The events of a body arriving in `pieces` (None: the reader failed).
fn read_sse<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Option<Vec<Event>> {
    let chunks: Vec<Result<bytes::Bytes, Infallible>> =
        pieces.map(|p| Ok(bytes::Bytes::copy_from_slice(p))).collect();
    let mut sse = sse::events(futures::stream::iter(chunks));
    let mut events = Vec::new();
    futures::executor::block_on(async {
        while let Some(ev) = sse.next().await {
            events.push(ev.ok()?);
        }
        Some(events)
    })
}

/// A WebSocket text frame, as the connection reads each client event,
/// then the engine's checks of the create body it carries.
pub fn websocket_frame(data: &[u8]) {
    // tungstenite hands over text frames only as valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Incoming::Create(turn) = crate::http::websocket::parse_frame(text) {
        let _ = validate::check(&turn.request);
    }
}

/// A body as the handlers of untyped bodies decode it.
fn decode<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
    let mut json = serde_json::Deserializer::from_slice(data);
    let value = serde_path_to_error::deserialize(&mut json).ok()?;
    json.end().ok()?;
    Some(value)
}
