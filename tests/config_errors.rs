//! Every invalid configuration is a start-up error whose message names the
//! key; valid files get the documented defaults.

use std::path::Path;
use std::time::Duration;

use vpc_flow_exporter::config::{parse_duration, Config};

fn error_of(yaml: &str) -> String {
    match Config::from_yaml(yaml, Path::new("/etc/vpc-flow-exporter")) {
        Ok(_) => panic!("accepted invalid config:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_invalid_config_names_its_key() {
    let cases: &[(&str, &str)] = &[
        ("bogus: 1\n", "unknown field `bogus`"),
        ("detections:\n  allowed_source_cidr: []\n", "unknown field `allowed_source_cidr`"),
        ("detections:\n  top_k:\n    windw: 5m\n", "detections.top_k: unknown field `windw`"),
        ("detections:\n  top_k:\n    window: 15x\n", "detections.top_k.window: invalid duration \"15x\""),
        ("detections:\n  top_k:\n    window: 10s\n", "detections.top_k.window: must be between 1m and 24h"),
        ("detections:\n  top_k:\n    size: 0\n", "detections.top_k.size: must be between 1 and 1000"),
        ("detections:\n  port_scan:\n    window: forever\n", "detections.port_scan.window: invalid duration"),
        (
            "detections:\n  port_scan:\n    min_distinct_ports: 0\n",
            "detections.port_scan.min_distinct_ports: must be between 1 and 1024",
        ),
        (
            "detections:\n  allowed_source_cidrs: [\"10.0.0.0/8\", \"10.0.0/33\"]\n",
            "detections.allowed_source_cidrs[1]: invalid CIDR \"10.0.0/33\"",
        ),
        (
            "detections:\n  approved_destination_cidrs: [\"nope\"]\n",
            "detections.approved_destination_cidrs[0]: invalid CIDR",
        ),
        ("detections:\n  forbidden_ports: [70000]\n", "detections.forbidden_ports"),
        ("detections:\n  watch_ports: [-1]\n", "detections.watch_ports"),
        ("log_format: \"\"\n", "log_format: "),
        ("geoip: {}\n", "geoip.database: missing"),
        ("limits:\n  max_interfaces: 0\n", "limits.max_interfaces: must be between 1 and 1000000"),
        ("limits:\n  max_tracked_addresses: 10\n", "limits.max_tracked_addresses: must be between 64 and"),
        // Values that used to abort the process allocating their tables.
        (
            "limits:\n  max_tracked_addresses: 1000000000000\n",
            "limits.max_tracked_addresses: must be between 64 and 5000000",
        ),
        (
            "limits:\n  max_port_scan_sources: 18446744073709551615\n",
            "limits.max_port_scan_sources: must be between 64 and 2000000",
        ),
        ("limits:\n  max_interfaces: 99999999999\n", "limits.max_interfaces: must be between 1 and 1000000"),
        // A threshold the per-source port cap (1024) could never reach.
        (
            "detections:\n  port_scan:\n    min_distinct_ports: 1025\n",
            "detections.port_scan.min_distinct_ports: must be between 1 and 1024",
        ),
        (
            "detections:\n  port_scan:\n    min_distinct_ports: 20\n    shard_min_ports: 21\n",
            "detections.port_scan.shard_min_ports: must be between 1 and min_distinct_ports (20)",
        ),
        (
            "detections:\n  allowed_source_cidrs: [\"10.0.0.1/8\"]\n",
            "detections.allowed_source_cidrs[0]: \"10.0.0.1/8\" has host bits set; the network is 10.0.0.0/8",
        ),
        (
            "detections:\n  approved_destination_cidrs: [\"10.0.0.0/8\", \"2001:db8::1/32\"]\n",
            "detections.approved_destination_cidrs[1]: \"2001:db8::1/32\" has host bits set; the network is 2001:db8::/32",
        ),
        ("log_format: \"hello world\"\n", "log_format: expected fields in AWS syntax"),
        ("log_format: \"${version} ${account-id}\"\n", "log_format: names none of the fields the metrics read"),
        ("log_format: \"${hello} ${world}\"\n", "log_format: names none of the fields the metrics read"),
        ("cloudwatch:\n  log_groups: []\n", "cloudwatch.log_groups: at least one log group is required"),
        ("cloudwatch:\n  log_groups:\n    - log_format: \"${version}\"\n", "cloudwatch.log_groups[0].name: missing"),
        (
            "cloudwatch:\n  log_groups:\n    - name: a\n    - name: a\n",
            "cloudwatch.log_groups[1].name: log group \"a\" is listed twice",
        ),
        (
            "cloudwatch:\n  log_groups:\n    - name: a\n      log_format: \"\"\n",
            "cloudwatch.log_groups[0].log_format: ",
        ),
        ("cloudwatch:\n  log_groups:\n    - name: a\n      prefix: eni-\n", "unknown field `prefix`"),
        (
            "cloudwatch:\n  poll_interval: 1 minute\n  log_groups: [{name: a}]\n",
            "cloudwatch.poll_interval: invalid duration",
        ),
        (
            "cloudwatch:\n  lookback: 10s\n  log_groups: [{name: a}]\n",
            "cloudwatch.lookback: must be between 1m and 24h",
        ),
        ("cloudwatch:\n  start_from: 30d\n  log_groups: [{name: a}]\n", "cloudwatch.start_from: must be at most 14d"),
        (
            "cloudwatch:\n  max_requests_per_second: 0\n  log_groups: [{name: a}]\n",
            "cloudwatch.max_requests_per_second: must be above 0",
        ),
        (
            "cloudwatch:\n  endpoint_url: localhost:5000\n  log_groups: [{name: a}]\n",
            "cloudwatch.endpoint_url: must start with http://",
        ),
        (
            "cloudwatch:\n  role_arn: my-role\n  log_groups: [{name: a}]\n",
            "cloudwatch.role_arn: must be an IAM role ARN",
        ),
        ("detections: [1, 2]\n", "detections"),
        (
            "cloudwatch:\n  dedup_margin: 2h\n  log_groups: [{name: a}]\n",
            "cloudwatch.dedup_margin: must be between 1s and 1h",
        ),
    ];
    for (yaml, want) in cases {
        let got = error_of(yaml);
        assert!(got.contains(want), "config:\n{yaml}\nwant a message containing {want:?}\ngot: {got}");
    }
}

/// The configuration and GeoIP paths must be regular files under a size limit:
/// a FIFO would block the loader forever, a device would never end.
#[cfg(unix)]
#[test]
fn config_paths_must_be_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.yaml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let e = Config::load(&fifo).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let e = Config::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let e = Config::load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    // Larger than the limit: refused before it is read.
    let big = dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(vpc_flow_exporter::config::defaults::MAX_CONFIG_BYTES + 1).unwrap();
    let e = Config::load(&big).unwrap_err().to_string();
    assert!(e.contains("larger than the limit"), "{e}");
}

/// A file that is one long string is not echoed whole (fuzzing found it).
#[test]
fn a_mistyped_long_value_is_not_echoed_whole() {
    let yaml = "x".repeat(100_000);
    let e = error_of(&yaml);
    assert!(e.len() < 300, "{} bytes: {}", e.len(), &e[..300.min(e.len())]);
    assert!(e.contains("invalid type: string \"xxxx") && e.contains("...\", expected a mapping"), "{e}");
}

/// Port lists of any length are honoured: no silent cut at 254 entries.
#[test]
fn long_port_lists_are_kept_whole() {
    let ports: Vec<String> = (1..=65535u32).map(|p| p.to_string()).collect();
    let yaml =
        format!("detections:\n  forbidden_ports: [0, {}]\n  watch_ports: [{}]\n", ports.join(", "), ports.join(", "));
    let c = Config::from_yaml(&yaml, Path::new(".")).unwrap();
    assert_eq!(c.detections.forbidden_ports.len(), 65536);
    assert_eq!(c.detections.watch_ports.len(), 65535);
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = Config::from_yaml("", Path::new(".")).unwrap();
    assert_eq!(c.detections.forbidden_ports, vec![23]);
    assert_eq!(c.detections.watch_ports, vec![22, 23, 25, 53, 80, 443, 445, 1433, 3306, 3389, 5432, 6379]);
    assert_eq!(c.detections.top_k.size, 25);
    assert_eq!(c.detections.top_k.window, Duration::from_secs(900));
    assert_eq!(c.detections.port_scan.window, Duration::from_secs(600));
    assert_eq!(c.detections.port_scan.min_distinct_ports, 20);
    assert_eq!(c.limits.max_interfaces, 10_000);
    assert!(c.detections.allowed_source_cidrs.is_empty());
    assert!(c.geoip.is_none() && c.cloudwatch.is_none());
    assert!(c.log_format.has_field("log-status"));
}

#[test]
fn contract_example_parses_with_relative_paths_resolved() {
    let yaml = r#"
log_format: "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${tcp-flags} ${pkt-dstaddr}"
detections:
  allowed_source_cidrs: ["172.31.0.0/16"]
  approved_destination_cidrs: ["10.0.0.0/8"]
  forbidden_ports: [23]
  top_k: {size: 25, window: 15m}
  port_scan: {window: 10m, min_distinct_ports: 20}
geoip:
  database: geo/country.mmdb
limits:
  max_interfaces: 10000
cloudwatch:
  region: us-east-1
  endpoint_url: http://127.0.0.1:5000
  poll_interval: 60s
  lookback: 20m
  state_file: state.json
  max_requests_per_second: 4
  log_groups:
    - name: /vpc/flow-logs
      log_stream_prefix: eni-
    - name: /vpc/other
      log_format: "${version} ${interface-id} ${action}"
"#;
    let c = Config::from_yaml(yaml, Path::new("/etc/vfe")).unwrap();
    assert_eq!(c.geoip.unwrap().database, Path::new("/etc/vfe/geo/country.mmdb"));
    let cw = c.cloudwatch.unwrap();
    assert_eq!(cw.state_file.as_deref(), Some(Path::new("/etc/vfe/state.json")));
    assert_eq!(cw.start_from, cw.lookback, "start_from defaults to lookback");
    assert_eq!(cw.lookback, Duration::from_secs(1200));
    assert_eq!(cw.dedup_margin, Duration::from_secs(300));
    assert!(cw.log_groups[0].log_format.has_field("tcp-flags"), "groups inherit the top-level format");
    assert!(!cw.log_groups[1].log_format.has_field("srcaddr"));
    assert_eq!(cw.log_groups[0].log_stream_prefix.as_deref(), Some("eni-"));
}

#[test]
fn durations_are_prometheus_style() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    for bad in ["", "10", "m", "1.5h", "10 m", "-5m", "5M"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
    }
}

/// Messages say what the key expects in the file's words, never a Rust type,
/// and give the line of the key.
#[test]
fn messages_use_the_files_words_and_give_the_line() {
    let cases: &[(&str, &str, usize)] = &[
        (
            "cloudwatch:\n  log_groups:\n    - /vpc/flow-logs\n",
            "cloudwatch.log_groups[0]: invalid type: string \"/vpc/flow-logs\", expected a mapping with name, log_format, log_stream_prefix",
            3,
        ),
        ("detections:\n  forbidden_ports: [70000]\n", "expected a port number 0-65535", 2),
        ("detections:\n  watch_ports:\n    - 22\n    - ssh\n", "detections.watch_ports[1]: invalid type: string \"ssh\", expected a port number 0-65535", 4),
        ("limits:\n  max_interfaces: -1\n", "expected a whole number 0 or more", 2),
        ("detections: 5\n", "detections: invalid type: integer `5`, expected a mapping with allowed_source_cidrs", 1),
        ("detections:\n  allowed_source_cidrs: 10.0.0.0/8\n", "expected a list", 2),
        ("cloudwatch:\n  max_requests_per_second: fast\n  log_groups: [{name: a}]\n", "expected a number", 2),
        // Unknown keys, top-level ones too.
        ("# comment\n\nlog_format: \"${srcaddr}\"\nbogus: 1\n", "unknown field `bogus`", 4),
        ("detections:\n  top_k:\n    windw: 5m\n", "detections.top_k: unknown field `windw`", 3),
        // Errors found after parsing: the line of their key.
        ("detections:\n  top_k:\n    size: 25\n    window: 10s\n", "detections.top_k.window: must be between 1m and 24h", 4),
        (
            "cloudwatch:\n  region: us-east-1\n  log_groups:\n    - name: a\n    - name: b\n      log_format: \"${version} ...\"\n",
            "cloudwatch.log_groups[1].log_format: bad token \"...\"",
            6,
        ),
        ("detections:\n  allowed_source_cidrs:\n    - 10.0.0.0/8\n    - 10.0.0/33\n", "detections.allowed_source_cidrs[1]: invalid CIDR", 4),
        ("detections:\n  approved_destination_cidrs: [\"10.0.0.0/8\", nope]\n", "approved_destination_cidrs[1]", 2),
        ("geoip: {}\n", "geoip.database: missing", 1),
        ("cloudwatch:\n  region: us-east-1\n", "cloudwatch.log_groups: at least one log group is required", 1),
    ];
    for (yaml, want, line) in cases {
        let got = error_of(yaml);
        assert!(got.contains(want), "config:\n{yaml}\nwant {want:?}\ngot: {got}");
        assert!(got.ends_with(&format!("(line {line})")), "config:\n{yaml}\nwant line {line}\ngot: {got}");
        for rust in ["struct", "Raw", "u16", "u32", "usize", "f64", "a sequence", "at line"] {
            assert!(!got.contains(rust), "{rust:?} in {got:?}");
        }
    }
}
