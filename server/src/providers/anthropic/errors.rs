//! Anthropic's error answers (`{"type":"error","error":{"type",
//! "message"}}`) as provider errors. The status is kept as the upstream
//! sent it (429 with its `Retry-After`, 529 `overloaded_error`): the
//! engine decides what each means. Messages never carry our key.

use serde::Deserialize;

use super::super::client::Answer;
use super::super::upstream;
use crate::providers::ProviderError;

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

/// The error for a non-success answer (see [`upstream::status_error`]),
/// its message read in Anthropic's shape.
pub(super) async fn status_error(
    rsp: Answer,
    scrub: impl Fn(&str) -> String,
) -> ProviderError {
    upstream::status_error(rsp, message_of, scrub).await
}

/// The message of an error body, or its start when it is not Anthropic's
/// shape.
fn message_of(text: &str) -> String {
    match serde_json::from_str::<Envelope>(text) {
        Ok(e) => e.error.describe(),
        Err(_) => upstream::truncate(text, 300),
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
