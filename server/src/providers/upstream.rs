//! What every HTTP adapter does the same way around its protocol: turn a
//! non-success answer into a [`ProviderError`] (bounded, quick read of the
//! body, `Retry-After` kept, keys scrubbed), read an upstream's model
//! list, and give a finished stream's connection back to the pool.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;

use super::ProviderError;
use super::client::{Answer, Client, ClientError};
use super::discovery::{MAX_LIST_BYTES, parse_model_list};

/// Largest error body read from an upstream (only its message is kept).
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// An upstream's SSE events, as the adapters read them.
pub type SseStream = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<ClientError>,
                >,
            > + Send,
    >,
>;

/// The error for a non-success answer: its status, `Retry-After` and the
/// message `message_of` finds in the body (read within 5 s, at most
/// [`MAX_ERROR_BYTES`]), with `scrub` applied.
pub async fn status_error(
    rsp: Answer,
    message_of: fn(&str) -> String,
    scrub: impl Fn(&str) -> String,
) -> ProviderError {
    let status = rsp.status.as_u16();
    let retry_after = rsp
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = tokio::time::timeout(
        Duration::from_secs(5),
        rsp.bytes(MAX_ERROR_BYTES),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|b| String::from_utf8_lossy(&b).into_owned())
    .unwrap_or_default();
    ProviderError::Status {
        status,
        message: scrub(&message_of(&text)),
        retry_after,
    }
}

/// OpenAI's `{"error": {"message"}}`, else the body's start.
pub fn openai_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| truncate(text, 300))
}

/// `s` cut to `max` characters (marked with `…`).
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The model ids an upstream lists at `path` (`{"data": [{"id"}]}`).
pub async fn fetch_models(
    http: &Client,
    path: &PathAndQuery,
    headers: &[(HeaderName, HeaderValue)],
    scrub: impl Fn(&str) -> String,
) -> Result<Vec<String>, String> {
    let rsp =
        http.get(path, headers).await.map_err(|e| scrub(&e.to_string()))?;
    if !rsp.status.is_success() {
        return Err(format!("the upstream answered {}", rsp.status));
    }
    let body =
        rsp.bytes(MAX_LIST_BYTES).await.map_err(|e| scrub(&e.to_string()))?;
    parse_model_list(&body)
}

/// Reads the rest of a finished stream so its connection goes back to the
/// pool: at once when it is already here, else in a short-lived task, so
/// the answer is never held up by it.
pub fn drain_rest(sse: &mut SseStream) {
    let mut rest = std::mem::replace(sse, Box::pin(futures::stream::empty()));
    loop {
        match rest.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let drain = async { while rest.next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_or_cut() {
        assert_eq!(openai_message(r#"{"error":{"message":"m"}}"#), "m");
        let long = "x".repeat(400);
        assert_eq!(openai_message(&long).chars().count(), 301);
        assert_eq!(truncate("héllo", 2), "hé…");
    }
}
