//! Building a [`Client`] that can hold a stream open.
//!
//! The generated `Client::new` puts a 15 s total timeout on every request,
//! which would cut server-sent event streams and long completions. This
//! builds the `reqwest` client with a connect timeout and a per-read timeout
//! instead, and the API key as a default header.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::{Client, SdkError};

/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest silence allowed while reading an answer. There is no limit on the
/// whole request, so a stream may last as long as it keeps talking.
pub const READ_TIMEOUT: Duration = Duration::from_secs(600);

impl Client {
    /// A client for the gateway at `base_url` that authenticates with
    /// `api_key` (`Authorization: Bearer <key>`).
    ///
    /// `base_url` is the server root, such as `http://127.0.0.1:8080`; a
    /// trailing `/v1` (as OpenAI SDKs expect) is accepted and dropped, since
    /// the operation paths already start with `/v1`.
    pub fn with_key(base_url: &str, api_key: &str) -> Result<Self, SdkError> {
        let base_url = normalize_base_url(base_url)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .map_err(|_| {
                SdkError::Config(
                    "the API key contains characters not allowed in a header"
                        .to_string(),
                )
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("maniac-sdk/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(60))
            .build()
            .map_err(|e| SdkError::Config(format!("HTTP client: {e}")))?;
        Ok(Self::new_with_client(&base_url, http))
    }
}

/// Checks the URL and strips a trailing `/` and `/v1`.
fn normalize_base_url(base_url: &str) -> Result<String, SdkError> {
    let url = reqwest::Url::parse(base_url.trim())
        .map_err(|e| SdkError::Config(format!("base URL {base_url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SdkError::Config(format!(
            "base URL {base_url:?}: scheme must be http or https"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SdkError::Config(format!(
            "base URL {base_url:?}: must not have a query or fragment"
        )));
    }
    let mut s = url.as_str().trim_end_matches('/').to_string();
    if let Some(stripped) = s.strip_suffix("/v1") {
        s = stripped.trim_end_matches('/').to_string();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let n = |s| normalize_base_url(s).unwrap();
        assert_eq!(n("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(n("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(n("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080");
        assert_eq!(n("https://gw.example/v1/"), "https://gw.example");
        assert_eq!(n("https://gw.example/api/v1"), "https://gw.example/api");
        assert_eq!(n("https://gw.example/v10"), "https://gw.example/v10");
        assert!(normalize_base_url("127.0.0.1:8080").is_err());
        assert!(normalize_base_url("ftp://gw.example").is_err());
    }

    #[test]
    fn client_builds_and_rejects_bad_keys() {
        let client = Client::with_key("http://127.0.0.1:8080/v1", "mk_test")
            .expect("client");
        assert_eq!(client.baseurl, "http://127.0.0.1:8080");
        assert!(matches!(
            Client::with_key("http://127.0.0.1:8080", "bad\nkey"),
            Err(SdkError::Config(_))
        ));
    }
}
