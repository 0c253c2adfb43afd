//! Retries, as the official OpenAI SDKs do them: connection errors,
//! timeouts, 408, 409, 429 and 5xx are retried up to `max_retries` times
//! (default 2) with exponential backoff and jitter, or after the delay the
//! server asks for (`retry-after-ms`, `Retry-After` in seconds or as an HTTP
//! date), unless it says `x-should-retry: false`.
//!
//! Every generated operation goes through [`Client::execute`] by the
//! client's `ClientHooks::exec`, and so do the hand-written streams; a
//! stream is only retried until its answer arrives, never once events flow.

use std::{
    hash::{BuildHasher, Hasher},
    time::{Duration, SystemTime},
};

use progenitor_client::{ClientHooks, OperationInfo};
use reqwest::{StatusCode, header::HeaderMap};

use crate::Client;

/// Retries of a request when the client does not say otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// First backoff delay; it doubles on each retry.
const INITIAL_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Longest backoff delay.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(8);

/// Longest server-requested delay that is honoured; a longer one falls back
/// to the backoff (as the official SDKs do).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Per-client settings that apply to every call: how many times a failed
/// request is retried.
///
/// Set them with [`Client::builder`] (for example
/// `Client::builder(url).max_retries(5)`), or for some calls only with
/// [`Client::with_max_retries`] / [`Client::with_options`].
///
/// ```
/// let options = maniac_sdk::ClientOptions::default().max_retries(5);
/// assert_eq!(options.get_max_retries(), 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    max_retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { max_retries: DEFAULT_MAX_RETRIES }
    }
}

impl ClientOptions {
    /// Retries after the first attempt (0 disables retrying).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The number of retries after the first attempt.
    pub fn get_max_retries(&self) -> u32 {
        self.max_retries
    }
}

impl Client {
    /// The options this client applies to every call.
    pub fn options(&self) -> &ClientOptions {
        &self.inner
    }

    /// A copy of this client with other options. It shares the connection
    /// pool, so it is cheap: make one for a single call.
    pub fn with_options(&self, options: ClientOptions) -> Self {
        Self { inner: options, ..self.clone() }
    }

    /// A copy of this client (sharing its connection pool) that retries a
    /// failed request up to `max_retries` times, for one call or a few:
    ///
    /// ```no_run
    /// # async fn demo(client: maniac_sdk::Client) -> Result<(), maniac_sdk::SdkError> {
    /// // Fail fast on this call only.
    /// let response = client
    ///     .with_max_retries(0)
    ///     .response_view()
    ///     .response_id("resp_123")
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn with_max_retries(&self, max_retries: u32) -> Self {
        self.with_options(self.inner.clone().max_retries(max_retries))
    }

    /// Sends `request`, retrying per the client's [`ClientOptions`]. Returns
    /// the last answer (even an error status) or the last transport error.
    pub(crate) async fn execute(
        &self,
        request: reqwest::Request,
    ) -> reqwest::Result<reqwest::Response> {
        let max_retries = self.inner.max_retries;
        let mut retries = 0;
        let mut request = request;
        loop {
            // A body that cannot be copied (a stream) is sent once.
            let retry_copy =
                if retries < max_retries { request.try_clone() } else { None };
            let result = self.client.execute(request).await;
            let Some(next) = retry_copy else { return result };
            let delay = match &result {
                Ok(response) => {
                    if !should_retry(response.status(), response.headers()) {
                        return result;
                    }
                    server_delay(response.headers(), SystemTime::now())
                        .unwrap_or_else(|| backoff(retries))
                }
                Err(e) if is_retryable(e) => backoff(retries),
                Err(_) => return result,
            };
            // Dropping the answer closes its connection; error bodies are
            // not worth draining.
            drop(result);
            tokio::time::sleep(delay).await;
            request = next;
            retries += 1;
        }
    }
}

/// Generated operations send their requests through `Client::execute`, so
/// they are retried per the client's [`ClientOptions`].
impl ClientHooks<ClientOptions> for Client {
    async fn exec(
        &self,
        request: reqwest::Request,
        _info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        self.execute(request).await
    }
}

/// Whether an answer is worth another attempt: the server's
/// `x-should-retry` if it says, else 408, 409, 429 and 5xx.
fn should_retry(status: StatusCode, headers: &HeaderMap) -> bool {
    match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// Connection failures and timeouts are retried; a request that could not
/// be built or a redirect loop would fail again.
fn is_retryable(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || e.is_status())
}

/// The delay the server asked for: `retry-after-ms`, else `Retry-After`
/// (seconds or an HTTP date), when it is positive and at most a minute.
fn server_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let seconds = |v: &str| {
        v.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0)
    };
    let delay = if let Some(ms) = header("retry-after-ms").and_then(seconds) {
        Duration::try_from_secs_f64(ms / 1000.0).ok()?
    } else {
        let value = header("retry-after")?;
        match seconds(value) {
            Some(s) => Duration::try_from_secs_f64(s).ok()?,
            None => httpdate::parse_http_date(value.trim())
                .ok()?
                .duration_since(now)
                .ok()?,
        }
    };
    (!delay.is_zero() && delay <= MAX_RETRY_AFTER).then_some(delay)
}

/// Exponential backoff before retry number `retries + 1`: 0.5 s doubling up
/// to 8 s, shortened by up to a quarter at random so that clients that
/// failed together do not come back together.
fn backoff(retries: u32) -> Duration {
    let base = INITIAL_RETRY_DELAY
        .saturating_mul(2u32.saturating_pow(retries.min(16)))
        .min(MAX_RETRY_DELAY);
    base.mul_f64(1.0 - 0.25 * random_fraction())
}

/// A number in `[0, 1)`. Jitter needs no quality randomness: the standard
/// library's randomly keyed hasher is enough and costs no dependency.
fn random_fraction() -> f64 {
    let mut hasher =
        std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
