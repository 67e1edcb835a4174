//! When a web seed that failed may be asked again.
//!
//! Exponential: [`BACKOFF_FIRST`] after the first failure in a row, doubling, capped at
//! [`BACKOFF_MAX`]; a success resets it. A server's `Retry-After` (seconds) is honoured
//! when longer, up to [`RETRY_AFTER_MAX`], so a server asking for an absurd wait does not
//! park the web seed for ever.

use std::time::Duration;

pub const BACKOFF_FIRST: Duration = Duration::from_secs(2);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Failures since the last success.
    failures: u32,
    /// Not to be asked before this.
    until: Duration,
}

impl Backoff {
    /// A failure at `now`; returns how long to wait.
    pub fn fail(&mut self, now: Duration, retry_after: Option<Duration>) -> Duration {
        let doubling = 1u32 << self.failures.min(16);
        let wait = BACKOFF_FIRST.saturating_mul(doubling).min(BACKOFF_MAX);
        let wait = match retry_after {
            Some(asked) => wait.max(asked.min(RETRY_AFTER_MAX)),
            None => wait,
        };
        self.failures = self.failures.saturating_add(1);
        self.until = now + wait;
        wait
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When it may be asked again, if that is after `now`.
    pub fn waiting(&self, now: Duration) -> Option<Duration> {
        (self.until > now).then_some(self.until)
    }
}

/// `Retry-After` as seconds (the HTTP-date form is not read: it needs a calendar clock).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 9 {
        return None;
    }
    v.parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_up_to_a_cap_and_reset_on_success() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..12)
            .map(|_| b.fail(Duration::ZERO, None).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]);
        assert_eq!(b.waiting(10 * S), Some(300 * S));
        assert_eq!(b.waiting(300 * S), None);
        b.succeeded();
        assert_eq!(b.fail(100 * S, None), 2 * S);
        assert_eq!(b.waiting(101 * S), Some(102 * S));
    }

    #[test]
    fn retry_after_is_honoured_within_a_cap() {
        let mut b = Backoff::default();
        assert_eq!(b.fail(Duration::ZERO, Some(40 * S)), 40 * S);
        assert_eq!(
            b.fail(Duration::ZERO, Some(1 * S)),
            4 * S,
            "never below the backoff"
        );
        assert_eq!(b.fail(Duration::ZERO, Some(99_999 * S)), RETRY_AFTER_MAX);
        assert_eq!(parse_retry_after(" 120 "), Some(120 * S));
        for bad in ["", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "9999999999"] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }
}
