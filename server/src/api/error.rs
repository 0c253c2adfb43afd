//! The OpenAI error envelope `{"error":{"message","type","param","code"}}`,
//! used for every non-2xx answer, dropshot's own rejections included.

use std::fmt;

use dropshot::{ErrorStatusCode, HttpError, HttpResponseError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The error object inside the envelope.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ErrorObject {
    /// What went wrong and, where possible, what to do about it.
    pub message: String,
    /// Error class: `invalid_request_error`, `authentication_error`,
    /// `not_found_error`, `rate_limit_error`, `server_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request parameter at fault, if any.
    pub param: Option<String>,
    /// A machine-readable code, if any.
    pub code: Option<String>,
}

/// An error answer.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(rename = "ErrorResponse")]
pub struct ApiError {
    /// The error.
    pub error: ErrorObject,
    /// HTTP status (not serialized).
    #[serde(skip)]
    pub status: u16,
    /// Seconds to wait before retrying (a 429's `Retry-After`); 32 bits,
    /// so the error stays small enough to return by value.
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// The methods a path takes (a 405's `Allow`).
    #[serde(skip)]
    pub allow: Option<Allow>,
}

impl ApiError {
    /// An error with every field given.
    pub fn new(
        status: u16,
        kind: &str,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        ApiError {
            error: ErrorObject {
                message: message.into(),
                kind: kind.to_string(),
                param: param.map(str::to_string),
                code: code.map(str::to_string),
            },
            status,
            retry_after: None,
            allow: None,
        }
    }

    /// 405: the path exists, the method does not; `allow` lists those it
    /// takes (answered as the `Allow` header).
    pub fn method_not_allowed(method: &str, allow: Allow) -> Self {
        let methods = allow.as_str();
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                405,
                "invalid_request_error",
                format!(
                    "Method {method} is not allowed on this path; it takes \
                     {methods}."
                ),
                None,
                Some("method_not_allowed"),
            )
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        Self::new(400, "invalid_request_error", message, param, code)
    }

    /// 400 `invalid_value` naming `param`.
    pub fn invalid_value(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(message, Some(param), Some("invalid_value"))
    }

    /// 404 for a response id that is missing, deleted or another org's.
    pub fn response_not_found(id: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!("Response with id '{id}' not found."),
            None,
            None,
        )
    }

    /// 500 that hides internals; the cause goes to the log, not the client.
    pub fn internal(request_hint: &str) -> Self {
        Self::new(
            500,
            "server_error",
            format!(
                "The server had an error while processing your request \
                 ({request_hint}). Please retry; if it persists, contact \
                 the operator with the x-request-id header."
            ),
            None,
            None,
        )
    }

    /// 503 while the database is unreachable.
    pub fn unavailable(what: &str) -> Self {
        Self::new(
            503,
            "server_error",
            format!("The {what} is temporarily unavailable. Please retry."),
            None,
            Some("service_unavailable"),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.error.message, self.error.kind)
    }
}

impl HttpResponseError for ApiError {
    fn status_code(&self) -> ErrorStatusCode {
        ErrorStatusCode::from_u16(self.status)
            .unwrap_or(ErrorStatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The methods of a path, as a 405's `Allow` names them. A closed set
/// (the API's paths take one of these), which keeps `ApiError` small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allow {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `GET, POST`.
    GetPost,
    /// `GET, DELETE`.
    GetDelete,
    /// `GET, POST, DELETE`.
    GetPostDelete,
}

impl Allow {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Allow::Get => "GET",
            Allow::Post => "POST",
            Allow::GetPost => "GET, POST",
            Allow::GetDelete => "GET, DELETE",
            Allow::GetPostDelete => "GET, POST, DELETE",
        }
    }
}

impl From<HttpError> for ApiError {
    /// Maps dropshot's own rejections (bad JSON, bad query, body too large,
    /// wrong content type) into the OpenAI shape.
    fn from(e: HttpError) -> Self {
        let status = e.status_code.as_u16();
        if status >= 500 {
            tracing::error!(error = %e.internal_message, "dropshot error");
            return ApiError::internal("internal error");
        }
        let msg = e.external_message;
        if let Some(rest) = msg.strip_prefix("unable to parse JSON body: ") {
            return json_body_error(rest);
        }
        if let Some(rest) = msg.strip_prefix("unable to parse query string: ") {
            let param = quoted(rest, '\'');
            return ApiError::invalid(
                rest.to_string(),
                param.as_deref(),
                Some(if rest.starts_with("Unknown parameter") {
                    "unknown_parameter"
                } else {
                    "invalid_value"
                }),
            );
        }
        if msg.starts_with("request body exceeded maximum size") {
            return ApiError::new(
                413,
                "invalid_request_error",
                format!("{msg}. Send a smaller request."),
                None,
                Some("request_too_large"),
            );
        }
        if msg.starts_with("unsupported content-type")
            || msg.starts_with("invalid content type")
            || msg.starts_with("expected content type")
        {
            return ApiError::new(
                415,
                "invalid_request_error",
                format!("{msg}. Send `Content-Type: application/json`."),
                None,
                Some("unsupported_media_type"),
            );
        }
        let kind = match status {
            401 => "authentication_error",
            404 => "not_found_error",
            _ => "invalid_request_error",
        };
        ApiError::new(status, kind, msg, None, None)
    }
}

/// A create body that did not deserialize (a `serde_path_to_error`
/// message), as the same 400 the HTTP endpoint answers.
pub fn body_error(message: &str) -> ApiError {
    json_body_error(message)
}

/// Turns a `serde_path_to_error` message (`path: inner`) into a 400 that
/// names the parameter.
fn json_body_error(rest: &str) -> ApiError {
    // serde_path_to_error prints "path: message" unless the path is empty.
    let (path, inner) = match rest.split_once(": ") {
        Some((p, i)) if !p.contains(' ') => (Some(p), i),
        _ => (None, rest),
    };
    let inner = strip_position(inner);
    if let Some(field) =
        inner.strip_prefix("unknown field `").and_then(|s| s.split('`').next())
    {
        // serde_path_to_error already ends the path with the field.
        let param = match path {
            Some(p) if p == field || p.ends_with(&format!(".{field}")) => {
                p.to_string()
            }
            Some(p) => format!("{p}.{field}"),
            None => field.to_string(),
        };
        return ApiError::invalid(
            format!("Unknown parameter: '{param}'."),
            Some(&param),
            Some("unknown_parameter"),
        );
    }
    if let Some(field) =
        inner.strip_prefix("missing field `").and_then(|s| s.split('`').next())
    {
        let param = match path {
            Some(p) => format!("{p}.{field}"),
            None => field.to_string(),
        };
        return ApiError::invalid(
            format!("Missing required parameter: '{param}'."),
            Some(&param),
            Some("missing_required_parameter"),
        );
    }
    let top = path.map(|p| p.split(['.', '[']).next().unwrap_or(p).to_string());
    let message = match (path, top.as_deref()) {
        (Some(p), Some("input")) if inner.contains("untagged enum") => {
            format!(
                "Invalid value for '{p}': each input item must be a message \
                 ({{\"role\": \"user\"|\"assistant\"|\"system\"|\
                 \"developer\", \"content\": string or parts}}) or an item \
                 reference ({{\"type\": \"item_reference\", \"id\": …}})."
            )
        }
        (Some(p), _) => format!("Invalid value for '{p}': {inner}."),
        (None, _) => format!(
            "We could not parse the JSON body of your request ({inner}). \
             Send a valid JSON object."
        ),
    };
    ApiError::invalid(
        message,
        path,
        Some("invalid_value").filter(|_| path.is_some()),
    )
}

/// Drops serde_json's " at line L column C" suffix.
fn strip_position(s: &str) -> &str {
    match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => s,
    }
}

/// The first `q`-quoted word of `s`.
fn quoted(s: &str, q: char) -> Option<String> {
    let start = s.find(q)? + 1;
    let len = s[start..].find(q)?;
    Some(s[start..start + len].to_string())
}
