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
use std::time::{Duration, Instant};

use std::sync::PoisonError;

use rustc_hash::{FxHashMap, FxHasher};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use crate::aggregate::histogram::IntHistogram;
use crate::aggregate::{Aggregator, SharedAggregator, FORBIDDEN_OTHER};
use crate::parse::{Action, LogStatus};

/// Name, help, type and label names of every family this collector emits.
const FAMILIES: &[(&str, &str, MetricType, &[&str])] = &[
    ("vpc_flow_records_total", "Traffic records (log-status OK) by interface and action.", MetricType::COUNTER, &["interface_id", "action"]),
    ("vpc_flow_bytes_total", "Sum of the bytes field of traffic records.", MetricType::COUNTER, &["interface_id", "action"]),
    ("vpc_flow_packets_total", "Sum of the packets field of traffic records.", MetricType::COUNTER, &["interface_id", "action"]),
    ("vpc_flow_log_status_total", "Valid records by log-status (OK where the format has none).", MetricType::COUNTER, &["interface_id", "log_status"]),
    ("vpc_flow_protocol_records_total", "Traffic records by IP protocol.", MetricType::COUNTER, &["protocol", "action"]),
    ("vpc_flow_dstport_records_total", "Traffic records with a dstport, by watched port (else other).", MetricType::COUNTER, &["dstport", "action"]),
    ("vpc_flow_forbidden_port_records_total", "Traffic records to a forbidden destination port.", MetricType::COUNTER, &["interface_id", "dstport", "action"]),
    ("vpc_flow_illegal_source_accepts_total", "ACCEPT traffic records whose srcaddr is in none of the allowed source CIDRs.", MetricType::COUNTER, &["interface_id"]),
    ("vpc_flow_short_connections_total", "TCP traffic records with both SYN and FIN in tcp-flags.", MetricType::COUNTER, &["interface_id"]),
    ("vpc_flow_unapproved_destination_records_total", "Traffic records whose pkt-dstaddr is in none of the approved destination CIDRs.", MetricType::COUNTER, &["interface_id", "action"]),
    ("vpc_flow_source_country_records_total", "Traffic records by the country of srcaddr (private, unknown where no answer).", MetricType::COUNTER, &["country", "action"]),
    ("vpc_flow_record_bytes", "Bytes per traffic record.", MetricType::HISTOGRAM, &["action"]),
    ("vpc_flow_record_packets", "Packets per traffic record.", MetricType::HISTOGRAM, &["action"]),
    ("vpc_flow_record_duration_seconds", "End minus start per traffic record.", MetricType::HISTOGRAM, &["action"]),
    ("vpc_flow_top_rejected_sources", "REJECT traffic records in the top-K window, for the K sources with the most.", MetricType::GAUGE, &["srcaddr"]),
    ("vpc_flow_top_rejected_destinations", "REJECT traffic records in the top-K window, for the K destinations with the most.", MetricType::GAUGE, &["dstaddr"]),
    ("vpc_flow_port_scan_sources", "Sources that hit at least min_distinct_ports distinct dstports with REJECT records in the port-scan window.", MetricType::GAUGE, &[]),
    ("vpc_flow_top_port_scanners", "Distinct rejected dstports in the port-scan window, for at most K scanning sources.", MetricType::GAUGE, &["srcaddr"]),
    ("vpc_flow_exporter_lines_total", "Non-empty lines read: records, header lines and invalid lines.", MetricType::COUNTER, &[]),
    ("vpc_flow_exporter_parse_errors_total", "Invalid lines by reason.", MetricType::COUNTER, &["reason"]),
    ("vpc_flow_exporter_interfaces", "Distinct interface_id label values in use (unknown and other excluded).", MetricType::GAUGE, &[]),
    ("vpc_flow_exporter_max_interfaces", "limits.max_interfaces: the most interface_id label values before records count as other.", MetricType::GAUGE, &[]),
    ("vpc_flow_exporter_forbidden_port_limit_records_total", "Records to a forbidden port counted under dstport=\"other\" because the (interface, port) series cap was reached.", MetricType::COUNTER, &[]),
    ("vpc_flow_exporter_implausible_durations_total", "Traffic records whose end minus start is negative or above a day: counted, kept out of the duration histogram.", MetricType::COUNTER, &[]),
    ("vpc_flow_exporter_interface_limit_records_total", "Records counted under interface_id=\"other\" because limits.max_interfaces was reached.", MetricType::COUNTER, &[]),
    ("vpc_flow_exporter_tracker_entries", "Addresses held by a windowed tracker.", MetricType::GAUGE, &["tracker"]),
    ("vpc_flow_exporter_tracker_evictions_total", "Addresses dropped by a windowed tracker to stay within its capacity.", MetricType::COUNTER, &["tracker"]),
    ("vpc_flow_exporter_tracker_deferred_total", "Records not counted because the tracker admits a new address only on its second record while it is evicting.", MetricType::COUNTER, &["tracker"]),
    ("vpc_flow_exporter_tracker_error_bound", "The most a tracked value in the window may be below its true value, from evictions and deferrals; 0 while exact.", MetricType::GAUGE, &["tracker"]),
    ("vpc_flow_exporter_tracker_capped_total", "Port observations not recorded because a source held the per-source port cap.", MetricType::COUNTER, &["tracker"]),
    ("vpc_flow_exporter_future_records_total", "Traffic records whose flow time is more than an hour ahead of the clock: counted, but kept out of the windows.", MetricType::COUNTER, &[]),
    ("vpc_flow_exporter_last_flow_timestamp_seconds", "Newest flow time (record end, else start) seen, in unix seconds.", MetricType::GAUGE, &[]),
    ("vpc_flow_exporter_build_info", "Build information; the value is 1.", MetricType::GAUGE, &["version"]),
];

/// When each held series was first seen by a scrape, keyed by a hash of its
/// family and label values. Rebuilt on every scrape from the series that still
/// exist, so it holds at most the exposed series.
#[derive(Debug, Default)]
struct Births {
    hold: Duration,
    seen: FxHashMap<u64, Instant>,
}

/// Exposes a [`SharedAggregator`].
#[derive(Debug)]
pub struct AggregatorCollector {
    agg: SharedAggregator,
    descs: Vec<Desc>,
    births: Option<Mutex<Births>>,
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
        let descs = FAMILIES
            .iter()
            .filter_map(|(name, help, _, labels)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    labels.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
                .ok()
            })
            .collect();
        AggregatorCollector { agg, descs, births: None }
    }
}

impl Collector for AggregatorCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // A poisoned lock means a writer panicked mid-batch; the counts are
        // still the best we have, so keep serving them.
        let mut families = {
            let agg = self.agg.lock().unwrap_or_else(PoisonError::into_inner);
            families(&agg)
        };
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
        for mf in families.iter_mut() {
            if mf.get_field_type() != MetricType::COUNTER || !mf.name().starts_with("vpc_flow_") {
                continue;
            }
            if mf.name().starts_with("vpc_flow_exporter_") {
                continue;
            }
            let name = mf.name().to_owned();
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

/// Builds one family per entry of [`FAMILIES`].
struct Builder {
    families: Vec<MetricFamily>,
}

impl Builder {
    fn family(&mut self, name: &str) -> &mut MetricFamily {
        let pos = self.families.iter().position(|f| f.name() == name);
        match pos {
            Some(i) => &mut self.families[i],
            None => unreachable!("metric family {name} is not declared"),
        }
    }

    fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mf = self.family(name);
        let mut m = proto::Metric::from_label(label_pairs(labels));
        match mf.get_field_type() {
            MetricType::COUNTER => {
                let mut c = proto::Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = proto::Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        mf.mut_metric().push(m);
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &IntHistogram) {
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
        let mut m = proto::Metric::from_label(label_pairs(labels));
        m.set_histogram(ph);
        self.family(name).mut_metric().push(m);
    }
}

/// Label pairs sorted by name, as the prometheus crate's own metrics have them.
fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    let mut pairs: Vec<LabelPair> = labels
        .iter()
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

/// All families of the aggregator, in [`FAMILIES`] order.
pub fn families(agg: &Aggregator) -> Vec<MetricFamily> {
    let mut b = Builder {
        families: FAMILIES
            .iter()
            .map(|(name, help, ty, _)| {
                let mut mf = MetricFamily::default();
                mf.set_name(name.to_string());
                mf.set_help(help.to_string());
                mf.set_field_type(*ty);
                mf
            })
            .collect(),
    };

    for c in &agg.interfaces {
        let iface = &*c.name;
        for a in Action::ALL {
            let i = a.index();
            if c.records[i] > 0 {
                let l = [("interface_id", iface), ("action", a.as_str())];
                b.push("vpc_flow_records_total", &l, c.records[i] as f64);
                b.push("vpc_flow_bytes_total", &l, c.bytes[i] as f64);
                b.push("vpc_flow_packets_total", &l, c.packets[i] as f64);
            }
            if c.unapproved_destination[i] > 0 {
                b.push(
                    "vpc_flow_unapproved_destination_records_total",
                    &[("interface_id", iface), ("action", a.as_str())],
                    c.unapproved_destination[i] as f64,
                );
            }
        }
        for (&port, row) in &c.forbidden {
            let port = if port == FORBIDDEN_OTHER { "other".to_owned() } else { port.to_string() };
            for a in Action::ALL {
                if row[a.index()] > 0 {
                    b.push(
                        "vpc_flow_forbidden_port_records_total",
                        &[("interface_id", iface), ("dstport", &port), ("action", a.as_str())],
                        row[a.index()] as f64,
                    );
                }
            }
        }
        for s in LogStatus::ALL {
            if c.log_status[s.index()] > 0 {
                b.push(
                    "vpc_flow_log_status_total",
                    &[("interface_id", iface), ("log_status", s.as_str())],
                    c.log_status[s.index()] as f64,
                );
            }
        }
        if c.illegal_source_accepts > 0 {
            b.push(
                "vpc_flow_illegal_source_accepts_total",
                &[("interface_id", iface)],
                c.illegal_source_accepts as f64,
            );
        }
        if c.short_connections > 0 {
            b.push("vpc_flow_short_connections_total", &[("interface_id", iface)], c.short_connections as f64);
        }
    }

    for (p, row) in agg.protocols.iter().enumerate() {
        for a in Action::ALL {
            if row[a.index()] > 0 {
                b.push(
                    "vpc_flow_protocol_records_total",
                    &[("protocol", &protocol_label(p)), ("action", a.as_str())],
                    row[a.index()] as f64,
                );
            }
        }
    }
    let watched = agg.watch_ports.ports();
    for (i, row) in agg.dstports.iter().enumerate() {
        let port = watched.get(i).map_or_else(|| "other".to_owned(), u16::to_string);
        for a in Action::ALL {
            if row[a.index()] > 0 {
                b.push(
                    "vpc_flow_dstport_records_total",
                    &[("dstport", &port), ("action", a.as_str())],
                    row[a.index()] as f64,
                );
            }
        }
    }
    for (country, row) in &agg.countries {
        for a in Action::ALL {
            if row[a.index()] > 0 {
                b.push(
                    "vpc_flow_source_country_records_total",
                    &[("country", country.label()), ("action", a.as_str())],
                    row[a.index()] as f64,
                );
            }
        }
    }
    for a in Action::ALL {
        let h = &agg.histograms[a.index()];
        if a != Action::Unknown || h.bytes.count() + h.packets.count() + h.duration.count() > 0 {
            let l = [("action", a.as_str())];
            b.histogram("vpc_flow_record_bytes", &l, &h.bytes);
            b.histogram("vpc_flow_record_packets", &l, &h.packets);
            b.histogram("vpc_flow_record_duration_seconds", &l, &h.duration);
        }
    }

    let mut top = Vec::new();
    agg.top_sources.top(agg.top_k_size, agg.newest, &mut top);
    for (addr, n) in top.drain(..) {
        b.push("vpc_flow_top_rejected_sources", &[("srcaddr", &addr.to_string())], n as f64);
    }
    agg.top_destinations.top(agg.top_k_size, agg.newest, &mut top);
    for (addr, n) in top.drain(..) {
        b.push("vpc_flow_top_rejected_destinations", &[("dstaddr", &addr.to_string())], n as f64);
    }
    let scanners = agg.port_scans.scanners(agg.port_scan_min_ports, agg.top_k_size, agg.newest, &mut top);
    b.push("vpc_flow_port_scan_sources", &[], scanners as f64);
    if agg.port_scan_export_min_ports < agg.port_scan_min_ports {
        top.clear();
        agg.port_scans.scanners(agg.port_scan_export_min_ports, agg.top_k_size, agg.newest, &mut top);
    }
    for (addr, n) in top.drain(..) {
        b.push("vpc_flow_top_port_scanners", &[("srcaddr", &addr.to_string())], n as f64);
    }

    b.push("vpc_flow_exporter_lines_total", &[], agg.lines as f64);
    for (e, n) in agg.parse_errors() {
        b.push("vpc_flow_exporter_parse_errors_total", &[("reason", e.reason())], n as f64);
    }
    b.push("vpc_flow_exporter_interfaces", &[], agg.interface_count() as f64);
    b.push("vpc_flow_exporter_max_interfaces", &[], agg.max_interfaces as f64);
    b.push("vpc_flow_exporter_interface_limit_records_total", &[], agg.interface_limit_records as f64);
    b.push("vpc_flow_exporter_forbidden_port_limit_records_total", &[], agg.forbidden_limit_records as f64);
    b.push("vpc_flow_exporter_implausible_durations_total", &[], agg.implausible_durations as f64);
    let (src, dst, ps) = (&agg.top_sources, &agg.top_destinations, &agg.port_scans);
    for (name, len, evictions, deferred, bound) in [
        ("rejected_sources", src.len(), src.evictions(), src.deferred(), src.error_bound(agg.newest)),
        ("rejected_destinations", dst.len(), dst.evictions(), dst.deferred(), dst.error_bound(agg.newest)),
        ("port_scan", ps.len(), ps.evictions(), ps.deferred(), ps.error_bound(agg.newest)),
    ] {
        let l = [("tracker", name)];
        b.push("vpc_flow_exporter_tracker_entries", &l, len as f64);
        b.push("vpc_flow_exporter_tracker_evictions_total", &l, evictions as f64);
        b.push("vpc_flow_exporter_tracker_deferred_total", &l, deferred as f64);
        b.push("vpc_flow_exporter_tracker_error_bound", &l, bound as f64);
    }
    b.push("vpc_flow_exporter_tracker_capped_total", &[("tracker", "port_scan")], agg.port_scans.capped() as f64);
    b.push("vpc_flow_exporter_future_records_total", &[], agg.future_records as f64);
    b.push("vpc_flow_exporter_last_flow_timestamp_seconds", &[], agg.newest as f64);
    b.push("vpc_flow_exporter_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    b.families
}
