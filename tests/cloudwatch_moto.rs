//! The live source against a real moto_server over HTTP with the real AWS SDK,
//! run in-process as main.rs wires it (aggregator + registry +
//! CloudWatchSource). Each test starts its own moto_server. Counts are exact:
//! `vpc_flow_exporter_cloudwatch_events_total` per log group and the
//! aggregator's `vpc_flow_records_total` must equal what was put.
//!
//! The dedup margin is shortened to 2 s so that re-reads are skipped by the
//! ingestion-time horizon, not only by remembered keys (see docs/cloudwatch.md).

mod common;
#[path = "cloudwatch/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use support::expo::{self, events, polls_ok, value};
use support::exporter::{write_config, InProcess};
use support::moto::{lines, now_ms, MotoServer};
use support::proxy::{Fault, FaultProxy, Stats};

const MARGIN: Option<Duration> = Some(Duration::from_secs(2));
const WAIT: Duration = Duration::from_secs(90);

fn config(endpoint: &str, extra: &str, groups: &str) -> String {
    format!(
        "cloudwatch:\n  region: us-east-1\n  endpoint_url: {endpoint}\n  poll_interval: 1s\n  max_requests_per_second: 20\n{extra}  log_groups:\n{groups}"
    )
}

fn records(t: &str) -> f64 {
    value(t, expo::RECORDS, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_and_pages_are_counted_once() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/flow-logs";
    seed.create_group(g).await;
    let now = now_ms();
    // 30 streams x 1,000 events: 30,000 events, 3 pages of 10,000 per scan.
    seed.fill_streams(g, (0..30).map(|s| format!("eni-{s:04x}")), 0..1000, |i| now - 20 * 60_000 + (i as i64) * 1000)
        .await;
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cfg) = write_config(
        dir.path(),
        &config(&moto.endpoint, "  lookback: 10m\n  start_from: 30m\n", &format!("    - name: {g}\n")),
    );
    let ex = InProcess::start(&cfg, MARGIN).await;
    let t = ex
        .wait_for("3 polls after all 30,000 events", WAIT, |t| events(t, g) >= 30_000.0 && polls_ok(t, g) >= 3.0)
        .await;
    // Once the horizon has passed their ingestion time (plus the margin and
    // the 10 s key bucket), their keys are dropped: re-reads are skipped by
    // time alone. The horizon follows CloudWatch's newest ingestion time, so
    // one fresh event moves it past the seeding.
    let keys = |t: &str| value(t, "vpc_flow_exporter_cloudwatch_dedup_keys", &[("log_group", g)]);
    assert!(keys(&t) > 0.0);
    tokio::time::sleep(Duration::from_secs(13)).await;
    seed.put(g, "eni-0000", lines("eni-0000", 5000..5001, |_| now_ms() - 1000)).await;
    ex.wait_for("only the fresh key kept", WAIT, |t| events(t, g) >= 30_001.0 && keys(t) <= 1.0).await;
    let polls = polls_ok(&ex.text(), g);
    ex.wait_for("2 more polls", WAIT, |t| polls_ok(t, g) >= polls + 2.0).await;
    let (t2, res) = ex.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&t, g), 30_000.0);
    assert_eq!(events(&t2, g), 30_001.0, "nothing counted twice by later polls");
    assert_eq!(records(&t2), 30_001.0, "every event reached the aggregator once");
    assert_eq!(value(&t2, expo::PARSE_ERRORS, &[]), 0.0);
    // Every poll after the first re-read the lookback (the 12,000 events of
    // the last 10 minutes) and skipped it.
    let polls = polls_ok(&t2, g);
    assert!(
        value(&t2, expo::DUPLICATES, &[("log_group", g)]) >= (polls - 1.0) * 11_000.0,
        "{}",
        support::exporter::relevant(&t2)
    );
    assert!(value(&t2, "vpc_flow_exporter_cloudwatch_pages_total", &[("log_group", g)]) >= 3.0 + (polls - 1.0) * 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_are_counted_once_and_rereads_skipped() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/late";
    seed.create_group(g).await;
    let now = now_ms();
    seed.fill_streams(g, (0..3).map(|s| format!("eni-a{s}")), 0..100, |i| now - 120_000 + i as i64 * 100).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cfg) = write_config(dir.path(), &config(&moto.endpoint, "  lookback: 5m\n", &format!("    - name: {g}\n")));
    let ex = InProcess::start(&cfg, MARGIN).await;
    ex.wait_for("the first 300 events", WAIT, |t| events(t, g) >= 300.0).await;
    assert!(ex.ready.is_ready());
    // Late events: event times 4 minutes ago (inside the 5 m lookback, before
    // what the first polls read), into old streams and a new one.
    let now = now_ms();
    seed.put(g, "eni-a0", lines("eni-a0", 1000..1060, |i| now - 240_000 + i as i64)).await;
    seed.create_stream(g, "eni-new").await;
    seed.put(g, "eni-new", lines("eni-new", 2000..2040, |i| now - 230_000 + i as i64)).await;
    let t = ex.wait_for("400 events", WAIT, |t| events(t, g) >= 400.0).await;
    let polls = polls_ok(&t, g);
    ex.wait_for("3 more polls", WAIT, |t| polls_ok(t, g) >= polls + 3.0).await;
    // A second wave, later still.
    let now = now_ms();
    seed.put(g, "eni-a2", lines("eni-a2", 3000..3050, |i| now - 270_000 + i as i64)).await;
    let t = ex.wait_for("450 events", WAIT, |t| events(t, g) >= 450.0).await;
    let polls = polls_ok(&t, g);
    ex.wait_for("3 more polls", WAIT, |t| polls_ok(t, g) >= polls + 3.0).await;
    let (t, res) = ex.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&t, g), 450.0, "{}", support::exporter::relevant(&t));
    assert_eq!(records(&t), 450.0);
    let delay_count = value(&t, "vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_count", &[("log_group", g)]);
    assert_eq!(delay_count, 450.0, "one delay observation per counted event");
    // The late events were 4 minutes late: the histogram shows it.
    let late = delay_count
        - value(&t, "vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_bucket", &[("log_group", g), ("le", "180")]);
    assert_eq!(late, 150.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_state_file_mid_scan_counts_nothing_twice_and_loses_nothing() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/restart";
    seed.create_group(g).await;
    let now = now_ms();
    seed.fill_streams(g, (0..3).map(|s| format!("eni-r{s}")), 0..8000, |i| now - 600_000 + i as i64 * 50).await;
    let mut total = 24_000.0;
    // A slow link (every FilterLogEvents delayed) so that the first scan is
    // still in progress when the exporter stops.
    let proxy = FaultProxy::start(&moto.endpoint, Arc::new(|_| Fault::Delay(Duration::from_millis(1500)))).await;
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    let extra = format!("  lookback: 15m\n  state_file: {}\n", state.display());
    let (_, cfg_slow) = write_config(dir.path(), &config(&proxy.endpoint, &extra, &format!("    - name: {g}\n")));
    let a = InProcess::start(&cfg_slow, MARGIN).await;
    a.wait_for("the first page", WAIT, |t| events(t, g) >= 10_000.0).await;
    let (ta, res) = a.stop().await;
    res.expect("clean stop");
    let counted_a = events(&ta, g);
    assert!(polls_ok(&ta, g) == 0.0 && counted_a < total, "stopped mid-scan: {}", support::exporter::relevant(&ta));
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state file written at shutdown")).expect("json");
    assert!(cp["log_groups"][g]["scan"]["next_token"].is_string(), "the scan in progress is saved: {cp}");

    // While it is down, more events arrive, some of them late.
    let now = now_ms();
    seed.put(g, "eni-r1", lines("eni-r1", 9000..9300, |i| now - 400_000 + i as i64)).await;
    seed.create_stream(g, "eni-r9").await;
    seed.put(g, "eni-r9", lines("eni-r9", 9500..9700, |i| now - 5_000 + i as i64)).await;
    total += 500.0;

    // Restart, straight to moto: resumes the scan from its token.
    let (_, cfg) = write_config(dir.path(), &config(&moto.endpoint, &extra, &format!("    - name: {g}\n")));
    let b = InProcess::start(&cfg, MARGIN).await;
    b.wait_for("the rest, and 3 polls", WAIT, |t| counted_a + events(t, g) >= total && polls_ok(t, g) >= 3.0).await;
    let (tb, res) = b.stop().await;
    res.expect("clean stop");
    assert_eq!(
        counted_a + events(&tb, g),
        total,
        "A {counted_a} + B {}: {}",
        events(&tb, g),
        support::exporter::relevant(&tb)
    );
    assert_eq!(records(&ta) + records(&tb), total);

    // A restart after complete scans: only what arrived meanwhile.
    let now = now_ms();
    seed.put(g, "eni-r2", lines("eni-r2", 20_000..20_200, |i| now - 120_000 + i as i64)).await;
    let c = InProcess::start(&cfg, MARGIN).await;
    c.wait_for("3 polls", WAIT, |t| polls_ok(t, g) >= 3.0).await;
    let (tc, res) = c.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&tc, g), 200.0, "{}", support::exporter::relevant(&tc));
    assert_eq!(records(&tc), 200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_with_their_own_formats_and_a_stream_prefix() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let (a, b) = ("/vpc/default-format", "/vpc/custom-format");
    seed.create_group(a).await;
    seed.create_group(b).await;
    let now = now_ms();
    seed.fill_streams(a, (0..2).map(|s| format!("eni-d{s}")), 0..100, |i| now - 60_000 + i as i64).await;
    // Group b: a custom field order, and a stream outside the prefix whose
    // lines would be invalid in b's format.
    let custom = |eni: &str, i: usize, ts: i64| {
        format!(
            "5 vpc-0abc subnet-0def {eni} 10.0.0.{} 52.95.0.1 {} 443 6 {} {} {} {} REJECT OK 2",
            i % 250 + 1,
            1024 + i,
            100 + i,
            1 + i % 9,
            ts,
            ts + 60
        )
    };
    for (eni, n) in [("eni-c1", 150usize), ("eni-c2", 50)] {
        seed.create_stream(b, eni).await;
        seed.put(b, eni, (0..n).map(|i| (now - 30_000 + i as i64, custom(eni, i, (now - 30_000) / 1000))).collect())
            .await;
    }
    seed.create_stream(b, "other-1").await;
    seed.put(b, "other-1", lines("other-1", 0..70, |i| now - 30_000 + i as i64)).await;
    let groups = format!(
        "    - name: {a}\n    - name: {b}\n      log_stream_prefix: eni-\n      log_format: \"${{version}} ${{vpc-id}} ${{subnet-id}} ${{interface-id}} ${{srcaddr}} ${{dstaddr}} ${{srcport}} ${{dstport}} ${{protocol}} ${{bytes}} ${{packets}} ${{start}} ${{end}} ${{action}} ${{log-status}} ${{tcp-flags}}\"\n"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cfg) = write_config(dir.path(), &config(&moto.endpoint, "  lookback: 5m\n", &groups));
    let ex = InProcess::start(&cfg, MARGIN).await;
    ex.wait_for("3 polls of each group", WAIT, |t| polls_ok(t, a) >= 3.0 && polls_ok(t, b) >= 3.0).await;
    let (t, res) = ex.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&t, a), 200.0);
    assert_eq!(events(&t, b), 200.0, "only the eni- streams: {}", support::exporter::relevant(&t));
    assert_eq!(value(&t, expo::PARSE_ERRORS, &[]), 0.0, "each group parsed with its own format");
    assert_eq!(records(&t), 400.0);
    assert_eq!(value(&t, expo::RECORDS, &[("action", "REJECT")]), 200.0, "group b's action column was read");
    assert_eq!(value(&t, expo::RECORDS, &[("interface_id", "eni-c1")]), 150.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_group_does_not_stop_a_healthy_one_and_recovers() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let (ok, missing) = ("/vpc/healthy", "/vpc/not-yet");
    seed.create_group(ok).await;
    seed.create_stream(ok, "eni-h").await;
    let now = now_ms();
    seed.put(ok, "eni-h", lines("eni-h", 0..100, |i| now - 60_000 + i as i64)).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cfg) = write_config(
        dir.path(),
        &config(&moto.endpoint, "  lookback: 5m\n", &format!("    - name: {missing}\n    - name: {ok}\n")),
    );
    let ex = InProcess::start(&cfg, MARGIN).await;
    let t = ex
        .wait_for("the healthy group's events and 2 not_found errors", WAIT, |t| {
            events(t, ok) >= 100.0 && value(t, expo::ERRORS, &[("error", "not_found")]) >= 2.0
        })
        .await;
    assert_eq!(events(&t, ok), 100.0);
    assert!(!ex.ready.is_ready(), "not ready while a group has never been polled");
    assert_eq!(value(&t, "vpc_flow_exporter_cloudwatch_log_group_up", &[("log_group", missing)]), 0.0);
    assert_eq!(value(&t, "vpc_flow_exporter_cloudwatch_log_group_up", &[("log_group", ok)]), 1.0);
    // The group appears: picked up at the next retry.
    seed.create_group(missing).await;
    seed.create_stream(missing, "eni-m").await;
    let now = now_ms();
    seed.put(missing, "eni-m", lines("eni-m", 0..40, |i| now - 10_000 + i as i64)).await;
    let t = ex.wait_for("the new group's events", WAIT, |t| events(t, missing) >= 40.0).await;
    assert!(ex.ready.is_ready(), "{}", support::exporter::relevant(&t));
    let (t, res) = ex.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&t, missing), 40.0);
    assert_eq!(events(&t, ok), 100.0);
    assert_eq!(records(&t), 140.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_back_off_and_still_count_every_event_once() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/throttled";
    seed.create_group(g).await;
    let now = now_ms();
    seed.fill_streams(g, (0..5).map(|s| format!("eni-t{s}")), 0..5000, |i| now - 300_000 + i as i64 * 40).await;
    // The first 40 FilterLogEvents requests: every 3rd throttled, every 7th a
    // 503, every 11th a bare 500. Then all pass.
    let plan = Arc::new(|n: u64| match n {
        n if n > 40 => Fault::Forward,
        n if n % 3 == 1 => Fault::Throttle,
        n if n % 7 == 3 => Fault::ServiceUnavailable,
        n if n % 11 == 5 => Fault::InternalError,
        _ => Fault::Forward,
    });
    let proxy = FaultProxy::start(&moto.endpoint, plan).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cfg) =
        write_config(dir.path(), &config(&proxy.endpoint, "  lookback: 10m\n", &format!("    - name: {g}\n")));
    let ex = InProcess::start(&cfg, MARGIN).await;
    ex.wait_for("all events and 50 requests", Duration::from_secs(150), |t| {
        events(t, g) >= 25_000.0 && value(t, expo::REQUESTS, &[]) >= 50.0 && polls_ok(t, g) >= 2.0
    })
    .await;
    let (t, res) = ex.stop().await;
    res.expect("clean stop");
    let st = &proxy.stats;
    assert_eq!(events(&t, g), 25_000.0, "{}", support::exporter::relevant(&t));
    assert_eq!(records(&t), 25_000.0);
    assert_eq!(value(&t, expo::ERRORS, &[("error", "throttled")]), Stats::get(&st.throttled) as f64);
    assert_eq!(value(&t, expo::ERRORS, &[("error", "server_error")]), Stats::get(&st.server_errors) as f64);
    assert_eq!(value(&t, expo::REQUESTS, &[]), Stats::get(&st.filter_requests) as f64);
    assert!(Stats::get(&st.throttled) >= 13);
    // The shared limit came down after throttling, and has recovered since.
    assert!(value(&t, "vpc_flow_exporter_cloudwatch_request_rate_limit", &[]) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_arn_is_assumed_through_sts_and_its_credentials_sign_the_requests() {
    let Some(moto) = MotoServer::require() else { return };
    let seed = moto.seeder();
    let g = "/vpc/cross-account";
    seed.create_group(g).await;
    seed.create_stream(g, "eni-x").await;
    let now = now_ms();
    seed.put(g, "eni-x", lines("eni-x", 0..25, |i| now - 20_000 + i as i64)).await;
    // moto serves STS on the same endpoint; the proxy sees both services.
    let proxy = FaultProxy::start(&moto.endpoint, Arc::new(|_| Fault::Forward)).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cfg) = write_config(
        dir.path(),
        &config(
            &proxy.endpoint,
            "  lookback: 5m\n  role_arn: arn:aws:iam::123456789012:role/flow-log-reader\n",
            &format!("    - name: {g}\n"),
        ),
    );
    let ex = InProcess::start(&cfg, MARGIN).await;
    ex.wait_for("2 polls", WAIT, |t| polls_ok(t, g) >= 2.0).await;
    let (t, res) = ex.stop().await;
    res.expect("clean stop");
    assert_eq!(events(&t, g), 25.0);
    assert!(Stats::get(&proxy.stats.assume_role) >= 1, "AssumeRole was called");
    let key = proxy.stats.last_filter_access_key.lock().expect("lock").clone();
    assert!(
        !key.is_empty() && key != "testing",
        "FilterLogEvents signed with the role's credentials, not the base ones: {key:?}"
    );
}
