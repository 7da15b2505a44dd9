//! The S3 source end to end against a real moto_server (S3, SQS, DynamoDB)
//! through the real AWS SDK and the real binary: the bucket's notification
//! configuration sends real S3 events to the queue (moto delivers them, and
//! an `s3:TestEvent` first), objects of every kind are counted exactly
//! (`vpc_flow_exporter_lines_total` against an independent count of the
//! fixtures' lines and rows), duplicates once, a corrupt object is an error
//! whose message stays on the queue, keys outside `key_prefix` are skipped,
//! two replicas with a dedup table count each object once, SIGTERM exits 0,
//! `replay s3://` counts what the queue path counts, three replicas sum
//! to exactly what `replay s3://` counts for the same objects, a multipart
//! upload's two notifications and a message redelivered after the
//! visibility timeout count at most once per replica (exactly once with the
//! dedup table), and access denied (a proxy: moto enforces no IAM) is an
//! object error whose message reaches the dead-letter queue.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use common::aws::{child_env, replay_env, Aws};
use common::process::{free_port, Proc, Signal};
use common::{expo, moto::MotoServer};

const BUCKET: &str = "flow-logs";
const WAIT: Duration = Duration::from_secs(120);

fn data(name: &str) -> PathBuf {
    common::repo().join("tests/data/s3").join(name)
}

/// Lines each fixture counts (`vpc_flow_exporter_lines_total`): non-empty
/// text lines, the header included; Parquet rows (make_fixtures.py).
fn expected_lines(name: &str) -> u64 {
    match name {
        "default.parquet" => 7,
        "many.parquet" => 5000,
        n if n.ends_with(".gz") => {
            let mut text = String::new();
            let f = std::fs::File::open(data(n)).unwrap();
            std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(f), &mut text).unwrap();
            text.lines().filter(|l| !l.trim().is_empty()).count() as u64
        }
        n => std::fs::read_to_string(data(n)).unwrap().lines().filter(|l| !l.trim().is_empty()).count() as u64,
    }
}

/// PutObject of the fixture `name` at `key` in [`BUCKET`]; the ETag.
async fn put_file(aws: &Aws, key: &str, name: &str) -> String {
    aws.put(BUCKET, key, std::fs::read(data(name)).unwrap()).await
}

/// One exporter process on the queue.
struct Replica {
    proc: Proc,
    base: String,
}

impl Replica {
    fn start(dir: &Path, name: &str, yaml: &str) -> Replica {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, yaml).unwrap();
        let port = free_port();
        let mut cmd = Command::new(common::BIN);
        cmd.arg("--config.file")
            .arg(&config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}"), "--metrics.new-series-hold", "0s"])
            .args(["--log.level", "debug"]);
        child_env(&mut cmd);
        let proc = Proc::spawn(name, cmd, dir.join(format!("{name}.log")));
        Replica { proc, base: format!("http://127.0.0.1:{port}") }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::Client::new().get(format!("{}{path}", self.base)).timeout(Duration::from_secs(5)).send();
        let r = r.await.ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    }

    async fn scrape(&self) -> String {
        self.get("/metrics").await.map(|(_, t)| t).unwrap_or_default()
    }

    async fn wait_for(&mut self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.scrape().await;
            if ok(&t) {
                return t;
            }
            if let Some(status) = self.proc.exited() {
                panic!("the exporter exited ({status}) while waiting for {what}\n{}", self.proc.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}\n{}",
                s3_lines(&t),
                self.proc.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn s3_lines(t: &str) -> String {
    t.lines()
        .filter(|l| l.contains("_s3_") || l.contains("_sqs_") || l.starts_with("vpc_flow_exporter_lines"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn objects(t: &str, result: &str) -> f64 {
    expo::value(t, "vpc_flow_exporter_s3_objects_total", &[("result", result)])
}

fn lines(t: &str) -> f64 {
    expo::value(t, "vpc_flow_exporter_lines_total", &[])
}

/// A replica's configuration: 4 objects at once, 5 s of shutdown grace,
/// `extra` lines of the s3 section.
fn config(endpoint: &str, queue: &str, extra: &str) -> String {
    config_with(endpoint, queue, (4, "5s"), extra)
}

/// The same with `concurrency` and `shutdown_grace` chosen.
fn config_with(endpoint: &str, queue: &str, (concurrency, grace): (usize, &str), extra: &str) -> String {
    format!(
        "s3:\n  queue_url: {queue}\n  region: us-east-1\n  endpoint_url: {endpoint}\n  visibility_timeout: 30s\n  concurrency: {concurrency}\n  shutdown_grace: {grace}\n{extra}"
    )
}

/// S3 notifications of objects of every kind, counted once; a duplicate
/// notification counted once; TestEvent deleted; a key outside the prefix
/// skipped; a corrupt object an error whose message stays; SIGTERM exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notified_objects_are_counted_exactly_once() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-events").await;
    let files = [
        ("AWSLogs/1/vpcflowlogs/us-east-1/2026/12/01/a.log.gz", "default.log.gz"),
        ("AWSLogs/1/vpcflowlogs/us-east-1/2026/12/01/many.log.gz", "many.log.gz"),
        ("AWSLogs/1/vpcflowlogs/us-east-1/2026/12/01/v5 with space+plus.log", "v5.log"),
        ("AWSLogs/aws-account-id=1/aws-region=us-east-1/year=2026/d.parquet", "default.parquet"),
        ("AWSLogs/aws-account-id=1/aws-region=us-east-1/year=2026/many.parquet", "many.parquet"),
    ];
    let want: u64 = files.iter().map(|(_, f)| expected_lines(f)).sum();
    let mut etags = Vec::new();
    for (key, file) in files {
        etags.push(put_file(&aws, key, file).await);
    }
    put_file(&aws, "elsewhere/default.log", "default.log").await;
    let mut corrupt = std::fs::read(data("default.log.gz")).unwrap();
    corrupt.truncate(corrupt.len() / 2);
    aws.put(BUCKET, "AWSLogs/broken.log.gz", corrupt).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::start(dir.path(), "one", &config(&moto.endpoint, &queue, "  key_prefix: AWSLogs/\n"));
    let t = r
        .wait_for("5 objects, 1 skipped, 1 error", |t| {
            objects(t, "ok") >= 5.0 && objects(t, "skipped") >= 1.0 && objects(t, "error") >= 1.0
        })
        .await;
    assert_eq!(lines(&t), want as f64, "{}", s3_lines(&t));
    assert_eq!(expo::value(&t, "vpc_flow_exporter_s3_records_total", &[]), want as f64);
    assert_eq!(expo::value(&t, "vpc_flow_exporter_s3_object_errors_total", &[("reason", "bad_gzip")]), 1.0);
    assert_eq!(expo::value(&t, "vpc_flow_exporter_sqs_messages_ignored_total", &[("reason", "test_event")]), 1.0);
    assert_eq!(expo::value(&t, "vpc_flow_exporter_s3_objects_in_work", &[]), 0.0);
    assert_eq!(r.get("/-/ready").await.unwrap().0, 200);
    // The same notification again (a resent message): a duplicate, deleted.
    let body = notification_body(files[0].0, &etags[0]);
    aws.sqs.send_message().queue_url(&queue).message_body(body).send().await.expect("SendMessage");
    let t = r.wait_for("the duplicate", |t| objects(t, "duplicate") >= 1.0).await;
    assert_eq!(lines(&t), want as f64, "nothing counted twice");
    assert_eq!(objects(&t, "ok"), 5.0);
    // Every message went but the broken object's, left to the redrive policy.
    let deadline = Instant::now() + WAIT;
    while aws.queued(&queue).await != 1 {
        assert!(Instant::now() < deadline, "queue holds {} messages", aws.queued(&queue).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    r.proc.signal(Signal::TERM);
    let status = r.proc.wait_exit(Duration::from_secs(30)).expect("exits after SIGTERM");
    assert!(status.success(), "{status}\n{}", r.proc.log_tail());
}

/// An S3 event notification as S3 writes it (key URL-encoded).
fn notification_body(key: &str, etag: &str) -> String {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"2026-12-01T00:00:00.000Z","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"{BUCKET}"}},"object":{{"key":"{encoded}","size":1,"eTag":"{etag}"}}}}}}]}}"#
    )
}

/// Two replicas on one queue with a dedup table: each object counted once
/// in the sum, duplicate notifications included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_a_dedup_table_count_each_object_once() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-shared").await;
    aws.dedup_table("objects").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&moto.endpoint, &queue, "  dedup_table: objects\n");
    let a = Replica::start(dir.path(), "a", &yaml);
    let b = Replica::start(dir.path(), "b", &yaml);
    let n: usize = 40;
    let mut want = 0;
    for i in 0..n {
        let (file, key) = match i % 3 {
            0 => ("default.log.gz", format!("AWSLogs/{i}.log.gz")),
            1 => ("v5.log", format!("AWSLogs/{i} v5.log")),
            _ => ("default.parquet", format!("AWSLogs/{i}.parquet")),
        };
        want += expected_lines(file);
        let etag = put_file(&aws, &key, file).await;
        if i % 4 == 0 {
            // The same notification resent twice.
            for _ in 0..2 {
                let body = notification_body(&key, &etag);
                aws.sqs.send_message().queue_url(&queue).message_body(body).send().await.expect("SendMessage");
            }
        }
    }
    let sum = |ta: &str, tb: &str, f: &dyn Fn(&str) -> f64| f(ta) + f(tb);
    let deadline = Instant::now() + WAIT;
    let (ta, tb) = loop {
        let (ta, tb) = (a.scrape().await, b.scrape().await);
        let handled = |t: &str| objects(t, "ok") + objects(t, "duplicate");
        if sum(&ta, &tb, &handled) >= (n + 2 * n.div_ceil(4)) as f64 && aws.queued(&queue).await == 0 {
            break (ta, tb);
        }
        assert!(Instant::now() < deadline, "{}\n---\n{}", s3_lines(&ta), s3_lines(&tb));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let resent = 2.0 * n.div_ceil(4) as f64;
    let shown = format!("{}\n---\n{}", s3_lines(&ta), s3_lines(&tb));
    assert_eq!(sum(&ta, &tb, &|t| objects(t, "ok")), n as f64, "{shown}");
    assert_eq!(sum(&ta, &tb, &|t| objects(t, "duplicate")), resent, "{shown}");
    assert_eq!(sum(&ta, &tb, &lines), want as f64, "{shown}");
    assert_eq!(sum(&ta, &tb, &|t| objects(t, "error")), 0.0);
    assert!(objects(&ta, "ok") > 0.0 && objects(&tb, "ok") > 0.0, "both replicas took part");
}

/// `vpc-flow-exporter replay ARGS` against moto_server at `endpoint`, run
/// to its end.
fn replay(endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("replay").args(args);
    replay_env(&mut cmd, endpoint).output().unwrap()
}

/// `replay s3://bucket/prefix/` counts what the queue path counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_an_s3_prefix() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    aws.s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
    let files = ["default.log.gz", "many.log.gz", "v5.log", "default.parquet", "many.parquet"];
    for f in files {
        put_file(&aws, &format!("AWSLogs/x/{f}"), f).await;
    }
    put_file(&aws, "other/default.log", "default.log").await;
    let want: u64 = files.iter().map(|f| expected_lines(f)).sum();
    let out = replay(&moto.endpoint, &[&format!("s3://{BUCKET}/AWSLogs/")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&text), want as f64, "{text}");
    let out = replay(&moto.endpoint, &[&format!("s3://{BUCKET}/nothing-here/"), "s3://no-such-bucket/x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listing s3://no-such-bucket/x failed: not_found"), "{err}");
}

/// A text object that takes seconds to count (a debug build parses a few
/// million lines a second at most): the header and `lines` records, gzip.
fn slow_object(lines: usize) -> (Vec<u8>, u64) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n").unwrap();
    let line = b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n";
    for _ in 0..lines {
        gz.write_all(line).unwrap();
    }
    (gz.finish().unwrap(), lines as u64 + 1)
}

async fn wait_in_work(r: &mut Replica) {
    r.wait_for("an object in work", |t| expo::value(t, "vpc_flow_exporter_s3_objects_in_work", &[]) >= 1.0).await;
}

/// A replica SIGKILLed mid-object: its claim expires and another replica
/// takes the object over and counts it, exactly once in the sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_object_is_taken_over_after_its_claim_expires() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-kill").await;
    aws.dedup_table("objects").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&moto.endpoint, &queue, "  dedup_table: objects\n");
    let mut a = Replica::start(dir.path(), "a", &yaml);
    let (body, want) = slow_object(3_000_000);
    aws.put(BUCKET, "AWSLogs/slow.log.gz", body).await;
    // In work and claimed: `objects_in_work` rises before the claim is
    // written, and a kill before it would leave nothing to take over.
    let claimed = |t: &str| expo::value(t, "vpc_flow_exporter_s3_claims_total", &[("result", "won")]) >= 1.0;
    a.wait_for("the object claimed and in work", |t| {
        claimed(t) && expo::value(t, "vpc_flow_exporter_s3_objects_in_work", &[]) >= 1.0
    })
    .await;
    a.proc.signal(Signal::KILL);
    a.proc.wait_exit(Duration::from_secs(10)).expect("killed");
    let killed = Instant::now();
    let mut b = Replica::start(dir.path(), "b", &yaml);
    let t = b.wait_for("the object taken over and counted", |t| objects(t, "ok") >= 1.0).await;
    let took = killed.elapsed();
    assert_eq!(lines(&t), want as f64, "{}", s3_lines(&t));
    assert_eq!(
        expo::value(&t, "vpc_flow_exporter_s3_claims_total", &[("result", "taken_over")]),
        1.0,
        "{}",
        s3_lines(&t)
    );
    assert_eq!(expo::value(&t, "vpc_flow_exporter_s3_claims_total", &[("result", "won")]), 0.0);
    assert_eq!(objects(&t, "error"), 0.0);
    // Taken over once the 30 s lease ended, not sooner.
    assert!(took >= Duration::from_secs(10), "{took:?}");
    let deadline = Instant::now() + WAIT;
    while aws.queued(&queue).await != 0 {
        assert!(Instant::now() < deadline, "the message was not deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let window = expo::value(&t, "vpc_flow_exporter_s3_commit_to_done_seconds_sum", &[]);
    eprintln!("commit to claim done: {:.1} ms; taken over {:.1} s after the kill", window * 1000.0, took.as_secs_f64());
}

/// SIGTERM with an object in work and no grace: the exporter exits 0 and
/// releases the message at once (visibility 0), so another replica counts
/// the object long before the visibility timeout; nothing counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_objects_in_work_and_exits_0() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-term").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_with(&moto.endpoint, &queue, (4, "0s"), "");
    let mut a = Replica::start(dir.path(), "a", &yaml);
    let (body, want) = slow_object(3_000_000);
    aws.put(BUCKET, "AWSLogs/slow.log.gz", body).await;
    wait_in_work(&mut a).await;
    a.proc.signal(Signal::TERM);
    let status = a.proc.wait_exit(Duration::from_secs(20)).expect("exits after SIGTERM");
    assert!(status.success(), "{status}\n{}", a.proc.log_tail());
    assert!(a.proc.log().contains("releasing their messages"), "{}", a.proc.log_tail());
    let stopped = Instant::now();
    let mut b = Replica::start(dir.path(), "b", &yaml);
    b.wait_for("the released message received", |t| {
        expo::value(t, "vpc_flow_exporter_sqs_messages_received_total", &[]) >= 1.0
    })
    .await;
    assert!(stopped.elapsed() < Duration::from_secs(20), "received before the 30 s visibility timeout");
    let t = b.wait_for("the object counted", |t| objects(t, "ok") >= 1.0).await;
    assert_eq!(lines(&t), want as f64);
}

/// A proxy in front of moto_server that fails chosen requests of each
/// operation: S3 `SlowDown` (503), DynamoDB throughput exceeded (400),
/// SQS a bare 500; and answers `AccessDenied` (403) to every GetObject of a
/// chosen key. The operation is the `x-amz-target` header (SQS and
/// DynamoDB) or, for S3, a GET of an object.
struct FaultProxy {
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the proxy does wrong.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// The requests of each operation whose number (from 1) is listed fail.
    fail: &'static [u64],
    /// Only this operation fails (all of ReceiveMessage, DeleteMessage,
    /// GetObject, PutItem and UpdateItem when None).
    only: Option<&'static str>,
    /// The first GetObject is held this long before it is forwarded.
    delay: Duration,
    /// GetObject of a key containing this is denied (403 AccessDenied).
    deny: Option<&'static str>,
}

impl FaultProxy {
    /// Fails the requests of each operation whose number (from 1) is in `fail`.
    async fn start(upstream: &str, fail: &'static [u64]) -> FaultProxy {
        FaultProxy::with(upstream, Faults { fail, ..Faults::default() }).await
    }

    async fn with(upstream: &str, faults: Faults) -> FaultProxy {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.to_owned();
        let seen = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (client, upstream, seen) = (client.clone(), upstream.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (client, upstream, seen) = (client.clone(), upstream.clone(), seen.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(proxy_one(req, &client, &upstream, &seen, faults).await)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        FaultProxy { endpoint, task }
    }
}

fn reply(status: u16, ctype: &str, body: &'static str) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap()
}

async fn proxy_one(
    req: hyper::Request<hyper::body::Incoming>,
    client: &reqwest::Client,
    upstream: &str,
    seen: &std::sync::Mutex<std::collections::HashMap<String, u64>>,
    faults: Faults,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = req.uri().path_and_query().map_or("/".to_owned(), |p| p.to_string());
    let op = match &target {
        Some(t) => t.rsplit('.').next().unwrap_or("").to_owned(),
        None if req.method() == hyper::Method::GET && path.matches('/').count() >= 2 && !path.contains("list-type") => {
            "GetObject".to_owned()
        }
        None => String::new(),
    };
    let n = {
        let mut seen = seen.lock().unwrap();
        let c = seen.entry(op.clone()).or_default();
        *c += 1;
        *c
    };
    if op == "GetObject" && n == 1 {
        tokio::time::sleep(faults.delay).await;
    }
    if op == "GetObject" && faults.deny.is_some_and(|k| path.contains(k)) {
        let denied = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        return reply(403, "application/xml", denied);
    }
    let faulty = match faults.only {
        Some(only) => op == only,
        None => ["ReceiveMessage", "DeleteMessage", "GetObject", "PutItem", "UpdateItem"].contains(&op.as_str()),
    };
    if faulty && faults.fail.contains(&n) {
        let (status, body, ctype) = match target.as_deref() {
            Some(t) if t.starts_with("DynamoDB") => (
                400,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#,
                "application/x-amz-json-1.0",
            ),
            Some(_) => (500, "", "text/plain"),
            None => (
                503,
                "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>",
                "application/xml",
            ),
        };
        return reply(status, ctype, body);
    }
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut fwd = client.request(method, format!("{upstream}{path}"));
    for (k, v) in req.headers() {
        if k != "host" && k != "content-length" {
            fwd = fwd.header(k.as_str(), v.as_bytes());
        }
    }
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let resp = fwd.body(body).send().await.unwrap();
    let mut out = hyper::Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    out.body(http_body_util::Full::new(resp.bytes().await.unwrap_or_default())).unwrap()
}

/// Throttling and 5xx on S3, SQS and DynamoDB: counted by operation and
/// kind, backed off, and every object still counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_counted_and_counts_stay_exact() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-faults").await;
    aws.dedup_table("objects").await;
    let proxy = FaultProxy::start(&moto.endpoint, &[2, 5]).await;
    let mut want = 0;
    for i in 0..12 {
        let file = ["default.log.gz", "v5.log", "default.parquet"][i % 3];
        want += expected_lines(file);
        put_file(&aws, &format!("AWSLogs/{i}-{file}"), file).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&proxy.endpoint, &queue, "  dedup_table: objects\n");
    let mut r = Replica::start(dir.path(), "faults", &yaml);
    let t = r.wait_for("12 objects", |t| objects(t, "ok") >= 12.0).await;
    let err = |op: &str, kind: &str| {
        expo::value(&t, "vpc_flow_exporter_s3_request_errors_total", &[("operation", op), ("error", kind)])
    };
    let shown = s3_lines(&t);
    assert_eq!(lines(&t), want as f64, "{shown}");
    assert_eq!(objects(&t, "ok"), 12.0, "{shown}");
    assert_eq!(err("GetObject", "throttled"), 2.0, "{shown}");
    assert_eq!(err("ReceiveMessage", "server_error"), 2.0, "{shown}");
    assert_eq!(err("PutItem", "throttled"), 2.0, "{shown}");
    assert!(err("DeleteMessage", "server_error") >= 1.0, "{shown}");
    assert!(objects(&t, "error") >= 2.0, "the failed GetObjects and claims are object errors: {shown}");
}

/// Objects that cannot be read (0 bytes, truncated Parquet, deleted after
/// the notification, access denied by the proxy in front of moto, which
/// enforces no IAM) and a body that is not a notification: each counted
/// with its reason, the replica goes on, and the messages reach the
/// dead-letter queue after the redrive count (2 receives). A 3 MiB line is
/// one invalid line of an object otherwise counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_objects_are_errors_by_reason_and_reach_the_dead_letter_queue() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-dlq").await;
    let dlq = aws.sqs.create_queue().queue_name("flow-logs-dead").send().await.unwrap().queue_url.unwrap();
    let dlq_arn = aws.queue_arn(&dlq).await;
    let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}"#);
    aws.sqs
        .set_queue_attributes()
        .queue_url(&queue)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .expect("SetQueueAttributes");
    aws.put(BUCKET, "AWSLogs/empty.log", Vec::new()).await;
    let parquet = std::fs::read(data("default.parquet")).unwrap();
    aws.put(BUCKET, "AWSLogs/truncated.parquet", parquet[..parquet.len() / 2].to_vec()).await;
    put_file(&aws, "AWSLogs/gone.log.gz", "default.log.gz").await;
    aws.s3.delete_object().bucket(BUCKET).key("AWSLogs/gone.log.gz").send().await.expect("DeleteObject");
    aws.sqs.send_message().queue_url(&queue).message_body("hello").send().await.unwrap();
    put_file(&aws, "AWSLogs/denied.log.gz", "default.log.gz").await;
    put_file(&aws, "AWSLogs/good.log", "default.log").await;
    // A 3 MiB line between good ones: one invalid line, the object counted.
    let mut huge = std::fs::read(data("default.log")).unwrap();
    huge.extend(std::iter::repeat_n(b'7', 3 << 20));
    huge.extend_from_slice(b"\n2 123456789010 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK\n");
    aws.put(BUCKET, "AWSLogs/huge.log", huge).await;
    let proxy = FaultProxy::with(&moto.endpoint, Faults { deny: Some("denied"), ..Faults::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::start(dir.path(), "dlq", &config(&proxy.endpoint, &queue, ""));
    let deadline = Instant::now() + Duration::from_secs(150);
    while aws.queued(&dlq).await < 5 {
        assert!(Instant::now() < deadline, "{}", s3_lines(&r.scrape().await));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t = r.wait_for("the good objects", |t| objects(t, "ok") >= 2.0).await;
    let reason = |why: &str| expo::value(&t, "vpc_flow_exporter_s3_object_errors_total", &[("reason", why)]);
    let shown = s3_lines(&t);
    assert_eq!(reason("empty"), 2.0, "{shown}");
    assert_eq!(reason("bad_parquet"), 2.0, "{shown}");
    assert_eq!(reason("not_found"), 2.0, "{shown}");
    assert_eq!(reason("access_denied"), 2.0, "{shown}");
    let denied = &[("operation", "GetObject"), ("error", "access_denied")];
    assert_eq!(expo::value(&t, "vpc_flow_exporter_s3_request_errors_total", denied), 2.0, "{shown}");
    assert_eq!(expo::value(&t, "vpc_flow_exporter_sqs_message_errors_total", &[("reason", "bad_json")]), 2.0);
    assert_eq!(objects(&t, "ok"), 2.0);
    let too_long = expo::value(&t, "vpc_flow_exporter_parse_errors_total", &[("reason", "too_long")]);
    assert_eq!(too_long, 1.0, "{shown}");
    assert_eq!(expo::value(&t, "vpc_flow_records_total", &[("interface_id", "eni-a")]), 1.0, "the line after it");
    let want = 2 * expected_lines("default.log") + 2;
    assert_eq!(lines(&t), want as f64, "nothing of the failed objects counted");
    assert_eq!(aws.queued(&queue).await, 0, "every message went: deleted or to the dead-letter queue");
}

/// `--config.check` checks the s3 section (and that a region resolves)
/// without sending a request: an endpoint nobody listens on passes.
#[test]
fn config_check_covers_the_s3_section_without_requests() {
    let dir = tempfile::tempdir().unwrap();
    let run = |yaml: &str| {
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        Command::new(common::BIN)
            .arg("--config.file")
            .arg(&path)
            .arg("--config.check")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    };
    let base = "s3:\n  queue_url: https://sqs.us-east-1.amazonaws.com/1/q\n  endpoint_url: http://127.0.0.1:1\n";
    let out = run(&format!("{base}  region: us-east-1\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("configuration is valid\n"));
    let out = run(base);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3.region: no AWS region found"), "{err}");
    let out = run(&format!("{base}  region: us-east-1\n  concurrency: 0\n"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3.concurrency: must be between 1 and 256, got 0"));
}

/// Not ready until the queue answered: with no endpoint listening, `/-/ready`
/// says 503 and the failed receives are counted as connection errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_queue_answers() {
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut r = Replica::start(dir.path(), "unready", &config(&dead, &format!("{dead}/1/q"), ""));
    let t = r
        .wait_for("a failed receive", |t| {
            expo::value(
                t,
                "vpc_flow_exporter_s3_request_errors_total",
                &[("operation", "ReceiveMessage"), ("error", "connection")],
            ) >= 1.0
        })
        .await;
    assert_eq!(r.get("/-/ready").await.unwrap().0, 503, "{}", s3_lines(&t));
}

/// EventBridge events carry keys as they are; one that arrives URL-encoded
/// anyway (`%20`) is read with the decoded key after S3's NoSuchKey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_eventbridge_key_is_retried_decoded() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    aws.s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
    let queue = aws.sqs.create_queue().queue_name("eventbridge").send().await.unwrap().queue_url.unwrap();
    put_file(&aws, "AWSLogs/a b.log", "default.log").await;
    put_file(&aws, "AWSLogs/plain.log", "v5.log").await;
    for key in ["AWSLogs/a%20b.log", "AWSLogs/plain.log"] {
        let body = format!(
            r#"{{"version":"0","id":"1","detail-type":"Object Created","source":"aws.s3","time":"2026-12-01T00:00:00Z","region":"us-east-1","detail":{{"bucket":{{"name":"{BUCKET}"}},"object":{{"key":"{key}","size":1}}}}}}"#
        );
        aws.sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::start(dir.path(), "eb", &config(&moto.endpoint, &queue, ""));
    let t = r.wait_for("both objects", |t| objects(t, "ok") >= 2.0).await;
    assert_eq!(lines(&t), (expected_lines("default.log") + expected_lines("v5.log")) as f64);
    assert_eq!(objects(&t, "error"), 0.0);
    let gets = expo::value(&t, "vpc_flow_exporter_s3_requests_total", &[("operation", "GetObject")]);
    assert_eq!(gets, 3.0, "the encoded key tried once more, decoded");
    assert_eq!(expo::value(&t, "vpc_flow_exporter_s3_lag_seconds_count", &[]), 2.0, "lag observed per object");
}

/// A slow object (its GetObject held 20 s by the proxy, past half the 30 s
/// visibility timeout) has its visibility extended, never blocks the next
/// object, and is counted once: no redelivery while it was in work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_object_is_extended_and_blocks_no_other() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-slow").await;
    let proxy = FaultProxy::with(&moto.endpoint, Faults { delay: Duration::from_secs(20), ..Faults::default() }).await;
    put_file(&aws, "AWSLogs/slow.log.gz", "default.log.gz").await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::start(dir.path(), "slow", &config_with(&proxy.endpoint, &queue, (2, "5s"), ""));
    wait_in_work(&mut r).await;
    put_file(&aws, "AWSLogs/fast.log", "v5.log").await;
    let t = r.wait_for("the fast object", |t| objects(t, "ok") >= 1.0).await;
    assert_eq!(expo::value(&t, "vpc_flow_exporter_s3_objects_in_work", &[]), 1.0, "the slow one still in work");
    assert_eq!(lines(&t), expected_lines("v5.log") as f64);
    let t = r.wait_for("the slow object", |t| objects(t, "ok") >= 2.0).await;
    assert!(expo::value(&t, "vpc_flow_exporter_sqs_visibility_extensions_total", &[]) >= 1.0, "{}", s3_lines(&t));
    assert_eq!(lines(&t), (expected_lines("v5.log") + expected_lines("default.log.gz")) as f64);
    // Still once after the first visibility timeout would have passed.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let t = r.scrape().await;
    assert_eq!(objects(&t, "ok") + objects(&t, "duplicate"), 2.0, "{}", s3_lines(&t));
    assert_eq!(aws.queued(&queue).await, 0);
}

/// Receives and deletes the `s3:TestEvent` moto sends when the bucket's
/// notification configuration is set, so a test's first message is its own.
async fn drain_test_event(aws: &Aws, queue: &str) {
    for _ in 0..10 {
        let got = aws.sqs.receive_message().queue_url(queue).wait_time_seconds(1).send().await.expect("ReceiveMessage");
        if let Some(m) = got.messages.unwrap_or_default().into_iter().next() {
            let body = m.body.unwrap_or_default();
            aws.sqs.delete_message().queue_url(queue).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
            assert!(body.contains("s3:TestEvent"), "an unexpected message: {body}");
            return;
        }
    }
    panic!("moto sent no s3:TestEvent");
}

/// A plain-text object in two parts (moto's parts are at least 5 MiB but
/// the last): the body and the lines it counts (the header included).
fn multipart_body() -> (Vec<u8>, Vec<u8>, u64) {
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";
    let line = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n";
    let mut first = header.as_bytes().to_vec();
    let mut n = 1;
    while first.len() < 5 * 1024 * 1024 + 1 {
        first.extend_from_slice(line.as_bytes());
        n += 1;
    }
    let second = line.repeat(1000).into_bytes();
    (first, second, n + 1000)
}

/// CreateMultipartUpload, two UploadParts, CompleteMultipartUpload; the ETag.
async fn put_multipart(aws: &Aws, key: &str, parts: [Vec<u8>; 2]) -> String {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let up = aws.s3.create_multipart_upload().bucket(BUCKET).key(key).send().await.expect("CreateMultipartUpload");
    let id = up.upload_id.unwrap();
    let mut done = CompletedMultipartUpload::builder();
    for (i, body) in parts.into_iter().enumerate() {
        let number = i as i32 + 1;
        let part = aws.s3.upload_part().bucket(BUCKET).key(key).upload_id(&id).part_number(number);
        let out = part.body(ByteStream::from(body)).send().await.expect("UploadPart");
        done = done.parts(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build());
    }
    let complete = aws.s3.complete_multipart_upload().bucket(BUCKET).key(key).upload_id(&id);
    let out = complete.multipart_upload(done.build()).send().await.expect("CompleteMultipartUpload");
    out.e_tag.unwrap_or_default().trim_matches('"').to_owned()
}

/// A multipart upload (moto announces it twice, as `ObjectCreated:Put` and
/// `ObjectCreated:CompleteMultipartUpload`) and the same notification
/// resent, read by replica `a`, whose first three DeleteMessage requests
/// fail (its own retries included): that message comes back after the 30 s
/// visibility timeout, to `a` or to replica `b` started by then (only to
/// `b` when `a_stops`: `a` is stopped before it comes back). Both replicas'
/// expositions once every message is handled and gone, the number of
/// notifications and the object's lines; None without moto_server.
async fn multipart_and_redelivery(dedup: &str, a_stops: bool) -> Option<(String, String, f64, f64)> {
    let moto = MotoServer::require()?;
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-redeliver").await;
    if !dedup.is_empty() {
        aws.dedup_table("objects").await;
    }
    drain_test_event(&aws, &queue).await;
    let (first, second, want) = multipart_body();
    let key = "AWSLogs/multi part.log";
    let etag = put_multipart(&aws, key, [first, second]).await;
    assert!(etag.ends_with("-2"), "a multipart ETag: {etag}");
    let resent = notification_body(key, &etag).replace("ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload");
    aws.sqs.send_message().queue_url(&queue).message_body(resent).send().await.expect("SendMessage");
    let notices = aws.queued(&queue).await;
    assert!(notices >= 3, "moto's two notifications of the multipart upload and the resent one: {notices}");
    let notices = notices as f64;
    let faults = Faults { fail: &[1, 2, 3], only: Some("DeleteMessage"), ..Faults::default() };
    let proxy = FaultProxy::with(&moto.endpoint, faults).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = Replica::start(dir.path(), "a", &config(&proxy.endpoint, &queue, dedup));
    let delete_failed = |t: &str| {
        let e = &[("operation", "DeleteMessage"), ("error", "server_error")];
        expo::value(t, "vpc_flow_exporter_s3_request_errors_total", e)
    };
    let ta = a
        .wait_for("the object counted, one delete failed", |t| {
            // A stopping `a` need not have handled the others: `b` may get them.
            let others = if a_stops { 0.0 } else { notices - 1.0 };
            objects(t, "ok") == 1.0 && objects(t, "duplicate") >= others && delete_failed(t) >= 3.0
        })
        .await;
    assert_eq!(objects(&ta, "ok"), 1.0, "{}", s3_lines(&ta));
    assert_eq!(lines(&ta), want as f64, "the multipart object once: {}", s3_lines(&ta));
    if a_stops {
        a.proc.signal(Signal::TERM);
        let status = a.proc.wait_exit(Duration::from_secs(20)).expect("exits after SIGTERM");
        assert!(status.success(), "{status}");
    }
    let b = Replica::start(dir.path(), "b", &config(&moto.endpoint, &queue, dedup));
    let deadline = Instant::now() + WAIT;
    let handled = |t: &str| objects(t, "ok") + objects(t, "duplicate");
    let (ta, tb) = loop {
        let ta = if a_stops { ta.clone() } else { a.scrape().await };
        let tb = b.scrape().await;
        let all = if a_stops { handled(&tb) >= 1.0 } else { handled(&ta) + handled(&tb) > notices };
        if all && aws.queued(&queue).await == 0 {
            break (ta, tb);
        }
        assert!(Instant::now() < deadline, "{}\n---\n{}", s3_lines(&ta), s3_lines(&tb));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let shown = format!("{}\n---\n{}", s3_lines(&ta), s3_lines(&tb));
    assert_eq!(objects(&ta, "error") + objects(&tb, "error"), 0.0, "{shown}");
    eprintln!(
        "{notices} notifications; handled by a {} (then stopped: {a_stops}), by b {}",
        handled(&ta),
        handled(&tb)
    );
    Some((ta, tb, notices, want as f64))
}

/// Without a dedup table: at least once, at most once per replica, nothing
/// lost (the redelivered message is a duplicate on `a`, or counted by `b`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dedup_table_a_redelivered_object_counts_at_most_once_per_replica() {
    let Some((ta, tb, notices, want)) = multipart_and_redelivery("", false).await else { return };
    let shown = format!("{}\n---\n{}", s3_lines(&ta), s3_lines(&tb));
    assert_eq!(objects(&ta, "ok"), 1.0, "at most once on replica a: {shown}");
    assert_eq!(expo::value(&ta, "vpc_flow_exporter_s3_recent_objects", &[]), 1.0, "a remembers it: {shown}");
    assert_eq!(expo::value(&ta, "vpc_flow_exporter_s3_recent_objects_forgotten_total", &[]), 0.0, "{shown}");
    assert!(objects(&tb, "ok") <= 1.0, "at most once on replica b: {shown}");
    assert_eq!(objects(&tb, "duplicate"), 0.0, "b knows nothing of a's objects: {shown}");
    let again = objects(&ta, "duplicate") + objects(&tb, "ok");
    assert_eq!(again, notices, "every notification but the first, and the redelivered one: {shown}");
    assert_eq!(lines(&ta), want, "{shown}");
    assert_eq!(lines(&tb), objects(&tb, "ok") * want, "{shown}");
}

/// With a dedup table: exactly once over both replicas; `a` is stopped, so
/// `b` gets the redelivered message (and any `a` left), finds the claim
/// done and counts it a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_dedup_table_a_redelivered_object_counts_exactly_once() {
    let Some((ta, tb, _, want)) = multipart_and_redelivery("  dedup_table: objects\n", true).await else {
        return;
    };
    let shown = format!("{}\n---\n{}", s3_lines(&ta), s3_lines(&tb));
    assert_eq!(objects(&ta, "ok") + objects(&tb, "ok"), 1.0, "{shown}");
    assert!(objects(&tb, "duplicate") >= 1.0, "b got the redelivered message: {shown}");
    let done_elsewhere = expo::value(&tb, "vpc_flow_exporter_s3_claims_total", &[("result", "done_elsewhere")]);
    assert_eq!(done_elsewhere, 1.0, "the claim told b once, its recent set then: {shown}");
    assert_eq!(lines(&ta) + lines(&tb), want, "{shown}");
}

/// Every flow counter family summed by its `action` or `reason` label (the
/// other labels summed away), zeros left out: the figures to compare.
fn flow_totals(t: &str) -> std::collections::BTreeMap<String, f64> {
    const FAMILIES: [&str; 5] = [
        "vpc_flow_records_total",
        "vpc_flow_bytes_total",
        "vpc_flow_packets_total",
        "vpc_flow_exporter_lines_total",
        "vpc_flow_exporter_parse_errors_total",
    ];
    let mut out = std::collections::BTreeMap::new();
    for (name, labels, v) in t.lines().filter_map(expo::parse_sample) {
        if !FAMILIES.contains(&name) {
            continue;
        }
        let by = labels.iter().find(|(k, _)| k == "action" || k == "reason");
        let key = by.map_or(name.to_owned(), |(k, val)| format!("{name}{{{k}=\"{val}\"}}"));
        *out.entry(key).or_insert(0.0) += v;
    }
    out.retain(|_, v| *v != 0.0);
    out
}

/// Three replicas (three processes of the real binary, concurrency 2 each)
/// on one queue with a dedup table and 220 objects of every kind (default
/// `.log.gz` with its header, a v5 custom-format text object under a key
/// with a space and `+`, plain text with one bad line, Parquet in a hive
/// layout): each object is counted by exactly one replica, every replica
/// takes part, and the sum over the replicas of every flow counter (records,
/// bytes and packets by action, lines, parse errors by reason) equals what
/// `replay s3://` counts for the same objects in a second bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sum_to_the_replay_of_the_same_objects() {
    let Some(moto) = MotoServer::require() else { return };
    let aws = Aws::new(&moto.endpoint);
    let queue = aws.bucket_notifying_queue(BUCKET, "flow-logs-three").await;
    aws.dedup_table("objects").await;
    const REFERENCE: &str = "reference";
    aws.s3.create_bucket().bucket(REFERENCE).send().await.expect("CreateBucket reference");
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_with(&moto.endpoint, &queue, (2, "5s"), "  dedup_table: objects\n");
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"].iter().map(|n| Replica::start(dir.path(), n, &yaml)).collect();
    let mut bad_text = std::fs::read(data("default.log")).unwrap();
    bad_text.extend_from_slice(b"2 123456789010 eni-1235b8ca123456789 not-an-address\n");
    let [gz, v5, parquet] = ["default.log.gz", "v5.log", "default.parquet"].map(|f| std::fs::read(data(f)).unwrap());
    let n: usize = 220;
    for i in 0..n {
        let (body, key) = match i % 4 {
            0 => (gz.clone(), format!("AWSLogs/1/vpcflowlogs/us-east-1/2026/12/01/{i}.log.gz")),
            1 => (v5.clone(), format!("AWSLogs/1/vpcflowlogs/us-east-1/2026/12/01/{i} v5+x.log")),
            2 => (bad_text.clone(), format!("AWSLogs/plain/{i}.log")),
            _ => (
                parquet.clone(),
                format!("AWSLogs/aws-account-id=1/aws-region=us-east-1/year=2026/month=12/day=01/{i}.parquet"),
            ),
        };
        tokio::join!(aws.put(BUCKET, &key, body.clone()), aws.put(REFERENCE, &key, body));
    }
    let out = replay(&moto.endpoint, &[&format!("s3://{REFERENCE}/AWSLogs/")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = flow_totals(&String::from_utf8_lossy(&out.stdout));
    let at = |k: &str| want.get(k).copied().unwrap_or(0.0);
    // The reference itself is what the fixtures hold: 55 objects of each kind.
    let per_kind = expected_lines("default.log.gz")
        + expected_lines("v5.log")
        + expected_lines("default.log")
        + 1
        + expected_lines("default.parquet");
    assert_eq!(at("vpc_flow_exporter_lines_total"), (55 * per_kind) as f64, "{want:?}");
    assert!(at("vpc_flow_exporter_parse_errors_total{reason=\"field_count\"}") >= 55.0, "{want:?}");
    assert!(at("vpc_flow_records_total{action=\"REJECT\"}") > 0.0, "{want:?}");
    let deadline = Instant::now() + WAIT;
    let texts = loop {
        let mut texts = Vec::new();
        for r in &mut replicas {
            if let Some(status) = r.proc.exited() {
                panic!("a replica exited ({status})\n{}", r.proc.log_tail());
            }
            texts.push(r.scrape().await);
        }
        let ok: f64 = texts.iter().map(|t| objects(t, "ok")).sum();
        if ok >= n as f64 && aws.queued(&queue).await == 0 {
            break texts;
        }
        let shown: Vec<String> = texts.iter().map(|t| s3_lines(t)).collect();
        assert!(Instant::now() < deadline, "{ok} of {n} objects\n{}", shown.join("\n---\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let shown = texts.iter().map(|t| s3_lines(t)).collect::<Vec<_>>().join("\n---\n");
    let ok: Vec<f64> = texts.iter().map(|t| objects(t, "ok")).collect();
    assert_eq!(ok.iter().sum::<f64>(), n as f64, "{shown}");
    assert!(ok.iter().all(|&o| o > 0.0), "every replica took part: {ok:?}");
    assert_eq!(texts.iter().map(|t| objects(t, "error")).sum::<f64>(), 0.0, "{shown}");
    let mut got = std::collections::BTreeMap::new();
    for t in &texts {
        for (k, v) in flow_totals(t) {
            *got.entry(k).or_insert(0.0) += v;
        }
    }
    assert_eq!(got, want, "the sum over the replicas against the replay\n{shown}");
}
