//! Port-scan detection: distinct REJECT dstports per source over a sliding
//! window of flow time, in bounded memory.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug)]
pub struct PortScanTracker {}

impl PortScanTracker {
    pub fn new(_window: Duration, _capacity: usize) -> PortScanTracker {
        PortScanTracker {}
    }
    /// One REJECT record from `src` to `port` at flow time `time`.
    pub fn add(&mut self, _src: IpAddr, _port: u16, _time: u64, _newest: u64) {}
    /// Sources with at least `min_ports` distinct ports in the window ending at
    /// `newest`: their number, and the `k` with the most ports (most first, ties
    /// by address) appended to `out` as (source, distinct ports).
    pub fn scanners(&self, _min_ports: u32, _k: usize, _newest: u64, _out: &mut Vec<(IpAddr, u64)>) -> u64 {
        0
    }
    pub fn evictions(&self) -> u64 {
        0
    }
    /// Observations not recorded because a source already holds the per-source
    /// port cap.
    pub fn capped(&self) -> u64 {
        0
    }
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
