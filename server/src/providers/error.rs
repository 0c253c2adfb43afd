//! Upstream failures as providers report them. The engine decides what
//! each means for a run (retry, a client error, a failed stream).

/// Upstream failures.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    /// The upstream answered with an error status.
    #[error("upstream answered {status}: {message}")]
    Status {
        /// Upstream HTTP status.
        status: u16,
        /// Upstream message (never contains our upstream key).
        message: String,
        /// Retry-After seconds, for 429 and 503.
        retry_after: Option<u64>,
    },
    /// The upstream could not be reached or broke the connection.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream's answer did not start in time
    /// (`first_byte_timeout_secs`).
    #[error("no answer within {0} s (first_byte_timeout_secs)")]
    Timeout(u64),
    /// A stream went silent for too long (`idle_timeout_secs`).
    #[error("the stream went silent for {0} s (idle_timeout_secs)")]
    IdleTimeout(u64),
    /// The whole call took too long (`total_timeout_secs`).
    #[error("the call did not finish within {0} s (total_timeout_secs)")]
    TotalTimeout(u64),
    /// The upstream sent something we cannot read.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The upstream reported an error inside a successful stream.
    #[error("upstream error mid-stream: {0}")]
    Stream(String),
}
