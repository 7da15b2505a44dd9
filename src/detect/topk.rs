//! Windowed top-K of addresses by REJECT record count, in bounded memory.

use std::net::IpAddr;
use std::time::Duration;

/// Counts per address over a sliding window of flow time, holding at most
/// `capacity` addresses.
#[derive(Debug)]
pub struct WindowedTopK {}

impl WindowedTopK {
    pub fn new(_window: Duration, _capacity: usize) -> WindowedTopK {
        WindowedTopK {}
    }
    /// One record for `key` at flow time `time` (unix seconds); `newest` is the
    /// newest record time seen by the caller (>= time is not required).
    pub fn add(&mut self, _key: IpAddr, _time: u64, _newest: u64) {}
    /// The `k` addresses with the most records in the window ending at `newest`,
    /// most first (ties: by address), appended to `out`.
    pub fn top(&self, _k: usize, _newest: u64, _out: &mut Vec<(IpAddr, u64)>) {}
    /// Addresses dropped to stay within capacity, since start.
    pub fn evictions(&self) -> u64 {
        0
    }
    /// Addresses held now.
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
