//! The `replay` command end to end: the real binary on fixture files, its
//! exposition diffed against golden files and linted by `promtool check
//! metrics` (skipped without promtool, see tests/common/tools.rs), plus the
//! exit codes and one-line errors of the contract.
//! Set UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::BIN;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replay").join(name)
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    common::exporter::run_with_stdin(cmd, stdin)
}

fn stdout_ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}, stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf-8 exposition")
}

/// The exposition without the lines that change with the build.
fn stable(expo: &str) -> String {
    expo.lines()
        .map(|l| {
            if l.starts_with("vpc_flow_exporter_build_info{") {
                "vpc_flow_exporter_build_info{version=\"X\"} 1"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn check_golden(expo: &str, golden: &str) {
    let path = data(golden);
    let got = stable(expo);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .filter(|l| !got.lines().any(|g| g == *l))
            .map(|l| format!("- {l}"))
            .chain(got.lines().filter(|g| !want.lines().any(|l| l == *g)).map(|g| format!("+ {g}")))
            .collect();
        panic!("exposition differs from {}:\n{}", path.display(), diff.join("\n"));
    }
}

/// `promtool check metrics` on `expo`: nothing to say, exit 0.
fn promtool_check(promtool: &Path, expo: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
    child.stdin.take().expect("stdin").write_all(expo.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "promtool check metrics complained:\n{text}");
}

/// The value of one series, by its exact text before the value.
fn value(expo: &str, series: &str) -> Option<f64> {
    common::expo::sample(expo, series)
}

#[test]
fn default_format_file_matches_golden() {
    let out = run(&["replay", data("default.log").to_str().unwrap()], None);
    let expo = stdout_ok(&out);
    // Independent of the golden file: the counts the contract defines.
    let eni = "eni-1235b8ca123456789";
    assert_eq!(value(&expo, &format!("vpc_flow_records_total{{action=\"ACCEPT\",interface_id=\"{eni}\"}}")), Some(5.0));
    assert_eq!(value(&expo, &format!("vpc_flow_records_total{{action=\"REJECT\",interface_id=\"{eni}\"}}")), Some(2.0));
    assert_eq!(
        value(&expo, &format!("vpc_flow_bytes_total{{action=\"ACCEPT\",interface_id=\"{eni}\"}}")),
        Some((4249 + 336 + 8855 + 8855 + 1) as f64)
    );
    assert_eq!(
        value(&expo, &format!("vpc_flow_log_status_total{{interface_id=\"{eni}\",log_status=\"NODATA\"}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&expo, "vpc_flow_log_status_total{interface_id=\"eni-11111111aaaaaaaaa\",log_status=\"SKIPDATA\"}"),
        Some(1.0)
    );
    assert_eq!(value(&expo, "vpc_flow_exporter_parse_errors_total{reason=\"out_of_range\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_protocol_records_total{action=\"ACCEPT\",protocol=\"icmp\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_dstport_records_total{action=\"ACCEPT\",dstport=\"22\"}"), Some(3.0));
    assert_eq!(value(&expo, "vpc_flow_forbidden_port_records_total{action=\"ACCEPT\",dstport=\"23\",interface_id=\"eni-1235b8ca123456789\"}"), None);
    // The header line, 9 valid records and 1 invalid line.
    assert_eq!(value(&expo, "vpc_flow_exporter_lines_total"), Some(11.0));
    check_golden(&expo, "default.golden.prom");
}

#[test]
fn custom_format_with_every_detection_matches_golden() {
    let out = run(
        &["replay", "--config.file", data("config.yaml").to_str().unwrap(), data("v5.log").to_str().unwrap()],
        None,
    );
    let expo = stdout_ok(&out);
    let web = "eni-1235b8ca123456789";
    let app = "eni-0f1e2d3c4b5a69788";
    let nat = "eni-0aaaabbbbccccdddd";
    assert_eq!(value(&expo, &format!("vpc_flow_illegal_source_accepts_total{{interface_id=\"{web}\"}}")), Some(1.0));
    // tcp-flags 3 and 19 have SYN and FIN; 1 and 18 do not; the JSON record has 3.
    assert_eq!(value(&expo, &format!("vpc_flow_short_connections_total{{interface_id=\"{app}\"}}")), Some(2.0));
    assert_eq!(value(&expo, &format!("vpc_flow_short_connections_total{{interface_id=\"{nat}\"}}")), Some(1.0));
    assert_eq!(
        value(
            &expo,
            &format!("vpc_flow_unapproved_destination_records_total{{action=\"ACCEPT\",interface_id=\"{nat}\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &expo,
            &format!(
                "vpc_flow_forbidden_port_records_total{{action=\"REJECT\",dstport=\"23\",interface_id=\"{web}\"}}"
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &expo,
            &format!(
                "vpc_flow_forbidden_port_records_total{{action=\"ACCEPT\",dstport=\"23\",interface_id=\"{app}\"}}"
            )
        ),
        Some(1.0)
    );
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.7\"}"), Some(6.0));
    assert_eq!(value(&expo, "vpc_flow_top_rejected_sources{srcaddr=\"198.51.100.8\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_top_rejected_destinations{dstaddr=\"10.0.0.220\"}"), Some(6.0));
    // 3389..3393: five distinct ports (3393 twice) = min_distinct_ports.
    assert_eq!(value(&expo, "vpc_flow_port_scan_sources"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_top_port_scanners{srcaddr=\"198.51.100.7\"}"), Some(5.0));
    assert_eq!(value(&expo, "vpc_flow_dstport_records_total{action=\"REJECT\",dstport=\"3389\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_dstport_records_total{action=\"REJECT\",dstport=\"other\"}"), Some(5.0));
    assert_eq!(value(&expo, "vpc_flow_protocol_records_total{action=\"ACCEPT\",protocol=\"udp\"}"), Some(1.0));
    for reason in ["bad_address", "out_of_range", "bad_number", "field_count", "bad_value", "bad_json"] {
        assert_eq!(
            value(&expo, &format!("vpc_flow_exporter_parse_errors_total{{reason=\"{reason}\"}}")),
            Some(1.0),
            "reason {reason}"
        );
    }
    assert_eq!(value(&expo, "vpc_flow_exporter_last_flow_timestamp_seconds"), Some(1700000110.0));
    check_golden(&expo, "v5.golden.prom");
}

/// Both golden runs' expositions (default format; custom format with every
/// detection) pass `promtool check metrics` (the one check here that needs a
/// tool, so that the golden checks above run without it).
#[test]
fn golden_expositions_lint_clean_with_promtool() {
    let Some(promtool) = common::require(&common::PROMTOOL) else { return };
    let default = stdout_ok(&run(&["replay", data("default.log").to_str().unwrap()], None));
    promtool_check(&promtool, &default);
    let custom = stdout_ok(&run(
        &["replay", "--config.file", data("config.yaml").to_str().unwrap(), data("v5.log").to_str().unwrap()],
        None,
    ));
    promtool_check(&promtool, &custom);
}

#[test]
fn gzip_and_stdin_give_the_same_counts_as_the_plain_file() {
    let plain = stdout_ok(&run(&["replay", data("default.log").to_str().unwrap()], None));
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("default.log.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(&std::fs::read(data("default.log")).unwrap()).unwrap();
    enc.finish().unwrap();
    assert_eq!(stdout_ok(&run(&["replay", gz.to_str().unwrap()], None)), plain);
    let bytes = std::fs::read(data("default.log")).unwrap();
    assert_eq!(stdout_ok(&run(&["replay"], Some(&bytes))), plain);
    assert_eq!(stdout_ok(&run(&["replay", "-"], Some(&bytes))), plain);
}

#[test]
fn a_header_in_one_file_does_not_change_the_next_files_format() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    std::fs::write(&a, "version interface-id action\n2 eni-a ACCEPT\n").unwrap();
    std::fs::write(&b, "2 123456789010 eni-b 10.0.0.1 10.0.0.2 1 2 6 1 1 1418530010 1418530070 REJECT OK\n").unwrap();
    let expo = stdout_ok(&run(&["replay", a.to_str().unwrap(), b.to_str().unwrap()], None));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-a\"}"), Some(1.0));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"REJECT\",interface_id=\"eni-b\"}"), Some(1.0));
}

#[test]
fn log_format_flag_overrides_the_default() {
    let expo = stdout_ok(&run(
        &["replay", "--log-format", "${interface-id} ${action} ${bytes}"],
        Some(b"eni-x REJECT 10\neni-x ACCEPT -\n"),
    ));
    assert_eq!(value(&expo, "vpc_flow_bytes_total{action=\"REJECT\",interface_id=\"eni-x\"}"), Some(10.0));
    assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-x\"}"), Some(1.0));
}

#[test]
fn unreadable_file_fails_with_one_line_naming_it() {
    let out = run(&["replay", data("default.log").to_str().unwrap(), "/nonexistent/flows.log"], None);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no exposition on failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("/nonexistent/flows.log"), "{err}");
}

#[test]
fn corrupt_gzip_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("broken.log.gz");
    std::fs::write(&gz, b"\x1f\x8b\x08\x00not really gzip").unwrap();
    let out = run(&["replay", gz.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.log.gz"));
}

#[test]
fn bad_config_fails_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "detections:\n  top_k:\n    window: 15 minutes\n").unwrap();
    let out = run(&["replay", "--config.file", cfg.to_str().unwrap()], Some(b""));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("detections.top_k.window"), "{err}");
}

#[test]
fn config_check_exits_zero_or_one() {
    // Valid for replay; the live exporter also needs a source section.
    let cfg = data("config.yaml");
    let ok =
        Command::new(BIN).args(["replay", "--config.file", cfg.to_str().unwrap(), "--config.check"]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let live = Command::new(BIN).args(["--config.file", cfg.to_str().unwrap(), "--config.check"]).output().unwrap();
    assert_eq!(live.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&live.stderr).contains("cloudwatch"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "limits:\n  max_interfacez: 3\n").unwrap();
    let out = Command::new(BIN).args(["--config.file", bad.to_str().unwrap(), "--config.check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_interfacez"));
}

/// 10,000 invalid lines of three kinds at debug level: at most one log line
/// per reason for the file, each naming the file, the reason, the field when
/// known and an escaped snippet of the line; every line is still counted.
#[test]
fn invalid_lines_are_logged_once_a_minute_per_reason_with_a_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mismatched.log");
    // First a bad address in a long line: the one logged for its reason.
    let mut text = format!("2 {} eni-a 10.0.0.x 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK\n", "z".repeat(300));
    for i in 0..10_000 {
        match i % 3 {
            0 => {
                text.push_str("2 123456789010 eni-a 10.0.0.1 10.0.0.2 1 99999 6 1 1 1418530010 1418530070 ACCEPT OK\n")
            }
            1 => text.push_str(&format!("a line from another format \t\u{1b}[31m {i}\n")),
            _ => text.push_str("2 123456789010 eni-a 10.0.0.x 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK\n"),
        }
    }
    std::fs::write(&path, &text).unwrap();
    let out = run(&["--log.level", "debug", "replay", path.to_str().unwrap()], None);
    let expo = stdout_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let logged: Vec<&str> = err.lines().filter(|l| l.contains("Invalid flow-log line")).collect();
    assert_eq!(logged.len(), 3, "one per reason:\n{err}");
    for l in &logged {
        assert!(l.contains("mismatched.log"), "no file name: {l}");
    }
    let find = |reason: &str| {
        *logged.iter().find(|l| l.contains(&format!("reason={reason}"))).unwrap_or_else(|| panic!("{reason}: {err}"))
    };
    let out_of_range = find("out_of_range");
    assert!(out_of_range.contains("field=dstport") && out_of_range.contains("99999"), "{out_of_range}");
    assert!(find("bad_address").contains("field=srcaddr"), "{err}");
    let count = find("field_count");
    assert!(count.contains("another format \\\\t\\\\x1b[31m"), "escaped snippet: {count}");
    assert!(!count.contains('\u{1b}') && !count.contains('\t'), "raw control bytes in the log: {count:?}");
    // A long line shows only its first 120 bytes.
    let long = find("bad_address");
    assert!(long.contains(&format!("2 {}...", "z".repeat(118))) && !long.contains(&"z".repeat(119)), "{long}");
    assert!(err.len() < 4000, "{} bytes of logs for 10,000 lines", err.len());
    // Everything is counted all the same.
    let total: f64 = expo
        .lines()
        .filter(|l| l.starts_with("vpc_flow_exporter_parse_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 10_001.0);
}
