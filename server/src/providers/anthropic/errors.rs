//! Anthropic's error answers (`{"type":"error","error":{"type",
//! "message"}}`) as provider errors. The status is kept as the upstream
//! sent it (429 with its `Retry-After`, 529 `overloaded_error`): the
//! engine decides what each means. Reports never carry our key.

use serde::Deserialize;

use super::super::client::Answer;
use super::super::upstream;
use crate::providers::{ProviderError, UpstreamReport};

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
    /// As a report: `type` is Anthropic's code.
    pub fn report(&self) -> UpstreamReport {
        let message = if self.message.is_empty() {
            "upstream error"
        } else {
            &self.message
        };
        UpstreamReport::new(Some(&self.kind), message)
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

/// The error for a non-success answer (see [`upstream::status_error`]),
/// its report read in Anthropic's shape.
pub(super) async fn status_error(
    rsp: Answer,
    scrub: impl Fn(&str) -> String,
) -> ProviderError {
    upstream::status_error(rsp, report_of, scrub).await
}

/// The report of an error body, or its start when it is not Anthropic's
/// shape.
fn report_of(text: &str) -> UpstreamReport {
    match serde_json::from_str::<Envelope>(text) {
        Ok(e) => e.error.report(),
        Err(_) => UpstreamReport::new(None, upstream::truncate(text, 300)),
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
                "Overloaded (code: overloaded_error)",
            ),
            (r#"{"error":{"message":"m"}}"#, "m"),
            ("<html>bad gateway</html>", "<html>bad gateway</html>"),
            ("", "(no message)"),
        ];
        for (body, want) in cases {
            assert_eq!(report_of(body).to_string(), want, "body {body}");
        }
    }
}
