//! The live source against hostile input and hostile surroundings, with a
//! real moto_server: log events that try to change how later events are read,
//! a state file that tries to blind the poller (a horizon in the future) or to
//! crash it (oversized, not a regular file). Each test starts its own
//! moto_server; counts are exact.

mod common;
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
    let Some(moto) = MotoServer::require() else { return };
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

/// A state file as an attacker (or a host with a wrong clock) could leave it:
/// every time a year ahead.
fn future_state(group: &str, now: i64) -> String {
    let year = now + 365 * 86_400_000;
    serde_json::json!({
        "version": 1,
        "saved_at_ms": year,
        "log_groups": { group: {
            "horizon_ms": year,
            "last_scan_start_ms": year,
            "newest_ingestion_ms": year,
            "scan": null,
            "keys": [{ "bucket_ms": year, "keys": "0123456789abcdef0123456789abcdef" }],
        }},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_with_a_horizon_in_the_future_is_clamped_and_new_events_are_counted() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/future";
    seed.create_group(g).await;
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    std::fs::write(&state, future_state(g, now_ms())).expect("state");
    let extra = format!("  state_file: {}\n", state.display());
    let (_, cfg) = write_config(dir.path(), &config(&moto.endpoint, &extra, g));
    let ex = InProcess::start(&cfg, MARGIN).await;
    // Events that arrive after the start: counted, not skipped as if a scan
    // a year from now had seen them.
    let now = now_ms();
    seed.fill_streams(g, ["eni-f".to_owned()], 0..50, |i| now - 10_000 + i as i64).await;
    let t = ex.wait_for("50 events and 2 polls", WAIT, |t| events(t, g) >= 50.0 && polls_ok(t, g) >= 2.0).await;
    assert!(ex.ready.is_ready());
    let clamped = value(&t, "vpc_flow_exporter_cloudwatch_checkpoint_clamped_times_total", &[("log_group", g)]);
    assert_eq!(clamped, 4.0, "horizon, last scan start, newest ingestion and the key bucket: {}", relevant(&t));
    let (t, res) = ex.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&t, g), 50.0);
    assert_eq!(records(&t), 50.0);
    let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    let horizon = cp["log_groups"][g]["horizon_ms"].as_i64().expect("a horizon");
    assert!(horizon <= now_ms(), "the saved horizon is no longer in the future: {cp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_garbage_or_linked_state_file_fails_start_up_naming_it() {
    let Some(moto) = MotoServer::require() else { return };
    let g = "/vpc/bad-state";
    moto.seeder().create_group(g).await;
    let dir = tempfile::tempdir().expect("tmp");
    let start_err = |name: &'static str| {
        let state = dir.path().join(name);
        let extra = format!("  state_file: {}\n", state.display());
        let (_, cfg) = write_config(dir.path(), &config(&moto.endpoint, &extra, g));
        async move {
            match InProcess::try_start(&cfg, MARGIN).await {
                Ok(_) => panic!("{name}: started"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    // Larger than anything the exporter writes (a sparse file: no disk used).
    let big = std::fs::File::create(dir.path().join("big.json")).expect("create");
    big.set_len(1 << 30).expect("set_len");
    let e = start_err("big.json").await;
    assert!(e.contains("big.json") && e.contains("larger than"), "{e}");
    std::fs::write(dir.path().join("garbage.json"), b"\x00\xff{{not json").expect("write");
    let e = start_err("garbage.json").await;
    assert!(e.contains("garbage.json") && e.contains("corrupt"), "{e}");
    std::fs::write(dir.path().join("elsewhere.json"), future_state(g, now_ms())).expect("write");
    std::os::unix::fs::symlink(dir.path().join("elsewhere.json"), dir.path().join("link.json")).expect("symlink");
    let e = start_err("link.json").await;
    assert!(e.contains("link.json") && e.contains("symbolic link"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_endpoint_url_reaches_neither_logs_nor_metrics() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/secret";
    seed.create_group(g).await;
    let now = now_ms();
    seed.fill_streams(g, ["eni-s".to_owned()], 0..20, |i| now - 10_000 + i as i64).await;
    let dir = tempfile::tempdir().expect("tmp");
    let with_password = format!("http://flowuser:s3cr3t-pa55@127.0.0.1:{}", moto.port);
    // In the configuration file, then in the environment; the binary logs at
    // debug (the SDK's own debug lines included).
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&with_password, "", g)).expect("config");
    let env_cfg = dir.path().join("env.yaml");
    std::fs::write(
        &env_cfg,
        format!("cloudwatch:\n  region: us-east-1\n  poll_interval: 1s\n  log_groups:\n    - name: {g}\n"),
    )
    .expect("config");
    for (cfg, env) in [(&cfg, vec![]), (&env_cfg, vec![("AWS_ENDPOINT_URL", with_password.as_str())])] {
        let mut ex = support::exporter::Binary::start_with_env(cfg, dir.path(), &env);
        let t = ex.wait_for("20 events and 2 polls", WAIT, |t| events(t, g) >= 20.0 && polls_ok(t, g) >= 2.0).await;
        assert_eq!(events(&t, g), 20.0, "the endpoint works without its user information");
        let mut pages = vec![t];
        for path in ["/", "/-/ready", "/-/healthy"] {
            pages.push(ex.get(path).await.map(|(_, b)| b).unwrap_or_default());
        }
        assert!(ex.terminate().success());
        let log = ex.log();
        assert!(log.contains("127.0.0.1") && log.contains("level=debug"), "a debug log was written:\n{log}");
        assert!(log.contains("user information"), "the removal is reported:\n{log}");
        for text in pages.iter().chain([&log]) {
            assert!(!text.contains("s3cr3t") && !text.contains("flowuser"), "{env:?}: a credential leaked:\n{text}");
        }
    }
}
