//! SIGHUP reload against the real binary: a broken, oversized or FIFO
//! configuration is refused while `/metrics` keeps answering, later reloads
//! still work, a demo without a configuration file survives SIGHUP, and a
//! changed file keeps the counters of the series that still exist.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::expo::series;
use common::process::Signal;
use common::{Exporter, BIN};

fn start(args: &[&str]) -> Exporter {
    start_with(args, &[])
}

/// `args` before `demo`, `demo_args` after it.
fn start_with(args: &[&str], demo_args: &[&str]) -> Exporter {
    Exporter::start(Command::new(BIN), args, demo_args)
}

fn hup(e: &Exporter) {
    e.signal(Signal::HUP);
}

/// Waits until `name` reads `want`.
fn wait_for(e: &Exporter, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.metric(name) != Some(want) {
        assert!(Instant::now() < deadline, "{name} never became {want} (is {:?})", e.metric(name));
        std::thread::sleep(Duration::from_millis(100));
    }
}

const OK: &str = "vpc_flow_exporter_config_last_reload_successful";
const FAILURES: &str = "vpc_flow_exporter_config_reload_failures_total";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn failed_reloads_keep_the_exporter_and_later_reloads_work() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    write(&cfg, "detections:\n  forbidden_ports: [23]\n");
    let e = start(&["--config.file", cfg.to_str().unwrap()]);
    wait_for(&e, OK, 1.0);

    // Invalid values, including one that used to abort the process.
    write(&cfg, "limits:\n  max_tracked_addresses: 1000000000000\n");
    hup(&e);
    wait_for(&e, OK, 0.0);
    wait_for(&e, FAILURES, 1.0);

    write(&cfg, "detections:\n  forbidden_ports: [23, 2323]\n");
    hup(&e);
    wait_for(&e, OK, 1.0);

    // A FIFO in place of the file: refused at once, /metrics answers throughout.
    std::fs::remove_file(&cfg).unwrap();
    assert!(Command::new("mkfifo").arg(&cfg).status().unwrap().success());
    hup(&e);
    let started = Instant::now();
    wait_for(&e, FAILURES, 2.0);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(e.metric(OK), Some(0.0));

    std::fs::remove_file(&cfg).unwrap();
    write(&cfg, "detections:\n  forbidden_ports: [23]\n");
    hup(&e);
    wait_for(&e, OK, 1.0);
}

#[test]
fn a_demo_without_configuration_survives_sighup() {
    let e = start(&[]);
    hup(&e);
    std::thread::sleep(Duration::from_millis(500));
    hup(&e);
    std::thread::sleep(Duration::from_millis(500));
    assert!(reqwest::blocking::get(e.url("/-/healthy")).is_ok_and(|r| r.status().is_success()));
}

#[test]
fn demo_flags_are_bounded() {
    for args in [["--demo.rate", "0"], ["--demo.rate", "4294967295"], ["--demo.interfaces", "50001"]] {
        let out = Command::new(BIN).arg("demo").args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
}

#[test]
fn a_changed_file_keeps_the_counters_of_the_series_that_still_exist() {
    const TS: &str = "vpc_flow_exporter_config_last_reload_success_timestamp_seconds";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    write(&cfg, "detections:\n  forbidden_ports: [23, 3389]\n");
    let e = start_with(
        &["--config.file", cfg.to_str().unwrap()],
        &["--metrics.new-series-hold", "0s", "--demo.rate", "2000"],
    );
    // Enough traffic that a reset could not catch up between two scrapes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.metric("vpc_flow_exporter_lines_total").unwrap_or(0.0) < 8000.0 {
        assert!(Instant::now() < deadline, "the demo counts too slowly");
        std::thread::sleep(Duration::from_millis(100));
    }
    let loaded_at = e.metric(TS).unwrap();
    let before = e.scrape().unwrap();
    let forbidden_before = series(&before, "vpc_flow_forbidden_port_records_total");
    assert!(forbidden_before.keys().any(|k| k.contains("dstport=\"3389\"")), "{forbidden_before:?}");
    assert!(forbidden_before.keys().any(|k| k.contains("dstport=\"23\"")), "{forbidden_before:?}");

    write(&cfg, "detections:\n  forbidden_ports: [23]\n");
    hup(&e);
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.metric(TS) == Some(loaded_at) {
        assert!(Instant::now() < deadline, "the reload never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(e.metric(OK), Some(1.0));
    let after = e.scrape().unwrap();

    // Every counter of a series that still exists went on from its value.
    for name in ["vpc_flow_records_total", "vpc_flow_bytes_total", "vpc_flow_dstport_records_total"] {
        let (b, a) = (series(&before, name), series(&after, name));
        assert!(!b.is_empty(), "{name}: no series before");
        for (labels, v) in &b {
            let now = a.get(labels).copied().unwrap_or(0.0);
            assert!(now >= *v, "{name}{{{labels}}} went from {v} to {now}: reset by the reload");
        }
    }
    let (b, a) = (
        series(&before, "vpc_flow_forbidden_port_records_total"),
        series(&after, "vpc_flow_forbidden_port_records_total"),
    );
    for (labels, v) in &b {
        match a.get(labels) {
            Some(now) => {
                assert!(labels.contains("dstport=\"23\""), "{labels}");
                assert!(now >= v, "{labels}: {v} -> {now}");
            }
            None => assert!(labels.contains("dstport=\"3389\""), "{labels} disappeared"),
        }
    }
    assert!(!a.keys().any(|k| k.contains("dstport=\"3389\"")), "port 3389 is no longer forbidden: {a:?}");
    let lines = |t: &str| t.lines().find_map(|l| l.strip_prefix("vpc_flow_exporter_lines_total ")?.parse::<f64>().ok());
    assert!(lines(&after).unwrap() >= lines(&before).unwrap());
    let last = |t: &str| {
        t.lines().find_map(|l| l.strip_prefix("vpc_flow_exporter_last_flow_timestamp_seconds ")?.parse::<f64>().ok())
    };
    assert!(last(&after).unwrap() >= last(&before).unwrap() && last(&before).unwrap() > 0.0);
}
