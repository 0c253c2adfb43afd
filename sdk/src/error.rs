//! The one error type of the SDK.
//!
//! Generated operations return `progenitor_client::Error<ErrorResponse>`;
//! `?` turns it into [`SdkError`], so callers handle one type whether they
//! used a generated call or a hand-written extension (streams, polling).

use std::time::Duration;

use reqwest::StatusCode;

use crate::types;

/// Everything that can go wrong talking to the gateway.
///
/// ```no_run
/// # async fn demo(client: maniac_sdk::Client) {
/// use maniac_sdk::SdkError;
///
/// let result = client.response_view().response_id("resp_gone").send().await;
/// match result.map_err(SdkError::from) {
///     Ok(response) => println!("{:?}", response.into_inner().status),
///     Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => {
///         println!("no such response")
///     }
///     Err(e) => eprintln!(
///         "{e} (type {:?}, code {:?}, param {:?}, request {:?})",
///         e.error_type(),
///         e.code(),
///         e.param(),
///         e.request_id()
///     ),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// The client could not be set up (bad base URL or API key).
    #[error("client setup: {0}")]
    Config(String),

    /// The request could not be built (a builder value did not convert).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// Connecting, sending or reading failed (includes timeouts).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),

    /// The gateway answered with its error envelope.
    #[error(
        "API error {status} ({kind}{code}): {message}",
        kind = .error.type_,
        code = .error.code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        message = .error.message,
    )]
    #[non_exhaustive]
    Api {
        /// HTTP status of the answer.
        status: StatusCode,
        /// `message`, `type`, `code` and `param` of the error.
        error: types::ErrorObject,
        /// The answer's `x-request-id`, to quote when reporting a problem.
        request_id: Option<String>,
    },

    /// An answer the SDK cannot interpret: an error body that is not the
    /// envelope, an undocumented status, or the wrong content type.
    #[error(
        "unexpected response{status}: {body}",
        status = .status.map(|s| format!(" {s}")).unwrap_or_default(),
    )]
    #[non_exhaustive]
    UnexpectedResponse {
        /// HTTP status, when known.
        status: Option<StatusCode>,
        /// The body (possibly shortened), or a note on what was wrong.
        body: String,
        /// The answer's `x-request-id`, when there was an answer.
        request_id: Option<String>,
    },

    /// A documented answer whose JSON did not match the generated type.
    #[error("decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The serde error.
        source: serde_json::Error,
    },

    /// The server-sent event framing was broken (not UTF-8, bad lines).
    #[error("event stream: {0}")]
    Sse(String),

    /// The stream ended with an `error` event instead of a response.
    #[error(
        "stream error ({kind}{code}): {message}",
        kind = .0.type_,
        code = .0.code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        message = .0.message,
    )]
    StreamError(types::StreamErrorDetail),

    /// [`Client::wait_for_done`](crate::Client::wait_for_done) gave up.
    #[error("response {response_id} not done after {after:?}")]
    Timeout {
        /// The response being waited for.
        response_id: String,
        /// How long it waited.
        after: Duration,
    },
}

impl SdkError {
    /// The HTTP status, for errors that came with one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::UnexpectedResponse { status, .. } => *status,
            Self::Transport(e) => e.status(),
            _ => None,
        }
    }

    /// The gateway's error object, for [`SdkError::Api`].
    pub fn api_error(&self) -> Option<&types::ErrorObject> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The `x-request-id` of the answer that failed, when there was one:
    /// the gateway logs every request under it.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api { request_id, .. }
            | Self::UnexpectedResponse { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// The error `type` (`invalid_request_error`, `authentication_error`,
    /// `server_error`, …) of an API error or an `error` stream event.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => Some(&error.type_),
            Self::StreamError(detail) => Some(&detail.type_),
            _ => None,
        }
    }

    /// The machine-readable `code` (`model_not_found`, `invalid_value`, …)
    /// of an API error or an `error` stream event, when it has one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => error.code.as_deref(),
            Self::StreamError(detail) => detail.code.as_deref(),
            _ => None,
        }
    }

    /// The request field the error is about (`temperature`, `model`, …),
    /// when it names one.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => error.param.as_deref(),
            Self::StreamError(detail) => detail.param.as_deref(),
            _ => None,
        }
    }

    /// Interprets a non-success answer: the error envelope when the body is
    /// one, otherwise the raw body.
    pub(crate) async fn from_error_response(
        response: reqwest::Response,
    ) -> Self {
        let status = response.status();
        let request_id = request_id(response.headers());
        match response.bytes().await {
            Ok(body) => Self::from_error_body(status, &body, request_id),
            Err(e) => Self::Transport(e),
        }
    }

    pub(crate) fn from_error_body(
        status: StatusCode,
        body: &[u8],
        request_id: Option<String>,
    ) -> Self {
        match serde_json::from_slice::<types::ErrorResponse>(body) {
            Ok(envelope) => {
                Self::Api { status, error: envelope.error, request_id }
            }
            Err(_) => Self::UnexpectedResponse {
                status: Some(status),
                body: shorten(body),
                request_id,
            },
        }
    }
}

/// The `x-request-id` header, if it is text.
pub(crate) fn request_id(
    headers: &reqwest::header::HeaderMap,
) -> Option<String> {
    Some(headers.get("x-request-id")?.to_str().ok()?.to_string())
}

/// Keeps error messages readable when a proxy answers with a page of HTML.
pub(crate) fn shorten(body: &[u8]) -> String {
    const MAX: usize = 2048;
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

impl From<progenitor_client::Error<types::ErrorResponse>> for SdkError {
    fn from(e: progenitor_client::Error<types::ErrorResponse>) -> Self {
        use progenitor_client::Error as E;
        match e {
            E::InvalidRequest(msg) | E::Custom(msg) => {
                Self::InvalidRequest(msg)
            }
            E::CommunicationError(e)
            | E::InvalidUpgrade(e)
            | E::ResponseBodyError(e) => Self::Transport(e),
            E::ErrorResponse(rv) => Self::Api {
                status: rv.status(),
                request_id: request_id(rv.headers()),
                error: rv.into_inner().error,
            },
            E::InvalidResponsePayload(body, source) => Self::Decode {
                what: format!("response body {:?}", shorten(&body)),
                source,
            },
            E::UnexpectedResponse(response) => Self::UnexpectedResponse {
                status: Some(response.status()),
                body: "undocumented status".to_string(),
                request_id: request_id(response.headers()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_becomes_api_error() {
        let body = br#"{"error":{"message":"bad model","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#;
        let err = SdkError::from_error_body(
            StatusCode::NOT_FOUND,
            body,
            Some("req_1".to_string()),
        );
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(err.request_id(), Some("req_1"));
        assert_eq!(err.error_type(), Some("invalid_request_error"));
        assert_eq!(err.code(), Some("model_not_found"));
        assert_eq!(err.param(), Some("model"));
        let obj = err.api_error().expect("api error");
        assert_eq!(obj.message, "bad model");
        assert_eq!(obj.type_, "invalid_request_error");
        assert_eq!(obj.param.as_deref(), Some("model"));
        assert_eq!(obj.code.as_deref(), Some("model_not_found"));
        assert_eq!(
            err.to_string(),
            "API error 404 Not Found (invalid_request_error, \
             model_not_found): bad model"
        );
    }

    #[test]
    fn other_error_body_is_kept() {
        let err = SdkError::from_error_body(
            StatusCode::BAD_GATEWAY,
            b"<html>oops",
            None,
        );
        assert!(matches!(
            &err,
            SdkError::UnexpectedResponse { status: Some(s), body, .. }
                if *s == StatusCode::BAD_GATEWAY && body == "<html>oops"
        ));
        assert_eq!(err.request_id(), None);
        assert_eq!(err.code(), None);
    }
}
