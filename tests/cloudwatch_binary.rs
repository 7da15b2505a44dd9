//! The real `vpc-flow-exporter` binary against moto_server, scraped over HTTP:
//! a SIGTERM in the middle of a scan and a restart from the state file, a
//! fault-injecting proxy (throttling, 5xx), and a corrupt state file.

mod common;
#[path = "cloudwatch/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use support::expo::{self, events, polls_ok, value};
use support::exporter::{relevant, tail, Binary};
use support::moto::{lines, now_ms, MotoServer};
use support::proxy::{Fault, FaultProxy, Stats};

const WAIT: Duration = Duration::from_secs(120);

fn write(dir: &std::path::Path, endpoint: &str, extra: &str, group: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    let yaml = format!(
        "cloudwatch:\n  region: us-east-1\n  endpoint_url: {endpoint}\n  poll_interval: 1s\n  max_requests_per_second: 20\n{extra}  log_groups:\n    - name: {group}\n"
    );
    std::fs::write(&path, yaml).expect("config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_scan_then_restart_from_the_state_file() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/binary-restart";
    seed.create_group(g).await;
    let now = now_ms();
    seed.fill_streams(g, (0..3).map(|s| format!("eni-b{s}")), 0..8000, |i| now - 600_000 + i as i64 * 50).await;
    let mut total = 24_000.0;
    let proxy = FaultProxy::start(&moto.endpoint, Arc::new(|_| Fault::Delay(Duration::from_millis(1500)))).await;
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    let extra = format!("  lookback: 15m\n  state_file: {}\n", state.display());

    let mut a = Binary::start(&write(dir.path(), &proxy.endpoint, &extra, g), dir.path());
    let t = a.wait_for("/metrics to answer", WAIT, |t| expo::has(t, expo::EVENTS)).await;
    assert_eq!(polls_ok(&t, g), 0.0);
    assert_eq!(a.get("/-/healthy").await.map(|r| r.0), Some(200));
    assert_eq!(a.get("/-/ready").await.map(|r| r.0), Some(503), "not ready before the first complete poll");
    let ta = a.wait_for("the first page", WAIT, |t| events(t, g) >= 10_000.0).await;
    let status = a.terminate();
    assert!(status.success(), "exit status {status}; log:\n{}", tail(&a.log(), 30));
    // The last scrape before SIGTERM may lag: the state file is the truth of
    // what A counted, and the scan it was in the middle of.
    let counted_a_scraped = events(&ta, g);
    let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).expect("state file")).expect("json");
    assert!(cp["log_groups"][g]["scan"]["next_token"].is_string(), "scan in progress saved: {cp}");
    let log_a = a.log();
    drop(a);

    let now = now_ms();
    seed.put(g, "eni-b1", lines("eni-b1", 9000..9300, |i| now - 400_000 + i as i64)).await;
    total += 300.0;

    let mut b = Binary::start(&write(dir.path(), &moto.endpoint, &extra, g), dir.path());
    let tb = b.wait_for("3 polls", WAIT, |t| polls_ok(t, g) >= 3.0).await;
    assert_eq!(b.get("/-/ready").await.map(|r| r.0), Some(200));
    let counted_b = events(&tb, g);
    // Pages of 10,000: A counted whole pages only (10,000 or 20,000).
    let counted_a = total - counted_b;
    assert!(
        counted_a >= counted_a_scraped && counted_a % 10_000.0 == 0.0 && counted_a < 24_000.0,
        "A counted {counted_a} (scraped {counted_a_scraped}), B {counted_b}\n{}\nA's log:\n{}",
        relevant(&tb),
        tail(&log_a, 30)
    );
    assert_eq!(value(&tb, expo::RECORDS, &[]), counted_b);
    let status = b.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_through_a_proxy_with_the_binary() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/binary-throttled";
    seed.create_group(g).await;
    let now = now_ms();
    seed.fill_streams(g, (0..4).map(|s| format!("eni-p{s}")), 0..6000, |i| now - 300_000 + i as i64 * 40).await;
    let plan = Arc::new(|n: u64| match n {
        n if n > 30 => Fault::Forward,
        n if n % 2 == 1 => Fault::Throttle,
        n if n % 6 == 2 => Fault::ServiceUnavailable,
        n if n % 10 == 4 => Fault::InternalError,
        _ => Fault::Forward,
    });
    let proxy = FaultProxy::start(&moto.endpoint, plan).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut ex = Binary::start(&write(dir.path(), &proxy.endpoint, "  lookback: 10m\n", g), dir.path());
    let t = ex
        .wait_for("all events and 40 requests", Duration::from_secs(180), |t| {
            events(t, g) >= 24_000.0 && value(t, expo::REQUESTS, &[]) >= 40.0 && polls_ok(t, g) >= 2.0
        })
        .await;
    let st = &proxy.stats;
    assert_eq!(events(&t, g), 24_000.0, "{}", relevant(&t));
    assert_eq!(value(&t, expo::RECORDS, &[]), 24_000.0);
    assert_eq!(value(&t, expo::ERRORS, &[("error", "throttled")]), Stats::get(&st.throttled) as f64);
    assert_eq!(Stats::get(&st.throttled), 15);
    assert_eq!(value(&t, expo::ERRORS, &[("error", "server_error")]), Stats::get(&st.server_errors) as f64);
    assert!(Stats::get(&st.server_errors) >= 3);
    let log = ex.log();
    assert!(!log.contains("panicked"), "{}", tail(&log, 30));
    assert!(ex.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    std::fs::write(&state, b"{\"version\": 1, \"log_groups\": {\"/vpc/x\": {\"horizon_ms\": ").expect("write");
    let cfg = write(dir.path(), "http://127.0.0.1:9", &format!("  state_file: {}\n", state.display()), "/vpc/x");
    let out = std::process::Command::new(common::BIN)
        .arg("--config.file")
        .arg(&cfg)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("state.json") && stderr.contains("corrupt"), "{stderr}");
    // The file is left as it was: no silent reset.
    assert!(std::fs::read(&state).expect("still there").ends_with(b"\"horizon_ms\": "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_and_endpoint_from_the_environment() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/env";
    seed.create_group(g).await;
    seed.create_stream(g, "eni-e").await;
    let now = now_ms();
    seed.put(g, "eni-e", lines("eni-e", 0..30, |i| now - 20_000 + i as i64)).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, format!("cloudwatch:\n  poll_interval: 1s\n  log_groups:\n    - name: {g}\n"))
        .expect("config");
    let mut ex =
        Binary::start_with_env(&cfg, dir.path(), &[("AWS_ENDPOINT_URL", &moto.endpoint), ("AWS_REGION", "us-east-1")]);
    let t = ex.wait_for("2 polls", WAIT, |t| polls_ok(t, g) >= 2.0).await;
    assert_eq!(events(&t, g), 30.0);
    assert!(ex.terminate().success());

    // Without any region: a start-up error that says what to set.
    let out = std::process::Command::new(common::BIN)
        .arg("--config.file")
        .arg(&cfg)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cloudwatch.region"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_group_is_logged_once_per_change() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let (ok, missing) = ("/vpc/ok", "/vpc/missing");
    seed.create_group(ok).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cloudwatch:\n  region: us-east-1\n  endpoint_url: {}\n  poll_interval: 1s\n  log_groups:\n    - name: {ok}\n    - name: {missing}\n",
            moto.endpoint
        ),
    )
    .expect("config");
    let mut ex = Binary::start(&cfg, dir.path());
    // The healthy group keeps polling while the other fails (under load the
    // two may reach 3 polls in either order, so wait for both).
    let t = ex
        .wait_for("3 failed polls of the missing group and 3 good ones of the other", WAIT, |t| {
            value(t, expo::POLLS, &[("log_group", missing), ("result", "error")]) >= 3.0 && polls_ok(t, ok) >= 3.0
        })
        .await;
    assert_eq!(ex.get("/-/ready").await.map(|r| r.0), Some(503));
    assert_eq!(polls_ok(&t, missing), 0.0);
    seed.create_group(missing).await;
    ex.wait_for("the group's recovery", WAIT, |t| polls_ok(t, missing) >= 1.0).await;
    assert_eq!(ex.get("/-/ready").await.map(|r| r.0), Some(200));
    assert!(ex.terminate().success());
    let log = ex.log();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("Polling the log group failed;")).collect();
    assert_eq!(warned.len(), 1, "one warning for the whole outage:\n{}", warned.join("\n"));
    assert!(warned[0].contains(missing) && warned[0].contains("not_found"), "{}", warned[0]);
    assert_eq!(
        log.lines().filter(|l| l.contains("Log group polled successfully again")).count(),
        1,
        "{}",
        tail(&log, 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_reported_as_such() {
    let Some(moto) = MotoServer::require() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write(dir.path(), &moto.endpoint, "", "/vpc/any");
    // No keys anywhere in the chain (the test defaults are overridden).
    let mut ex = Binary::start_with_env(&cfg, dir.path(), &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]);
    let t =
        ex.wait_for("a credentials error", WAIT, |t| value(t, expo::ERRORS, &[("error", "credentials")]) >= 1.0).await;
    assert_eq!(value(&t, "vpc_flow_exporter_cloudwatch_log_group_up", &[("log_group", "/vpc/any")]), 0.0);
    assert!(ex.terminate().success());
    // logfmt quotes the value (it holds spaces): error="credentials: ...".
    assert!(ex.log().contains("error=\"credentials"), "{}", tail(&ex.log(), 10));
}
