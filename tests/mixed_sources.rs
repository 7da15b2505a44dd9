//! One exporter process running all three live sources at once against one
//! real moto_server, set up through the real AWS SDK: a CloudWatch Logs log
//! group polled, S3 objects announced on SQS by the bucket's real
//! notification configuration, and the Firehose listener fed HTTP endpoint
//! delivery requests. It proves the contract's "a process may run any mix
//! of sources at once" and "`/-/ready` covers every configured source":
//! `/-/ready` stays 503 while the SQS queue does not exist yet (CloudWatch
//! polled and Firehose answering meanwhile) and turns 200 once the queue
//! answers; each source's records are counted exactly and land on their own
//! interface ids, and the flow counters sum to the three sources' records;
//! SIGTERM stops all three with exit code 0 in bounded time.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use common::aws::{child_env, Aws};
use common::expo::value;
use common::firehose::{b64, cwl, gzip};
use common::moto::MotoServer;
use common::process::{free_port, now_ms, Proc, Signal};

const GROUP: &str = "/vpc/mixed";
const STREAM: &str = "eni-0c1c1c1c-all";
const BUCKET: &str = "mixed-flow-logs";
const QUEUE: &str = "mixed-flow-logs-events";
const KEY: &str = "mixed-sources-firehose-key-0123";
const OBJECT: &str = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/12/01/mixed.log.gz";
/// moto's default account, in the queue URLs it makes.
const ACCOUNT: &str = "123456789012";

/// Each source's interface (so its records can be told apart) and records.
const CW_ENI: &str = "eni-0c1c1c1c";
const S3_ENI: &str = "eni-05353535";
const FH_ENI: &str = "eni-0f1f1f1f";
const CW_EVENTS: usize = 40;
const S3_RECORDS: usize = 25;
/// Firehose: bare flow-log lines, and one CloudWatch Logs subscription
/// payload holding more.
const FH_LINES: usize = 10;
const FH_CWL_EVENTS: usize = 5;

const WAIT: Duration = Duration::from_secs(90);
/// How long SIGTERM may take to stop all three sources.
const STOP: Duration = Duration::from_secs(30);
const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// A default-format (version 2) flow-log line of `eni`; every fifth REJECT.
fn line(eni: &str, n: usize, start_s: i64) -> String {
    let action = if n.is_multiple_of(5) { "REJECT" } else { "ACCEPT" };
    format!(
        "2 {ACCOUNT} {eni} 10.0.{}.{} 10.1.0.{} {} {} 6 {} {} {start_s} {} {action} OK",
        n % 200,
        n % 250 + 1,
        n % 250 + 1,
        1024 + n,
        [22, 80, 443, 5432][n % 4],
        1 + n % 20,
        100 + n * 7,
        start_s + 60
    )
}

/// The log group, one stream, and `CW_EVENTS` events of `CW_ENI` from the
/// last minute.
async fn log_group(aws: &Aws) {
    aws.logs.create_log_group().log_group_name(GROUP).send().await.expect("CreateLogGroup");
    let stream = aws.logs.create_log_stream().log_group_name(GROUP).log_stream_name(STREAM);
    stream.send().await.expect("CreateLogStream");
    let first = now_ms() - 60_000;
    let events: Vec<_> = (0..CW_EVENTS)
        .map(|i| {
            let ts = first + i as i64 * 100;
            let message = line(CW_ENI, i, ts / 1000);
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder().timestamp(ts).message(message).build().unwrap()
        })
        .collect();
    let put = aws.logs.put_log_events().log_group_name(GROUP).log_stream_name(STREAM);
    put.set_log_events(Some(events)).send().await.expect("PutLogEvents");
}

/// A gzip text object: the header line, then `S3_RECORDS` lines of `S3_ENI`.
fn s3_object() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    writeln!(gz, "{HEADER}").unwrap();
    let start = now_ms() / 1000 - 120;
    for i in 0..S3_RECORDS {
        writeln!(gz, "{}", line(S3_ENI, i, start)).unwrap();
    }
    gz.finish().unwrap()
}

/// The exporter with all three sources.
struct Exporter {
    proc: Proc,
    base: String,
    firehose: String,
    http: reqwest::Client,
}

impl Exporter {
    fn start(dir: &Path, endpoint: &str, queue_url: &str) -> Exporter {
        let (port, firehose_port) = (free_port(), free_port());
        let yaml = format!(
            "cloudwatch:\n  region: us-east-1\n  endpoint_url: {endpoint}\n  poll_interval: 1s\n  max_requests_per_second: 20\n  log_groups:\n    - name: {GROUP}\n\
             s3:\n  queue_url: {queue_url}\n  region: us-east-1\n  endpoint_url: {endpoint}\n  visibility_timeout: 30s\n  concurrency: 2\n  shutdown_grace: 5s\n\
             firehose:\n  listen_address: \"127.0.0.1:{firehose_port}\"\n  access_keys: [\"{KEY}\"]\n"
        );
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = Command::new(common::BIN);
        cmd.arg("--config.file")
            .arg(&config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}"), "--metrics.new-series-hold", "0s"])
            .args(["--log.level", "debug"]);
        child_env(&mut cmd);
        let proc = Proc::spawn("exporter", cmd, dir.join("exporter.log"));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Exporter {
            proc,
            base: format!("http://127.0.0.1:{port}"),
            firehose: format!("http://127.0.0.1:{firehose_port}/"),
            http,
        }
    }

    /// GET on the metrics listener: status and body, None if no answer.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    }

    async fn scrape(&self) -> String {
        self.get("/metrics").await.map(|(_, t)| t).unwrap_or_default()
    }

    fn alive(&mut self, what: &str) {
        if let Some(status) = self.proc.exited() {
            panic!("the exporter exited ({status}) while waiting for {what}\n{}", self.proc.log_tail());
        }
    }

    /// Scrapes until `ok` holds; fails with the sources' metrics and the log after [`WAIT`].
    async fn wait_for(&mut self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.scrape().await;
            if ok(&t) {
                return t;
            }
            self.alive(what);
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}\n{}",
                shown(&t),
                self.proc.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `/-/ready`'s status (0 when it does not answer).
    async fn ready(&self) -> u16 {
        self.get("/-/ready").await.map_or(0, |r| r.0)
    }

    /// One Firehose request of `records` (before base64), gzip, with the
    /// access key; sent again while the listener is not up or answers 503
    /// (as Firehose retries). The final status.
    async fn firehose(&mut self, request_id: &str, records: &[Vec<u8>]) -> u16 {
        let data: Vec<String> = records.iter().map(|r| b64(r)).collect();
        let (headers, body) = common::firehose::request(request_id, Some(KEY), true, &data);
        let deadline = Instant::now() + WAIT;
        loop {
            let mut req = self.http.post(&self.firehose).body(body.clone());
            for (name, v) in &headers {
                req = req.header(name, v);
            }
            match req.send().await {
                Ok(r) if r.status().as_u16() != 503 => return r.status().as_u16(),
                Ok(_) | Err(_) => {}
            }
            self.alive("the Firehose listener");
            assert!(
                Instant::now() < deadline,
                "the Firehose listener never took the request\n{}",
                self.proc.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then its exit status and how long it took (None: still running after [`STOP`]).
    fn terminate(&mut self) -> (Option<ExitStatus>, Duration) {
        let t0 = Instant::now();
        self.proc.signal(Signal::TERM);
        let status = self.proc.wait_exit(STOP);
        (status, t0.elapsed())
    }
}

/// The series a failure message needs: the sources' health and the totals.
fn shown(t: &str) -> String {
    let keep = ["_cloudwatch_events", "_cloudwatch_polls", "_s3_", "_sqs_", "_firehose_records", "_firehose_lines"];
    t.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            keep.iter().any(|k| l.contains(k))
                || l.starts_with("vpc_flow_exporter_lines_total")
                || l.starts_with("vpc_flow_records_total")
                || l.starts_with("vpc_flow_exporter_parse_errors_total")
        })
        .filter(|l| !l.contains("_bucket{"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn cw_events(t: &str) -> f64 {
    value(t, "vpc_flow_exporter_cloudwatch_events_total", &[("log_group", GROUP)])
}

fn cw_polls_ok(t: &str) -> f64 {
    value(t, "vpc_flow_exporter_cloudwatch_polls_total", &[("log_group", GROUP), ("result", "success")])
}

fn receive_errors(t: &str) -> f64 {
    value(t, "vpc_flow_exporter_s3_request_errors_total", &[("operation", "ReceiveMessage")])
}

fn objects_ok(t: &str) -> f64 {
    value(t, "vpc_flow_exporter_s3_objects_total", &[("result", "ok")])
}

fn records_of(t: &str, eni: &str) -> f64 {
    value(t, "vpc_flow_records_total", &[("interface_id", eni)])
}

/// The Firehose records: `FH_LINES` bare lines, and one gzip CloudWatch
/// Logs subscription payload (a log group the exporter does not poll, so
/// `firehose.log_format` reads it) of `FH_CWL_EVENTS` events.
fn firehose_records() -> Vec<Vec<u8>> {
    let start = now_ms() / 1000 - 60;
    let mut records: Vec<Vec<u8>> = (0..FH_LINES).map(|i| line(FH_ENI, i, start).into_bytes()).collect();
    let events: Vec<String> = (FH_LINES..FH_LINES + FH_CWL_EVENTS).map(|i| line(FH_ENI, i, start)).collect();
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    records.push(gzip(&cwl("DATA_MESSAGE", "/vpc/delivered-by-firehose", &events)));
    records
}

/// All three sources in one process: readiness waits for the last of them,
/// each is counted exactly under its own interface id, SIGTERM stops all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sources_in_one_process() {
    let Some(moto) = MotoServer::require() else { return };
    let t0 = Instant::now();
    let aws = Aws::new(&moto.endpoint);
    log_group(&aws).await;
    aws.s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
    // The queue does not exist yet: ReceiveMessage fails until it does, so
    // the S3 source cannot be ready while the other two are.
    let queue_url = format!("{}/{ACCOUNT}/{QUEUE}", moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let mut ex = Exporter::start(dir.path(), &moto.endpoint, &queue_url);

    let status = ex.firehose("mixed-1", &firehose_records()).await;
    assert_eq!(status, 200, "{}", ex.proc.log_tail());
    // Two polls: the first one's success has marked CloudWatch ready.
    let t = ex
        .wait_for("CloudWatch polled, Firehose counted and ReceiveMessage failing", |t| {
            cw_polls_ok(t) >= 2.0 && cw_events(t) >= CW_EVENTS as f64 && receive_errors(t) >= 1.0
        })
        .await;
    let not_ready = ex.get("/-/ready").await.expect("/-/ready answers");
    assert_eq!(not_ready.0, 503, "S3 has not received from its queue yet:\n{}", shown(&t));
    assert_eq!(not_ready.1, "Not ready: waiting for s3 (the SQS queue answered)\n", "names only S3");
    let (_, landing) = ex.get("/").await.expect("/ answers");
    assert!(landing.contains("not ready yet: waiting for s3 (the SQS queue answered)"), "{landing}");
    let t = ex.scrape().await;
    assert!(receive_errors(&t) >= 1.0 && objects_ok(&t) == 0.0, "the queue is still missing:\n{}", shown(&t));
    assert_eq!(
        value(
            &t,
            "vpc_flow_exporter_s3_request_errors_total",
            &[("operation", "ReceiveMessage"), ("error", "not_found")]
        ),
        receive_errors(&t),
        "a missing queue is not_found:\n{}",
        shown(&t)
    );
    eprintln!("mixed_sources: not ready (503) while the queue is missing, at {:?}", t0.elapsed());

    // The queue, and the bucket announcing every object creation on it.
    let url = aws.notify_new_queue(BUCKET, QUEUE).await;
    assert_eq!(url, queue_url, "moto names the queue as the exporter was told");
    aws.put(BUCKET, OBJECT, s3_object()).await;
    let t = ex.wait_for("the S3 object", |t| objects_ok(t) >= 1.0).await;
    assert_eq!(objects_ok(&t), 1.0, "{}", shown(&t));
    let deadline = Instant::now() + WAIT;
    while ex.ready().await != 200 {
        ex.alive("readiness");
        assert!(Instant::now() < deadline, "never ready:\n{}\n{}", shown(&ex.scrape().await), ex.proc.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("mixed_sources: ready (200) with every source answering, at {:?}", t0.elapsed());

    // Two more CloudWatch polls: re-reading the lookback counts nothing twice.
    let polls = cw_polls_ok(&t);
    let t = ex.wait_for("two more CloudWatch polls", |t| cw_polls_ok(t) >= polls + 2.0).await;
    let fh = (FH_LINES + FH_CWL_EVENTS) as f64;
    // Each source on its own: exact figures.
    assert_eq!(cw_events(&t), CW_EVENTS as f64, "{}", shown(&t));
    assert_eq!(value(&t, "vpc_flow_exporter_s3_records_total", &[]), (S3_RECORDS + 1) as f64, "lines and the header");
    assert_eq!(value(&t, "vpc_flow_exporter_sqs_messages_ignored_total", &[("reason", "test_event")]), 1.0);
    assert_eq!(value(&t, "vpc_flow_exporter_firehose_records_total", &[("kind", "lines")]), FH_LINES as f64);
    assert_eq!(value(&t, "vpc_flow_exporter_firehose_records_total", &[("kind", "cloudwatch_data")]), 1.0);
    assert_eq!(value(&t, "vpc_flow_exporter_firehose_lines_total", &[]), fh, "{}", shown(&t));
    // Attributed: each source's records under its own interface id.
    assert_eq!(records_of(&t, CW_ENI), CW_EVENTS as f64, "{}", shown(&t));
    assert_eq!(records_of(&t, S3_ENI), S3_RECORDS as f64, "{}", shown(&t));
    assert_eq!(records_of(&t, FH_ENI), fh, "{}", shown(&t));
    let rejects = |n: usize| (0..n).filter(|i| i.is_multiple_of(5)).count() as f64;
    let rejected = |eni| value(&t, "vpc_flow_records_total", &[("interface_id", eni), ("action", "REJECT")]);
    assert_eq!(rejected(CW_ENI), rejects(CW_EVENTS));
    assert_eq!(rejected(S3_ENI), rejects(S3_RECORDS));
    assert_eq!(rejected(FH_ENI), rejects(FH_LINES + FH_CWL_EVENTS));
    // Together: the flow counters hold the three sources' records and nothing else.
    let all = (CW_EVENTS + S3_RECORDS + FH_LINES + FH_CWL_EVENTS) as f64;
    assert_eq!(value(&t, "vpc_flow_records_total", &[]), all, "{}", shown(&t));
    assert_eq!(value(&t, "vpc_flow_exporter_lines_total", &[]), all + 1.0, "the S3 header is a line too");
    assert_eq!(value(&t, "vpc_flow_exporter_parse_errors_total", &[]), 0.0, "{}", shown(&t));
    assert_eq!(ex.ready().await, 200);

    let (status, took) = ex.terminate();
    let status = status.unwrap_or_else(|| panic!("still running {STOP:?} after SIGTERM\n{}", ex.proc.log_tail()));
    assert!(status.success(), "exit status {status}\n{}", ex.proc.log_tail());
    let log = ex.proc.log();
    assert!(!log.contains("panicked"), "{}", ex.proc.log_tail());
    eprintln!("mixed_sources: SIGTERM to exit 0 in {took:?}; whole test {:?}", t0.elapsed());
}

/// SIGTERM while the S3 source backs off from a missing queue and a
/// Firehose client has sent half a request: neither holds up the others,
/// the process exits 0 within the web server's 3 s shutdown grace (and a
/// margin for a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_backing_off_source_and_a_half_sent_request() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    log_group(&aws).await;
    let dir = tempfile::tempdir().unwrap();
    let queue_url = format!("{}/{ACCOUNT}/{QUEUE}", moto.endpoint);
    let mut ex = Exporter::start(dir.path(), &moto.endpoint, &queue_url);
    assert_eq!(ex.firehose("whole", &firehose_records()).await, 200, "{}", ex.proc.log_tail());
    ex.wait_for("CloudWatch polled and ReceiveMessage failed twice", |t| {
        cw_polls_ok(t) >= 1.0 && receive_errors(t) >= 2.0
    })
    .await;
    // A request whose body stops half way (Content-Length 4096, 100 bytes sent).
    let addr = ex.firehose.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut half = std::net::TcpStream::connect(&addr).expect("connect to the Firehose listener");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Firehose-Request-Id: half\r\nX-Amz-Firehose-Access-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{{\"requestId\":\"half\",\"records\":[{{\"data\":\""
    );
    half.write_all(head.as_bytes()).unwrap();
    half.write_all(&[b'A'; 100]).unwrap();
    let t = ex
        .wait_for("the half request open", |t| value(t, "vpc_flow_exporter_firehose_http_connections_open", &[]) >= 1.0)
        .await;
    assert_eq!(ex.ready().await, 503, "S3 never received:\n{}", shown(&t));
    let (status, took) = ex.terminate();
    let status = status.unwrap_or_else(|| panic!("still running {STOP:?} after SIGTERM\n{}", ex.proc.log_tail()));
    assert!(status.success(), "exit status {status}\n{}", ex.proc.log_tail());
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}\n{}", ex.proc.log_tail());
    assert!(!ex.proc.log().contains("panicked"), "{}", ex.proc.log_tail());
    drop(half);
    eprintln!("mixed_sources: SIGTERM with S3 backing off and a half-sent Firehose request: exit 0 in {took:?}");
}
