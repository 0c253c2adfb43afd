//! How an HTTP upstream wants to be addressed beyond its URL: which header
//! carries the key (`Authorization: Bearer` or Azure's `api-key`), static
//! query parameters (Azure's `api-version`) and extra static headers.
//! Shared by the HTTP adapters; checked once at start-up.

use std::collections::BTreeMap;

use http::header::{self, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// Which header carries the upstream key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// `Authorization: Bearer <key>` (OpenAI and most others).
    #[default]
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
}

/// The header that carries `key`, marked sensitive so it is never
/// printed. The one place a key becomes a header.
pub fn key_header(
    auth: Auth,
    key: &str,
) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = match auth {
        Auth::Bearer => (header::AUTHORIZATION, format!("Bearer {key}")),
        Auth::ApiKey => (HeaderName::from_static("api-key"), key.to_string()),
    };
    let mut v = HeaderValue::from_str(&value)
        .map_err(|_| "the upstream key is not a valid header value")?;
    v.set_sensitive(true);
    Ok((name, v))
}

/// The configured extra headers, checked; an invalid one is an error
/// naming it (`headers.<name>`).
pub fn extra_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                format!("headers.{k}: `{k}` is not a valid header name")
            })?;
            if matches!(name, header::HOST | header::CONTENT_LENGTH) {
                return Err(format!(
                    "headers.{k}: the gateway sets `{k}` itself; remove it"
                ));
            }
            let value = HeaderValue::from_str(v).map_err(|_| {
                format!(
                    "headers.{k}: the value is not a valid header value \
                     (printable ASCII only)"
                )
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Characters escaped in a query component: all but unreserved ones.
const QUERY: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `path` with the static query parameters appended (encoded), e.g.
/// `/openai/v1/responses?api-version=preview`.
pub fn with_query(path: &str, query: &BTreeMap<String, String>) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let mut out = path.to_string();
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (k, v) in query {
        out.push(sep);
        out.extend(utf8_percent_encode(k, QUERY));
        out.push('=');
        out.extend(utf8_percent_encode(v, QUERY));
        sep = '&';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_header_follows_the_auth_mode_and_is_sensitive() {
        let (n, v) = key_header(Auth::Bearer, "sk-1").unwrap();
        assert_eq!(n, header::AUTHORIZATION);
        assert_eq!(v, "Bearer sk-1");
        assert!(v.is_sensitive());
        let (n, v) = key_header(Auth::ApiKey, "az").unwrap();
        assert_eq!(n.as_str(), "api-key");
        assert_eq!(v, "az");
        assert!(key_header(Auth::Bearer, "bad\nkey").is_err());
    }

    #[test]
    fn invalid_extra_headers_are_named() {
        let table = [
            ("x-ok", "fine", None),
            ("bad name", "v", Some("headers.bad name")),
            ("x-v", "line\nbreak", Some("headers.x-v")),
            ("host", "h", Some("headers.host")),
        ];
        for (k, v, err) in table {
            let h = BTreeMap::from([(k.to_string(), v.to_string())]);
            match (extra_headers(&h), err) {
                (Ok(got), None) => assert_eq!(got.len(), 1),
                (Err(e), Some(want)) => assert!(e.contains(want), "{k}: {e}"),
                (got, want) => panic!("{k}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn query_parameters_are_appended_encoded() {
        let q = BTreeMap::from([
            ("api-version".to_string(), "2025-04-01-preview".to_string()),
            ("x".to_string(), "a b&c".to_string()),
        ]);
        assert_eq!(
            with_query("/v1/responses", &q),
            "/v1/responses?api-version=2025-04-01-preview&x=a%20b%26c"
        );
        assert_eq!(with_query("/p?a=1", &q).matches('?').count(), 1);
        assert_eq!(with_query("/p", &BTreeMap::new()), "/p");
    }
}
