//! Building a [`Client`]: base URL, API key, retries and timeouts.
//!
//! The client progenitor would build puts a 15 s total timeout on every
//! request, which would cut server-sent event streams and long completions.
//! These constructors use a connect timeout and a per-read timeout instead,
//! and send the API key as a default header.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::{Client, ClientOptions, SdkError};

/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest silence allowed while reading an answer. There is no limit on the
/// whole request, so a stream may last as long as it keeps talking.
pub const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Settings for a new [`Client`]; made by [`Client::builder`].
///
/// ```no_run
/// use std::time::Duration;
///
/// let client = maniac_sdk::Client::builder("http://127.0.0.1:8080/v1")
///     .api_key(std::env::var("MANIAC_KEY")?)
///     .max_retries(5)
///     .connect_timeout(Duration::from_secs(3))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    options: ClientOptions,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("options", &self.options)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl ClientBuilder {
    /// The key sent as `Authorization: Bearer <key>` on every request.
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// How many times a failed request is retried (default
    /// [`DEFAULT_MAX_RETRIES`](crate::DEFAULT_MAX_RETRIES); 0 disables
    /// retries). See [`ClientOptions`].
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.options = self.options.max_retries(max_retries);
        self
    }

    /// All per-call options at once.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Time allowed to open a connection (default [`CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest silence while reading an answer (default [`READ_TIMEOUT`]).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The client, or [`SdkError::Config`] for a base URL that is not
    /// `http(s)://…` or a key that cannot be a header.
    pub fn build(self) -> Result<Client, SdkError> {
        let base_url = normalize_base_url(&self.base_url)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| {
                    SdkError::Config(
                        "the API key contains characters not allowed in a \
                         header"
                            .to_string(),
                    )
                })?;
            auth.set_sensitive(true);
            headers.insert(AUTHORIZATION, auth);
        }
        let http =
            http_client(headers, self.connect_timeout, self.read_timeout)
                .map_err(|e| SdkError::Config(format!("HTTP client: {e}")))?;
        Ok(Client::new_with_client(&base_url, http).with_options(self.options))
    }
}

fn http_client(
    headers: HeaderMap,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("maniac-sdk/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .read_timeout(read_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .build()
}

impl Client {
    /// Starts building a client for the gateway at `base_url`.
    ///
    /// `base_url` is the server root, such as `http://127.0.0.1:8080`; a
    /// trailing `/v1` (as OpenAI SDKs expect) is accepted and dropped, since
    /// the operation paths already start with `/v1`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            options: ClientOptions::default(),
            connect_timeout: CONNECT_TIMEOUT,
            read_timeout: READ_TIMEOUT,
        }
    }

    /// A client for the gateway at `base_url` that authenticates with
    /// `api_key`, with default retries and timeouts: short for
    /// `Client::builder(base_url).api_key(api_key).build()`.
    ///
    /// ```no_run
    /// let client = maniac_sdk::Client::with_key(
    ///     "http://127.0.0.1:8080/v1",
    ///     &std::env::var("MANIAC_KEY")?,
    /// )?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_key(base_url: &str, api_key: &str) -> Result<Self, SdkError> {
        Self::builder(base_url).api_key(api_key).build()
    }

    /// A client without an API key, with the SDK's timeouts and default
    /// options. `baseurl` is used as given (no `/v1` stripping); prefer
    /// [`Client::builder`].
    pub fn new(baseurl: &str) -> Self {
        let http = http_client(HeaderMap::new(), CONNECT_TIMEOUT, READ_TIMEOUT)
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::new_with_client(baseurl, http)
    }

    /// A client that sends its requests with `client` (bring your own
    /// proxy, TLS or default headers), with default [`ClientOptions`]; add
    /// [`Client::with_options`] to change them. `baseurl` is used as given.
    pub fn new_with_client(baseurl: &str, client: reqwest::Client) -> Self {
        Self {
            baseurl: baseurl.to_string(),
            client,
            inner: ClientOptions::default(),
        }
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
        assert_eq!(client.options(), &ClientOptions::default());
        assert!(matches!(
            Client::with_key("http://127.0.0.1:8080", "bad\nkey"),
            Err(SdkError::Config(_))
        ));
    }

    #[test]
    fn builder_sets_retries_and_hides_the_key() {
        let builder = Client::builder("http://127.0.0.1:8080")
            .api_key("mk_secret")
            .max_retries(7);
        assert!(!format!("{builder:?}").contains("mk_secret"));
        let client = builder.build().unwrap();
        assert_eq!(client.options().get_max_retries(), 7);
        assert_eq!(client.with_max_retries(0).options().get_max_retries(), 0);
        assert_eq!(client.options().get_max_retries(), 7);
        assert!(matches!(
            Client::builder("gw.example").build(),
            Err(SdkError::Config(_))
        ));
    }
}
