//! What every HTTP adapter does the same way around its protocol: turn a
//! non-success answer into a [`ProviderError`] (bounded, quick read of the
//! body, `Retry-After` kept, keys scrubbed), read an upstream's model
//! list, and give a finished stream's connection back to the pool.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;

use super::client::{Answer, Client, ClientError};
use super::discovery::{MAX_LIST_BYTES, parse_model_list};
use super::{ProviderError, UpstreamReport};

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
/// report `report_of` finds in the body (read within 5 s, at most
/// [`MAX_ERROR_BYTES`]), with `scrub` applied to its text.
pub async fn status_error(
    rsp: Answer,
    report_of: fn(&str) -> UpstreamReport,
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
        report: report_of(&text).scrubbed(scrub),
        retry_after,
    }
}

/// OpenAI's `{"error": {"message", "code", "type"}}` (the code, else the
/// type), else the body's start without a code.
pub fn openai_report(text: &str) -> UpstreamReport {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return UpstreamReport::new(None, truncate(text, 300));
    };
    openai_error_report(&v["error"])
        .unwrap_or_else(|| UpstreamReport::new(None, truncate(text, 300)))
}

/// The report of an OpenAI-shaped `error` object (`message`, and `code`
/// or else `type`), if it is one.
pub fn openai_error_report(
    error: &serde_json::Value,
) -> Option<UpstreamReport> {
    let message = error.get("message").and_then(|m| m.as_str());
    // OpenRouter and some proxies send numeric codes.
    let code = match error.get("code") {
        Some(serde_json::Value::String(c)) => Some(c.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
    .or_else(|| error.get("type").and_then(|t| t.as_str()).map(str::to_string));
    (message.is_some() || code.is_some()).then(|| {
        UpstreamReport::new(code.as_deref(), message.unwrap_or_default())
    })
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
    fn reports_are_read_or_cut() {
        let cases = [
            (r#"{"error":{"message":"m"}}"#, None, "m"),
            (r#"{"error":{"message":"m","code":"c1"}}"#, Some("c1"), "m"),
            (
                r#"{"error":{"message":"m","type":"server_error","code":null}}"#,
                Some("server_error"),
                "m",
            ),
            ("<html>bad gateway</html>", None, "<html>bad gateway</html>"),
        ];
        for (body, code, message) in cases {
            let r = openai_report(body);
            assert_eq!(r.code.as_deref(), code, "{body}");
            assert_eq!(r.message, message, "{body}");
        }
        let long = "x".repeat(400);
        assert_eq!(openai_report(&long).message.chars().count(), 301);
        assert_eq!(truncate("héllo", 2), "hé…");
    }
}
