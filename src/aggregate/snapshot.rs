//! A copy of what an aggregator exposes, taken under the writers' lock in
//! O(series) without sorting or formatting: counters are copied, the
//! trackers hand over their window values unsorted. The collector selects,
//! sorts, formats and encodes from it after the lock is released. A
//! snapshot is reused from scrape to scrape, so taking one allocates only
//! when the aggregates have grown.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Aggregator, InterfaceCounters, RecordHistograms};
use crate::detect::geo::Country;
use crate::detect::Rules;
use crate::parse::ParseError;

/// The exposed statistics of one windowed tracker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub entries: usize,
    pub evictions: u64,
    pub deferred: u64,
    pub error_bound: u64,
}

/// The trackers, in the order of [`Snapshot::trackers`].
pub const TRACKERS: [&str; 3] = ["rejected_sources", "rejected_destinations", "port_scan"];

/// The exposed state of an aggregator at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The rules the counts were made by (watched ports, thresholds).
    pub rules: Option<Arc<Rules>>,
    pub max_interfaces: usize,
    /// `unknown`, `other`, then one per interface-id.
    pub interfaces: Vec<InterfaceCounters>,
    /// Interface-ids with their own label value.
    pub interface_count: usize,
    pub interface_limit_records: u64,
    pub forbidden_limit_records: u64,
    pub implausible_durations: u64,
    /// By protocol number (256: none), then action.
    pub protocols: Vec<[u64; 3]>,
    /// By watched-port position (last: `other`), then action.
    pub dstports: Vec<[u64; 3]>,
    pub countries: Vec<(Country, [u64; 3])>,
    /// By action.
    pub histograms: Vec<RecordHistograms>,
    pub lines: u64,
    pub parse_errors: [u64; ParseError::ALL.len()],
    pub newest: u64,
    pub future_records: u64,
    /// Window counts of every rejected source and destination held, unsorted.
    pub top_sources: Vec<(IpAddr, u64)>,
    pub top_destinations: Vec<(IpAddr, u64)>,
    /// Distinct ports of every source with at least the lower of
    /// `min_distinct_ports` and `shard_min_ports`, unsorted.
    pub port_scanners: Vec<(IpAddr, u64)>,
    /// In [`TRACKERS`] order.
    pub trackers: [TrackerStats; 3],
    pub port_scan_capped: u64,
}

impl Aggregator {
    /// A snapshot of the exposed state.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        self.snapshot_into(&mut s);
        s
    }

    /// Overwrites `s` with the exposed state, reusing its allocations. Meant
    /// to run under the writers' lock: O(series + tracked addresses), no
    /// sorting, no formatting.
    pub fn snapshot_into(&self, s: &mut Snapshot) {
        s.rules = Some(self.rules.clone());
        s.max_interfaces = self.limits.max_interfaces;
        s.interfaces.truncate(self.interfaces.len());
        let held = s.interfaces.len();
        for (into, from) in s.interfaces.iter_mut().zip(&self.interfaces) {
            into.clone_from(from);
        }
        s.interfaces.extend(self.interfaces[held..].iter().cloned());
        s.interface_count = self.iface_slots.len();
        s.interface_limit_records = self.interface_limit_records;
        s.forbidden_limit_records = self.forbidden_limit_records;
        s.implausible_durations = self.implausible_durations;
        s.protocols.clear();
        s.protocols.extend_from_slice(&self.protocols[..]);
        s.dstports.clone_from(&self.dstports);
        s.countries.clear();
        s.countries.extend(self.countries.iter().map(|(&c, &row)| (c, row)));
        if s.histograms.len() == self.histograms.len() {
            s.histograms.iter_mut().zip(&self.histograms).for_each(|(into, from)| into.clone_from(from));
        } else {
            s.histograms = self.histograms.to_vec();
        }
        s.lines = self.lines;
        s.parse_errors = self.parse_errors;
        s.newest = self.newest;
        s.future_records = self.future_records;
        self.snapshot_trackers(s);
    }

    fn snapshot_trackers(&self, s: &mut Snapshot) {
        let newest = self.newest;
        s.top_sources.clear();
        self.top_sources.snapshot(newest, &mut s.top_sources);
        s.top_destinations.clear();
        self.top_destinations.snapshot(newest, &mut s.top_destinations);
        s.port_scanners.clear();
        let min = self.rules.port_scan_min_ports().min(self.rules.port_scan_export_min_ports());
        self.port_scans.snapshot(newest, min, &mut s.port_scanners);
        let (src, dst, ps) = (&self.top_sources, &self.top_destinations, &self.port_scans);
        s.trackers = [
            TrackerStats {
                entries: src.len(),
                evictions: src.evictions(),
                deferred: src.deferred(),
                error_bound: src.error_bound(newest),
            },
            TrackerStats {
                entries: dst.len(),
                evictions: dst.evictions(),
                deferred: dst.deferred(),
                error_bound: dst.error_bound(newest),
            },
            TrackerStats {
                entries: ps.len(),
                evictions: ps.evictions(),
                deferred: ps.deferred(),
                error_bound: ps.error_bound(newest),
            },
        ];
        s.port_scan_capped = ps.capped();
    }
}
