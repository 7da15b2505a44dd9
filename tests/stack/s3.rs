//! The S3 phase of the stack test (`tests/stack_e2e.rs`): a real
//! moto_server whose bucket notifies object creations to an SQS queue (the
//! bucket's notification configuration, as AWS does it), a DynamoDB claim
//! table, two replicas of the real binary competing for that queue with the
//! table (`cluster="s3"` for Prometheus), and an uploader that writes the
//! demo generator's lines as `.log.gz` objects with the AWS header line: base
//! traffic every [`UPLOAD_EVERY`], and one round of the demo's scenarios split
//! line by line over [`SCENARIO_PARTS`] objects, so that a replica sees only
//! the share of each attack in the parts it reads (two parts each: 75 of the
//! 150 SYN+FIN connections, under the threshold of 100; about 15 of the 30
//! rejects of the reject storm, under 20) and the alerts must fire on the
//! sum over the replicas.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use vpc_flow_exporter::source::demo::{Generator, DEMO_FORMAT};

use crate::common::aws::{child_env, Aws};
use crate::common::moto::MotoServer;
use crate::common::{expo, free_port, now_ms, Proc, BIN};

/// The `cluster` label of the S3 replicas' series.
pub const S3_CLUSTER: &str = "s3";
/// Replicas on the one queue.
pub const REPLICAS: usize = 2;
/// Objects the round of scenarios is split over (line i in part i mod N).
pub const SCENARIO_PARTS: usize = 4;
/// One base-traffic object this often.
pub const UPLOAD_EVERY: Duration = Duration::from_secs(2);
/// Base-traffic lines per object: 250 a second, a little above the Firehose
/// pusher's 200, so that the internet noise's telnet rejects on the ALB and
/// the bastion (what fires VpcFlowForbiddenPortRejected: the scenarios' two
/// are under its threshold of 20) cross the threshold by the rule evaluation
/// that fires the other clusters' alerts, not a minute later.
const BASE_LINES: usize = 500;
/// When the round of scenarios is uploaded, after the first object.
const SCENARIOS_AFTER: Duration = Duration::from_secs(10);
const BUCKET: &str = "stack-flow-logs";
const QUEUE: &str = "stack-flow-logs-events";
const TABLE: &str = "stack-flow-log-objects";
const KEY_PREFIX: &str = "AWSLogs/123456789012/vpcflowlogs/us-east-1/";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// moto_server, its bucket, queue and table, and the replicas.
pub struct S3Phase {
    pub moto: MotoServer,
    /// The replicas (`s3-a`, `s3-b`), each with its metrics port.
    pub replicas: Vec<(Proc, u16)>,
}

impl S3Phase {
    /// moto_server at `moto_bin` with the bucket, queue and table, and
    /// [`REPLICAS`] replicas of the exporter on the queue, each with
    /// `detections` (a `detections:` section) and the dedup table; their
    /// configurations and logs in `dir/s3`.
    pub fn start(moto_bin: &Path, dir: &Path, detections: &str) -> S3Phase {
        let moto = MotoServer::start(moto_bin);
        let aws = Aws::new(&moto.endpoint);
        let queue = runtime().block_on(async {
            let url = aws.bucket_notifying_queue(BUCKET, QUEUE).await;
            aws.dedup_table(TABLE).await;
            url
        });
        let dir = dir.join("s3");
        std::fs::create_dir_all(&dir).unwrap();
        // Sharded replicas export a scanner from half the alert's 20 ports
        // (docs/alerts.md, "Port scans across shards").
        let config = format!(
            "{detections}  port_scan:\n    shard_min_ports: 10\n\
             s3:\n  queue_url: {queue}\n  region: us-east-1\n  endpoint_url: {}\n  visibility_timeout: 30s\n  \
             concurrency: 2\n  dedup_table: {TABLE}\n  shutdown_grace: 5s\n",
            moto.endpoint
        );
        let config_file = dir.join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let replicas = ["s3-a", "s3-b"]
            .iter()
            .take(REPLICAS)
            .map(|name| {
                let port = free_port();
                let mut cmd = Command::new(BIN);
                cmd.arg("--config.file").arg(&config_file).args(["--web.listen-address", &format!("127.0.0.1:{port}")]);
                child_env(&mut cmd);
                (Proc::spawn(name, cmd, dir.join(format!("{name}.log"))), port)
            })
            .collect();
        S3Phase { moto, replicas }
    }

    /// Each replica's counts, from its own `/metrics`.
    pub fn totals(&self, http: &reqwest::blocking::Client) -> Vec<ReplicaTotals> {
        self.replicas
            .iter()
            .map(|(proc_, port)| {
                let text = http
                    .get(format!("http://127.0.0.1:{port}/metrics"))
                    .send()
                    .and_then(|r| r.text())
                    .unwrap_or_default();
                let objects = |result: &str| {
                    expo::value(&text, "vpc_flow_exporter_s3_objects_total", &[("result", result)]) as u64
                };
                ReplicaTotals {
                    name: proc_.name.clone(),
                    scraped: expo::has(&text, "vpc_flow_exporter_s3_objects_total"),
                    ok: objects("ok"),
                    duplicate: objects("duplicate"),
                    error: objects("error"),
                    skipped: objects("skipped"),
                    records: expo::value(&text, "vpc_flow_exporter_s3_records_total", &[]) as u64,
                    lines: expo::value(&text, "vpc_flow_exporter_lines_total", &[]) as u64,
                    received: expo::value(&text, "vpc_flow_exporter_sqs_messages_received_total", &[]) as u64,
                }
            })
            .collect()
    }

    /// The replicas' and moto_server's last log lines.
    pub fn log_tails(&self) -> String {
        self.replicas
            .iter()
            .map(|(p, _)| p.log_tail())
            .chain([self.moto.proc.log_tail()])
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One replica's counters.
#[derive(Debug, Clone, Default)]
pub struct ReplicaTotals {
    pub name: String,
    /// Whether its `/metrics` answered with the S3 metrics.
    pub scraped: bool,
    pub ok: u64,
    pub duplicate: u64,
    pub error: u64,
    pub skipped: u64,
    /// `vpc_flow_exporter_s3_records_total`.
    pub records: u64,
    /// `vpc_flow_exporter_lines_total`.
    pub lines: u64,
    pub received: u64,
}

/// What the uploader wrote.
#[derive(Debug, Default)]
pub struct Uploaded {
    /// Objects written (PutObject answered).
    pub objects: u64,
    /// Their lines, the header line of each included (what
    /// `vpc_flow_exporter_s3_records_total` counts).
    pub lines: u64,
    /// Of those, the objects holding the round of scenarios.
    pub scenario_objects: u64,
    /// PutObject failures.
    pub errors: Vec<String>,
}

/// The header line AWS writes at the top of a text object in the demo's format.
fn header() -> String {
    DEMO_FORMAT
        .split_whitespace()
        .map(|f| f.trim_start_matches("${").trim_end_matches('}'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `.log.gz` object: the header line, then `lines`.
fn object(lines: &[&str]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    writeln!(gz, "{}", header()).unwrap();
    for l in lines {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap()
}

/// Uploads objects of the demo generator's lines to the bucket on moto_server
/// at `endpoint` until `stop`: one base-traffic object every [`UPLOAD_EVERY`],
/// and once, [`SCENARIOS_AFTER`] after the start, the round of scenarios in
/// [`SCENARIO_PARTS`] objects.
pub fn start_uploader(endpoint: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<Uploaded> {
    thread::spawn(move || {
        let rt = runtime();
        let aws = Aws::new(&endpoint);
        let mut generator = Generator::new(0x53_5353);
        let mut up = Uploaded::default();
        let started = Instant::now();
        let mut played = false;
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let tick = Instant::now();
            let end = (now_ms() / 1000) as u64;
            let mut objects: Vec<(Vec<String>, bool)> = vec![(lines(generator.batch(BASE_LINES, false, end)), false)];
            if !played && started.elapsed() >= SCENARIOS_AFTER {
                played = true;
                let round = lines(generator.batch(0, true, end));
                for part in 0..SCENARIO_PARTS {
                    objects.push((round.iter().skip(part).step_by(SCENARIO_PARTS).cloned().collect(), true));
                }
            }
            for (body, scenario) in objects {
                seq += 1;
                let key =
                    format!("{KEY_PREFIX}2026/12/01/123456789012_vpcflowlogs_us-east-1_fl-0stack_{seq:06}.log.gz");
                let refs: Vec<&str> = body.iter().map(String::as_str).collect();
                let put = aws.s3.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(object(&refs))).send();
                match rt.block_on(put) {
                    Ok(_) => {
                        up.objects += 1;
                        up.lines += 1 + body.len() as u64;
                        up.scenario_objects += u64::from(scenario);
                    }
                    Err(e) => up.errors.push(format!("PutObject {key}: {e:?}")),
                }
            }
            thread::sleep(UPLOAD_EVERY.saturating_sub(tick.elapsed()));
        }
        up
    })
}

/// The non-empty lines of a generator batch.
fn lines(batch: &str) -> Vec<String> {
    batch.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}
