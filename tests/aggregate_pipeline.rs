//! The pipeline through the library API: lines in, exposition out. Covers the
//! interface cap, the absence-of-field rules and histogram buckets.

use std::path::Path;

use vpc_flow_exporter::aggregate::Aggregator;
use vpc_flow_exporter::config::Config;
use vpc_flow_exporter::expose;
use vpc_flow_exporter::parse::LineParser;

fn exposition(yaml: &str, lines: &str) -> String {
    let config = Config::from_yaml(yaml, Path::new(".")).expect("config");
    let mut agg = Aggregator::new(&config);
    let mut parser = LineParser::for_file(config.log_format.clone());
    agg.ingest_lines(&mut parser, lines.as_bytes());
    let shared = agg.into_shared();
    expose::encode(&expose::registry(&shared))
}

fn value(expo: &str, series: &str) -> Option<f64> {
    expo.lines().find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

fn line(iface: &str, action: &str) -> String {
    format!("2 123456789010 {iface} 10.0.0.1 10.0.0.2 40000 443 6 2 100 1700000000 1700000060 {action} OK\n")
}

#[test]
fn interfaces_beyond_the_cap_count_as_other_and_are_counted() {
    let mut lines = String::new();
    for i in 0..5 {
        lines += &line(&format!("eni-{i}"), "ACCEPT");
    }
    lines += &line("eni-0", "REJECT"); // known: keeps its label
    lines += &line("eni-4", "REJECT"); // over the cap: other
    let expo = exposition("limits:\n  max_interfaces: 3\n", &lines);
    assert_eq!(value(&expo, "vpc_flow_exporter_interfaces"), Some(3.0));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-2\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-3\"}"), None);
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"other\"}"), Some(2.0));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"REJECT\",interface_id=\"other\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"REJECT\",interface_id=\"eni-0\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_exporter_interface_limit_records_total"), Some(3.0));
}

#[test]
fn missing_fields_use_unknown_labels_and_skip_their_rules() {
    let yaml = "log_format: \"${srcaddr} ${dstport} ${bytes}\"\ndetections:\n  allowed_source_cidrs: [10.0.0.0/8]\n  approved_destination_cidrs: [10.0.0.0/8]\n";
    let expo = exposition(yaml, "1.2.3.4 23 10\n1.2.3.4 - -\n");
    // No interface-id, no action, no log-status: unknown interface and action, OK status.
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"unknown\",interface_id=\"unknown\"}"), Some(2.0));
    assert_eq!(value(&expo, "vpc_flow_log_status_total{interface_id=\"unknown\",log_status=\"OK\"}"), Some(2.0));
    assert_eq!(value(&expo, "vpc_flow_bytes_total{action=\"unknown\",interface_id=\"unknown\"}"), Some(10.0));
    assert_eq!(
        value(
            &expo,
            "vpc_flow_forbidden_port_records_total{action=\"unknown\",dstport=\"23\",interface_id=\"unknown\"}"
        ),
        Some(1.0)
    );
    assert_eq!(value(&expo, "vpc_flow_protocol_records_total{action=\"unknown\",protocol=\"unknown\"}"), Some(2.0));
    // Illegal-source needs ACCEPT; NAT rule needs pkt-dstaddr; short connections need tcp-flags.
    assert!(!expo.contains("vpc_flow_illegal_source_accepts_total{"));
    assert!(!expo.contains("vpc_flow_unapproved_destination_records_total{"));
    assert!(!expo.contains("vpc_flow_short_connections_total{"));
    // Only one record has a dstport.
    assert_eq!(value(&expo, "vpc_flow_dstport_records_total{action=\"unknown\",dstport=\"23\"}"), Some(1.0));
}

#[test]
fn nodata_and_skipdata_count_only_in_log_status() {
    let lines = "2 123456789010 eni-a - - - - - - - 1431280876 1431280934 - NODATA\n\
                 2 123456789010 eni-a - - - - - - - 1431280876 1431280934 - SKIPDATA\n";
    let expo = exposition("", lines);
    assert_eq!(value(&expo, "vpc_flow_log_status_total{interface_id=\"eni-a\",log_status=\"NODATA\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_log_status_total{interface_id=\"eni-a\",log_status=\"SKIPDATA\"}"), Some(1.0));
    assert!(!expo.contains("vpc_flow_records_total{"));
    assert_eq!(value(&expo, "vpc_flow_record_bytes_count{action=\"ACCEPT\"}"), Some(0.0));
}

#[test]
fn histograms_bucket_by_inclusive_upper_bounds() {
    let lines = "2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 64 100 100 ACCEPT OK\n\
                 2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 3 65 100 161 ACCEPT OK\n";
    let expo = exposition("", lines);
    assert_eq!(value(&expo, "vpc_flow_record_bytes_bucket{action=\"ACCEPT\",le=\"64\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_record_bytes_bucket{action=\"ACCEPT\",le=\"128\"}"), Some(2.0));
    assert_eq!(value(&expo, "vpc_flow_record_bytes_bucket{action=\"ACCEPT\",le=\"+Inf\"}"), Some(2.0));
    assert_eq!(value(&expo, "vpc_flow_record_duration_seconds_bucket{action=\"ACCEPT\",le=\"0\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_record_duration_seconds_bucket{action=\"ACCEPT\",le=\"60\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_record_duration_seconds_sum{action=\"ACCEPT\"}"), Some(61.0));
    assert_eq!(value(&expo, "vpc_flow_record_packets_sum{action=\"ACCEPT\"}"), Some(4.0));
}

#[test]
fn top_k_window_drops_records_older_than_the_window() {
    // Window 15m: a REJECT at t0 leaves the window once a record at t0 + 16m is seen.
    let t0 = 1_700_000_000u64;
    let mut lines = String::new();
    for _ in 0..3 {
        lines += &format!("2 1 eni-a 198.51.100.1 10.0.0.2 1 22 6 1 40 {t0} {t0} REJECT OK\n");
    }
    lines += &format!("2 1 eni-a 198.51.100.2 10.0.0.2 1 22 6 1 40 {} {} REJECT OK\n", t0 + 960, t0 + 960);
    let expo = exposition("", &lines);
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.1\"}"), None, "{expo}");
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.2\"}"), Some(1.0));
    // The counters are not windowed.
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"REJECT\",interface_id=\"eni-a\"}"), Some(4.0));
}

#[test]
fn top_k_keeps_only_k_most_rejected() {
    let t = 1_700_000_000u64;
    let mut lines = String::new();
    for i in 0..10u32 {
        for _ in 0..=i {
            lines += &format!("2 1 eni-a 198.51.100.{i} 10.0.0.{i} 1 22 6 1 40 {t} {t} REJECT OK\n");
        }
    }
    let expo = exposition("detections:\n  top_k:\n    size: 3\n", &lines);
    let tops: Vec<&str> = expo.lines().filter(|l| l.starts_with("vpc_flow_top_rejected_sources{")).collect();
    assert_eq!(tops.len(), 3, "{tops:?}");
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.9\"}"), Some(10.0));
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.7\"}"), Some(8.0));
    assert_eq!(value(&expo, "vpc_flow_top_rejected_destinations{dstaddr=\"10.0.0.8\"}"), Some(9.0));
}

#[test]
fn a_wild_future_timestamp_does_not_empty_the_windows() {
    let t = 1_700_000_000u64;
    let far = 4_000_000_000u64; // year 2096
    let lines = format!(
        "2 1 eni-a 198.51.100.1 10.0.0.2 1 22 6 1 40 {t} {t} REJECT OK\n2 1 eni-a 198.51.100.9 10.0.0.2 1 22 6 1 40 {far} {far} REJECT OK\n"
    );
    let expo = exposition("", &lines);
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.1\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.9\"}"), None);
    assert_eq!(value(&expo, "vpc_flow_exporter_future_records_total"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_exporter_last_flow_timestamp_seconds"), Some(t as f64));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"REJECT\",interface_id=\"eni-a\"}"), Some(2.0));
}

#[test]
fn interface_ids_named_like_the_reserved_values_share_their_series() {
    let lines = format!("{}{}{}", line("other", "ACCEPT"), line("unknown", "ACCEPT"), line("eni-a", "ACCEPT"));
    let expo = exposition("limits:\n  max_interfaces: 1\n", &format!("{lines}{}", line("eni-b", "ACCEPT")));
    let series: Vec<&str> = expo.lines().filter(|l| l.starts_with("vpc_flow_records_total{")).collect();
    assert_eq!(
        series,
        vec![
            "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-a\"} 1",
            "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"other\"} 2",
            "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"unknown\"} 1",
        ]
    );
    assert_eq!(value(&expo, "vpc_flow_exporter_interfaces"), Some(1.0));
}

#[test]
fn absurdly_long_interface_ids_count_as_other() {
    let long = format!("eni-{}", "f".repeat(200));
    let expo = exposition("", &format!("{}{}", line(&long, "ACCEPT"), line("eni-a", "ACCEPT")));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"other\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_exporter_interface_limit_records_total"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_exporter_interfaces"), Some(1.0));
}

/// Traffic to the 255th (and the 65,536th) forbidden port is flagged: port
/// lists are not cut short.
#[test]
fn every_forbidden_port_is_flagged_however_long_the_list() {
    let ports: Vec<String> = (1..=300u32).map(|p| p.to_string()).chain(["65535".to_owned()]).collect();
    let yaml = format!("detections:\n  forbidden_ports: [{}]\n", ports.join(", "));
    let mut lines = String::new();
    for port in [255, 300, 65535, 301] {
        lines += &format!("2 1 eni-a 10.0.0.1 10.0.0.2 40000 {port} 6 2 100 1700000000 1700000060 ACCEPT OK\n");
    }
    let expo = exposition(&yaml, &lines);
    for port in [255, 300, 65535] {
        let s = format!(
            "vpc_flow_forbidden_port_records_total{{action=\"ACCEPT\",dstport=\"{port}\",interface_id=\"eni-a\"}}"
        );
        assert_eq!(value(&expo, &s), Some(1.0), "{s}");
    }
    assert!(!expo.contains("dstport=\"301\",interface_id"), "{expo}");
}

/// A start of 0, an end of 2^64-1 or an end before the start cannot skew the
/// duration histogram: they are counted apart.
#[test]
fn absurd_durations_stay_out_of_the_histogram() {
    let lines = "2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 2 100 0 18446744073709551615 ACCEPT OK\n\
                 2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 2 100 1700000060 1700000000 ACCEPT OK\n\
                 2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 2 100 1700000000 1700000030 ACCEPT OK\n";
    let expo = exposition("", lines);
    assert_eq!(value(&expo, "vpc_flow_record_duration_seconds_count{action=\"ACCEPT\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_record_duration_seconds_sum{action=\"ACCEPT\"}"), Some(30.0));
    assert_eq!(value(&expo, "vpc_flow_exporter_implausible_durations_total"), Some(2.0));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-a\"}"), Some(3.0));
}

/// Allow-lists of 100,000 CIDRs work (and match as a short list does).
#[test]
fn a_huge_allow_list_matches_like_a_short_one() {
    let mut cidrs: Vec<String> =
        (0..100_000u32).map(|i| format!("{}.{}.{}.0/24", 11 + i / 65536, (i / 256) % 256, i % 256)).collect();
    cidrs.push("10.0.0.0/8".to_owned());
    let yaml = format!(
        "detections:\n  allowed_source_cidrs: [{}]\n",
        cidrs.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
    );
    let lines = "2 1 eni-a 11.0.5.9 10.0.0.2 1 2 6 2 100 1700000000 1700000030 ACCEPT OK\n\
                 2 1 eni-a 10.9.9.9 10.0.0.2 1 2 6 2 100 1700000000 1700000030 ACCEPT OK\n\
                 2 1 eni-a 13.0.0.1 10.0.0.2 1 2 6 2 100 1700000000 1700000030 ACCEPT OK\n\
                 2 1 eni-a 12.134.159.1 10.0.0.2 1 2 6 2 100 1700000000 1700000030 ACCEPT OK\n";
    let expo = exposition(&yaml, lines);
    // 13.0.0.1 is in none; 12.134.159.0/24 is the last generated entry.
    assert_eq!(value(&expo, "vpc_flow_illegal_source_accepts_total{interface_id=\"eni-a\"}"), Some(1.0));
}
