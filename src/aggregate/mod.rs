//! Aggregation: every valid record becomes counts in plain in-memory arrays —
//! per interface (records, bytes, packets, log status, detections), per
//! protocol, per watched port, per country — and histograms per action; the
//! windowed detections of `detect` are fed from here. What a record means
//! (which rule it breaks, which watched-port row, which country) is decided by
//! [`Rules::classify`]; this module only counts it. Nothing here touches a
//! Prometheus label map: `expose` encodes a [`Snapshot`] of these aggregates
//! at scrape time. Aggregators built from one configuration are shards that
//! [`Aggregator::merge_from`] adds together. Label values are bounded by
//! construction: interfaces by `limits.max_interfaces` (beyond it, `other`,
//! counted), protocols by their 8-bit number, ports by the configured lists,
//! countries by ISO codes.

pub mod diag;
pub mod histogram;
mod merge;
pub mod snapshot;

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use crate::config::{Config, Limits};
use crate::detect::geo::{Country, CountryLookup};
use crate::detect::portscan::PortScanTracker;
use crate::detect::topk::WindowedTopK;
use crate::detect::{Classification, Rules};
use crate::parse::{Action, Line, LineParser, ParseError, Record};
use histogram::{IntHistogram, BYTES_BUCKETS, DURATION_BUCKETS, PACKETS_BUCKETS};
pub use snapshot::Snapshot;
/// The aggregates of one exporter, shared by the sources (writers, one lock per
/// batch) and the scrape handler (reader).
pub type SharedAggregator = Arc<Mutex<Aggregator>>;

/// Interface slot of records without an interface-id.
pub const IFACE_UNKNOWN: usize = 0;
/// Interface slot of records beyond `limits.max_interfaces`.
pub const IFACE_OTHER: usize = 1;

/// Longest interface-id given its own label value (real ones have 21 bytes);
/// longer ones count under `other`, so label memory stays bounded.
pub const MAX_INTERFACE_ID_LEN: usize = 128;

/// Most (interface, forbidden port) series; records that would open one more
/// count under `dstport="other"` of their interface (still counted, still
/// alerting), and in `vpc_flow_exporter_forbidden_port_limit_records_total`.
pub const MAX_FORBIDDEN_PORT_SERIES: usize = 10_000;
/// The `forbidden` key of records beyond [`MAX_FORBIDDEN_PORT_SERIES`].
pub const FORBIDDEN_OTHER: u32 = 1 << 16;

/// Longest flow (end minus start) observed in the duration histogram: AWS
/// aggregates over at most 10 minutes, so a day is generous. Longer or
/// negative durations (a record with start 0, or end before start) stay out of
/// the histogram and count in `vpc_flow_exporter_implausible_durations_total`.
pub const MAX_FLOW_DURATION: u64 = 86_400;

/// How far ahead of the clock a flow time may be and still enter the windows.
pub const FUTURE_TOLERANCE: u64 = 3600;

fn future_limit() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    now + FUTURE_TOLERANCE
}

/// The label value of an interface-id: as it is when it is printable ASCII
/// without a backslash (every real one), else with its bytes escaped
/// (`\xff`, `\\`), so that distinct ids never share a label value.
pub fn interface_label(id: &[u8]) -> String {
    if id.iter().all(|&b| b.is_ascii_graphic() && b != b'\\') {
        String::from_utf8_lossy(id).into_owned()
    } else {
        id.escape_ascii().to_string()
    }
}

/// Counters of one `interface_id` label value. Arrays are indexed by
/// [`Action::index`] or [`LogStatus::index`](crate::parse::LogStatus::index).
#[derive(Debug)]
pub struct InterfaceCounters {
    /// The label value (shared, so that a snapshot copies a pointer).
    pub name: Arc<str>,
    pub records: [u64; 3],
    pub bytes: [u64; 3],
    pub packets: [u64; 3],
    pub log_status: [u64; 3],
    pub illegal_source_accepts: u64,
    pub short_connections: u64,
    pub unapproved_destination: [u64; 3],
    /// Records to forbidden ports, by port (or [`FORBIDDEN_OTHER`]) then action;
    /// only the ports this interface has seen (none allocated until the first).
    pub forbidden: FxHashMap<u32, [u64; 3]>,
}

impl Clone for InterfaceCounters {
    fn clone(&self) -> InterfaceCounters {
        let mut c = InterfaceCounters::new("");
        c.clone_from(self);
        c
    }

    /// Reuses the forbidden-port map's allocation (snapshots copy into the
    /// previous scrape's counters).
    fn clone_from(&mut self, from: &InterfaceCounters) {
        self.name.clone_from(&from.name);
        self.records = from.records;
        self.bytes = from.bytes;
        self.packets = from.packets;
        self.log_status = from.log_status;
        self.illegal_source_accepts = from.illegal_source_accepts;
        self.short_connections = from.short_connections;
        self.unapproved_destination = from.unapproved_destination;
        self.forbidden.clone_from(&from.forbidden);
    }
}

impl InterfaceCounters {
    fn new(name: &str) -> InterfaceCounters {
        InterfaceCounters {
            name: name.into(),
            records: [0; 3],
            bytes: [0; 3],
            packets: [0; 3],
            log_status: [0; 3],
            illegal_source_accepts: 0,
            short_connections: 0,
            unapproved_destination: [0; 3],
            forbidden: FxHashMap::default(),
        }
    }
}

/// Histograms of traffic records for one action.
#[derive(Debug, Clone)]
pub struct RecordHistograms {
    pub bytes: IntHistogram,
    pub packets: IntHistogram,
    pub duration: IntHistogram,
}

impl RecordHistograms {
    fn new() -> RecordHistograms {
        RecordHistograms {
            bytes: IntHistogram::new(BYTES_BUCKETS),
            packets: IntHistogram::new(PACKETS_BUCKETS),
            duration: IntHistogram::new(DURATION_BUCKETS),
        }
    }
}

/// All counters, histograms and detection state of one shard.
#[derive(Debug)]
pub struct Aggregator {
    /// What records mean; shared by the shards of one configuration.
    rules: Arc<Rules>,
    limits: Limits,

    // Interfaces: slot 0 `unknown`, slot 1 `other`, then one per interface-id.
    iface_slots: FxHashMap<Box<[u8]>, u32>,
    last_iface: Vec<u8>,
    last_slot: usize,
    interfaces: Vec<InterfaceCounters>,
    interface_limit_records: u64,
    /// (interface, forbidden port) series held, and records beyond their cap.
    forbidden_series: usize,
    forbidden_limit_records: u64,
    implausible_durations: u64,

    /// By protocol number, then action; index 256 is "no protocol".
    protocols: Box<[[u64; 3]; 257]>,
    /// By watched-port position, then action; the last row is `other`.
    dstports: Vec<[u64; 3]>,
    countries: FxHashMap<Country, [u64; 3]>,
    histograms: [RecordHistograms; 3],

    lines: u64,
    parse_errors: [u64; ParseError::ALL.len()],
    /// Newest record time (unix seconds) seen; 0 before any.
    newest: u64,
    /// Record times beyond this (the clock plus [`FUTURE_TOLERANCE`], refreshed
    /// only when a record passes it) stay out of the windows, so that one
    /// record with a wild timestamp cannot empty them.
    future_limit: u64,
    future_records: u64,

    top_sources: WindowedTopK,
    top_destinations: WindowedTopK,
    port_scans: PortScanTracker,
    /// The trackers' windows, to tell on reload whether they can be kept.
    top_k_window: std::time::Duration,
    port_scan_window: std::time::Duration,

    /// Where the lines being ingested come from, and the rate-limited log of
    /// invalid lines (see [`diag`]).
    source: Arc<str>,
    invalid_log: diag::InvalidLineLog,
}

impl Aggregator {
    /// An empty aggregator with the rules of `config` (no GeoIP lookup: see
    /// [`Aggregator::with_countries`] and [`Rules::load`]).
    pub fn new(config: &Config) -> Aggregator {
        Aggregator::with_rules(Arc::new(Rules::new(&config.detections)), config)
    }

    /// An empty aggregator counting by `rules`, with the limits and windows of
    /// `config`.
    pub fn with_rules(rules: Arc<Rules>, config: &Config) -> Aggregator {
        let d = &config.detections;
        Aggregator::build(rules, config.limits, d.top_k.window, d.port_scan.window)
    }

    fn build(
        rules: Arc<Rules>,
        limits: Limits,
        top_k_window: std::time::Duration,
        port_scan_window: std::time::Duration,
    ) -> Aggregator {
        Aggregator {
            dstports: vec![[0; 3]; rules.watch_ports().len() + 1],
            rules,
            limits,
            iface_slots: FxHashMap::default(),
            last_iface: Vec::new(),
            last_slot: usize::MAX,
            interfaces: vec![InterfaceCounters::new("unknown"), InterfaceCounters::new("other")],
            interface_limit_records: 0,
            forbidden_series: 0,
            forbidden_limit_records: 0,
            implausible_durations: 0,
            protocols: Box::new([[0; 3]; 257]),
            countries: FxHashMap::default(),
            histograms: [RecordHistograms::new(), RecordHistograms::new(), RecordHistograms::new()],
            lines: 0,
            parse_errors: [0; ParseError::ALL.len()],
            newest: 0,
            future_limit: future_limit(),
            future_records: 0,
            top_sources: WindowedTopK::new(top_k_window, limits.max_tracked_addresses),
            top_destinations: WindowedTopK::new(top_k_window, limits.max_tracked_addresses),
            port_scans: PortScanTracker::new(port_scan_window, limits.max_port_scan_sources),
            top_k_window,
            port_scan_window,
            source: Arc::from("unnamed"),
            invalid_log: diag::InvalidLineLog::default(),
        }
    }

    /// An empty shard with the same rules, limits and windows: it counts on
    /// its own (another thread, an all-or-nothing batch) and is added back
    /// with [`Aggregator::merge_from`].
    pub fn shard(&self) -> Aggregator {
        let mut s = Aggregator::build(self.rules.clone(), self.limits, self.top_k_window, self.port_scan_window);
        s.source = self.source.clone();
        s
    }

    /// The rules this aggregator counts by.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// Names where the next lines come from (a file, a log group, `demo`), for
    /// the invalid-line diagnostics. Cheap when the name does not change.
    pub fn set_source(&mut self, source: &Arc<str>) {
        if !Arc::ptr_eq(&self.source, source) {
            self.source = source.clone();
        }
    }

    /// Sets where source countries come from (off by default).
    pub fn with_countries(self, geo: Box<dyn CountryLookup>) -> Aggregator {
        self.with_country_lookup(Arc::from(geo))
    }

    /// Sets where source countries come from, shared with other rules.
    pub fn with_country_lookup(mut self, geo: Arc<dyn CountryLookup>) -> Aggregator {
        let rules = Rules::clone(&self.rules).with_countries(geo);
        self.rules = Arc::new(rules);
        self
    }

    pub fn has_countries(&self) -> bool {
        self.rules.has_countries()
    }

    pub fn into_shared(self) -> SharedAggregator {
        Arc::new(Mutex::new(self))
    }

    /// Parses and counts one line (no trailing `\n`; a trailing `\r` is fine).
    #[inline]
    pub fn ingest_line(&mut self, parser: &mut LineParser, line: &[u8]) {
        match parser.parse_line(line) {
            Line::Record(r) => {
                self.lines += 1;
                self.observe(&r);
            }
            Line::Empty => {}
            Line::Header => self.lines += 1,
            Line::Invalid(e) => {
                self.lines += 1;
                self.parse_errors[e.index()] += 1;
                self.invalid_log.note(&self.source, e, parser.format(), line);
            }
        }
    }

    /// Parses and counts a buffer of `\n`-separated lines; a last line without
    /// `\n` counts too.
    pub fn ingest_lines(&mut self, parser: &mut LineParser, buf: &[u8]) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', buf) {
            self.ingest_line(parser, &buf[start..nl]);
            start = nl + 1;
        }
        if start < buf.len() {
            self.ingest_line(parser, &buf[start..]);
        }
    }

    /// Counts one invalid input that did not come from a line (a Parquet
    /// row with a bad value): as a line read and an invalid line by reason.
    pub fn ingest_invalid(&mut self, e: ParseError) {
        self.lines += 1;
        self.parse_errors[e.index()] += 1;
    }

    /// Counts one record that did not come from a line (typed input): as a
    /// line read and a valid record.
    pub fn ingest_record(&mut self, r: &Record<'_>) {
        self.lines += 1;
        self.observe(r);
    }

    /// Counts one valid record as the rules classify it.
    #[inline]
    pub fn observe(&mut self, r: &Record<'_>) {
        let class = self.rules.classify(r);
        self.count(r, &class);
    }

    /// Counts one record whose classification is `k`.
    pub fn count(&mut self, r: &Record<'_>, k: &Classification) {
        let slot = self.interface_slot(r.interface_id);
        let c = &mut self.interfaces[slot];
        c.log_status[k.status.index()] += 1;
        if !k.is_traffic() {
            return;
        }
        let a = k.action.index();
        c.records[a] += 1;
        c.bytes[a] = c.bytes[a].saturating_add(r.bytes.unwrap_or(0));
        c.packets[a] = c.packets[a].saturating_add(r.packets.unwrap_or(0));
        if k.illegal_source_accept {
            c.illegal_source_accepts += 1;
        }
        if k.unapproved_destination {
            c.unapproved_destination[a] += 1;
        }
        if k.short_connection {
            c.short_connections += 1;
        }
        if let Some(port) = k.forbidden_port {
            self.count_forbidden(slot, u32::from(port), a, 1);
        }
        self.protocols[r.protocol.map_or(256, usize::from)][a] += 1;
        if let Some(row) = k.watch_row {
            self.dstports[row as usize][a] += 1;
        }
        if let Some(country) = k.country {
            self.countries.entry(country).or_insert([0; 3])[a] += 1;
        }
        self.count_histograms(r, a);
        if let Some(t) = r.time() {
            self.count_windows(r, t, a);
        }
    }

    /// Adds `n` records of action `a` to the forbidden-port row `key` of an
    /// interface, or to its `other` row once the series cap is reached.
    #[inline]
    fn count_forbidden(&mut self, slot: usize, key: u32, a: usize, n: u64) {
        let c = &mut self.interfaces[slot];
        let key = if key == FORBIDDEN_OTHER
            || c.forbidden.contains_key(&key)
            || self.forbidden_series < MAX_FORBIDDEN_PORT_SERIES
        {
            key
        } else {
            self.forbidden_limit_records += n;
            FORBIDDEN_OTHER
        };
        let row = c.forbidden.entry(key).or_insert_with(|| {
            self.forbidden_series += 1;
            [0; 3]
        });
        row[a] += n;
    }

    #[inline]
    fn count_histograms(&mut self, r: &Record<'_>, a: usize) {
        let h = &mut self.histograms[a];
        if let Some(b) = r.bytes {
            h.bytes.observe(b);
        }
        if let Some(p) = r.packets {
            h.packets.observe(p);
        }
        if let (Some(s), Some(e)) = (r.start, r.end) {
            match e.checked_sub(s) {
                Some(d) if d <= MAX_FLOW_DURATION => h.duration.observe(d),
                _ => self.implausible_durations += 1,
            }
        }
    }

    /// Feeds the windows with one traffic record at flow time `t`.
    #[inline]
    fn count_windows(&mut self, r: &Record<'_>, t: u64, a: usize) {
        if t > self.future_limit {
            self.future_limit = future_limit();
            if t > self.future_limit {
                self.future_records += 1;
                return;
            }
        }
        if t > self.newest {
            self.newest = t;
        }
        if a != Action::Reject.index() {
            return;
        }
        let newest = self.newest;
        if let Some(src) = r.srcaddr {
            self.top_sources.add(src, t, newest);
            if let Some(port) = r.dstport {
                self.port_scans.add(src, port, t, newest);
            }
        }
        if let Some(dst) = r.dstaddr {
            self.top_destinations.add(dst, t, newest);
        }
    }

    /// The counter slot of an interface-id: a one-entry cache for runs of the
    /// same interface (common: one log stream per interface), then a hash map.
    #[inline]
    fn interface_slot(&mut self, id: Option<&[u8]>) -> usize {
        let Some(id) = id else { return IFACE_UNKNOWN };
        if self.last_slot != usize::MAX && self.last_iface == id {
            return self.last_slot;
        }
        let Some(slot) = self.slot_of(id) else {
            // Not cached: each record over the limit must be counted.
            self.interface_limit_records += 1;
            return IFACE_OTHER;
        };
        self.last_iface.clear();
        self.last_iface.extend_from_slice(id);
        self.last_slot = slot;
        slot
    }

    /// The slot of an interface-id, a new one while `limits.max_interfaces`
    /// allows; `None` when it is over the limit (or too long).
    fn slot_of(&mut self, id: &[u8]) -> Option<usize> {
        // The reserved label values keep their slots, so that a record that
        // names them cannot make a second series with the same labels.
        if id == b"unknown" {
            return Some(IFACE_UNKNOWN);
        }
        if id == b"other" {
            return Some(IFACE_OTHER);
        }
        match self.iface_slots.get(id) {
            Some(&s) => Some(s as usize),
            None if self.iface_slots.len() < self.limits.max_interfaces && id.len() <= MAX_INTERFACE_ID_LEN => {
                let s = self.interfaces.len();
                self.interfaces.push(InterfaceCounters::new(&interface_label(id)));
                self.iface_slots.insert(id.into(), s as u32);
                Some(s)
            }
            None => None,
        }
    }

    /// Distinct interface-ids holding their own label value.
    pub fn interface_count(&self) -> usize {
        self.iface_slots.len()
    }

    /// Lines read that were records, headers or invalid.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Invalid lines by reason.
    pub fn parse_errors(&self) -> impl Iterator<Item = (ParseError, u64)> + '_ {
        ParseError::ALL.iter().map(|&e| (e, self.parse_errors[e.index()]))
    }

    /// Traffic records of one action, all interfaces.
    pub fn records(&self, action: Action) -> u64 {
        self.interfaces.iter().map(|c| c.records[action.index()]).sum()
    }

    /// Newest flow time seen (unix seconds; 0 before any).
    pub fn newest(&self) -> u64 {
        self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::interface_label;
    use super::Aggregator;
    use crate::config::Config;
    use crate::parse::{Format, LineParser};

    fn with_rejects(config: &Config) -> Aggregator {
        let mut agg = Aggregator::new(config);
        let mut p = LineParser::for_file(Format::default_v2());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        for i in 0..50 {
            let line = format!("2 1 eni-a 203.0.113.{i} 10.0.0.2 1 {} 6 1 1 {now} {now} REJECT OK", 20 + i);
            agg.ingest_line(&mut p, line.as_bytes());
        }
        agg
    }

    #[test]
    fn a_reload_keeps_windows_whose_settings_did_not_change() {
        let old_cfg = Config::default();
        let mut old = with_rejects(&old_cfg);
        let mut cfg = Config::default();
        cfg.detections.forbidden_ports = vec![22];
        let mut new = Aggregator::new(&cfg);
        new.keep_from(&mut old);
        assert_eq!(new.top_sources.len(), 50);
        assert_eq!(new.port_scans.len(), 50);
        assert_eq!(new.records(crate::parse::Action::Reject), 50);
        assert_eq!(new.interface_count(), 1);
        assert!(new.newest > 0);

        let mut old = with_rejects(&old_cfg);
        cfg.detections.top_k.window = std::time::Duration::from_secs(120);
        cfg.limits.max_interfaces = 1;
        let mut new = Aggregator::new(&cfg);
        new.keep_from(&mut old);
        assert_eq!(new.top_sources.len(), 0, "a new window starts empty");
        assert_eq!(new.port_scans.len(), 50, "the port-scan window did not change");
        assert_eq!(new.records(crate::parse::Action::Reject), 50);
    }

    #[test]
    fn interface_labels_are_distinct_for_distinct_ids() {
        assert_eq!(interface_label(b"eni-1235b8ca123456789"), "eni-1235b8ca123456789");
        let ids: [&[u8]; 6] = [b"eni-\xff", b"eni-\xfe", b"eni-\\xff", b"eni-\xc3\xa9", b"eni-\\", b"eni-\t"];
        let labels: std::collections::HashSet<String> = ids.iter().map(|id| interface_label(id)).collect();
        assert_eq!(labels.len(), ids.len(), "{labels:?}");
    }
}
