//! Per-provider timeouts (`connect_timeout_secs`, `first_byte_timeout_secs`
//! — `request_timeout_secs` is its older name — `idle_timeout_secs`,
//! `total_timeout_secs`), shared by the HTTP adapters, each failure
//! naming the one that fired.

use std::time::Duration;

use tokio::time::Instant;

use super::ProviderError;

/// Resolved timeouts of one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection (TCP and TLS).
    pub connect: Duration,
    /// Until the answer starts (headers; the whole body when not
    /// streaming).
    pub first_byte: Duration,
    /// The longest silence inside a stream.
    pub idle: Duration,
    /// The whole call, if bounded.
    pub total: Option<Duration>,
}

/// The timeout fields of a provider's configuration, as written.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutFields {
    /// `connect_timeout_secs`.
    pub connect: Option<u64>,
    /// `first_byte_timeout_secs`.
    pub first_byte: Option<u64>,
    /// `request_timeout_secs` (the older name of `first_byte`).
    pub request: Option<u64>,
    /// `idle_timeout_secs`.
    pub idle: Option<u64>,
    /// `total_timeout_secs`.
    pub total: Option<u64>,
}

impl Timeouts {
    /// Resolves `f` for provider `name`, with its default first-byte
    /// timeout; errors name the field.
    pub fn resolve(
        name: &str,
        f: TimeoutFields,
        default_first_byte: u64,
    ) -> Result<Timeouts, String> {
        let field = |x: &str| format!("providers.{name}.{x}");
        if f.request.is_some() && f.first_byte.is_some() {
            return Err(format!(
                "{}: request_timeout_secs is its older name; set only one",
                field("first_byte_timeout_secs")
            ));
        }
        let secs = |v: Option<u64>, default: u64, x: &str| match v
            .unwrap_or(default)
        {
            0 => Err(format!("{}: must be at least 1", field(x))),
            s => Ok(Duration::from_secs(s)),
        };
        Ok(Timeouts {
            connect: secs(f.connect, 10, "connect_timeout_secs")?,
            first_byte: secs(
                f.first_byte.or(f.request),
                default_first_byte,
                "first_byte_timeout_secs",
            )?,
            idle: secs(f.idle, 120, "idle_timeout_secs")?,
            total: match f.total {
                Some(t) => Some(secs(Some(t), 0, "total_timeout_secs")?),
                None => None,
            },
        })
    }

    /// When a call starting now must be over.
    pub fn deadline(&self) -> Option<Instant> {
        self.total.map(|t| Instant::now() + t)
    }

    /// How long to wait for the answer to start, and the error if it does
    /// not: the first-byte timeout, or less when the deadline is sooner.
    pub fn first_byte(
        &self,
        deadline: Option<Instant>,
    ) -> (Duration, ProviderError) {
        self.budget(deadline, self.first_byte, ProviderError::Timeout)
    }

    /// How long to wait for the next streamed event, and the error if
    /// none comes.
    pub fn next_event(
        &self,
        deadline: Option<Instant>,
    ) -> (Duration, ProviderError) {
        self.budget(deadline, self.idle, ProviderError::IdleTimeout)
    }

    fn budget(
        &self,
        deadline: Option<Instant>,
        limit: Duration,
        error: fn(u64) -> ProviderError,
    ) -> (Duration, ProviderError) {
        match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
            Some(left) if left < limit => (
                left,
                ProviderError::TotalTimeout(
                    self.total.map_or(0, |t| t.as_secs()),
                ),
            ),
            _ => (limit, error(limit.as_secs())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_aliases_and_errors_naming_the_field() {
        let t = Timeouts::resolve("p", TimeoutFields::default(), 300).unwrap();
        assert_eq!(t.connect, Duration::from_secs(10));
        assert_eq!(t.first_byte, Duration::from_secs(300));
        assert_eq!(t.idle, Duration::from_secs(120));
        assert_eq!(t.total, None);
        let old = TimeoutFields { request: Some(7), ..Default::default() };
        assert_eq!(
            Timeouts::resolve("p", old, 300).unwrap().first_byte,
            Duration::from_secs(7)
        );
        let both = TimeoutFields {
            request: Some(7),
            first_byte: Some(8),
            ..Default::default()
        };
        let e = Timeouts::resolve("p", both, 300).unwrap_err();
        assert!(e.contains("providers.p.first_byte_timeout_secs"), "{e}");
        let zero = TimeoutFields { idle: Some(0), ..Default::default() };
        let e = Timeouts::resolve("p", zero, 300).unwrap_err();
        assert!(e.contains("providers.p.idle_timeout_secs"), "{e}");
    }

    #[tokio::test]
    async fn the_total_deadline_shortens_and_names_the_wait() {
        let f = TimeoutFields { total: Some(5), ..Default::default() };
        let t = Timeouts::resolve("p", f, 300).unwrap();
        let (wait, e) = t.first_byte(t.deadline());
        assert!(wait <= Duration::from_secs(5));
        assert!(matches!(e, ProviderError::TotalTimeout(5)));
        let (wait, e) = t.next_event(None);
        assert_eq!(wait, Duration::from_secs(120));
        assert!(matches!(e, ProviderError::IdleTimeout(120)));
    }
}
