//! Anthropic's error answers (`{"type":"error","error":{"type",
//! "message"}}`) as provider errors. The status is kept as the upstream
//! sent it (429 with its `Retry-After`, 529 `overloaded_error`): the
//! engine decides what each means. Messages never carry our key.

use std::time::Duration;

use http::header;
use serde::Deserialize;

use super::super::client::Answer;
use crate::providers::ProviderError;

/// Largest error body read from an upstream (only its message is kept).
const MAX_ERROR_BYTES: usize = 64 << 10;

/// The `error` object of an error body or of a stream's `error` event.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct ErrorBody {
    /// `invalid_request_error`, `overloaded_error`, …
    #[serde(default, rename = "type")]
    pub kind: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    /// `message (type)`, or whichever of them is there.
    pub fn describe(&self) -> String {
        match (self.message.is_empty(), self.kind.is_empty()) {
            (false, false) => format!("{} ({})", self.message, self.kind),
            (false, true) => self.message.clone(),
            (true, false) => self.kind.clone(),
            (true, true) => "upstream error".into(),
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

/// The error for a non-success answer: its status, `Retry-After` and
/// message (the body read briefly and boundedly; `scrub` applied).
pub(super) async fn status_error(
    rsp: Answer,
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

/// The message of an error body, or its start when it is not Anthropic's
/// shape.
fn message_of(text: &str) -> String {
    match serde_json::from_str::<Envelope>(text) {
        Ok(e) => e.error.describe(),
        Err(_) => truncate(text, 300),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_read_as_message_and_type() {
        let cases = [
            (
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "Overloaded (overloaded_error)",
            ),
            (r#"{"error":{"message":"m"}}"#, "m"),
            ("<html>bad gateway</html>", "<html>bad gateway</html>"),
            ("", ""),
        ];
        for (body, want) in cases {
            assert_eq!(message_of(body), want, "body {body}");
        }
    }
}
