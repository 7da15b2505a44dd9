//! The Prometheus collector over the aggregates: at scrape time it locks the
//! aggregator once, reads the counters and the detection windows, and builds
//! the metric families. Series appear once they have counted something
//! (fixed, small label sets — parse-error reasons, histogram actions — are
//! always present). HELP texts here are the reference for docs/metrics.md.
//!
//! New series start at 0: with a hold (`--metrics.new-series-hold`), a labeled
//! `vpc_flow_` counter series is exposed as 0 for the hold's length after a
//! scrape first sees it, then with its value, so that every scraper records a
//! 0 before the first count and a plain `increase()` counts the series' first
//! records (alert rules need no join on `up`). Replay uses no hold.

use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHasher};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use crate::aggregate::histogram::IntHistogram;
use crate::aggregate::snapshot::{Snapshot, TRACKERS};
use crate::aggregate::{SharedAggregator, FORBIDDEN_OTHER};
use crate::detect::tracker::select_top;
use crate::parse::{Action, LogStatus, ParseError};

/// Every metric family this collector emits; the index of its spec in
/// [`SPECS`] and of its [`MetricFamily`] in a scrape's families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Records,
    Bytes,
    Packets,
    LogStatus,
    ProtocolRecords,
    DstportRecords,
    ForbiddenPortRecords,
    IllegalSourceAccepts,
    ShortConnections,
    UnapprovedDestinationRecords,
    SourceCountryRecords,
    RecordBytes,
    RecordPackets,
    RecordDuration,
    TopRejectedSources,
    TopRejectedDestinations,
    PortScanSources,
    TopPortScanners,
    Lines,
    ParseErrors,
    Interfaces,
    MaxInterfaces,
    ForbiddenPortLimitRecords,
    ImplausibleDurations,
    InterfaceLimitRecords,
    TrackerEntries,
    TrackerEvictions,
    TrackerDeferred,
    TrackerErrorBound,
    TrackerCapped,
    FutureRecords,
    LastFlowTimestamp,
    BuildInfo,
}

/// Name, help, type and label names of a family.
struct Spec {
    name: &'static str,
    help: &'static str,
    ty: MetricType,
    labels: &'static [&'static str],
}

const fn spec(name: &'static str, help: &'static str, ty: MetricType, labels: &'static [&'static str]) -> Spec {
    Spec { name, help, ty, labels }
}

use MetricType::{COUNTER, GAUGE, HISTOGRAM};

/// The specs, in [`Family`] order (a unit test checks every index).
const SPECS: [(Family, Spec); 33] = [
    (Family::Records, spec("vpc_flow_records_total", "Traffic records (log-status OK) by interface and action.", COUNTER, &["interface_id", "action"])),
    (Family::Bytes, spec("vpc_flow_bytes_total", "Sum of the bytes field of traffic records.", COUNTER, &["interface_id", "action"])),
    (Family::Packets, spec("vpc_flow_packets_total", "Sum of the packets field of traffic records.", COUNTER, &["interface_id", "action"])),
    (Family::LogStatus, spec("vpc_flow_log_status_total", "Valid records by log-status (OK where the format has none).", COUNTER, &["interface_id", "log_status"])),
    (Family::ProtocolRecords, spec("vpc_flow_protocol_records_total", "Traffic records by IP protocol.", COUNTER, &["protocol", "action"])),
    (Family::DstportRecords, spec("vpc_flow_dstport_records_total", "Traffic records with a dstport, by watched port (else other).", COUNTER, &["dstport", "action"])),
    (Family::ForbiddenPortRecords, spec("vpc_flow_forbidden_port_records_total", "Traffic records to a forbidden destination port.", COUNTER, &["interface_id", "dstport", "action"])),
    (Family::IllegalSourceAccepts, spec("vpc_flow_illegal_source_accepts_total", "ACCEPT traffic records whose srcaddr is in none of the allowed source CIDRs.", COUNTER, &["interface_id"])),
    (Family::ShortConnections, spec("vpc_flow_short_connections_total", "TCP traffic records with both SYN and FIN in tcp-flags.", COUNTER, &["interface_id"])),
    (Family::UnapprovedDestinationRecords, spec("vpc_flow_unapproved_destination_records_total", "Traffic records whose pkt-dstaddr is in none of the approved destination CIDRs.", COUNTER, &["interface_id", "action"])),
    (Family::SourceCountryRecords, spec("vpc_flow_source_country_records_total", "Traffic records by the country of srcaddr (private, unknown where no answer).", COUNTER, &["country", "action"])),
    (Family::RecordBytes, spec("vpc_flow_record_bytes", "Bytes per traffic record.", HISTOGRAM, &["action"])),
    (Family::RecordPackets, spec("vpc_flow_record_packets", "Packets per traffic record.", HISTOGRAM, &["action"])),
    (Family::RecordDuration, spec("vpc_flow_record_duration_seconds", "End minus start per traffic record.", HISTOGRAM, &["action"])),
    (Family::TopRejectedSources, spec("vpc_flow_top_rejected_sources", "REJECT traffic records in the top-K window, for the K sources with the most.", GAUGE, &["srcaddr"])),
    (Family::TopRejectedDestinations, spec("vpc_flow_top_rejected_destinations", "REJECT traffic records in the top-K window, for the K destinations with the most.", GAUGE, &["dstaddr"])),
    (Family::PortScanSources, spec("vpc_flow_port_scan_sources", "Sources that hit at least min_distinct_ports distinct dstports with REJECT records in the port-scan window.", GAUGE, &[])),
    (Family::TopPortScanners, spec("vpc_flow_top_port_scanners", "Distinct rejected dstports in the port-scan window, for at most K scanning sources.", GAUGE, &["srcaddr"])),
    (Family::Lines, spec("vpc_flow_exporter_lines_total", "Non-empty lines read: records, header lines and invalid lines.", COUNTER, &[])),
    (Family::ParseErrors, spec("vpc_flow_exporter_parse_errors_total", "Invalid lines by reason.", COUNTER, &["reason"])),
    (Family::Interfaces, spec("vpc_flow_exporter_interfaces", "Distinct interface_id label values in use (unknown and other excluded).", GAUGE, &[])),
    (Family::MaxInterfaces, spec("vpc_flow_exporter_max_interfaces", "limits.max_interfaces: the most interface_id label values before records count as other.", GAUGE, &[])),
    (Family::ForbiddenPortLimitRecords, spec("vpc_flow_exporter_forbidden_port_limit_records_total", "Records to a forbidden port counted under dstport=\"other\" because the (interface, port) series cap was reached.", COUNTER, &[])),
    (Family::ImplausibleDurations, spec("vpc_flow_exporter_implausible_durations_total", "Traffic records whose end minus start is negative or above a day: counted, kept out of the duration histogram.", COUNTER, &[])),
    (Family::InterfaceLimitRecords, spec("vpc_flow_exporter_interface_limit_records_total", "Records counted under interface_id=\"other\" because limits.max_interfaces was reached.", COUNTER, &[])),
    (Family::TrackerEntries, spec("vpc_flow_exporter_tracker_entries", "Addresses held by a windowed tracker.", GAUGE, &["tracker"])),
    (Family::TrackerEvictions, spec("vpc_flow_exporter_tracker_evictions_total", "Addresses dropped by a windowed tracker to stay within its capacity.", COUNTER, &["tracker"])),
    (Family::TrackerDeferred, spec("vpc_flow_exporter_tracker_deferred_total", "Records not counted because the tracker admits a new address only on its second record while it is evicting.", COUNTER, &["tracker"])),
    (Family::TrackerErrorBound, spec("vpc_flow_exporter_tracker_error_bound", "The most a tracked value in the window may be below its true value, from evictions and deferrals; 0 while exact.", GAUGE, &["tracker"])),
    (Family::TrackerCapped, spec("vpc_flow_exporter_tracker_capped_total", "Port observations not recorded because a source held the per-source port cap.", COUNTER, &["tracker"])),
    (Family::FutureRecords, spec("vpc_flow_exporter_future_records_total", "Traffic records whose flow time is more than an hour ahead of the clock: counted, but kept out of the windows.", COUNTER, &[])),
    (Family::LastFlowTimestamp, spec("vpc_flow_exporter_last_flow_timestamp_seconds", "Newest flow time (record end, else start) seen, in unix seconds.", GAUGE, &[])),
    (Family::BuildInfo, spec("vpc_flow_exporter_build_info", "Build information; the value is 1.", GAUGE, &["version"])),
];

impl Family {
    fn spec(self) -> &'static Spec {
        &SPECS[self as usize].1
    }

    /// Whether its new series are held at 0 (see the module comment): the
    /// labeled traffic counters, not the exporter's own.
    fn is_held(self) -> bool {
        let s = self.spec();
        s.ty == COUNTER && !s.name.starts_with("vpc_flow_exporter_")
    }
}

/// When each held series was first seen by a scrape, keyed by a hash of its
/// family and label values. Rebuilt on every scrape from the series that still
/// exist, so it holds at most the exposed series.
#[derive(Debug, Default)]
struct Births {
    hold: Duration,
    seen: FxHashMap<u64, Instant>,
}

/// Exposes a [`SharedAggregator`]: a snapshot under its lock, everything else
/// after.
#[derive(Debug)]
pub struct AggregatorCollector {
    agg: SharedAggregator,
    descs: Vec<Desc>,
    births: Option<Mutex<Births>>,
    /// The previous scrape's snapshot, overwritten by the next one so that
    /// taking it under the writers' lock allocates only when they have grown.
    /// Concurrent scrapes wait for each other here, never for the writers.
    snapshot: Mutex<Snapshot>,
}

impl AggregatorCollector {
    /// A collector that exposes new series as 0 for `hold` after a scrape first
    /// sees them (see the module comment); `Duration::ZERO` turns that off.
    pub fn with_new_series_hold(agg: SharedAggregator, hold: Duration) -> AggregatorCollector {
        let mut c = AggregatorCollector::new(agg);
        if !hold.is_zero() {
            c.births = Some(Mutex::new(Births { hold, seen: FxHashMap::default() }));
        }
        c
    }

    pub fn new(agg: SharedAggregator) -> AggregatorCollector {
        let descs = SPECS
            .iter()
            .filter_map(|(_, s)| {
                let labels = s.labels.iter().map(|l| l.to_string()).collect();
                Desc::new(s.name.to_string(), s.help.to_string(), labels, Default::default()).ok()
            })
            .collect();
        AggregatorCollector { agg, descs, births: None, snapshot: Mutex::new(Snapshot::default()) }
    }
}

impl Collector for AggregatorCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // A poisoned lock means a writer panicked mid-batch; the counts are
        // still the best we have, so keep serving them.
        let mut snap = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut agg = self.agg.lock().unwrap_or_else(PoisonError::into_inner);
            agg.snapshot_into(&mut snap);
        }
        let mut families = families(&mut snap);
        drop(snap);
        if let Some(births) = &self.births {
            let mut births = births.lock().unwrap_or_else(PoisonError::into_inner);
            births.apply(&mut families, Instant::now());
        }
        families
    }
}

impl Births {
    /// Sets the value of every held series that a scrape first saw less than
    /// `hold` ago to 0, and forgets the series that no longer exist.
    fn apply(&mut self, families: &mut [MetricFamily], now: Instant) {
        let mut next = FxHashMap::with_capacity_and_hasher(self.seen.len(), Default::default());
        for ((family, _), mf) in SPECS.iter().zip(families.iter_mut()) {
            if !family.is_held() {
                continue;
            }
            let name = family.spec().name;
            for m in mf.mut_metric().iter_mut() {
                let mut h = FxHasher::default();
                name.hash(&mut h);
                for lp in m.get_label() {
                    lp.value().hash(&mut h);
                }
                let key = h.finish();
                let born = *self.seen.get(&key).unwrap_or(&now);
                next.insert(key, born);
                if now.duration_since(born) < self.hold {
                    let mut c = proto::Counter::default();
                    c.set_value(0.0);
                    m.set_counter(c);
                }
            }
        }
        self.seen = next;
    }
}

/// The families of one scrape, indexed by [`Family`].
struct Builder {
    families: Vec<MetricFamily>,
}

impl Builder {
    fn new() -> Builder {
        let families = SPECS
            .iter()
            .map(|(_, s)| {
                let mut mf = MetricFamily::default();
                mf.set_name(s.name.to_string());
                mf.set_help(s.help.to_string());
                mf.set_field_type(s.ty);
                mf
            })
            .collect();
        Builder { families }
    }

    /// One series of a counter or gauge family; `values` pair with the
    /// family's label names, in order.
    fn push(&mut self, f: Family, values: &[&str], value: f64) {
        let spec = f.spec();
        let mut m = proto::Metric::from_label(label_pairs(spec.labels, values));
        if spec.ty == COUNTER {
            let mut c = proto::Counter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = proto::Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.families[f as usize].mut_metric().push(m);
    }

    /// One series per action whose count is above 0.
    fn push_by_action(&mut self, f: Family, values: &[&str], row: &[u64; 3]) {
        for a in Action::ALL {
            let n = row[a.index()];
            if n > 0 {
                let mut v = [""; 3];
                v[..values.len()].copy_from_slice(values);
                v[values.len()] = a.as_str();
                self.push(f, &v[..=values.len()], n as f64);
            }
        }
    }

    fn histogram(&mut self, f: Family, values: &[&str], h: &IntHistogram) {
        let mut ph = proto::Histogram::default();
        ph.set_sample_count(h.count());
        ph.set_sample_sum(h.sum());
        ph.set_bucket(
            h.cumulative()
                .map(|(ub, c)| {
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(ub);
                    b.set_cumulative_count(c);
                    b
                })
                .collect(),
        );
        let mut m = proto::Metric::from_label(label_pairs(f.spec().labels, values));
        m.set_histogram(ph);
        self.families[f as usize].mut_metric().push(m);
    }
}

/// Label pairs sorted by name, as the prometheus crate's own metrics have them.
fn label_pairs(names: &[&str], values: &[&str]) -> Vec<LabelPair> {
    debug_assert_eq!(names.len(), values.len());
    let mut pairs: Vec<LabelPair> = names
        .iter()
        .zip(values)
        .map(|(k, v)| {
            let mut lp = LabelPair::default();
            lp.set_name(k.to_string());
            lp.set_value(v.to_string());
            lp
        })
        .collect();
    pairs.sort_by(|a, b| a.name().cmp(b.name()));
    pairs
}

/// The protocol label: the usual names, else the decimal number.
pub fn protocol_label(p: usize) -> std::borrow::Cow<'static, str> {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        256 => "unknown".into(),
        n => n.to_string().into(),
    }
}

/// All families of a snapshot, in [`Family`] order. Sorts the snapshot's
/// tracker vectors in place (top-K selection).
pub fn families(snap: &mut Snapshot) -> Vec<MetricFamily> {
    let mut b = Builder::new();
    interface_families(&mut b, snap);
    traffic_families(&mut b, snap);
    tracker_families(&mut b, snap);
    exporter_families(&mut b, snap);
    b.families
}

/// The per-interface counters.
fn interface_families(b: &mut Builder, snap: &Snapshot) {
    for c in &snap.interfaces {
        let iface = &*c.name;
        for a in Action::ALL {
            let i = a.index();
            if c.records[i] > 0 {
                let l = [iface, a.as_str()];
                b.push(Family::Records, &l, c.records[i] as f64);
                b.push(Family::Bytes, &l, c.bytes[i] as f64);
                b.push(Family::Packets, &l, c.packets[i] as f64);
            }
        }
        b.push_by_action(Family::UnapprovedDestinationRecords, &[iface], &c.unapproved_destination);
        for (&port, row) in &c.forbidden {
            let port = if port == FORBIDDEN_OTHER { "other".to_owned() } else { port.to_string() };
            b.push_by_action(Family::ForbiddenPortRecords, &[iface, &port], row);
        }
        for s in LogStatus::ALL {
            if c.log_status[s.index()] > 0 {
                b.push(Family::LogStatus, &[iface, s.as_str()], c.log_status[s.index()] as f64);
            }
        }
        if c.illegal_source_accepts > 0 {
            b.push(Family::IllegalSourceAccepts, &[iface], c.illegal_source_accepts as f64);
        }
        if c.short_connections > 0 {
            b.push(Family::ShortConnections, &[iface], c.short_connections as f64);
        }
    }
}

/// Protocols, watched ports, countries and the histograms.
fn traffic_families(b: &mut Builder, snap: &Snapshot) {
    for (p, row) in snap.protocols.iter().enumerate() {
        b.push_by_action(Family::ProtocolRecords, &[&protocol_label(p)], row);
    }
    let watched = snap.rules.as_ref().map_or(&[][..], |r| r.watch_ports().ports());
    for (i, row) in snap.dstports.iter().enumerate() {
        let port = watched.get(i).map_or_else(|| "other".to_owned(), u16::to_string);
        b.push_by_action(Family::DstportRecords, &[&port], row);
    }
    for (country, row) in &snap.countries {
        b.push_by_action(Family::SourceCountryRecords, &[country.label()], row);
    }
    for (a, h) in Action::ALL.into_iter().zip(&snap.histograms) {
        if a != Action::Unknown || h.bytes.count() + h.packets.count() + h.duration.count() > 0 {
            let l = [a.as_str()];
            b.histogram(Family::RecordBytes, &l, &h.bytes);
            b.histogram(Family::RecordPackets, &l, &h.packets);
            b.histogram(Family::RecordDuration, &l, &h.duration);
        }
    }
}

/// The top-K gauges and port scanners, selected from the unsorted snapshot.
fn tracker_families(b: &mut Builder, snap: &mut Snapshot) {
    let Some(rules) = snap.rules.clone() else { return };
    let k = rules.top_k_size();
    for (f, top) in [
        (Family::TopRejectedSources, &mut snap.top_sources),
        (Family::TopRejectedDestinations, &mut snap.top_destinations),
    ] {
        select_top(top, k);
        for (addr, n) in top.iter() {
            b.push(f, &[&addr.to_string()], *n as f64);
        }
    }
    // The count uses min_distinct_ports; the list, the lower shard_min_ports
    // when it is set below it.
    let min = u64::from(rules.port_scan_min_ports().max(1));
    let listed = u64::from(rules.port_scan_export_min_ports().min(rules.port_scan_min_ports()).max(1));
    let scanners = snap.port_scanners.iter().filter(|(_, n)| *n >= min).count();
    b.push(Family::PortScanSources, &[], scanners as f64);
    snap.port_scanners.retain(|(_, n)| *n >= listed);
    select_top(&mut snap.port_scanners, k);
    for (addr, n) in &snap.port_scanners {
        b.push(Family::TopPortScanners, &[&addr.to_string()], *n as f64);
    }
}

/// The exporter's own families: lines, limits, tracker statistics.
fn exporter_families(b: &mut Builder, snap: &Snapshot) {
    b.push(Family::Lines, &[], snap.lines as f64);
    for e in ParseError::ALL {
        b.push(Family::ParseErrors, &[e.reason()], snap.parse_errors[e.index()] as f64);
    }
    b.push(Family::Interfaces, &[], snap.interface_count as f64);
    b.push(Family::MaxInterfaces, &[], snap.max_interfaces as f64);
    b.push(Family::InterfaceLimitRecords, &[], snap.interface_limit_records as f64);
    b.push(Family::ForbiddenPortLimitRecords, &[], snap.forbidden_limit_records as f64);
    b.push(Family::ImplausibleDurations, &[], snap.implausible_durations as f64);
    for (name, t) in TRACKERS.iter().zip(&snap.trackers) {
        let l = [*name];
        b.push(Family::TrackerEntries, &l, t.entries as f64);
        b.push(Family::TrackerEvictions, &l, t.evictions as f64);
        b.push(Family::TrackerDeferred, &l, t.deferred as f64);
        b.push(Family::TrackerErrorBound, &l, t.error_bound as f64);
    }
    b.push(Family::TrackerCapped, &["port_scan"], snap.port_scan_capped as f64);
    b.push(Family::FutureRecords, &[], snap.future_records as f64);
    b.push(Family::LastFlowTimestamp, &[], snap.newest as f64);
    b.push(Family::BuildInfo, &[env!("CARGO_PKG_VERSION")], 1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_sits_at_its_index() {
        for (i, (f, s)) in SPECS.iter().enumerate() {
            assert_eq!(*f as usize, i, "{}", s.name);
        }
        let names: std::collections::HashSet<&str> = SPECS.iter().map(|(_, s)| s.name).collect();
        assert_eq!(names.len(), SPECS.len());
    }
}
