//! `JsonOrSse`: the success type of the endpoints that can stream. The spec
//! shows `200 application/json T` (and `text/event-stream`, added in
//! `spec.rs`), while the handler may answer with an SSE body instead.

use dropshot::{Body, HttpError, HttpResponse, HttpResponseOk};
use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Serialize;

use super::error::ApiError;

/// A JSON object, a server-sent event stream, or an error that needs
/// response headers (a 429's `Retry-After`, a 405's `Allow`).
pub enum JsonOrSse<T> {
    /// `200 application/json`.
    Json(T),
    /// `200 application/json`, already serialized (a `T`).
    Encoded(bytes::Bytes),
    /// `200 text/event-stream`.
    Sse(Body),
    /// An error answered with its own headers.
    Error(ApiError),
}

impl<T> HttpResponse for JsonOrSse<T>
where
    T: JsonSchema + Serialize + Send + Sync + 'static,
{
    fn to_result(self) -> Result<http::Response<Body>, HttpError> {
        let builder = http::Response::builder();
        let rsp = match self {
            JsonOrSse::Json(value) => {
                // Sized for a typical response object: no regrowth.
                let mut bytes = Vec::with_capacity(2048);
                serde_json::to_writer(&mut bytes, &value).map_err(|e| {
                    HttpError::for_internal_error(e.to_string())
                })?;
                builder
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(bytes))
            }
            JsonOrSse::Encoded(bytes) => builder
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes)),
            JsonOrSse::Sse(body) => builder
                .status(StatusCode::OK)
                .header(
                    http::header::CONTENT_TYPE,
                    "text/event-stream; charset=utf-8",
                )
                .header(http::header::CACHE_CONTROL, "no-cache")
                .header("x-accel-buffering", "no")
                .body(body),
            JsonOrSse::Error(err) => {
                let bytes = serde_json::to_vec(&err).map_err(|e| {
                    HttpError::for_internal_error(e.to_string())
                })?;
                let mut b = builder
                    .status(err.status)
                    .header(http::header::CONTENT_TYPE, "application/json");
                if let Some(secs) = err.retry_after {
                    b = b.header(
                        http::header::RETRY_AFTER,
                        HeaderValue::from(secs),
                    );
                }
                if let Some(allow) = err.allow {
                    b = b.header(http::header::ALLOW, allow.as_str());
                }
                b.body(Body::from(bytes))
            }
        };
        rsp.map_err(|e| HttpError::for_internal_error(e.to_string()))
    }

    fn response_metadata() -> dropshot::ApiEndpointResponse {
        <HttpResponseOk<T> as HttpResponse>::response_metadata()
    }

    fn status_code(&self) -> StatusCode {
        match self {
            JsonOrSse::Error(e) => StatusCode::from_u16(e.status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            _ => StatusCode::OK,
        }
    }
}
