//! One request-rate limit shared by every log group of the source: the
//! FilterLogEvents quota is per account and region, not per group. Requests are
//! spaced at least `1 / rate` apart (no burst). The rate adapts: each
//! ThrottlingException halves it (down to 1/16 of the configured maximum), and
//! each successful request wins back a tenth of the maximum, so a throttled
//! exporter slows down for everyone instead of each group hammering on.
//! Time is tokio's, so tests can pause it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct State {
    /// Earliest time of the next request.
    next: Instant,
    /// Current allowed requests per second.
    rate: f64,
}

/// The shared request-rate limit.
#[derive(Debug)]
pub struct RateLimiter {
    max_rate: f64,
    min_rate: f64,
    state: Mutex<State>,
}

impl RateLimiter {
    pub fn new(max_requests_per_second: f64) -> RateLimiter {
        let max_rate = if max_requests_per_second.is_finite() && max_requests_per_second > 0.0 {
            max_requests_per_second
        } else {
            1.0
        };
        RateLimiter {
            max_rate,
            min_rate: max_rate / 16.0,
            state: Mutex::new(State { next: Instant::now(), rate: max_rate }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for this request's slot. A slot reserved by a caller that is then
    /// cancelled is simply unused.
    pub async fn acquire(&self) {
        let at = {
            let mut s = self.lock();
            let now = Instant::now();
            let slot = s.next.max(now);
            s.next = slot + Duration::from_secs_f64(1.0 / s.rate);
            slot
        };
        tokio::time::sleep_until(at).await;
    }

    /// A request was throttled: halve the rate.
    pub fn on_throttled(&self) {
        let mut s = self.lock();
        s.rate = (s.rate / 2.0).max(self.min_rate);
    }

    /// A request succeeded: win back some rate.
    pub fn on_success(&self) {
        let mut s = self.lock();
        s.rate = (s.rate + self.max_rate / 10.0).min(self.max_rate);
    }

    /// The current allowed rate (requests per second).
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_across_tasks() {
        let rl = Arc::new(RateLimiter::new(4.0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let rl = rl.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..4 {
                    rl.acquire().await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        // 12 requests at 4/s: the last one at 11 x 250 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(2750));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_slows_down_and_success_recovers() {
        let rl = RateLimiter::new(4.0);
        rl.on_throttled();
        rl.on_throttled();
        assert_eq!(rl.rate(), 1.0);
        for _ in 0..100 {
            rl.on_throttled();
        }
        assert_eq!(rl.rate(), 0.25);
        rl.acquire().await;
        let t = Instant::now();
        rl.acquire().await;
        assert_eq!(t.elapsed(), Duration::from_secs(4));
        for _ in 0..20 {
            rl.on_success();
        }
        assert_eq!(rl.rate(), 4.0);
    }
}
