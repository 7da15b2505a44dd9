//! The live source against hostile input and hostile surroundings, with a
//! real moto_server: log events that try to change how later events are read,
//! a state file that tries to blind the poller (a horizon in the future) or to
//! crash it (oversized, not a regular file). Each test starts its own
//! moto_server; counts are exact.

#[path = "cloudwatch/mod.rs"]
mod support;

use std::time::Duration;

use support::expo::{self, events, polls_ok, value};
use support::exporter::{relevant, write_config, InProcess};
use support::moto::{lines, now_ms, v2_line, MotoServer};

const MARGIN: Option<Duration> = Some(Duration::from_secs(2));
const WAIT: Duration = Duration::from_secs(90);

fn config(endpoint: &str, extra: &str, group: &str) -> String {
    format!(
        "cloudwatch:\n  region: us-east-1\n  endpoint_url: {endpoint}\n  poll_interval: 1s\n  max_requests_per_second: 20\n  lookback: 5m\n{extra}  log_groups:\n    - name: {group}\n"
    )
}

fn records(t: &str) -> f64 {
    value(t, expo::RECORDS, &[])
}

fn parse_errors(t: &str, reason: &str) -> f64 {
    value(t, expo::PARSE_ERRORS, &[("reason", reason)])
}

/// Header lines an attacker who can write to the log group would send: each
/// would switch a file's format so that every later v2 record is invalid.
const HEADERS: [&str; 3] = [
    "version srcaddr dstaddr",
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status tcp-flags",
    "  interface-id   srcport\t",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_events_in_a_log_group_never_change_how_later_events_are_read() {
    let moto = MotoServer::start();
    let seed = moto.seeder();
    let g = "/vpc/poisoned";
    seed.create_group(g).await;
    let t0 = now_ms() - 120_000;
    // Stream eni-p: 60 records with a header event before records 10, 30 and
    // 50 (in event-time order, as FilterLogEvents returns them).
    let mut evs = lines("eni-p", 0..60, |i| t0 + i as i64 * 1000);
    for (k, h) in HEADERS.iter().enumerate() {
        let before = [10, 30, 50][k];
        evs.push((t0 + before * 1000 - 500, (*h).to_owned()));
    }
    seed.create_stream(g, "eni-p").await;
    seed.put(g, "eni-p", evs).await;
    // A second stream, read after the first in the same scan.
    seed.fill_streams(g, ["eni-q".to_owned()], 0..40, |i| t0 + i as i64 * 700).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cfg) = write_config(dir.path(), &config(&moto.endpoint, "", g));
    let ex = InProcess::start(&cfg, MARGIN).await;
    ex.wait_for("the first 103 events", WAIT, |t| events(t, g) >= 103.0).await;

    // A later poll: a new stream that opens with a header, then records.
    let now = now_ms();
    let mut evs = vec![(now - 30_000, HEADERS[1].to_owned())];
    evs.extend((0..20).map(|i| (now - 29_000 + i * 100, v2_line("eni-r", i as usize, (now - 29_000) / 1000))));
    seed.create_stream(g, "eni-r").await;
    seed.put(g, "eni-r", evs).await;
    let t = ex.wait_for("124 events", WAIT, |t| events(t, g) >= 124.0).await;
    let polls = polls_ok(&t, g);
    ex.wait_for("2 more polls", WAIT, |t| polls_ok(t, g) >= polls + 2.0).await;
    let (t, res) = ex.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&t, g), 124.0, "{}", relevant(&t));
    assert_eq!(records(&t), 120.0, "every record after a header counted: {}", relevant(&t));
    assert_eq!(parse_errors(&t, "header_in_stream"), 4.0);
    assert_eq!(value(&t, expo::PARSE_ERRORS, &[]), 4.0, "no other reason: {}", relevant(&t));
    assert_eq!(value(&t, "vpc_flow_exporter_lines_total", &[]), 124.0);
}
