//! Engine errors as OpenAI error envelopes: the one place an engine error
//! becomes an HTTP status, a type and a code (and is logged once).

use crate::api::ApiError;
use crate::engine::{EngineError, ErrorKind};
use crate::providers::ProviderError;
use crate::store::StoreError;

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::Store(StoreError::Unavailable(msg)) => {
                tracing::warn!(error = %msg, "database unavailable");
            }
            EngineError::Store(other) => {
                tracing::error!(error = %other, "store error");
            }
            EngineError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
            }
            EngineError::Upstream { provider, error } => {
                tracing::warn!(provider = %provider, error = %error, "upstream failure");
            }
            _ => {}
        }
        let message = e.public_message();
        let (code, kind) = e.code_and_type();
        let mut err = match &e {
            EngineError::Invalid { param, code, .. } => {
                ApiError::invalid(message, param.as_deref(), *code)
            }
            EngineError::NotFound { param, code, .. } => ApiError::new(
                404,
                "invalid_request_error",
                message,
                param.as_deref(),
                *code,
            ),
            EngineError::Conflict(_) => {
                ApiError::new(409, kind, message, None, Some(code))
            }
            EngineError::Store(StoreError::Unavailable(_))
            | EngineError::Unavailable(_) => {
                ApiError::new(503, kind, message, None, Some(code))
            }
            EngineError::Store(_) | EngineError::Internal(_) => {
                ApiError::new(500, kind, message, None, None)
            }
            EngineError::Upstream { error, .. } => {
                let status = match (e.kind(), error) {
                    (ErrorKind::RateLimited, _) => 429,
                    (
                        ErrorKind::UpstreamRejected,
                        ProviderError::Status { status, .. },
                    ) => *status,
                    (ErrorKind::UpstreamRejected, _) => 400,
                    (ErrorKind::UpstreamTimeout, _) => 504,
                    (ErrorKind::Unavailable, _) => 503,
                    _ => 502,
                };
                ApiError::new(status, kind, message, None, Some(code))
            }
        };
        if err.status == 429 {
            err.retry_after =
                e.retry_after().map(|s| u32::try_from(s).unwrap_or(u32::MAX));
        }
        err
    }
}
