//! The engine's own errors. They say what went wrong in the engine's
//! terms; each front end maps them to its wire shape once (`http/error.rs`
//! for the OpenAI error envelope, the builder for a stream's `error`
//! event), so a second front end can give the same error its own shape.

use std::fmt;

use crate::providers::{ProviderError, UpstreamReport};
use crate::store::StoreError;

/// What a request or run can fail with.
#[derive(Debug)]
pub enum EngineError {
    /// The request is wrong; `param` names the field, `code` is the
    /// machine-readable reason.
    Invalid {
        /// What is wrong and what to do.
        message: String,
        /// The parameter at fault.
        param: Option<String>,
        /// Machine-readable code (`invalid_value`, …).
        code: Option<&'static str>,
    },
    /// A resource the request names does not exist (or is another
    /// organization's: indistinguishable on purpose).
    NotFound {
        /// What was not found.
        message: String,
        /// The parameter that named it.
        param: Option<String>,
        /// Machine-readable code (`model_not_found`, …).
        code: Option<&'static str>,
    },
    /// The request conflicts with the resource's state.
    Conflict(String),
    /// The upstream failed before the run produced output.
    Upstream {
        /// The provider's configured name.
        provider: String,
        /// What it did.
        error: ProviderError,
    },
    /// The database failed.
    Store(StoreError),
    /// The gateway is temporarily unable to serve this (503).
    Unavailable(String),
    /// A bug or corrupt state; the message is for the log only.
    Internal(String),
}

/// The class of an error: what a wire mapping needs to pick a status,
/// a type and a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client's request is wrong.
    InvalidRequest,
    /// A named resource is missing.
    NotFound,
    /// The resource's state forbids it.
    Conflict,
    /// The upstream rate-limits us.
    RateLimited,
    /// The upstream rejected the operator's credentials.
    UpstreamAuth,
    /// The upstream rejected the request itself (its 4xx).
    UpstreamRejected,
    /// The upstream failed or could not be reached.
    UpstreamFailed,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// Temporarily unavailable (database away, overloaded).
    Unavailable,
    /// Our fault.
    Internal,
}

impl EngineError {
    /// A 400-class error naming `param`.
    pub fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        EngineError::Invalid {
            message: message.into(),
            param: param.map(str::to_string),
            code,
        }
    }

    /// An invalid value of `param`.
    pub fn invalid_value(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(message, Some(param), Some("invalid_value"))
    }

    /// A response id that is missing, deleted or another organization's.
    pub fn response_not_found(id: &str) -> Self {
        EngineError::NotFound {
            message: format!("Response with id '{id}' not found."),
            param: None,
            code: None,
        }
    }

    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Invalid { .. } => ErrorKind::InvalidRequest,
            EngineError::NotFound { .. } => ErrorKind::NotFound,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Upstream { error, .. } => upstream_kind(error),
            EngineError::Store(StoreError::Unavailable(_))
            | EngineError::Unavailable(_) => ErrorKind::Unavailable,
            EngineError::Store(_) | EngineError::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// `(code, type)` in OpenAI's vocabulary, shared by both front ends.
    pub fn code_and_type(&self) -> (&'static str, &'static str) {
        match self.kind() {
            ErrorKind::RateLimited => {
                ("rate_limit_exceeded", "rate_limit_error")
            }
            ErrorKind::UpstreamAuth => ("upstream_auth_failed", "server_error"),
            ErrorKind::UpstreamRejected => {
                ("upstream_rejected", "invalid_request_error")
            }
            ErrorKind::UpstreamTimeout => ("upstream_timeout", "server_error"),
            ErrorKind::UpstreamFailed => match self {
                EngineError::Upstream {
                    error: ProviderError::Status { .. },
                    ..
                } => ("upstream_error", "server_error"),
                _ => ("upstream_unavailable", "server_error"),
            },
            ErrorKind::InvalidRequest => {
                ("invalid_value", "invalid_request_error")
            }
            ErrorKind::NotFound => ("not_found", "invalid_request_error"),
            ErrorKind::Conflict => ("conflict", "invalid_request_error"),
            ErrorKind::Unavailable => ("service_unavailable", "server_error"),
            ErrorKind::Internal => ("server_error", "server_error"),
        }
    }

    /// The message a client may see (internals stay in the log).
    pub fn public_message(&self) -> String {
        match self {
            EngineError::Invalid { message, .. }
            | EngineError::NotFound { message, .. }
            | EngineError::Conflict(message) => message.clone(),
            EngineError::Upstream { provider, error } => {
                upstream_message(provider, error)
            }
            EngineError::Store(StoreError::Unavailable(_)) => {
                "The database is temporarily unavailable. Please retry.".into()
            }
            EngineError::Unavailable(what) => {
                format!("The {what} is temporarily unavailable. Please retry.")
            }
            EngineError::Store(_) | EngineError::Internal(_) => {
                "The server had an error while processing your request. \
                 Please retry; if it persists, contact the operator with the \
                 x-request-id header."
                    .into()
            }
        }
    }

    /// Seconds the client should wait before retrying, if the upstream
    /// said.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            EngineError::Upstream {
                error: ProviderError::Status { retry_after, .. },
                ..
            } => *retry_after,
            _ => None,
        }
    }

    /// The ending of a run that failed with this error after its stream
    /// started: `(code, type, message)` of the terminal `error` event.
    /// The message is the gateway's own, as before the stream started.
    pub fn stream_failure(&self) -> (String, String, String) {
        let (code, kind) = match self.kind() {
            ErrorKind::RateLimited => {
                ("rate_limit_exceeded", "rate_limit_error")
            }
            _ => ("server_error", "server_error"),
        };
        (code.to_string(), kind.to_string(), self.public_message())
    }
}

fn upstream_kind(e: &ProviderError) -> ErrorKind {
    match e {
        ProviderError::Status { status: 429, .. } => ErrorKind::RateLimited,
        ProviderError::Status { status: 401 | 403, .. } => {
            ErrorKind::UpstreamAuth
        }
        // Anthropic's `overloaded_error`: a temporary state, retryable.
        ProviderError::Status { status: 529, .. } => ErrorKind::Unavailable,
        ProviderError::Status { status, .. } if *status < 500 => {
            ErrorKind::UpstreamRejected
        }
        ProviderError::Unsupported(_) => ErrorKind::UpstreamRejected,
        ProviderError::Timeout(_)
        | ProviderError::IdleTimeout(_)
        | ProviderError::TotalTimeout(_) => ErrorKind::UpstreamTimeout,
        _ => ErrorKind::UpstreamFailed,
    }
}

/// `answered 500 (code: server_error)`: the upstream's status and code,
/// never its text (that goes to the log).
fn answered(status: u16, report: &UpstreamReport) -> String {
    match &report.code {
        Some(code) => format!("answered {status} (code: {code})"),
        None => format!("answered {status}"),
    }
}

/// The client's view of an upstream failure: the gateway's own words,
/// plus the upstream's status and code. Upstream text can name the
/// operator's organization or project, or echo a key: it stays in the log.
fn upstream_message(provider: &str, e: &ProviderError) -> String {
    match e {
        ProviderError::Status { status: 429, report, .. } => format!(
            "The upstream provider `{provider}` is rate limiting requests: \
             it {}.",
            answered(429, report)
        ),
        ProviderError::Status {
            status: status @ (401 | 403), report, ..
        } => {
            format!(
                "The upstream provider `{provider}` rejected the gateway's \
                 credentials: it {}. The operator should check its API key.",
                answered(*status, report)
            )
        }
        ProviderError::Status { status, report, .. } if *status < 500 => {
            format!(
                "The upstream provider `{provider}` rejected the request: \
                 it {}.",
                answered(*status, report)
            )
        }
        ProviderError::Status { status, report, .. } => format!(
            "The upstream provider `{provider}` {}.",
            answered(*status, report)
        ),
        ProviderError::Stream(report) => match &report.code {
            Some(code) => format!(
                "The upstream provider `{provider}` reported an error \
                 mid-stream (code: {code})."
            ),
            None => format!(
                "The upstream provider `{provider}` reported an error \
                 mid-stream."
            ),
        },
        ProviderError::Unsupported(msg) => format!(
            "The upstream provider `{provider}` cannot take this request: \
             {msg}"
        ),
        ProviderError::Unavailable(msg) | ProviderError::Protocol(msg) => {
            format!(
                "The upstream provider `{provider}` could not be used: {msg}"
            )
        }
        ProviderError::Timeout(secs) => format!(
            "The upstream provider `{provider}` did not answer within {secs} s \
             (first_byte_timeout_secs)."
        ),
        ProviderError::IdleTimeout(secs) => format!(
            "The upstream provider `{provider}` sent nothing for {secs} s \
             inside a stream (idle_timeout_secs)."
        ),
        ProviderError::TotalTimeout(secs) => format!(
            "The upstream provider `{provider}` did not finish within {secs} s \
             (total_timeout_secs)."
        ),
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Store(e) => write!(f, "{e}"),
            EngineError::Internal(m) => write!(f, "internal: {m}"),
            EngineError::Upstream { provider, error } => {
                write!(f, "provider {provider}: {error}")
            }
            other => f.write_str(&other.public_message()),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e)
    }
}

/// Result alias of the engine.
pub type EngineResult<T> = Result<T, EngineError>;
