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
    /// A snapshot of the exposed state (the same as
    /// [`snapshot_into`](Self::snapshot_into)'s, without moving the trackers'
    /// clocks: slower when they lag).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        self.copy_into(&mut s);
        s
    }

    /// Overwrites `s` with the exposed state, reusing its allocations. Meant
    /// to run under the writers' lock: O(series + tracked addresses), no
    /// sorting, no formatting. The top-K trackers are first brought to the
    /// newest record time (see [`advance_windows`](Self::advance_windows)).
    pub fn snapshot_into(&mut self, s: &mut Snapshot) {
        self.advance_windows();
        self.copy_into(s);
    }

    /// Moves the top-K trackers' clocks to the newest record time, as their
    /// next record would. They lag it whenever the newest records are not
    /// REJECTs (only those feed them), and a tracker read at a later slot
    /// than its own subtracts, for every address seen in two or more slots,
    /// each slot that has left the window since: up to 60 scattered loads
    /// per address under the writers' lock. Advancing sweeps those slots out
    /// of the kept totals once, in sequential passes, so the snapshot reads
    /// one number per address. Nothing exposed changes: the same addresses
    /// are held (none is dropped here), with the same window counts and
    /// bounds. The port-scan tracker reads a source's ports the same way at
    /// any time and is left as is.
    pub fn advance_windows(&mut self) {
        self.top_sources.advance(self.newest);
        self.top_destinations.advance(self.newest);
    }

    fn copy_into(&self, s: &mut Snapshot) {
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

#[cfg(test)]
mod tests {
    use super::Snapshot;
    use crate::aggregate::Aggregator;
    use crate::config::Config;
    use crate::parse::{Format, LineParser};

    fn sorted(mut v: Vec<(std::net::IpAddr, u64)>) -> Vec<(std::net::IpAddr, u64)> {
        v.sort();
        v
    }

    #[test]
    fn a_snapshot_advances_lagging_trackers_and_reports_the_same() {
        let mut agg = Aggregator::new(&Config::default());
        let mut p = LineParser::for_stream(Format::default_v2());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        // Each source rejected in two slots of the 15 m window (a ring each),
        // then accepted traffic 7.5 min later: only the aggregator's clock moves.
        for (i, t) in (0..40u64).flat_map(|i| [(i, now - 600), (i, now)]) {
            let line = format!("2 1 eni-a 203.0.113.{i} 10.0.0.{i} 1 {} 6 1 1 {t} {t} REJECT OK", 20 + i);
            agg.ingest_line(&mut p, line.as_bytes());
        }
        let later = now + 450;
        let line = format!("2 1 eni-a 198.51.100.1 10.0.0.1 1 443 6 1 1 {later} {later} ACCEPT OK");
        agg.ingest_line(&mut p, line.as_bytes());
        assert!(!agg.top_sources.is_swept_at(later) && !agg.top_destinations.is_swept_at(later));

        let before = agg.snapshot();
        let mut after = Snapshot::default();
        agg.snapshot_into(&mut after);
        assert!(agg.top_sources.is_swept_at(later) && agg.top_destinations.is_swept_at(later));
        assert_eq!(after.newest, later);
        assert_eq!(after.trackers, before.trackers, "entries, evictions, deferred, bounds");
        assert_eq!(after.trackers[0].entries, 40);
        // The slot of `now - 600` has left the window: one record each.
        assert_eq!(sorted(after.top_sources.clone()), sorted(before.top_sources));
        assert_eq!(after.top_sources.len(), 40);
        assert!(after.top_sources.iter().all(|&(_, c)| c == 1));
        assert_eq!(sorted(after.top_destinations), sorted(before.top_destinations));
        assert_eq!(sorted(after.port_scanners), sorted(before.port_scanners));
    }
}
