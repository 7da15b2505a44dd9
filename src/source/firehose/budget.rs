//! The bytes that request bodies may hold at once, over all requests: the
//! raw bodies as they arrive and their decompressed copies. A request takes a
//! [`Reservation`] and grows it chunk by chunk; a request that cannot grow it
//! is answered 503 (Firehose retries it later) instead of waiting, so that
//! half-read requests never wait on each other. Releasing is dropping.
//! The bytes held are also kept in a gauge
//! (`vpc_flow_exporter_firehose_bytes_in_flight` when the receiver wires it).

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::request::RequestError;

/// The default total: enough for 4 requests at the largest size Firehose
/// sends (64 MiB raw + 64 MiB decompressed each).
pub const DEFAULT_BUDGET_BYTES: usize = 4 * 128 * 1024 * 1024;

/// The largest single growth in bytes (a semaphore takes at most `u32`
/// permits at once); larger growths are taken in several steps.
const MAX_STEP: usize = u32::MAX as usize;

/// Shared bytes-in-flight budget; cheap to clone.
#[derive(Debug, Clone)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    total: usize,
    held: Option<IntGauge>,
}

/// Bytes held by one request; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
    held: Option<IntGauge>,
}

/// A byte count as a gauge value (every count here is at most
/// `Semaphore::MAX_PERMITS`, which fits in an `i64`).
fn gauge_value(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl Budget {
    /// A budget of `total` bytes (at most the semaphore's maximum).
    pub fn new(total: usize) -> Budget {
        let total = total.min(Semaphore::MAX_PERMITS);
        Budget { semaphore: Arc::new(Semaphore::new(total)), total, held: None }
    }

    /// A budget of `total` bytes whose bytes held are also kept in `held`
    /// (set to 0 here, raised on each growth and lowered when a
    /// reservation is dropped).
    pub fn with_gauge(total: usize, held: IntGauge) -> Budget {
        held.set(0);
        Budget { held: Some(held), ..Budget::new(total) }
    }

    /// A budget that never runs out (tests, tools).
    pub fn unlimited() -> Budget {
        Budget::new(Semaphore::MAX_PERMITS)
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes currently free.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Bytes currently held by all reservations.
    pub fn held(&self) -> usize {
        self.total.saturating_sub(self.available())
    }

    /// An empty reservation, grown as the body arrives.
    pub fn reserve(&self) -> Reservation {
        Reservation { semaphore: Arc::clone(&self.semaphore), permit: None, bytes: 0, held: self.held.clone() }
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `more` bytes on top, or fails with [`RequestError::Busy`]
    /// without holding any of them.
    pub fn grow(&mut self, more: usize) -> Result<(), RequestError> {
        let mut taken: Option<OwnedSemaphorePermit> = None;
        let mut left = more;
        while left > 0 {
            let step = left.min(MAX_STEP);
            // `step` fits in u32 by construction.
            let n = u32::try_from(step).map_err(|_| RequestError::Busy)?;
            match Arc::clone(&self.semaphore).try_acquire_many_owned(n) {
                Ok(p) => match taken.as_mut() {
                    Some(t) => t.merge(p),
                    None => taken = Some(p),
                },
                Err(TryAcquireError::NoPermits) | Err(TryAcquireError::Closed) => return Err(RequestError::Busy),
            }
            left -= step;
        }
        if let Some(p) = taken {
            match self.permit.as_mut() {
                Some(held) => held.merge(p),
                None => self.permit = Some(p),
            }
        }
        self.bytes += more;
        if let Some(held) = &self.held {
            held.add(gauge_value(more));
        }
        Ok(())
    }

    /// Grows the reservation to at least `total` bytes.
    pub fn ensure(&mut self, total: usize) -> Result<(), RequestError> {
        if total > self.bytes {
            self.grow(total - self.bytes)
        } else {
            Ok(())
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // The permit goes back to the semaphore right after this.
        if let Some(held) = &self.held {
            held.sub(gauge_value(self.bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_releases_and_refuses_beyond_the_total() {
        let budget = Budget::new(1000);
        let mut a = budget.reserve();
        a.grow(600).unwrap();
        a.ensure(700).unwrap();
        a.ensure(650).unwrap();
        assert_eq!(a.bytes(), 700);
        assert_eq!(budget.available(), 300);
        let mut b = budget.reserve();
        assert_eq!(b.grow(301), Err(RequestError::Busy));
        assert_eq!(b.bytes(), 0);
        assert_eq!(budget.available(), 300, "a failed growth holds nothing");
        b.grow(300).unwrap();
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 700);
        drop(b);
        assert_eq!(budget.available(), 1000);
    }

    #[test]
    fn the_gauge_follows_the_bytes_held() {
        let gauge = IntGauge::new("held", "test").unwrap();
        gauge.set(99);
        let budget = Budget::with_gauge(1000, gauge.clone());
        assert_eq!(gauge.get(), 0, "a new budget holds nothing");
        let mut a = budget.reserve();
        a.grow(400).unwrap();
        a.ensure(600).unwrap();
        let mut b = budget.reserve();
        b.grow(300).unwrap();
        assert_eq!((gauge.get(), budget.held()), (900, 900));
        assert_eq!(b.grow(101), Err(RequestError::Busy));
        assert_eq!(gauge.get(), 900, "a refused growth is not counted");
        let c = budget.clone().reserve();
        drop(c);
        drop(a);
        assert_eq!((gauge.get(), budget.held()), (300, 300));
        drop(b);
        assert_eq!((gauge.get(), budget.held()), (0, 0));
    }

    #[test]
    fn concurrent_reservations_return_the_gauge_to_zero() {
        let gauge = IntGauge::new("held", "test").unwrap();
        let budget = Budget::with_gauge(64 * 1024, gauge.clone());
        let peak = std::sync::atomic::AtomicI64::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (budget, gauge, peak) = (&budget, &gauge, &peak);
                s.spawn(move || {
                    for i in 0..2000 {
                        let mut r = budget.reserve();
                        for _ in 0..4 {
                            // Some growths fail when the others hold the rest.
                            let _ = r.grow(1000 + (i * 7 + t) % 3000);
                            peak.fetch_max(gauge.get(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let peak = peak.into_inner();
        assert!(peak > 0 && peak <= 64 * 1024, "peak {peak}");
        assert_eq!((gauge.get(), budget.held()), (0, 0));
    }

    #[test]
    fn unlimited_takes_large_steps() {
        let budget = Budget::unlimited();
        let mut r = budget.reserve();
        r.grow(MAX_STEP + 10).unwrap();
        assert_eq!(r.bytes(), MAX_STEP + 10);
    }
}
