//! The attempt loop: call a target; on a failure before the first output
//! retry it with exponential backoff and jitter (honouring `Retry-After`
//! up to the cap), then fail over to the next target. The request's own
//! faults (400, 404, …) are answered at once; an upstream 401/403 is the
//! operator's key: the next key of the pool, then the next target.

use std::time::{Duration, Instant};

use futures::StreamExt;

use super::health::Gate;
use super::{Policy, Resolved, Target};
use crate::providers::{
    CallContext, Completion, EventStream, ProviderError, ProviderEvent,
    ProviderRequest,
};

/// Who served a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The serving provider's configured name.
    pub provider: String,
    /// The upstream model it was asked for.
    pub model: String,
    /// Calls made, the serving one included.
    pub attempts: u32,
}

/// A call no target served: the last failure and whose it was.
#[derive(Debug)]
pub struct Failed {
    /// The provider that failed last.
    pub provider: String,
    /// Its failure.
    pub error: ProviderError,
}

/// What a failed attempt means.
enum Verdict {
    /// Transient: retry after a backoff (at least `after`).
    Retry { after: Option<Duration> },
    /// The operator's key: another key, else the next target.
    Credentials,
    /// The request's fault or an unreadable answer: answer it.
    Final,
}

fn verdict(e: &ProviderError) -> Verdict {
    match e {
        ProviderError::Status { status: 429, retry_after, .. } => {
            Verdict::Retry { after: retry_after.map(Duration::from_secs) }
        }
        ProviderError::Status { status: 401 | 403, .. } => Verdict::Credentials,
        ProviderError::Status {
            status: 500 | 502 | 503 | 504 | 529, ..
        } => Verdict::Retry { after: None },
        // The time budget is spent: another try would overrun it.
        ProviderError::Status { .. }
        | ProviderError::Unsupported(_)
        | ProviderError::Protocol(_)
        | ProviderError::TotalTimeout(_) => Verdict::Final,
        ProviderError::Unavailable(_)
        | ProviderError::Timeout(_)
        | ProviderError::IdleTimeout(_)
        | ProviderError::Stream(_) => Verdict::Retry { after: None },
    }
}

/// The `n`th backoff (0-based): doubling from `initial`, capped, with
/// jitter in its upper half; a `Retry-After` raises it (up to the cap).
fn backoff(policy: &Policy, n: u32, after: Option<Duration>) -> Duration {
    let exp = policy
        .backoff_initial
        .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
        .min(policy.backoff_max);
    let half = exp / 2;
    let jitter = if half.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_nanos(rand::random_range(0..=half.as_nanos() as u64))
    };
    let d = half + jitter;
    match after {
        Some(a) => d.max(a.min(policy.backoff_max)),
        None => d,
    }
}

/// What one attempt asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stream,
    Whole,
}

enum Output {
    Stream(EventStream),
    Whole(Completion),
}

impl Resolved {
    /// Opens a stream on the first target that gets to its first output.
    pub async fn stream(
        &self,
        req: &mut ProviderRequest,
        ctx: &CallContext,
    ) -> Result<(EventStream, Served), Failed> {
        match self.call(req, ctx, Mode::Stream).await? {
            (Output::Stream(s), served) => Ok((s, served)),
            (Output::Whole(_), _) => unreachable!("a stream was asked for"),
        }
    }

    /// Runs a whole generation on the first target that answers.
    pub async fn complete(
        &self,
        req: &mut ProviderRequest,
        ctx: &CallContext,
    ) -> Result<(Completion, Served), Failed> {
        match self.call(req, ctx, Mode::Whole).await? {
            (Output::Whole(c), served) => Ok((c, served)),
            (Output::Stream(_), _) => {
                unreachable!("a completion was asked for")
            }
        }
    }

    async fn call(
        &self,
        req: &mut ProviderRequest,
        ctx: &CallContext,
        mode: Mode,
    ) -> Result<(Output, Served), Failed> {
        let plan = self.plan();
        let targets = plan.len();
        let mut attempts = 0u32;
        let mut last: Option<Failed> = None;
        let metrics = ctx.metrics.as_ref();
        for (index, (target, policy, gate)) in plan.into_iter().enumerate() {
            if let (Some(m), Some(left)) = (metrics, &last) {
                m.upstream_failover(&left.provider);
            }
            let mut retries = 0u32;
            let mut key_tries = 0usize;
            loop {
                if last.is_some() && ctx.cancel.is_cancelled() {
                    if gate == Gate::Probe {
                        release(target);
                    }
                    return Err(last.unwrap_or_else(|| Failed {
                        provider: target.provider_name.clone(),
                        error: ProviderError::Unavailable("cancelled".into()),
                    }));
                }
                attempts += 1;
                if let Some(m) = metrics {
                    m.upstream_attempt(&target.provider_name);
                }
                crate::metrics::notes::note(|n| {
                    n.provider = Some(target.provider_name.clone())
                });
                if req.model != target.model {
                    req.model.clone_from(&target.model);
                }
                // Only an attempt that could be followed by another one
                // looks ahead for a failure before the first output.
                let may_retry = index + 1 < targets
                    || retries < policy.max_retries
                    || target.provider.keys().is_some_and(|k| k.len() > 1);
                let result = attempt(target, req, ctx, mode, may_retry).await;
                let e = match result {
                    Ok(out) => {
                        if let Some(h) = &target.health {
                            h.succeeded();
                        }
                        if attempts > 1 {
                            tracing::info!(
                                request_id = %ctx.request_id,
                                route = self.display_name(),
                                provider = %target.provider_name,
                                model = %target.model,
                                attempts,
                                "served after retries or failover"
                            );
                        }
                        let served = Served {
                            provider: target.provider_name.clone(),
                            model: target.model.clone(),
                            attempts,
                        };
                        return Ok((out, served));
                    }
                    Err(e) => {
                        if let Some(m) = metrics {
                            m.upstream_error(&target.provider_name, &e);
                        }
                        e
                    }
                };
                match verdict(&e) {
                    Verdict::Final => {
                        if let Some(h) = &target.health {
                            // It answered: the deployment is up.
                            h.succeeded();
                        }
                        return Err(Failed {
                            provider: target.provider_name.clone(),
                            error: e,
                        });
                    }
                    Verdict::Credentials => {
                        key_tries += 1;
                        let more_keys =
                            target.provider.keys().is_some_and(|k| {
                                k.available() > 0 && key_tries < k.len()
                            });
                        tracing::warn!(
                            request_id = %ctx.request_id,
                            provider = %target.provider_name,
                            model = %target.model,
                            error = %e,
                            next = if more_keys { "next key" } else { "next target" },
                            "upstream refused the gateway's key"
                        );
                        last = Some(Failed {
                            provider: target.provider_name.clone(),
                            error: e,
                        });
                        if more_keys {
                            if let Some(m) = metrics {
                                m.upstream_retry(&target.provider_name);
                            }
                            continue;
                        }
                        if gate == Gate::Probe {
                            release(target);
                        }
                        break;
                    }
                    Verdict::Retry { after } => {
                        let opened = target
                            .health
                            .as_ref()
                            .is_some_and(|h| h.failed(&policy, Instant::now()));
                        let again = retries < policy.max_retries && !opened;
                        tracing::warn!(
                            request_id = %ctx.request_id,
                            provider = %target.provider_name,
                            model = %target.model,
                            error = %e,
                            attempt = attempts,
                            breaker_opened = opened,
                            next = if again { "retry" } else { "next target" },
                            "upstream attempt failed"
                        );
                        // A 429 cooled that key in the adapter: with
                        // another key left, try it at once.
                        let other_key = matches!(
                            e,
                            ProviderError::Status { status: 429, .. }
                        ) && target
                            .provider
                            .keys()
                            .is_some_and(|k| k.len() > 1 && k.available() > 0);
                        last = Some(Failed {
                            provider: target.provider_name.clone(),
                            error: e,
                        });
                        if !again {
                            break;
                        }
                        if let Some(m) = metrics {
                            m.upstream_retry(&target.provider_name);
                        }
                        let wait = if other_key {
                            Duration::ZERO
                        } else {
                            backoff(&policy, retries, after)
                        };
                        retries += 1;
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = ctx.cancel.cancelled() => {}
                        }
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| Failed {
            provider: self.display_name().to_string(),
            error: ProviderError::Unavailable(
                "no target could be tried".into(),
            ),
        }))
    }
}

fn release(target: &Target) {
    if let Some(h) = &target.health {
        h.release_probe();
    }
}

/// How long a stream that could still be retried is watched for a failure
/// before its first output. Failures of an overloaded upstream come at
/// once (an `error` event right after `message_start`); a model that
/// thinks longer starts the client's stream after this, so the client
/// sees `response.created` without waiting for the first token.
const PEEK_WINDOW: Duration = Duration::from_millis(1000);

/// One call. When another attempt could follow (`may_retry`), a stream
/// counts as served once it reaches its first output (a delta, a finished
/// item or the finish) or [`PEEK_WINDOW`] passes: an upstream that fails
/// before that (an `error` event right after `message_start`, a reset) is
/// retried like one that refused at once. What was read is replayed in
/// front of the rest. The last possible attempt is served at once.
async fn attempt(
    target: &Target,
    req: &ProviderRequest,
    ctx: &CallContext,
    mode: Mode,
    may_retry: bool,
) -> Result<Output, ProviderError> {
    let guard = target.health.as_ref().map(|h| h.enter());
    if mode == Mode::Whole {
        let c = target.provider.complete(req, ctx).await;
        drop(guard);
        return c.map(Output::Whole);
    }
    let mut s = target.provider.stream(req, ctx).await?;
    let mut head = Vec::new();
    if may_retry {
        let until = tokio::time::Instant::now() + PEEK_WINDOW;
        peek(&mut s, &mut head, until).await?;
    }
    let rest = s.map(move |ev| {
        // Counted in flight until the stream is dropped.
        let _ = &guard;
        ev
    });
    Ok(Output::Stream(Box::pin(futures::stream::iter(head).chain(rest))))
}

/// Reads `s` into `head` until its first output or `until`; an error
/// before that is the attempt's failure.
async fn peek(
    s: &mut EventStream,
    head: &mut Vec<Result<ProviderEvent, ProviderError>>,
    until: tokio::time::Instant,
) -> Result<(), ProviderError> {
    while let Ok(Some(next)) = tokio::time::timeout_at(until, s.next()).await {
        let ev = next?;
        let output = matches!(
            ev,
            ProviderEvent::Delta { .. }
                | ProviderEvent::ItemDone { .. }
                | ProviderEvent::Finish(_)
        );
        head.push(Ok(ev));
        if output {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after_up_to_the_cap() {
        let p = Policy {
            max_retries: 5,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_millis(1000),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let b0 = backoff(&p, 0, None);
            assert!(
                b0 >= Duration::from_millis(100)
                    && b0 <= Duration::from_millis(200)
            );
            let b2 = backoff(&p, 2, None);
            assert!(
                b2 >= Duration::from_millis(400)
                    && b2 <= Duration::from_millis(800)
            );
            let b9 = backoff(&p, 40, None);
            assert!(
                b9 >= Duration::from_millis(500)
                    && b9 <= Duration::from_millis(1000)
            );
            let ra = backoff(&p, 0, Some(Duration::from_secs(7)));
            assert_eq!(ra, Duration::from_millis(1000));
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let s = |status| ProviderError::Status {
            status,
            report: Default::default(),
            retry_after: None,
        };
        for st in [429, 500, 502, 503, 504, 529] {
            assert!(matches!(verdict(&s(st)), Verdict::Retry { .. }), "{st}");
        }
        for st in [400, 404, 409, 413, 422] {
            assert!(matches!(verdict(&s(st)), Verdict::Final), "{st}");
        }
        assert!(matches!(verdict(&s(401)), Verdict::Credentials));
        assert!(matches!(verdict(&s(403)), Verdict::Credentials));
        assert!(matches!(
            verdict(&ProviderError::Timeout(3)),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            verdict(&ProviderError::Protocol("x".into())),
            Verdict::Final
        ));
    }
}
