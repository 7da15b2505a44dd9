//! Backoff with jitter, the one retry layer of the source (the SDK's retryer
//! is disabled, see [`super::client`]).
//!
//! Two levels use it: a request that fails with a transient error (throttling,
//! 5xx, timeout, broken connection) is sent again after an exponential delay,
//! up to [`MAX_ATTEMPTS`]; a poll of a log group that fails anyway (or with a
//! lasting error: missing group, access denied) is tried again after a delay
//! that starts at the poll interval and doubles up to five minutes. Delays use
//! "equal jitter": half fixed, half random, so concurrent groups spread out but
//! never retry at once.

use std::time::Duration;

use rand::Rng;

/// Attempts of one request before the poll gives up (and resumes later).
pub const MAX_ATTEMPTS: u32 = 8;

/// Exponential backoff: `min(cap, base * 2^(n-1))`, jittered.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Between attempts of one request.
    pub const REQUEST: Backoff = Backoff { base: Duration::from_millis(200), cap: Duration::from_secs(20) };

    /// Between failed polls of one log group.
    pub fn poll(poll_interval: Duration) -> Backoff {
        Backoff { base: poll_interval, cap: poll_interval.max(Duration::from_secs(300)) }
    }

    /// The un-jittered delay after the `n`-th failure (n >= 1).
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay after the `n`-th failure: between half the ceiling and the ceiling.
    pub fn delay(&self, n: u32) -> Duration {
        let c = self.ceiling(n);
        let half = c / 2;
        let jitter = rand::rng().random_range(0.0..=1.0);
        half + half.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps_with_jitter() {
        let b = Backoff::REQUEST;
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(30), Duration::from_secs(20));
        for n in 1..12 {
            let d = b.delay(n);
            assert!(d >= b.ceiling(n) / 2 && d <= b.ceiling(n), "{n}: {d:?}");
        }
        let p = Backoff::poll(Duration::from_secs(60));
        assert_eq!(p.ceiling(1), Duration::from_secs(60));
        assert_eq!(p.ceiling(4), Duration::from_secs(300));
    }
}
