//! New counter series start at 0 (`--metrics.new-series-hold`): a scrape that
//! first sees a series gets 0 for the hold's length, then the value, so a
//! plain `increase()` in an alert rule counts the series' first records. Run
//! against the real binary (`demo`).

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{Exporter, BIN};

/// The demo with `--metrics.new-series-hold <hold>`.
fn demo(hold: &str) -> Exporter {
    Exporter::demo(&["--metrics.new-series-hold", hold, "--demo.rate", "2000"])
}

/// `vpc_flow_records_total` series (their labels) and their values.
fn records(url: &str) -> Vec<(String, f64)> {
    let text = reqwest::blocking::get(url).unwrap().text().unwrap();
    common::expo::series(&text, "vpc_flow_records_total").into_iter().collect()
}

#[test]
fn new_series_are_zero_for_the_hold_then_show_their_value() {
    let d = demo("4s");
    // Wait for traffic to be counted: series exist, all still held at 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let r = records(&d.url("/metrics"));
        if !r.is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "no series appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(first.iter().all(|(_, v)| *v == 0.0), "held series must read 0 first: {first:?}");
    std::thread::sleep(Duration::from_secs(5));
    let later = records(&d.url("/metrics"));
    for (series, _) in &first {
        let v = later.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
        assert!(v.is_some_and(|v| v > 0.0), "{series} should show its count after the hold, got {v:?}");
    }
    // Counters that are not labeled per record (the exporter's own) are never held.
    let text = reqwest::blocking::get(d.url("/metrics")).unwrap().text().unwrap();
    assert!(text.lines().any(|l| l.starts_with("vpc_flow_exporter_lines_total ") && !l.ends_with(" 0")), "{text}");
}

#[test]
fn a_zero_hold_shows_values_at_once() {
    let d = demo("0s");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if records(&d.url("/metrics")).iter().any(|(_, v)| *v > 0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "values never appeared with a zero hold");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_overlong_hold_is_refused_naming_the_flag() {
    let out = Command::new(BIN).args(["demo", "--metrics.new-series-hold", "11m"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics.new-series-hold") && err.contains("at most 10m"), "{err}");
}
