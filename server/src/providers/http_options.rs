//! How an HTTP upstream wants to be addressed beyond its URL: which header
//! carries the key (`Authorization: Bearer` or Azure's `api-key`; sent by
//! [`super::keys::KeyPool`]), static
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
