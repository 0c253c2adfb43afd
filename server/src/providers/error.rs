//! Upstream failures as providers report them. The engine decides what
//! each means for a run (retry, a client error, a failed stream). What an
//! upstream *said* is an [`UpstreamReport`]: its code may reach clients,
//! its text only the log (it can name the operator's upstream
//! organization, project or key).

use std::fmt;

/// Upstream failures.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    /// The upstream answered with an error status.
    #[error("upstream answered {status}: {report}")]
    Status {
        /// Upstream HTTP status.
        status: u16,
        /// What it said (scrubbed of our upstream keys).
        report: UpstreamReport,
        /// Retry-After seconds, for 429 and 503.
        retry_after: Option<u64>,
    },
    /// The request cannot be expressed in this provider's protocol: the
    /// gateway's own verdict (never upstream text), the client's to fix.
    #[error("{0}")]
    Unsupported(String),
    /// The upstream could not be reached or broke the connection.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream's answer did not start in time
    /// (`first_byte_timeout_secs`).
    #[error("no answer within {0} s (first_byte_timeout_secs)")]
    Timeout(u64),
    /// A stream went silent for too long (`idle_timeout_secs`).
    #[error("the stream went silent for {0} s (idle_timeout_secs)")]
    IdleTimeout(u64),
    /// The whole call took too long (`total_timeout_secs`).
    #[error("the call did not finish within {0} s (total_timeout_secs)")]
    TotalTimeout(u64),
    /// The upstream sent something we cannot read.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The upstream reported an error inside a successful stream (or a
    /// `failed` answer).
    #[error("upstream error mid-stream: {0}")]
    Stream(UpstreamReport),
}

/// What an upstream said about a failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamReport {
    /// Its machine-readable code (`server_error`, `overloaded_error`, …),
    /// kept only when it looks like one, so it may be shown to clients.
    pub code: Option<String>,
    /// Its text, for the log only.
    pub message: String,
}

impl UpstreamReport {
    /// A report of `message` with `code` (dropped unless code-shaped:
    /// 1 to 64 ASCII letters, digits, `_`, `-` or `.`).
    pub fn new(code: Option<&str>, message: impl Into<String>) -> Self {
        let code = code.map(str::trim).filter(|c| {
            !c.is_empty()
                && c.len() <= 64
                && c.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
                })
        });
        UpstreamReport {
            code: code.map(str::to_string),
            message: message.into(),
        }
    }

    /// The same report with `scrub` applied to its text.
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> Self {
        UpstreamReport { message: scrub(&self.message), ..self }
    }
}

/// The log form: the text, then the code.
impl fmt::Display for UpstreamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.message.is_empty() {
            "(no message)"
        } else {
            &self.message
        };
        match &self.code {
            Some(code) => write!(f, "{text} (code: {code})"),
            None => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UpstreamReport;

    #[test]
    fn only_code_shaped_codes_are_kept() {
        let cases = [
            (Some("server_error"), Some("server_error")),
            (Some("rate_limit_exceeded"), Some("rate_limit_exceeded")),
            (Some(" overloaded_error "), Some("overloaded_error")),
            (Some("model-1.5"), Some("model-1.5")),
            (Some(""), None),
            (Some("org org-acme has no quota"), None),
            (Some("sk-proj-1234/leak"), None),
            (None, None),
        ];
        for (code, want) in cases {
            let r = UpstreamReport::new(code, "text");
            assert_eq!(r.code.as_deref(), want, "{code:?}");
        }
        let long = "a".repeat(65);
        assert_eq!(UpstreamReport::new(Some(&long), "").code, None);
    }
}
