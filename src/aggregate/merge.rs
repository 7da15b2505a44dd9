//! Moving and adding state between aggregators: [`Aggregator::merge_from`]
//! adds a shard (another thread's counts, an all-or-nothing batch) into
//! another, and [`Aggregator::keep_from`] moves into a reloaded aggregator the
//! state that its new settings leave valid.

use std::mem::{swap, take};
use std::sync::Arc;

use super::{Aggregator, InterfaceCounters, FORBIDDEN_OTHER, IFACE_OTHER, IFACE_UNKNOWN};

fn add3(into: &mut [u64; 3], from: &[u64; 3]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = a.saturating_add(*b);
    }
}

/// Adds the plain counters of one interface (not its forbidden-port rows).
fn add_interface(into: &mut InterfaceCounters, from: &InterfaceCounters) {
    add3(&mut into.records, &from.records);
    add3(&mut into.bytes, &from.bytes);
    add3(&mut into.packets, &from.packets);
    add3(&mut into.log_status, &from.log_status);
    add3(&mut into.unapproved_destination, &from.unapproved_destination);
    into.illegal_source_accepts += from.illegal_source_accepts;
    into.short_connections += from.short_connections;
}

impl Aggregator {
    /// Adds the counts of `other`, a shard built from the same configuration
    /// (see [`Aggregator::shard`]), into this aggregator:
    /// - counters, histograms, countries, lines and invalid lines add; the
    ///   newest flow time is the later of the two;
    /// - interfaces merge by interface-id, in the order `other` first saw
    ///   them, under this aggregator's `limits.max_interfaces`: an interface
    ///   that has no slot here and no room left counts under `other`, and its
    ///   records in `vpc_flow_exporter_interface_limit_records_total`, as a
    ///   record of a new interface would;
    /// - forbidden-port series respect [`super::MAX_FORBIDDEN_PORT_SERIES`] the
    ///   same way (beyond it, `dstport="other"`, counted);
    /// - the windowed trackers merge their entries and keep their bounds.
    ///
    /// Merging shards gives the exposition of one aggregator fed every record,
    /// with one exception: beyond `limits.max_interfaces`, *which* interfaces
    /// keep their own label depends on the order they were first seen in, and
    /// a shard decides that for its part of the input alone (the totals, with
    /// `other`, are the same). Likewise a tracker that evicted (its error bound
    /// is above 0) may keep other addresses than one aggregator would.
    pub fn merge_from(&mut self, other: &Aggregator) {
        self.merge_interfaces(other);
        self.interface_limit_records += other.interface_limit_records;
        self.forbidden_limit_records += other.forbidden_limit_records;
        self.implausible_durations += other.implausible_durations;
        for (into, from) in self.protocols.iter_mut().zip(other.protocols.iter()) {
            add3(into, from);
        }
        self.merge_dstports(other);
        for (country, row) in &other.countries {
            add3(self.countries.entry(*country).or_insert([0; 3]), row);
        }
        for (into, from) in self.histograms.iter_mut().zip(&other.histograms) {
            into.bytes.merge_from(&from.bytes);
            into.packets.merge_from(&from.packets);
            into.duration.merge_from(&from.duration);
        }
        self.lines += other.lines;
        for (into, from) in self.parse_errors.iter_mut().zip(&other.parse_errors) {
            *into += from;
        }
        self.newest = self.newest.max(other.newest);
        self.future_records += other.future_records;
        // A shard built before a reload that changed a window cannot merge
        // into the new one: its window state is left out (as a reload would).
        if self.top_k_window == other.top_k_window {
            self.top_sources.merge_from(&other.top_sources);
            self.top_destinations.merge_from(&other.top_destinations);
        }
        if self.port_scan_window == other.port_scan_window {
            self.port_scans.merge_from(&other.port_scans);
        }
    }

    /// Watched-port rows, by port when the shard's rules differ (a reload
    /// between the shard's start and its merge).
    fn merge_dstports(&mut self, other: &Aggregator) {
        if Arc::ptr_eq(&self.rules, &other.rules)
            || self.rules.watch_ports().ports() == other.rules.watch_ports().ports()
        {
            for (into, from) in self.dstports.iter_mut().zip(&other.dstports) {
                add3(into, from);
            }
            return;
        }
        let (mine, theirs) = (self.rules.watch_ports(), other.rules.watch_ports());
        for (i, &port) in theirs.ports().iter().enumerate() {
            let row = mine.index(port).unwrap_or(mine.len());
            add3(&mut self.dstports[row], &other.dstports[i]);
        }
        add3(&mut self.dstports[mine.len()], &other.dstports[theirs.len()]);
    }

    fn merge_interfaces(&mut self, other: &Aggregator) {
        // Interface-ids of `other` by slot, so that they merge in the order
        // `other` first saw them.
        let mut ids: Vec<Option<&[u8]>> = vec![None; other.interfaces.len()];
        for (id, &slot) in &other.iface_slots {
            ids[slot as usize] = Some(id);
        }
        for (slot, from) in other.interfaces.iter().enumerate() {
            let into = match (slot, ids[slot]) {
                (IFACE_UNKNOWN | IFACE_OTHER, _) | (_, None) => slot.min(IFACE_OTHER),
                (_, Some(id)) => self.slot_of(id).unwrap_or_else(|| {
                    self.interface_limit_records += from.log_status.iter().sum::<u64>();
                    IFACE_OTHER
                }),
            };
            add_interface(&mut self.interfaces[into], from);
            for (&key, row) in &from.forbidden {
                for (a, &n) in row.iter().enumerate() {
                    if n > 0 {
                        self.count_forbidden(into, key, a, n);
                    }
                }
            }
        }
    }

    /// Moves into this aggregator (built from a reloaded configuration) the
    /// state of the running one that the new settings leave valid, so that a
    /// reload does not reset the counters:
    /// - per-interface counters by interface label (all of them while
    ///   `limits.max_interfaces` holds them; beyond the new limit, the
    ///   interfaces seen last are dropped), with their forbidden-port series
    ///   for the ports still in `forbidden_ports`;
    /// - protocol counters; watched-port counters of the ports still in
    ///   `watch_ports` (and `other`); country counters when GeoIP is still on;
    /// - histograms, line and invalid-line counts, the newest flow time and
    ///   the limit counters;
    /// - the top-K trackers when `detections.top_k.window` and
    ///   `limits.max_tracked_addresses` are unchanged, the port-scan tracker
    ///   when `detections.port_scan.window` and `limits.max_port_scan_sources`
    ///   are (otherwise they start empty).
    ///
    /// `old` is left empty of that state.
    pub fn keep_from(&mut self, old: &mut Aggregator) {
        self.keep_interfaces(old);
        swap(&mut self.protocols, &mut old.protocols);
        let (new_ports, old_ports) = (self.rules.watch_ports(), old.rules.watch_ports());
        for (i, &port) in old_ports.ports().iter().enumerate() {
            if let Some(j) = new_ports.index(port) {
                self.dstports[j] = old.dstports[i];
            }
        }
        self.dstports[new_ports.len()] = old.dstports[old_ports.len()];
        if self.rules.has_countries() {
            self.countries = take(&mut old.countries);
        }
        swap(&mut self.histograms, &mut old.histograms);

        self.lines = old.lines;
        self.parse_errors = old.parse_errors;
        self.newest = old.newest;
        self.future_records = old.future_records;

        if self.top_k_window == old.top_k_window && self.top_sources.capacity() == old.top_sources.capacity() {
            swap(&mut self.top_sources, &mut old.top_sources);
            swap(&mut self.top_destinations, &mut old.top_destinations);
        }
        if self.port_scan_window == old.port_scan_window && self.port_scans.capacity() == old.port_scans.capacity() {
            swap(&mut self.port_scans, &mut old.port_scans);
        }
        swap(&mut self.invalid_log, &mut old.invalid_log);
        self.source = old.source.clone();
    }

    fn keep_interfaces(&mut self, old: &mut Aggregator) {
        swap(&mut self.interfaces, &mut old.interfaces);
        swap(&mut self.iface_slots, &mut old.iface_slots);
        let keep = self.limits.max_interfaces + 2;
        if self.interfaces.len() > keep {
            self.interfaces.truncate(keep);
            self.iface_slots.retain(|_, s| (*s as usize) < keep);
        }
        self.last_slot = usize::MAX;
        self.last_iface.clear();
        let forbidden = self.rules.forbidden_ports();
        let mut series = 0;
        for c in &mut self.interfaces {
            c.forbidden.retain(|&k, _| k == FORBIDDEN_OTHER || u16::try_from(k).is_ok_and(|p| forbidden.contains(p)));
            series += c.forbidden.len();
        }
        self.forbidden_series = series;
        self.interface_limit_records = old.interface_limit_records;
        self.forbidden_limit_records = old.forbidden_limit_records;
        self.implausible_durations = old.implausible_durations;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::aggregate::Aggregator;
    use crate::config::Config;
    use crate::parse::LineParser;
    use crate::source::demo;

    fn encode(agg: Aggregator) -> String {
        crate::expose::encode(&crate::expose::registry(&agg.into_shared()))
    }

    /// The exposition of `lines` counted by one aggregator, and by `n` shards
    /// (contiguous runs of lines, one parser carried across them) merged in order.
    fn single_and_merged(config: &Config, lines: &str, n: usize) -> (String, String) {
        let mut one = Aggregator::new(config);
        let mut parser = LineParser::for_file(config.log_format.clone());
        one.ingest_lines(&mut parser, lines.as_bytes());

        let all: Vec<&str> = lines.lines().collect();
        let per = all.len().div_ceil(n).max(1);
        let mut parser = LineParser::for_file(config.log_format.clone());
        let mut merged = Aggregator::new(config);
        let shards: Vec<Aggregator> = all
            .chunks(per)
            .map(|chunk| {
                let mut shard = merged.shard();
                shard.ingest_lines(&mut parser, chunk.join("\n").as_bytes());
                shard
            })
            .collect();
        for shard in &shards {
            merged.merge_from(shard);
        }
        (encode(one), encode(merged))
    }

    fn data(name: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replay").join(name)).unwrap()
    }

    #[test]
    fn merged_shards_expose_what_one_aggregator_does() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replay");
        let golden_config = Config::from_yaml(&data("config.yaml"), &dir).unwrap();
        let mut g = demo::Generator::new(3);
        let demo_lines = g.batch(3000, true, 1_700_000_000).to_owned()
            + g.batch(3000, true, 1_700_000_400)
            + g.batch(3000, false, 1_700_000_950);
        let mut demo_config = demo::demo_config();
        demo_config.log_format = crate::parse::Format::parse(demo::DEMO_FORMAT).unwrap();
        demo_config.detections.forbidden_ports.extend([3389, 445, 22]);
        let cases = [
            ("default.log", Config::default(), data("default.log")),
            ("v5.log", golden_config, data("v5.log")),
            ("demo", demo_config, demo_lines),
        ];
        for (name, config, lines) in &cases {
            for n in 2..=4 {
                let (one, merged) = single_and_merged(config, lines, n);
                assert!(one.contains("vpc_flow_records_total{"), "{name}");
                assert_eq!(one, merged, "{name} in {n} shards");
            }
        }
    }

    /// Beyond `limits.max_interfaces`, which interfaces keep a label depends
    /// on the order each shard first saw them in; every record is still
    /// counted, under `other` when not under its own label.
    #[test]
    fn beyond_the_interface_cap_totals_still_agree() {
        let config = Config::from_yaml("limits:\n  max_interfaces: 2\n", Path::new(".")).unwrap();
        let line = |i: u32| format!("2 1 eni-{i} 10.0.0.1 10.0.0.2 1 443 6 1 10 1700000000 1700000060 ACCEPT OK");
        // Shard 1 sees eni-0, eni-1; shard 2 sees eni-2, eni-3 first, then eni-0.
        let lines: Vec<String> = [0, 1, 0, 1, 2, 3, 0, 0].into_iter().map(line).collect();
        let (one, merged) = single_and_merged(&config, &lines.join("\n"), 2);
        let records = |expo: &str| -> Vec<(String, f64)> {
            expo.lines()
                .filter(|l| l.starts_with("vpc_flow_records_total{"))
                .filter_map(|l| l.rsplit_once(' ').map(|(s, v)| (s.to_owned(), v.parse().unwrap())))
                .collect()
        };
        let total = |expo: &str| records(expo).iter().map(|(_, v)| v).sum::<f64>();
        assert_eq!(total(&one), 8.0);
        assert_eq!(total(&merged), 8.0);
        // One aggregator: eni-0 holds its 4 records. Shards: shard 2 filled
        // its two slots with eni-2 and eni-3, so its eni-0 records are `other`.
        let eni0 = "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-0\"}";
        assert_eq!(records(&one).iter().find(|(s, _)| s == eni0).map(|r| r.1), Some(4.0));
        assert_eq!(records(&merged).iter().find(|(s, _)| s == eni0).map(|r| r.1), Some(2.0));
        assert!(merged.contains("vpc_flow_exporter_interfaces 2\n"));
    }
}
