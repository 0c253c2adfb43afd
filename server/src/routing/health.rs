//! Per-deployment health: a circuit breaker (a target that failed
//! `breaker_failures` times in a row is skipped for a cooldown, then
//! probed with one request) and the count of calls in flight
//! (`least_busy`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::config::Policy;

#[derive(Default)]
struct State {
    /// Failures in a row.
    failures: u32,
    /// Open until then.
    open_until: Option<Instant>,
    /// A half-open probe is out.
    probing: bool,
    last_failure: Option<Instant>,
}

/// One deployment's health, shared by every alias that names it.
#[derive(Default)]
pub struct Health {
    state: Mutex<State>,
    in_flight: AtomicUsize,
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Closed: serve.
    Open,
    /// Cooling down: skip.
    Shut,
    /// Cooled down: this caller is the one probe.
    Probe,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go to this target now (and takes the probe
    /// when the cooldown is over).
    pub fn gate(&self, now: Instant) -> Gate {
        let mut s = self.lock();
        match s.open_until {
            None => Gate::Open,
            Some(t) if now < t => Gate::Shut,
            Some(_) if s.probing => Gate::Shut,
            Some(_) => {
                s.probing = true;
                Gate::Probe
            }
        }
    }

    /// The target answered (even if the answer was the request's fault).
    pub fn succeeded(&self) {
        let mut s = self.lock();
        s.failures = 0;
        s.open_until = None;
        s.probing = false;
    }

    /// The target failed; opens the breaker after enough failures in a
    /// row, or at once when the failure was the probe.
    pub fn failed(&self, policy: &Policy, now: Instant) -> bool {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        s.last_failure = Some(now);
        if s.probing || s.failures >= policy.breaker_failures {
            s.probing = false;
            s.open_until = Some(now + policy.breaker_cooldown);
            return true;
        }
        false
    }

    /// A probe that ended with neither verdict (cancelled) gives the
    /// probe back.
    pub fn release_probe(&self) {
        self.lock().probing = false;
    }

    /// When it last failed (to pick among targets that all cool down).
    pub fn last_failure(&self) -> Option<Instant> {
        self.lock().last_failure
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a call in flight until the guard is dropped.
    pub fn enter(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// One call in flight.
pub struct InFlight(std::sync::Arc<Health>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> Policy {
        Policy {
            max_retries: 0,
            backoff_initial: Duration::ZERO,
            backoff_max: Duration::ZERO,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(10),
        }
    }

    #[test]
    fn opens_after_failures_in_a_row_then_probes_once() {
        let h = Health::default();
        let p = policy();
        let t0 = Instant::now();
        assert!(!h.failed(&p, t0));
        h.succeeded();
        assert!(!h.failed(&p, t0));
        assert!(!h.failed(&p, t0));
        assert_eq!(h.gate(t0), Gate::Open);
        assert!(h.failed(&p, t0));
        assert_eq!(h.gate(t0 + Duration::from_secs(5)), Gate::Shut);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(h.gate(later), Gate::Probe);
        assert_eq!(h.gate(later), Gate::Shut, "one probe at a time");
        // A failed probe opens it again at once.
        assert!(h.failed(&p, later));
        assert_eq!(h.gate(later + Duration::from_secs(1)), Gate::Shut);
        let after = later + Duration::from_secs(11);
        assert_eq!(h.gate(after), Gate::Probe);
        h.succeeded();
        assert_eq!(h.gate(after), Gate::Open);
    }
}
