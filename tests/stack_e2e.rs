//! End-to-end test of the monitoring mixin against the real tools: the exporter
//! in `demo` mode, a real Prometheus scraping it every second with the shipped
//! rules (alerts/*.yml), and a real Alertmanager that sends every alert to a
//! webhook served by this test.
//!
//! It proves that:
//! - every alert that the demo's scenarios trigger reaches the webhook, with its
//!   severity, the interface or source it names, and its annotations;
//! - the exporter-health alerts stay silent (not even pending) while the demo
//!   runs without CloudWatch, and every rule evaluates without error;
//! - every dashboard variable resolves, and every query of every dashboard panel
//!   returns data (the CloudWatch panels, which only the live poller feeds, must
//!   be valid PromQL there);
//! - beside the demo, under the same Prometheus and Alertmanager, a second
//!   exporter takes the demo's traffic as Amazon Data Firehose would push it (a
//!   generator here POSTs the demo's lines per the HTTP endpoint delivery
//!   specification: gzip, batches of 500 records, an access key): every alert
//!   the demo fires also fires for it (its series carry `cluster="firehose"`,
//!   so the two are told apart), its health alerts stay silent, every Firehose
//!   panel query of the health dashboard returns data, and every record sent
//!   is counted exactly once (a retried request id counts once, a wrong key
//!   none);
//! - beside them, two replicas of the exporter read flow logs from S3 (a
//!   moto_server bucket whose object creations are notified to one SQS queue,
//!   with a DynamoDB claim table), scraped as two targets of the same job with
//!   `cluster="s3"`: an uploader writes the demo generator's lines as
//!   `.log.gz` objects with the AWS header line, one round of scenarios split
//!   over four objects. Every demo alert fires for `cluster="s3"` exactly once
//!   per subject (no series per replica: no `instance` label, the same alerts
//!   in Prometheus' ALERTS, at Alertmanager and at the webhook), both replicas
//!   read objects, the records summed over the replicas equal the lines
//!   uploaded, exactly, and every S3 and SQS panel query has data (tests/stack/s3.rs);
//! - no query of the security dashboard answers per replica (no series
//!   carries an `instance` label);
//! - and, in a second test, with the exporter polling a moto_server (CloudWatch
//!   Logs) instead of the demo, every CloudWatch panel query of the health
//!   dashboard returns data and no health alert is active;
//! - and, with 10,000 interfaces in the demo (`--demo.interfaces 10000`), that
//!   every dashboard query, instant and over a range, answers in under a
//!   second and that per-interface panels draw at most their top N;
//! - and, in a third, that a health alert does fire when its condition holds:
//!   the demo under a small `limits.max_interfaces` raises
//!   VpcFlowExporterInterfaceCapReached; polling a missing log group on
//!   moto_server makes the CloudWatch request-error and never-polled alerts
//!   pending (their conditions hold on the live exporter's real metrics).
//!
//! Prometheus (Debian package `prometheus`), Alertmanager (Debian package
//! `prometheus-alertmanager`) and moto_server (`.venv`; the first test needs
//! all three), all from
//! scripts/setup-test-deps.sh: a test without them is skipped with a line that
//! says so, or fails under `VPC_FLOW_EXPORTER_REQUIRE_TOOLS=1` (scripts/test.sh).
//! `PROMETHEUS_BIN`, `ALERTMANAGER_BIN` and `MOTO_SERVER_BIN` override the
//! binaries looked up on PATH (tests/common/tools.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use flate2::write::GzEncoder;
use serde_json::Value;
use vpc_flow_exporter::source::demo::{Generator, DEMO_FORMAT};

mod common;
#[path = "stack/s3.rs"]
mod s3_phase;

use common::moto::MotoServer;
use common::process::wait_ready;
use common::prometheus::{start_alertmanager, start_prometheus as start_prometheus_at};
use common::{free_port, now_ms, repo, require, require_all, Proc, ALERTMANAGER, BIN, MOTO_SERVER, PROMETHEUS};
use s3_phase::{S3Phase, REPLICAS, S3_CLUSTER};

/// Alerts that the demo's scenarios must fire (each reaches the webhook).
/// VpcFlowTooManyRejects and VpcFlowShortConnectionSurge fire through the
/// per-interface threshold overrides of [`DEMO_OVERRIDES`].
const DEMO_ALERTS: &[&str] = &[
    "VpcFlowIllegalSourceAccepted",
    "VpcFlowTooManyRejects",
    "VpcFlowShortConnectionSurge",
    "VpcFlowNatBreach",
    "VpcFlowForbiddenPortAccepted",
    "VpcFlowForbiddenPortRejected",
    "VpcFlowLogSkipData",
    "VpcFlowPortScan",
];

/// Security alerts the demo does not fire by design, and why. Every alert of
/// the security group must be in DEMO_ALERTS or here.
const NOT_BY_DEMO: &[(&str, &str)] = &[
    (
        "VpcFlowRejectsAboveBaseline",
        "needs a day of history (the baseline is the same time on earlier days); alerts/tests/baseline.test.yml proves it on 8 days of series",
    ),
    ("VpcFlowLogNoData", "needs an interface that carried traffic this time yesterday; alerts/tests/security.test.yml"),
    ("VpcFlowNatBreachRejected", "the demo's NAT breach is accepted (VpcFlowNatBreach); alerts/tests/security.test.yml"),
    ("VpcFlowInternalPortScan", "the demo's scanner is on the internet (VpcFlowPortScan); alerts/tests/security.test.yml"),
];

/// The demo's detection settings (src/source/demo.rs, DEMO_CONFIG), as a file.
const DEMO_CONFIG: &str = "detections:
  allowed_source_cidrs: [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"]
  approved_destination_cidrs: [\"10.0.0.0/8\", \"52.94.0.0/16\", \"140.82.112.0/20\"]
";

/// A second rule file, as a user would add one: per-interface threshold
/// overrides (series with an `interface_id`) for every demo interface, low
/// enough for the demo's reject storms (30) and SYN+FIN bursts (150 a minute).
const DEMO_OVERRIDES: &str = "groups:
  - name: demo-threshold-overrides
    rules:
      - record: vpc_flow_alert_threshold
        expr: 20 * group by (interface_id) (vpc_flow_records_total)
        labels:
          threshold: rejected_records_10m
      - record: vpc_flow_alert_threshold
        expr: 100 * group by (interface_id) (vpc_flow_records_total)
        labels:
          threshold: short_connections_10m
";

/// Label naming what the alert is about, by alert (checked in the description).
fn subject_label(alert: &str) -> &'static str {
    match alert {
        "VpcFlowPortScan" => "srcaddr",
        _ => "interface_id",
    }
}

/// New series show at 0 for a minute (the exporter's new-series hold) and the
/// per-interface rules run every minute: up to ~3.5 minutes to a notification.
const ALERT_DEADLINE: Duration = Duration::from_secs(360);
const RULES_GLOB: &str = "alerts/*.yml";
const JOB: &str = "vpc-flow-exporter";

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client")
}

// ---------------------------------------------------------------------------
// Webhook receiver
// ---------------------------------------------------------------------------

/// One alert as the webhook received it, with the receiver it was sent to
/// (the webhook path) and the group labels of its notification.
#[derive(Clone, Debug)]
struct Received {
    receiver: String,
    group_labels: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    status: String,
}

fn start_webhook() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
    let port = listener.local_addr().unwrap().port();
    let store = Arc::new(Mutex::new(Vec::new()));
    let sink = store.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            thread::spawn(move || handle_webhook(stream, sink));
        }
    });
    (port, store)
}

fn handle_webhook(mut stream: TcpStream, sink: Arc<Mutex<Vec<Received>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    loop {
        // One request per iteration (Alertmanager may keep the connection).
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        // "POST /pager HTTP/1.1": the receiver is the path.
        let receiver = request_line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
        if let Ok(doc) = serde_json::from_slice::<Value>(&body) {
            let mut got = sink.lock().unwrap();
            let group_labels = string_map(&doc["groupLabels"]);
            for alert in doc["alerts"].as_array().into_iter().flatten() {
                got.push(Received {
                    receiver: receiver.clone(),
                    group_labels: group_labels.clone(),
                    labels: string_map(&alert["labels"]),
                    annotations: string_map(&alert["annotations"]),
                    status: alert["status"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
}

// ---------------------------------------------------------------------------
// Prometheus API
// ---------------------------------------------------------------------------

struct Prom {
    http: reqwest::blocking::Client,
    base: String,
}

impl Prom {
    fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status();
        let text = resp.text().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: bad JSON ({e}): {text}"));
        if !status.is_success() || body["status"] != "success" {
            return serde_json::json!({"status": "error", "error": body["error"].clone(), "http": status.as_u16()});
        }
        body
    }

    /// Instant query: Ok(number of series or 1 for a scalar) or Err(message).
    fn query_count(&self, expr: &str) -> Result<usize, String> {
        let body = self.get("/api/v1/query", &[("query", expr)]);
        if body["status"] != "success" {
            return Err(format!("query error: {}", body["error"]));
        }
        let data = &body["data"];
        Ok(match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => data["result"].as_array().map_or(0, |a| a.len()),
            Some("scalar") | Some("string") => 1,
            _ => 0,
        })
    }

    /// Instant query: the labels of each series of the result, or the error.
    fn series(&self, expr: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
        let body = self.get("/api/v1/query", &[("query", expr)]);
        if body["status"] != "success" {
            return Err(format!("query error: {}", body["error"]));
        }
        Ok(body["data"]["result"].as_array().into_iter().flatten().map(|r| string_map(&r["metric"])).collect())
    }

    /// Instant query: the value of a one-number result (vector of one or scalar).
    fn value(&self, expr: &str) -> Option<f64> {
        let body = self.get("/api/v1/query", &[("query", expr)]);
        let data = &body["data"];
        let v = match data["resultType"].as_str() {
            Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
                Some([one]) => one["value"][1].clone(),
                _ => return None,
            },
            Some("scalar") => data["result"][1].clone(),
            _ => return None,
        };
        v.as_str()?.parse().ok()
    }

    /// Instant (`range` None) or range query (`range`: (seconds back from now,
    /// step seconds)): the number of series, of distinct `interface_id`
    /// values among them, and the time Prometheus took to answer, or the error.
    fn timed(&self, expr: &str, range: Option<(u64, u64)>) -> Result<(usize, usize, Duration), String> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let t0 = Instant::now();
        let body = match range {
            None => self.get("/api/v1/query", &[("query", expr), ("time", &now.to_string())]),
            Some((back, step)) => self.get(
                "/api/v1/query_range",
                &[
                    ("query", expr),
                    ("start", &(now - back).to_string()),
                    ("end", &now.to_string()),
                    ("step", &step.to_string()),
                ],
            ),
        };
        let took = t0.elapsed();
        if body["status"] != "success" {
            return Err(format!("query error: {}", body["error"]));
        }
        let result = body["data"]["result"].as_array().cloned().unwrap_or_default();
        let interfaces: BTreeSet<String> =
            result.iter().filter_map(|r| r["metric"]["interface_id"].as_str().map(str::to_string)).collect();
        Ok((result.len(), interfaces.len(), took))
    }

    /// Active alerts (pending and firing) as Prometheus sees them.
    fn active_alerts(&self) -> Vec<(String, String, BTreeMap<String, String>)> {
        let body = self.get("/api/v1/alerts", &[]);
        body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let labels = string_map(&a["labels"]);
                (
                    labels.get("alertname").cloned().unwrap_or_default(),
                    a["state"].as_str().unwrap_or_default().to_string(),
                    labels,
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------

struct Dashboard {
    file: String,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    let mut out = Vec::new();
    for entry in fs::read_dir(repo().join("dashboards")).expect("read dashboards/") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = fs::read_to_string(&path).unwrap();
            let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(Dashboard { file: path.file_name().unwrap().to_string_lossy().into_owned(), json });
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(!out.is_empty(), "no dashboards in dashboards/");
    out
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// Replaces Grafana's built-in and dashboard variables in a query, the way
/// Grafana would for the time range "last 5 minutes" and "All" selected.
fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let builtins: [(&str, &str); 6] = [
        ("__rate_interval", "1m"),
        ("__interval_ms", "15000"),
        ("__interval", "15s"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
        ("__range", "5m"),
    ];
    let value_of = |name: &str| -> Option<String> {
        builtins.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()).or_else(|| vars.get(name).cloned())
    };
    let bytes = expr.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            // ${name} or ${name:format}
            if bytes.get(i + 1) == Some(&b'{') {
                if let Some(end) = expr[i..].find('}') {
                    let inner = &expr[i + 2..i + end];
                    let name = inner.split(':').next().unwrap_or(inner);
                    if let Some(v) = value_of(name) {
                        out.push_str(&v);
                        i += end + 1;
                        continue;
                    }
                }
            } else {
                let rest = &expr[i + 1..];
                let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                // Longest known name that prefixes the identifier.
                let ident = &rest[..len];
                if let Some(v) = value_of(ident) {
                    out.push_str(&v);
                    i += 1 + len;
                    continue;
                }
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

/// Resolves a dashboard's template variables against Prometheus, returning
/// the value each stands for ("All": its allValue) and the problems found.
fn resolve_variables(prom: &Prom, dash: &Dashboard, problems: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for v in dash.json["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("datasource") => {
                if v["query"] != "prometheus" {
                    problems.push(format!(
                        "{}: variable {name}: datasource variable must query type prometheus",
                        dash.file
                    ));
                }
                vars.insert(name, "prometheus".to_string());
            }
            Some("query") => {
                let query = match &v["query"] {
                    Value::String(s) => s.clone(),
                    q => q["query"].as_str().unwrap_or_default().to_string(),
                };
                let query = substitute(&query, &vars);
                let values = match label_values(prom, &query) {
                    Ok(values) => values,
                    Err(e) => {
                        problems.push(format!("{}: variable {name}: {query}: {e}", dash.file));
                        Vec::new()
                    }
                };
                if values.is_empty() {
                    problems.push(format!("{}: variable {name}: {query} resolves to no value", dash.file));
                }
                println!("  variable {name} = {values:?}");
                let value = if v["includeAll"] == true {
                    v["allValue"].as_str().map(str::to_string).unwrap_or_else(|| format!("({})", values.join("|")))
                } else {
                    values.first().cloned().unwrap_or_default()
                };
                vars.insert(name, value);
            }
            other => {
                problems.push(format!("{}: variable {name}: type {other:?} is not checked by this test", dash.file))
            }
        }
    }
    vars
}

/// `label_values(expr, label)` or `label_values(label)` via the labels API.
fn label_values(prom: &Prom, query: &str) -> Result<Vec<String>, String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| "only label_values(...) variable queries are supported".to_string())?;
    let (matcher, label) = match inner.rfind(',') {
        Some(comma) => (Some(inner[..comma].trim()), inner[comma + 1..].trim()),
        None => (None, inner.trim()),
    };
    let start =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 600).to_string();
    let mut params = vec![("start", start.as_str())];
    if let Some(m) = matcher {
        params.push(("match[]", m));
    }
    let body = prom.get(&format!("/api/v1/label/{label}/values"), &params);
    if body["status"] != "success" {
        return Err(format!("error: {}", body["error"]));
    }
    Ok(body["data"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect())
}

/// A real Prometheus loading the shipped rules, scraping the exporter (job
/// "vpc-flow-exporter") and evaluating every second, sending alerts to
/// Alertmanager when given.
fn start_prometheus(bin: &Path, dir: &Path, exporter_port: u16, am_port: Option<u16>) -> (Proc, u16) {
    start_prometheus_with(bin, dir, exporter_port, am_port, &[], "1s")
}

/// [`start_prometheus`] with more rule files and another scrape interval.
fn start_prometheus_with(
    bin: &Path,
    dir: &Path,
    exporter_port: u16,
    am_port: Option<u16>,
    extra_rules: &[PathBuf],
    scrape_interval: &str,
) -> (Proc, u16) {
    start_prometheus_targets(bin, dir, &[(exporter_port, None)], am_port, extra_rules, scrape_interval)
}

/// [`start_prometheus_with`] scraping several exporters in the job, each with
/// its `cluster` label when given (the rules keep it: one set of alerts per
/// cluster).
fn start_prometheus_targets(
    bin: &Path,
    dir: &Path,
    targets: &[(u16, Option<&str>)],
    am_port: Option<u16>,
    extra_rules: &[PathBuf],
    scrape_interval: &str,
) -> (Proc, u16) {
    let rules = std::iter::once(repo().join(RULES_GLOB))
        .chain(extra_rules.iter().cloned())
        .map(|p| format!("  - {}\n", p.display()))
        .collect::<String>();
    let alerting = am_port
        .map(|p| format!("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{p}']\n"))
        .unwrap_or_default();
    let static_configs = targets
        .iter()
        .map(|(port, cluster)| {
            let labels = cluster.map(|c| format!("        labels: {{cluster: {c}}}\n")).unwrap_or_default();
            format!("      - targets: ['127.0.0.1:{port}']\n{labels}")
        })
        .collect::<String>();
    let config = format!(
        "global:\n  scrape_interval: {scrape_interval}\n  scrape_timeout: {scrape_interval}\n  evaluation_interval: 1s\n\
         rule_files:\n{rules}\
         {alerting}\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n{static_configs}"
    );
    start_prometheus_at(bin, dir, &config, &["--rules.alert.resend-delay=1s"])
}

/// Receiver of the shipped example Alertmanager config for each severity.
const RECEIVER_BY_SEVERITY: &[(&str, &str)] = &[("critical", "pager"), ("warning", "chat"), ("info", "digest")];

/// The shipped deploy/alertmanager.yml, routes and inhibitions kept, with every
/// receiver posting to the test's webhook at /<receiver name> and the timers
/// shortened (group_wait and group_interval 1s).
fn test_alertmanager_config(webhook_port: u16) -> String {
    use serde_norway::{Mapping, Value as Y};
    let path = repo().join("deploy/alertmanager.yml");
    let text = fs::read_to_string(&path).expect("deploy/alertmanager.yml");
    let mut doc: Y = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    fn fast(route: &mut Y, root: bool) {
        let Y::Mapping(m) = route else { return };
        for (key, value) in [("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1h")] {
            if root || m.contains_key(key) {
                m.insert(Y::from(key), Y::from(value));
            }
        }
        if let Some(Y::Sequence(routes)) = m.get_mut("routes") {
            for r in routes {
                fast(r, false);
            }
        }
    }
    fast(doc.get_mut("route").expect("route"), true);
    let Some(Y::Sequence(receivers)) = doc.get_mut("receivers") else { panic!("no receivers in {}", path.display()) };
    for r in receivers.iter_mut() {
        let name = r.get("name").and_then(Y::as_str).expect("receiver name").to_string();
        let mut webhook = Mapping::new();
        webhook.insert(Y::from("url"), Y::from(format!("http://127.0.0.1:{webhook_port}/{name}")));
        webhook.insert(Y::from("send_resolved"), Y::from(false));
        let mut m = Mapping::new();
        m.insert(Y::from("name"), Y::from(name));
        m.insert(Y::from("webhook_configs"), Y::Sequence(vec![Y::Mapping(webhook)]));
        *r = Y::Mapping(m);
    }
    serde_norway::to_string(&doc).expect("yaml")
}

// ---------------------------------------------------------------------------
// Firehose: a second exporter fed the demo's traffic as Firehose pushes it
// ---------------------------------------------------------------------------

/// The `cluster` label of the Firehose exporter's series in the demo test.
const FIREHOSE_CLUSTER: &str = "firehose";
const FIREHOSE_KEY: &str = "stack-test-access-key-0123456789";
/// Records per request, as a delivery stream batches them.
const FIREHOSE_BATCH: usize = 500;
/// Base (background) demo lines generated per second.
const FIREHOSE_BASE_RATE: usize = 200;

/// A live exporter whose only source is a `firehose` section (the demo's
/// detection settings, the demo's log format, one access key).
fn start_firehose_exporter(dir: &Path) -> (Proc, u16, u16) {
    let dir = dir.join("firehose");
    fs::create_dir_all(&dir).unwrap();
    let (metrics_port, port) = (free_port(), free_port());
    fs::write(
        dir.join("config.yml"),
        format!(
            "{DEMO_CONFIG}firehose:\n  listen_address: \"127.0.0.1:{port}\"\n  access_keys: [\"{FIREHOSE_KEY}\"]\n  \
             log_format: \"{DEMO_FORMAT}\"\n"
        ),
    )
    .unwrap();
    (start_live_exporter(Path::new(BIN), &dir, metrics_port), metrics_port, port)
}

/// What the pusher sent and what came back.
#[derive(Default, Debug)]
struct PushStats {
    /// Requests answered 200 whose records count (first attempts).
    applied_requests: u64,
    /// Records in those requests.
    applied_records: u64,
    /// Answers other than the expected ones, with their request id.
    unexpected: Vec<String>,
}

/// Pushes the demo generator's lines (scenarios 10 s after the start, then
/// every minute) to the receiver at `port`, one line per record, gzip,
/// requests of [`FIREHOSE_BATCH`] records, until `stop`. Its first request is
/// sent twice (a retry: 200, counted once) and then once with a wrong key
/// (401, not counted).
fn start_firehose_pusher(port: u16, stop: Arc<std::sync::atomic::AtomicBool>) -> thread::JoinHandle<PushStats> {
    thread::spawn(move || {
        use std::sync::atomic::Ordering;
        let http = client();
        let url = format!("http://127.0.0.1:{port}/");
        let mut generator = Generator::new(0x5eed);
        let mut stats = PushStats::default();
        let started = Instant::now();
        let mut next_round = started + Duration::from_secs(10);
        let mut seq = 0u64;
        let mut first = true;
        while !stop.load(Ordering::Relaxed) {
            let tick = Instant::now();
            let play = tick >= next_round;
            if play {
                next_round += Duration::from_secs(60);
            }
            let end = (now_ms() / 1000) as u64;
            let lines: Vec<String> = generator
                .batch(FIREHOSE_BASE_RATE, play, end)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            for chunk in lines.chunks(FIREHOSE_BATCH) {
                seq += 1;
                let id = format!("stack-e2e-{seq:08}");
                let body = firehose_body(&id, chunk);
                let status = firehose_post(&http, &url, &id, FIREHOSE_KEY, &body);
                if status == 200 {
                    stats.applied_requests += 1;
                    stats.applied_records += chunk.len() as u64;
                } else {
                    stats.unexpected.push(format!("{id}: {status}"));
                }
                if first {
                    first = false;
                    for (key, want) in [(FIREHOSE_KEY, 200), ("wrong-key", 401)] {
                        let status = firehose_post(&http, &url, &id, key, &body);
                        if status != want {
                            stats.unexpected.push(format!("{id} again with key {key}: {status}, want {want}"));
                        }
                    }
                }
            }
            thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
        }
        stats
    })
}

/// A gzip request body per the Firehose HTTP endpoint delivery specification.
fn firehose_body(id: &str, lines: &[String]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let records: Vec<Value> = lines.iter().map(|l| serde_json::json!({"data": b64.encode(l.as_bytes())})).collect();
    let doc = serde_json::json!({"requestId": id, "timestamp": now_ms(), "records": records});
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(doc.to_string().as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// POSTs a request with Firehose's headers; the status (0 when it failed).
fn firehose_post(http: &reqwest::blocking::Client, url: &str, id: &str, key: &str, body: &[u8]) -> u16 {
    http.post(url)
        .header("X-Amz-Firehose-Protocol-Version", "1.0")
        .header("X-Amz-Firehose-Request-Id", id)
        .header("X-Amz-Firehose-Access-Key", key)
        .header("X-Amz-Firehose-Source-Arn", "arn:aws:firehose:us-east-1:123456789012:deliverystream/flow-logs")
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(body.to_vec())
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// S3: two replicas on one queue, one cluster
// ---------------------------------------------------------------------------

/// Alerts of the S3 cluster whose subject the one round of scenarios makes
/// unique (one interface, one port, one scanner), and the value each must
/// show: the round's records of it, whole, though its lines were split over
/// [`s3_phase::SCENARIO_PARTS`] objects read by either replica (the port scan:
/// four parts of 10 distinct ports each, summed over the replicas). Each must
/// fire exactly once. VpcFlowTooManyRejects and VpcFlowForbiddenPortRejected
/// also catch the base traffic's internet noise and the port scan's rejects
/// on the ALB and the bastion, so they name more than one interface; they
/// must still fire once per interface (and port), never per replica.
const S3_ONE_SUBJECT: &[(&str, f64)] = &[
    ("VpcFlowIllegalSourceAccepted", 3.0),
    ("VpcFlowShortConnectionSurge", 150.0),
    ("VpcFlowNatBreach", 3.0),
    ("VpcFlowForbiddenPortAccepted", 1.0),
    ("VpcFlowLogSkipData", 1.0),
    ("VpcFlowPortScan", 40.0),
];

/// The labels that tell one alert from another, as Alertmanager sees them
/// (Prometheus adds `alertstate` to ALERTS, `last_over_time` keeps `__name__`).
fn alert_identity(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !["alertstate", "__name__"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

type AlertSets = BTreeMap<String, BTreeSet<BTreeMap<String, String>>>;
/// The values of the alerts firing now, by name.
type AlertValues = BTreeMap<String, Vec<f64>>;

/// Alerts by name, each as its identity ([`alert_identity`]).
fn by_name(sets: impl IntoIterator<Item = BTreeMap<String, String>>) -> AlertSets {
    let mut out = AlertSets::new();
    for labels in sets {
        let id = alert_identity(&labels);
        out.entry(id.get("alertname").cloned().unwrap_or_default()).or_default().insert(id);
    }
    out
}

/// The S3 cluster's alerts: every ALERTS series of the run in Prometheus,
/// every alert Alertmanager holds and those of them it does not inhibit,
/// and every alert notified to the webhook (repeated in later notifications
/// of its group: distinct label sets); and the values of those firing now,
/// by name.
fn s3_alert_views(
    prom: &Prom,
    am_port: u16,
    received: &Mutex<Vec<Received>>,
) -> Result<([AlertSets; 4], AlertValues), String> {
    let mut values = AlertValues::new();
    for a in prom.get("/api/v1/alerts", &[])["data"]["alerts"].as_array().into_iter().flatten() {
        if a["labels"]["cluster"] == S3_CLUSTER && a["state"] == "firing" {
            let name = a["labels"]["alertname"].as_str().unwrap_or_default().to_string();
            values.entry(name).or_default().push(a["value"].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN));
        }
    }
    let alerts_query = format!("last_over_time(ALERTS{{cluster=\"{S3_CLUSTER}\", alertstate=\"firing\"}}[30m])");
    let in_prometheus = by_name(prom.series(&alerts_query).map_err(|e| format!("{alerts_query}: {e}"))?);
    let doc = client()
        .get(format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
        .query(&[("filter", format!("cluster=\"{S3_CLUSTER}\""))])
        .send()
        .and_then(|r| r.text())
        .map_err(|e| format!("Alertmanager /api/v2/alerts: {e}"))?;
    let doc: Value = serde_json::from_str(&doc).map_err(|e| format!("Alertmanager /api/v2/alerts: {e}: {doc}"))?;
    let am: Vec<&Value> = doc.as_array().into_iter().flatten().collect();
    let at_alertmanager = by_name(am.iter().map(|a| string_map(&a["labels"])));
    let am_active = by_name(am.iter().filter(|a| a["status"]["state"] == "active").map(|a| string_map(&a["labels"])));
    let at_webhook = by_name(
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.labels.get("cluster").map(String::as_str) == Some(S3_CLUSTER))
            .map(|r| r.labels.clone())
            .collect::<Vec<_>>(),
    );
    Ok(([in_prometheus, at_alertmanager, am_active, at_webhook], values))
}

/// Every demo alert fired for `cluster="s3"` once per subject, not once per
/// replica: in Prometheus (ALERTS over the run, and every alert seen
/// firing), at Alertmanager (its API: the same alerts; those it does not
/// inhibit reached the webhook) and at the webhook; none carries `instance`.
/// An alert that starts firing just now may not have reached Alertmanager
/// yet, and a scenario's share read by the second replica may pass its
/// new-series hold a rule evaluation later than the first's: the views are
/// compared again for up to 75 s.
fn check_s3_alerts(
    prom: &Prom,
    am_port: u16,
    received: &Mutex<Vec<Received>>,
    seen_firing: &AlertSets,
    problems: &mut Vec<String>,
) {
    let checking = Instant::now();
    let (views, values, found) = loop {
        let (views, values) = match s3_alert_views(prom, am_port, received) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("s3: {e}"));
                return;
            }
        };
        let found = s3_alert_problems(&views, &values, seen_firing);
        if found.is_empty() || checking.elapsed() > Duration::from_secs(75) {
            break (views, values, found);
        }
        thread::sleep(Duration::from_secs(1));
    };
    println!("S3 alerts checked in {:?}", checking.elapsed());
    let [in_prometheus, at_alertmanager, am_active, at_webhook] = &views;
    println!(
        "S3 cluster ({REPLICAS} replicas): alerts per name in ALERTS / at Alertmanager (not inhibited) / at the webhook:"
    );
    let count = |m: &AlertSets, name: &str| m.get(name).map_or(0, BTreeSet::len);
    for name in DEMO_ALERTS {
        let subjects: Vec<String> = in_prometheus
            .get(*name)
            .into_iter()
            .flatten()
            .map(|l| {
                l.iter()
                    .filter(|(k, _)| ["interface_id", "srcaddr", "dstport", "action"].contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        println!(
            "  {name:<30} {} / {} ({}) / {}  {subjects:?} value {:?}",
            count(in_prometheus, name),
            count(at_alertmanager, name),
            count(am_active, name),
            count(at_webhook, name),
            values.get(*name)
        );
    }
    // How the replicas shared the round (each under the threshold alone when
    // both read parts of it; the alerts fire on the sum either way).
    for (what, query) in [
        (
            "SYN+FIN short connections",
            format!("sum by (instance) (vpc_flow_short_connections_total{{cluster=\"{S3_CLUSTER}\"}})"),
        ),
        (
            "port-scan distinct ports",
            format!("sum by (instance) (vpc_flow_top_port_scanners{{cluster=\"{S3_CLUSTER}\"}})"),
        ),
    ] {
        let body = prom.get("/api/v1/query", &[("query", &query)]);
        let shares: Vec<String> = body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!("{} {}", r["metric"]["instance"].as_str().unwrap_or("?"), r["value"][1].as_str().unwrap_or("?"))
            })
            .collect();
        println!("  {what} per replica: {shares:?}");
    }
    problems.extend(found);
}

/// What is wrong with the S3 cluster's alert views (see [`check_s3_alerts`]).
fn s3_alert_problems(views: &[AlertSets; 4], values: &AlertValues, seen_firing: &AlertSets) -> Vec<String> {
    let [in_prometheus, at_alertmanager, am_active, at_webhook] = views;
    let mut problems = Vec::new();
    let empty = BTreeSet::new();
    for name in DEMO_ALERTS {
        let get = |m: &'_ AlertSets| m.get(*name).cloned().unwrap_or_default();
        let fired = in_prometheus.get(*name).unwrap_or(&empty);
        if fired.is_empty() {
            problems.push(format!("s3: {name} never fired for cluster=\"{S3_CLUSTER}\" in Prometheus"));
        }
        if let Some((_, want)) = S3_ONE_SUBJECT.iter().find(|(n, _)| n == name) {
            if fired.len() != 1 {
                problems.push(format!("s3: {name} fired {} times in ALERTS, want once: {fired:?}", fired.len()));
            }
            if values.get(*name) != Some(&vec![*want]) {
                problems.push(format!("s3: {name} firing with value {:?}, want [{want}]", values.get(*name)));
            }
        }
        let seen: BTreeSet<BTreeMap<String, String>> =
            seen_firing.get(*name).map(|s| s.iter().map(alert_identity).collect()).unwrap_or_default();
        if !seen.is_subset(fired) {
            problems.push(format!("s3: {name}: seen firing {seen:?}, not all in ALERTS {fired:?}"));
        }
        if &get(at_alertmanager) != fired {
            problems.push(format!("s3: {name}: ALERTS {fired:?} but Alertmanager holds {:?}", get(at_alertmanager)));
        }
        if get(at_webhook) != get(am_active) {
            problems.push(format!(
                "s3: {name}: Alertmanager notifies {:?} but the webhook got {:?}",
                get(am_active),
                get(at_webhook)
            ));
        }
    }
    for (where_, alerts) in [("ALERTS", in_prometheus), ("Alertmanager", at_alertmanager), ("the webhook", at_webhook)]
    {
        for labels in alerts.values().flatten() {
            if labels.contains_key("instance") {
                problems.push(format!("s3: a per-replica alert (with instance) in {where_}: {labels:?}"));
            }
        }
    }
    problems
}

/// No query of the security dashboard answers per replica: with the two S3
/// replicas scraped, a series with an `instance` label would be one
/// replica's share of a cluster's traffic.
fn check_security_panels_not_per_replica(prom: &Prom, problems: &mut Vec<String>) {
    let Some(dash) = dashboards().into_iter().find(|d| d.file == "vpc-flow-security.json") else {
        problems.push("no dashboards/vpc-flow-security.json".to_string());
        return;
    };
    let vars = resolve_variables(prom, &dash, problems);
    let mut checked = 0;
    for panel in panels(&dash.json) {
        let title = panel["title"].as_str().unwrap_or_default();
        for t in panel["targets"].as_array().into_iter().flatten() {
            let query = substitute(t["expr"].as_str().unwrap_or_default(), &vars);
            checked += 1;
            match prom.series(&query) {
                Ok(series) => {
                    if let Some(labels) = series.iter().find(|l| l.contains_key("instance")) {
                        problems.push(format!("{}: panel {title:?} answers per replica: {labels:?}", dash.file));
                    }
                }
                Err(e) => problems.push(format!("{}: panel {title:?}: {query}: {e}", dash.file)),
            }
        }
    }
    println!("{checked} security panel queries: no series per replica (none with an instance label)");
}

/// Waits (60 s) until the replicas have counted every uploaded object, then
/// checks that each took part and that the sums over the replicas, from
/// their own `/metrics` and from Prometheus, equal what was uploaded.
fn check_s3_counts(prom: &Prom, s3: &S3Phase, up: &s3_phase::Uploaded, problems: &mut Vec<String>) {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let totals = loop {
        let totals = s3.totals(&http);
        let ok: u64 = totals.iter().map(|t| t.ok).sum();
        let records: u64 = totals.iter().map(|t| t.records).sum();
        if (ok >= up.objects && records >= up.lines) || Instant::now() > deadline {
            break totals;
        }
        thread::sleep(Duration::from_millis(500));
    };
    let sum = |f: fn(&s3_phase::ReplicaTotals) -> u64| totals.iter().map(f).sum::<u64>();
    println!(
        "S3: {} objects uploaded ({} with the round of scenarios), {} lines with their headers; \
         {} PutObject errors",
        up.objects,
        up.scenario_objects,
        up.lines,
        up.errors.len()
    );
    for t in &totals {
        println!(
            "  {}: {} objects ok, {} duplicate, {} error, {} records, {} messages received",
            t.name, t.ok, t.duplicate, t.error, t.records, t.received
        );
    }
    if !up.errors.is_empty() {
        problems.push(format!("s3: PutObject failed: {:?}", up.errors));
    }
    for t in &totals {
        if !t.scraped || t.ok == 0 {
            problems.push(format!("s3: replica {} took no part: {t:?}", t.name));
        }
    }
    for (what, got, want) in [
        ("objects counted (ok)", sum(|t| t.ok), up.objects),
        ("records (vpc_flow_exporter_s3_records_total)", sum(|t| t.records), up.lines),
        ("lines (vpc_flow_exporter_lines_total)", sum(|t| t.lines), up.lines),
        ("object errors", sum(|t| t.error), 0),
        ("objects skipped", sum(|t| t.skipped), 0),
    ] {
        if got != want {
            problems.push(format!("s3: the replicas' {what} sum to {got}, want {want}: {totals:?}"));
        }
    }
    // Prometheus sums the replicas to the same, once it has scraped both.
    let query = format!("sum(vpc_flow_exporter_s3_records_total{{cluster=\"{S3_CLUSTER}\"}})");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = prom.value(&query);
        if got == Some(up.lines as f64) {
            println!("  Prometheus: {query} = {}", up.lines);
            break;
        }
        if Instant::now() > deadline {
            problems.push(format!("s3: Prometheus {query} = {got:?}, want {}", up.lines));
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[test]
fn demo_stack_fires_alerts_and_feeds_dashboards() {
    let Some([prometheus_bin, alertmanager_bin, moto_bin]) = require_all([&PROMETHEUS, &ALERTMANAGER, &MOTO_SERVER])
    else {
        return;
    };
    let exporter_bin = PathBuf::from(BIN);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let http = client();
    let started = Instant::now();

    // Webhook, then Alertmanager with the shipped routing (deploy/alertmanager.yml)
    // whose receivers all post to it.
    let (webhook_port, received) = start_webhook();
    let (mut alertmanager, am_port) =
        start_alertmanager(&alertmanager_bin, dir, &test_alertmanager_config(webhook_port));

    // The exporter in demo mode, with a configuration file (the demo's own
    // detection settings) so that the reload metrics are served too.
    let exporter_port = free_port();
    fs::write(dir.join("demo-config.yml"), DEMO_CONFIG).unwrap();
    let mut exporter = Proc::start(
        "exporter",
        &exporter_bin,
        &[
            "demo".to_string(),
            "--config.file".to_string(),
            dir.join("demo-config.yml").display().to_string(),
            "--web.listen-address".to_string(),
            format!("127.0.0.1:{exporter_port}"),
        ],
        dir,
    );

    // The Firehose phase, in the same stack: a live exporter with only a
    // firehose section, fed the demo's traffic by a pusher.
    let (mut firehose, firehose_metrics_port, firehose_port) = start_firehose_exporter(dir);

    // The S3 phase: moto_server (bucket notifying a queue, claim table) and
    // two replicas of the exporter on the queue, with the demo's detections.
    let s3_setup = Instant::now();
    let mut s3 = S3Phase::start(&moto_bin, dir, DEMO_CONFIG);
    let s3_setup = s3_setup.elapsed();

    // Prometheus with the shipped rules and the demo's threshold overrides,
    // 1 s scrapes and evaluations (the shipped groups keep their 1m interval);
    // the Firehose exporter's series carry cluster="firehose", the two S3
    // replicas' (two targets of the one job) cluster="s3".
    let overrides = dir.join("demo-overrides.yml");
    fs::write(&overrides, DEMO_OVERRIDES).unwrap();
    let mut targets = vec![(exporter_port, None), (firehose_metrics_port, Some(FIREHOSE_CLUSTER))];
    targets.extend(s3.replicas.iter().map(|(_, port)| (*port, Some(S3_CLUSTER))));
    let (mut prometheus, prom_port) =
        start_prometheus_targets(&prometheus_bin, dir, &targets, Some(am_port), &[overrides], "1s");
    let rules = repo().join(RULES_GLOB);

    wait_ready(&http, &mut alertmanager, &format!("http://127.0.0.1:{am_port}/-/ready"));
    wait_ready(&http, &mut exporter, &format!("http://127.0.0.1:{exporter_port}/metrics"));
    wait_ready(&http, &mut firehose, &format!("http://127.0.0.1:{firehose_metrics_port}/-/ready"));
    for (replica, port) in s3.replicas.iter_mut() {
        // Ready once the queue answered.
        wait_ready(&http, replica, &format!("http://127.0.0.1:{port}/-/ready"));
    }
    wait_ready(&http, &mut prometheus, &format!("http://127.0.0.1:{prom_port}/-/ready"));
    let stop_pusher = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = start_firehose_pusher(firehose_port, stop_pusher.clone());
    let stop_uploader = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let uploader = s3_phase::start_uploader(s3.moto.endpoint.clone(), stop_uploader.clone());
    let prom = Prom { http: http.clone(), base: format!("http://127.0.0.1:{prom_port}") };
    let logs = |procs: &[&Proc]| procs.iter().map(|p| p.log_tail()).collect::<Vec<_>>().join("\n");

    // The shipped rules, as Prometheus loaded them: name -> (group, severity).
    let rules_doc = prom.get("/api/v1/rules", &[]);
    let mut alert_rules: BTreeMap<String, (String, String)> = BTreeMap::new();
    for g in rules_doc["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            if r["type"] == "alerting" {
                alert_rules.insert(
                    r["name"].as_str().unwrap().to_string(),
                    (
                        g["name"].as_str().unwrap().to_string(),
                        r["labels"]["severity"].as_str().unwrap_or_default().to_string(),
                    ),
                );
            }
        }
    }
    assert!(!alert_rules.is_empty(), "Prometheus loaded no alerting rule from {}", rules.display());
    let health_alerts: BTreeSet<String> =
        alert_rules.iter().filter(|(_, (g, _))| g == "vpc-flow-exporter").map(|(n, _)| n.clone()).collect();
    for (name, (group, _)) in &alert_rules {
        if group == "vpc-flow-security" {
            assert!(
                DEMO_ALERTS.contains(&name.as_str()) || NOT_BY_DEMO.iter().any(|(n, _)| n == name),
                "security alert {name} is neither expected from the demo nor listed in NOT_BY_DEMO"
            );
        }
    }
    for name in DEMO_ALERTS {
        assert!(alert_rules.contains_key(*name), "expected alert {name} is not in the shipped rules");
    }

    // Before the first scrape, `up` does not exist yet and VpcFlowExporterDown's
    // absent() branch is pending: it may fire only after 5 minutes, so that is
    // expected. The health alerts are watched from the first evaluation after
    // the first successful scrape on.
    let scraped = Instant::now() + Duration::from_secs(60);
    while prom.query_count(&format!("up{{job=\"{JOB}\"}} == 1")) != Ok(2 + REPLICAS) {
        assert!(
            Instant::now() < scraped,
            "Prometheus never scraped every exporter\n{}\n{}",
            logs(&[&exporter, &firehose, &prometheus]),
            s3.log_tails()
        );
        thread::sleep(Duration::from_millis(200));
    }
    // An S3 replica that has received no message yet holds
    // VpcFlowExporterS3NotReceiving's condition (no increase in 30 minutes):
    // watched once each has received messages since Prometheus first scraped it.
    let s3_waited = Instant::now();
    let receiving = s3_waited + Duration::from_secs(90);
    let receiving_query = format!(
        "sum by (instance) (increase(vpc_flow_exporter_sqs_messages_received_total{{cluster=\"{S3_CLUSTER}\"}}[30m])) > 0"
    );
    while prom.query_count(&receiving_query) != Ok(REPLICAS) {
        assert!(
            Instant::now() < receiving,
            "the S3 replicas did not all receive messages within 90 s: {:?}\n{}",
            s3.totals(&http),
            s3.log_tails()
        );
        thread::sleep(Duration::from_millis(500));
    }
    // What the S3 phase adds to the run: its set-up, this wait, its checks.
    let mut s3_added = s3_setup + s3_waited.elapsed();
    thread::sleep(Duration::from_secs(3));
    let watch_from = started.elapsed();

    // Wait for every demo alert at the webhook, watching the health alerts.
    let mut first_seen: BTreeMap<String, Duration> = BTreeMap::new();
    let mut firehose_seen: BTreeMap<String, Duration> = BTreeMap::new();
    let mut s3_seen: BTreeMap<String, Duration> = BTreeMap::new();
    // Every firing alert of the S3 cluster as Prometheus showed it, by name.
    let mut s3_firing: BTreeMap<String, BTreeSet<BTreeMap<String, String>>> = BTreeMap::new();
    let mut health_seen: Vec<String> = Vec::new();
    let mut failed_scrapes: Vec<String> = Vec::new();
    loop {
        for (name, state, labels) in prom.active_alerts() {
            if state == "firing" && labels.get("cluster").map(String::as_str) == Some(S3_CLUSTER) {
                s3_firing.entry(name.clone()).or_default().insert(labels.clone());
            }
            if !health_alerts.contains(&name) {
                continue;
            }
            let seen = format!("{name} {state} {labels:?} at {:?}", started.elapsed());
            // A scrape that times out on a loaded machine sets up to 0 and makes
            // VpcFlowExporterDown pending, as it should: noted, not a failure,
            // unless it fires. Any other active health alert is a failure.
            if name == "VpcFlowExporterDown" && state == "pending" && labels.contains_key("instance") {
                failed_scrapes.push(seen);
            } else {
                health_seen.push(seen);
            }
        }
        for r in received.lock().unwrap().iter() {
            let name = r.labels.get("alertname").cloned().unwrap_or_default();
            let seen = match r.labels.get("cluster").map(String::as_str) {
                None => &mut first_seen,
                Some(FIREHOSE_CLUSTER) => &mut firehose_seen,
                Some(S3_CLUSTER) => &mut s3_seen,
                Some(_) => continue,
            };
            seen.entry(name).or_insert_with(|| started.elapsed());
        }
        let missing: Vec<String> = DEMO_ALERTS
            .iter()
            .filter(|n| !first_seen.contains_key(**n))
            .map(|n| format!("{n} (demo)"))
            .chain(DEMO_ALERTS.iter().filter(|n| !firehose_seen.contains_key(**n)).map(|n| format!("{n} (firehose)")))
            .chain(DEMO_ALERTS.iter().filter(|n| !s3_seen.contains_key(**n)).map(|n| format!("{n} (s3)")))
            .collect();
        if missing.is_empty() {
            break;
        }
        if let Some(status) = exporter.exited() {
            panic!("the exporter exited ({status})\n{}", logs(&[&exporter]));
        }
        if let Some(status) = firehose.exited() {
            panic!("the Firehose exporter exited ({status})\n{}", logs(&[&firehose]));
        }
        for (replica, _) in s3.replicas.iter_mut() {
            if let Some(status) = replica.exited() {
                panic!("the S3 replica {} exited ({status})\n{}", replica.name, replica.log_tail());
            }
        }
        if started.elapsed() > ALERT_DEADLINE {
            panic!(
                "after {:?}, these alerts never reached the webhook: {missing:?}\nreceived: {:?} (firehose: {:?}, s3: {:?})\nactive in Prometheus: {:#?}\nS3 replicas: {:?}\n{}\n{}",
                started.elapsed(),
                first_seen,
                firehose_seen,
                s3_seen,
                prom.active_alerts(),
                s3.totals(&http),
                logs(&[&exporter, &firehose, &prometheus, &alertmanager]),
                s3.log_tails()
            );
        }
        thread::sleep(Duration::from_secs(1));
    }
    println!(
        "every demo alert reached the webhook after {:?}; no health alert active (pending or firing) from {watch_from:?} on:",
        started.elapsed()
    );
    if !failed_scrapes.is_empty() {
        println!("note: failed scrapes made VpcFlowExporterDown pending (not firing): {failed_scrapes:#?}");
    }
    for (name, at) in &firehose_seen {
        println!(
            "  {name:<30} after {:>6.1} s  (cluster=\"{FIREHOSE_CLUSTER}\", through the Firehose receiver)",
            at.as_secs_f64()
        );
    }
    for (name, at) in &s3_seen {
        println!(
            "  {name:<30} after {:>6.1} s  (cluster=\"{S3_CLUSTER}\", {REPLICAS} replicas reading S3 objects)",
            at.as_secs_f64()
        );
    }
    for (name, at) in &first_seen {
        let got = received.lock().unwrap();
        let first = got.iter().find(|r| r.labels.get("alertname") == Some(name) && !r.labels.contains_key("cluster"));
        let (receiver, group) =
            first.map(|r| (r.receiver.clone(), format!("{:?}", r.group_labels))).unwrap_or_default();
        println!("  {name:<30} after {:>6.1} s  receiver {receiver:<6} group {group}", at.as_secs_f64());
    }

    // What reached the webhook: labels and annotations of each demo alert.
    let runbook = fs::read_to_string(repo().join("docs/runbook.md")).expect("docs/runbook.md");
    let mut problems = Vec::new();
    let got = received.lock().unwrap().clone();
    for name in DEMO_ALERTS {
        let (_, severity) = &alert_rules[*name];
        let subject = subject_label(name);
        for r in got.iter().filter(|r| r.labels.get("alertname").map(String::as_str) == Some(*name)) {
            let cluster = r.labels.get("cluster").cloned();
            if cluster.as_deref().is_some_and(|c| c != FIREHOSE_CLUSTER && c != S3_CLUSTER) {
                problems.push(format!("{name}: unexpected cluster label {cluster:?}"));
            }
            if r.status != "firing" {
                problems.push(format!("{name}: status {}", r.status));
            }
            if r.labels.get("severity") != Some(severity)
                || !["critical", "warning", "info"].contains(&severity.as_str())
            {
                problems.push(format!("{name}: severity {:?}, rule says {severity}", r.labels.get("severity")));
            }
            let Some(value) = r.labels.get(subject).filter(|v| !v.is_empty()) else {
                problems.push(format!("{name}: no {subject} label: {:?}", r.labels));
                continue;
            };
            for key in ["summary", "description", "runbook_url"] {
                let text = r.annotations.get(key).map(String::as_str).unwrap_or_default();
                if text.is_empty() || text.contains("<no value>") {
                    problems.push(format!("{name}: annotation {key} is {text:?}"));
                }
            }
            // Routed by severity, grouped by alert name (one message per sweep).
            let want = RECEIVER_BY_SEVERITY.iter().find(|(s, _)| s == severity).map(|(_, r)| *r).unwrap_or("?");
            if r.receiver != want {
                problems.push(format!("{name}: severity {severity} went to receiver {:?}, want {want:?}", r.receiver));
            }
            let mut want_group = BTreeMap::from([("alertname".to_string(), name.to_string())]);
            if let Some(c) = &cluster {
                want_group.insert("cluster".to_string(), c.clone());
            }
            if r.group_labels != want_group {
                problems.push(format!("{name}: notification grouped by {:?}, want {want_group:?}", r.group_labels));
            }
            let description = r.annotations.get("description").cloned().unwrap_or_default();
            if !description.contains(value.as_str()) {
                problems.push(format!("{name}: description does not name {subject} {value}: {description:?}"));
            }
            let url = r.annotations.get("runbook_url").cloned().unwrap_or_default();
            let anchor = url.rsplit_once('#').map(|(_, a)| a.to_string()).unwrap_or_default();
            if !url.contains("docs/runbook.md#")
                || !runbook
                    .lines()
                    .any(|l| l.starts_with('#') && l.trim_start_matches('#').trim().to_lowercase() == anchor)
            {
                problems.push(format!("{name}: runbook_url {url:?} has no matching heading in docs/runbook.md"));
            }
        }
    }
    for r in &got {
        let name = r.labels.get("alertname").cloned().unwrap_or_default();
        if health_alerts.contains(&name) {
            problems.push(format!("health alert {name} reached the webhook: {:?}", r.labels));
        }
    }
    if !health_seen.is_empty() {
        problems.push(format!("exporter-health alerts were active during the demo: {health_seen:#?}"));
    }
    for (name, state, labels) in prom.active_alerts() {
        if health_alerts.contains(&name)
            && !(name == "VpcFlowExporterDown" && state == "pending" && labels.contains_key("instance"))
        {
            problems.push(format!("health alert {name} {state} at the end: {labels:?}"));
        }
    }
    let s3_checks = Instant::now();
    check_s3_alerts(&prom, am_port, &received, &s3_firing, &mut problems);
    s3_added += s3_checks.elapsed();

    // Every rule evaluates cleanly.
    let rules_doc = prom.get("/api/v1/rules", &[]);
    for g in rules_doc["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            if r["health"] != "ok" {
                problems.push(format!("rule {} is {}: {}", r["name"], r["health"], r["lastError"]));
            }
        }
    }

    // Dashboards: variables resolve; every panel query returns data.
    let mut cloudwatch_only = Vec::new();
    let mut history_only = Vec::new();
    let mut checked = 0;
    let mut firehose_checked = 0;
    let mut s3_checked = 0;
    // The S3 panels are checked with the S3 replicas selected (`$instance`),
    // as a user looking at them would.
    let s3_instances = s3.replicas.iter().map(|(_, port)| format!("127.0.0.1:{port}")).collect::<Vec<_>>().join("|");
    for dash in dashboards() {
        println!("dashboard {} ({})", dash.file, dash.json["uid"]);
        let vars = resolve_variables(&prom, &dash, &mut problems);
        let mut s3_vars = vars.clone();
        s3_vars.insert("instance".to_string(), s3_instances.clone());
        for panel in panels(&dash.json) {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or_default();
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{}: panel {title:?} has no query", dash.file));
            }
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or_default();
                let needs_cloudwatch = expr.contains("vpc_flow_exporter_cloudwatch_");
                let needs_s3 = expr.contains("vpc_flow_exporter_s3_") || expr.contains("vpc_flow_exporter_sqs_");
                let query = substitute(expr, if needs_s3 { &s3_vars } else { &vars });
                // The seasonal baselines need a day of history: empty in a fresh stack.
                let needs_history = expr.contains("_baseline");
                checked += 1;
                let mut result = prom.query_count(&query);
                // Alerts resolve between the demo's attack rounds: a panel of
                // firing alerts is right to be empty at a quiet moment, so it is
                // checked over the run (every demo alert has fired by now).
                if expr.contains("ALERTS") && matches!(result, Ok(0)) {
                    result = prom.query_count(&format!("last_over_time(({query})[15m:5s])"));
                }
                match result {
                    Err(e) => problems.push(format!("{}: panel {title:?} [{}]: {query}: {e}", dash.file, t["refId"])),
                    Ok(0) if needs_cloudwatch => {
                        cloudwatch_only.push(format!("{}: {title} [{}]", dash.file, t["refId"]));
                    }
                    Ok(0) if needs_history => {
                        history_only.push(format!("{}: {title} [{}]", dash.file, t["refId"]));
                    }
                    Ok(0) => problems
                        .push(format!("{}: panel {title:?} [{}] returns no data: {query}", dash.file, t["refId"])),
                    Ok(n) => {
                        if expr.contains("vpc_flow_exporter_firehose_") {
                            firehose_checked += 1;
                        }
                        if needs_s3 {
                            s3_checked += 1;
                        }
                        println!("  {:<4} series  {title} [{}]", n, t["refId"].as_str().unwrap_or_default())
                    }
                }
            }
        }
    }
    println!(
        "{checked} panel queries checked ({firehose_checked} Firehose and {s3_checked} S3 queries with data); valid \
         but without data until the exporter polls CloudWatch (see cloudwatch_stack_feeds_health_panels):"
    );
    if firehose_checked == 0 {
        problems.push("no Firehose panel query was checked: the health dashboard has no Firehose row".to_string());
    }
    if s3_checked == 0 {
        problems.push("no S3 panel query was checked: the health dashboard has no S3 row".to_string());
    }
    let s3_checks = Instant::now();
    check_security_panels_not_per_replica(&prom, &mut problems);
    s3_added += s3_checks.elapsed();

    // The Firehose receiver counted every record it answered 200 for, once:
    // the retried request id and the wrong key added nothing.
    stop_pusher.store(true, std::sync::atomic::Ordering::Relaxed);
    let pushed = pusher.join().expect("Firehose pusher");
    let text = http
        .get(format!("http://127.0.0.1:{firehose_metrics_port}/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("Firehose exporter /metrics");
    let value = |series: &str| common::expo::sample(&text, series).unwrap_or(-1.0);
    println!(
        "Firehose: {} requests, {} records applied; unexpected answers: {:?}",
        pushed.applied_requests, pushed.applied_records, pushed.unexpected
    );
    if !pushed.unexpected.is_empty() {
        problems.push(format!("Firehose answers not as expected: {:?}", pushed.unexpected));
    }
    for (series, want) in [
        ("vpc_flow_exporter_firehose_records_total{kind=\"lines\"}", pushed.applied_records),
        ("vpc_flow_exporter_firehose_lines_total", pushed.applied_records),
        ("vpc_flow_exporter_firehose_requests_total{code=\"200\"}", pushed.applied_requests + 1),
        ("vpc_flow_exporter_firehose_duplicate_requests_total", 1),
        ("vpc_flow_exporter_firehose_auth_failures_total", 1),
    ] {
        if value(series) != want as f64 {
            problems.push(format!("Firehose exporter: {series} = {}, want {want}", value(series)));
        }
    }
    // The S3 replicas counted every uploaded object once between them.
    let s3_checks = Instant::now();
    stop_uploader.store(true, std::sync::atomic::Ordering::Relaxed);
    let uploaded = uploader.join().expect("S3 uploader");
    check_s3_counts(&prom, &s3, &uploaded, &mut problems);
    s3_added += s3_checks.elapsed();
    println!(
        "S3 phase: set-up (moto_server, bucket, queue, table, replicas) {s3_setup:?}; with the wait for both \
         replicas to receive and the S3 checks, {s3_added:?} of the run"
    );

    for p in &cloudwatch_only {
        println!("  {p}");
    }
    println!("valid but without data until a day of history exists (the seasonal baselines):");
    for p in &history_only {
        println!("  {p}");
    }
    for (name, why) in NOT_BY_DEMO {
        println!("not expected from the demo: {name}: {why}");
    }

    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n{}\n{}",
        problems.len(),
        problems.join("\n  "),
        logs(&[&exporter, &firehose, &prometheus, &alertmanager]),
        s3.log_tails()
    );
}

#[test]
fn substitute_replaces_grafana_variables() {
    let vars: BTreeMap<String, String> =
        [("job".to_string(), ".+".to_string()), ("interface".to_string(), ".*".to_string())].into();
    assert_eq!(
        substitute(r#"sum(rate(x{job=~"$job", interface_id=~"${interface:regex}"}[$__rate_interval]))"#, &vars),
        r#"sum(rate(x{job=~".+", interface_id=~".*"}[1m]))"#
    );
    assert_eq!(substitute("increase(y[$__range]) / $__range_s", &vars), "increase(y[5m]) / 300");
    assert_eq!(substitute("$unknown stays", &vars), "$unknown stays");
}

// ---------------------------------------------------------------------------
// Second phase: the exporter polling CloudWatch Logs (moto_server)
// ---------------------------------------------------------------------------

/// One CloudWatch Logs API call to moto (JSON protocol; moto checks no signature).
fn logs_call(http: &reqwest::blocking::Client, endpoint: &str, action: &str, body: Value) {
    let resp = http
        .post(endpoint)
        .header("X-Amz-Target", format!("Logs_20140328.{action}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .unwrap_or_else(|e| panic!("moto {action}: {e}"));
    let status = resp.status();
    assert!(status.is_success(), "moto {action}: {status}: {}", resp.text().unwrap_or_default());
}

/// A batch of default-format (version 2) flow-log lines ending `ago_s` seconds ago.
fn flow_batch(n: usize, ago_s: i64, seq: usize) -> Vec<Value> {
    let ts = now_ms() - ago_s * 1000;
    (0..n)
        .map(|i| {
            let end = ts / 1000;
            let action = if i % 4 == 0 { "REJECT" } else { "ACCEPT" };
            serde_json::json!({
                "timestamp": ts,
                "message": format!(
                    "2 123456789012 eni-0cafe000000000001 10.0.1.{} 10.0.2.{} {} 443 6 {} {} {} {end} {action} OK",
                    (seq + i) % 200 + 1, i % 50 + 1, 40000 + i, 5 + i % 7, 600 + 13 * i, end - 30
                ),
            })
        })
        .collect()
}

#[test]
fn cloudwatch_stack_feeds_health_panels() {
    let Some([prometheus_bin, moto_bin]) = require_all([&PROMETHEUS, &MOTO_SERVER]) else { return };
    let exporter_bin = PathBuf::from(BIN);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let http = client();

    // moto_server with one log group and stream of flow-log events.
    let moto = MotoServer::start(&moto_bin);
    let endpoint = moto.endpoint.clone();
    let group = "/vpc/flow-logs";
    let stream = "eni-0cafe000000000001";
    logs_call(&http, &endpoint, "CreateLogGroup", serde_json::json!({"logGroupName": group}));
    logs_call(&http, &endpoint, "CreateLogStream", serde_json::json!({"logGroupName": group, "logStreamName": stream}));
    // Some history (ingested now, 90 s late: the ingestion-delay histogram).
    logs_call(
        &http,
        &endpoint,
        "PutLogEvents",
        serde_json::json!({"logGroupName": group, "logStreamName": stream, "logEvents": flow_batch(200, 90, 0)}),
    );

    // The exporter polling it every second.
    let exporter_port = free_port();
    fs::write(
        dir.join("config.yml"),
        format!(
            "cloudwatch:\n  region: us-east-1\n  endpoint_url: {endpoint}\n  poll_interval: 1s\n  lookback: 5m\n  \
             start_from: 10m\n  max_requests_per_second: 20\n  log_groups:\n    - name: {group}\n"
        ),
    )
    .unwrap();
    let mut exporter = start_live_exporter(&exporter_bin, dir, exporter_port);
    let (mut prometheus, prom_port) = start_prometheus(&prometheus_bin, dir, exporter_port, None);
    wait_ready(&http, &mut exporter, &format!("http://127.0.0.1:{exporter_port}/-/ready"));
    wait_ready(&http, &mut prometheus, &format!("http://127.0.0.1:{prom_port}/-/ready"));
    let prom = Prom { http: http.clone(), base: format!("http://127.0.0.1:{prom_port}") };
    let logs = |procs: &[&Proc]| procs.iter().map(|p| p.log_tail()).collect::<Vec<_>>().join("\n");

    // Keep events flowing while the CloudWatch panels are checked; retry until
    // every one has data (rates need a few scrapes) or the deadline passes.
    let health =
        dashboards().into_iter().find(|d| d.file == "vpc-flow-exporter-health.json").expect("health dashboard");
    let started = Instant::now();
    let mut seq = 200;
    let mut problems: Vec<String>;
    loop {
        logs_call(
            &http,
            &endpoint,
            "PutLogEvents",
            serde_json::json!({"logGroupName": group, "logStreamName": stream, "logEvents": flow_batch(50, 20, seq)}),
        );
        seq += 50;
        thread::sleep(Duration::from_secs(2));
        problems = Vec::new();
        let mut checked = Vec::new();
        let vars = resolve_variables(&prom, &health, &mut problems);
        for panel in panels(&health.json) {
            let title = panel["title"].as_str().unwrap_or_default();
            for t in panel["targets"].as_array().cloned().unwrap_or_default() {
                let expr = t["expr"].as_str().unwrap_or_default();
                if !expr.contains("vpc_flow_exporter_cloudwatch_") {
                    continue;
                }
                let query = substitute(expr, &vars);
                match prom.query_count(&query) {
                    Ok(n) if n > 0 => {
                        checked.push(format!("  {n:<4} series  {title} [{}]", t["refId"].as_str().unwrap_or_default()))
                    }
                    Ok(_) => problems.push(format!("panel {title:?} [{}] returns no data: {query}", t["refId"])),
                    Err(e) => problems.push(format!("panel {title:?} [{}]: {query}: {e}", t["refId"])),
                }
            }
        }
        if problems.is_empty() {
            println!("every CloudWatch panel query has data after {:?}:", started.elapsed());
            for c in &checked {
                println!("{c}");
            }
            break;
        }
        if let Some(status) = exporter.exited() {
            panic!("the exporter exited ({status})\n{}", logs(&[&exporter, &moto.proc]));
        }
        if started.elapsed() > Duration::from_secs(90) {
            panic!(
                "after {:?}, {} CloudWatch panel query problem(s):\n  {}\n{}",
                started.elapsed(),
                problems.len(),
                problems.join("\n  "),
                logs(&[&exporter, &prometheus, &moto.proc])
            );
        }
    }

    // A healthy poller raises no health alert, not even pending.
    let mut active = Vec::new();
    for g in prom.get("/api/v1/alerts", &[])["data"]["alerts"].as_array().into_iter().flatten() {
        let name = g["labels"]["alertname"].as_str().unwrap_or_default();
        if name.starts_with("VpcFlowExporter") {
            active.push(format!("{name} {} {}", g["state"], g["labels"]));
        }
    }
    assert!(active.is_empty(), "health alerts active while polling moto: {active:#?}\n{}", logs(&[&exporter]));
}

/// The AWS configuration the compose stack mounts by default
/// (deploy/docker-compose.aws.yml) is one the exporter accepts.
#[test]
fn compose_example_config_is_valid() {
    let out = Command::new(BIN)
        .arg("--config.file")
        .arg(repo().join("deploy/exporter/config.example.yml"))
        .arg("--config.check")
        .output()
        .expect("run the exporter");
    assert!(
        out.status.success(),
        "deploy/exporter/config.example.yml is rejected: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A health alert proven firing against the real Prometheus: the demo with
/// limits.max_interfaces below its three dozen interfaces folds records into
/// interface_id="other", and VpcFlowExporterInterfaceCapReached (no `for`) fires.
#[test]
fn interface_cap_alert_fires_against_real_prometheus() {
    let Some(prometheus_bin) = require(&PROMETHEUS) else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let http = client();
    fs::write(dir.join("config.yml"), "limits:\n  max_interfaces: 10\n").unwrap();
    let exporter_port = free_port();
    let mut exporter = Proc::start(
        "exporter",
        Path::new(BIN),
        &[
            "demo".to_string(),
            "--config.file".to_string(),
            dir.join("config.yml").display().to_string(),
            "--web.listen-address".to_string(),
            format!("127.0.0.1:{exporter_port}"),
        ],
        dir,
    );
    let (mut prometheus, prom_port) = start_prometheus(&prometheus_bin, dir, exporter_port, None);
    wait_ready(&http, &mut exporter, &format!("http://127.0.0.1:{exporter_port}/metrics"));
    wait_ready(&http, &mut prometheus, &format!("http://127.0.0.1:{prom_port}/-/ready"));
    let prom = Prom { http, base: format!("http://127.0.0.1:{prom_port}") };
    let started = Instant::now();
    loop {
        let body = prom.get("/api/v1/alerts", &[]);
        let firing = body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == "VpcFlowExporterInterfaceCapReached" && a["state"] == "firing");
        if let Some(alert) = firing {
            assert_eq!(alert["labels"]["severity"], "warning");
            assert_eq!(alert["labels"]["job"], JOB);
            let description = alert["annotations"]["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("127.0.0.1:{exporter_port}"))
                    && description.contains("interface_id=\"other\""),
                "description: {description}"
            );
            assert!(alert["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_default()
                .ends_with("#vpcflowexporterinterfacecapreached"));
            println!("VpcFlowExporterInterfaceCapReached firing after {:?}: {description}", started.elapsed());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "VpcFlowExporterInterfaceCapReached did not fire within 120 s: {body}\n{}\n{}",
            exporter.log_tail(),
            prometheus.log_tail()
        );
        thread::sleep(Duration::from_secs(1));
    }
}

/// The CloudWatch health alerts' conditions hold against the live exporter's
/// real metrics: polling a log group that does not exist makes
/// VpcFlowExporterCloudWatchRequestErrors and VpcFlowExporterCloudWatchNeverPolled
/// pending (their `for` of 10 and 15 minutes is proven by alerts/tests/).
#[test]
fn cloudwatch_failures_make_health_alerts_pending() {
    let Some([prometheus_bin, moto_bin]) = require_all([&PROMETHEUS, &MOTO_SERVER]) else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let http = client();
    let moto = MotoServer::start(&moto_bin);
    let moto_port = moto.port;
    fs::write(
        dir.join("config.yml"),
        format!(
            "cloudwatch:\n  region: us-east-1\n  endpoint_url: http://127.0.0.1:{moto_port}\n  poll_interval: 1s\n  \
             max_requests_per_second: 20\n  log_groups:\n    - name: /vpc/does-not-exist\n"
        ),
    )
    .unwrap();
    let exporter_port = free_port();
    let mut exporter = start_live_exporter(Path::new(BIN), dir, exporter_port);
    let (mut prometheus, prom_port) = start_prometheus(&prometheus_bin, dir, exporter_port, None);
    wait_ready(&http, &mut exporter, &format!("http://127.0.0.1:{exporter_port}/metrics"));
    wait_ready(&http, &mut prometheus, &format!("http://127.0.0.1:{prom_port}/-/ready"));
    let prom = Prom { http, base: format!("http://127.0.0.1:{prom_port}") };
    let want = ["VpcFlowExporterCloudWatchRequestErrors", "VpcFlowExporterCloudWatchNeverPolled"];
    let started = Instant::now();
    loop {
        let active = prom.active_alerts();
        let missing: Vec<&str> = want.iter().copied().filter(|w| !active.iter().any(|(n, _, _)| n == w)).collect();
        if missing.is_empty() {
            for (name, state, labels) in active.iter().filter(|(n, _, _)| want.contains(&n.as_str())) {
                println!("{name} {state} {labels:?} after {:?}", started.elapsed());
            }
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not active after 120 s: {missing:?}; active: {active:#?}\n{}",
            exporter.log_tail()
        );
        thread::sleep(Duration::from_secs(1));
    }
}

/// The exporter in live mode on `dir/config.yml`, with test credentials and no
/// instance metadata, logging to `dir/exporter.log`.
fn start_live_exporter(bin: &Path, dir: &Path, port: u16) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.args(["--config.file", &dir.join("config.yml").display().to_string()])
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    Proc::spawn("exporter", cmd, dir.join("exporter.log"))
}

/// The dashboards at scale: the demo with 10,000 interfaces, every panel
/// query of every dashboard answered by the test Prometheus in under a second,
/// instant and over the last 10 minutes (the step Grafana would use: the
/// panel's minimum interval, at least 15 s), and per-interface panels drawing
/// at most their top N interfaces (`@ end()`), not one line per interface.
#[test]
fn ten_thousand_interfaces_dashboards_answer_within_a_second() {
    const INTERFACES: usize = 10_000;
    const BUDGET: Duration = Duration::from_secs(1);
    let Some(prometheus_bin) = require(&PROMETHEUS) else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let http = client();
    let exporter_port = free_port();
    let mut exporter = Proc::start(
        "exporter",
        Path::new(BIN),
        &[
            "demo".to_string(),
            "--demo.interfaces".to_string(),
            INTERFACES.to_string(),
            "--demo.rate".to_string(),
            "2000".to_string(),
            "--web.listen-address".to_string(),
            format!("127.0.0.1:{exporter_port}"),
        ],
        dir,
    );
    let (mut prometheus, prom_port) = start_prometheus_with(&prometheus_bin, dir, exporter_port, None, &[], "5s");
    wait_ready(&http, &mut exporter, &format!("http://127.0.0.1:{exporter_port}/metrics"));
    wait_ready(&http, &mut prometheus, &format!("http://127.0.0.1:{prom_port}/-/ready"));
    let prom = Prom { http, base: format!("http://127.0.0.1:{prom_port}") };

    // Every interface has traffic, and the per-interface recording rules
    // (every minute, after the one-minute new-series hold) cover them.
    let started = Instant::now();
    let want = INTERFACES * 9 / 10;
    loop {
        let recorded = prom.query_count("interface_id:vpc_flow_records:increase10m").unwrap_or(0);
        if recorded >= want {
            println!("{recorded} interfaces recorded after {:?}", started.elapsed());
            break;
        }
        if let Some(status) = exporter.exited() {
            panic!("the exporter exited ({status})\n{}", exporter.log_tail());
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {recorded} of {INTERFACES} interfaces recorded after 300 s\n{}\n{}",
            exporter.log_tail(),
            prometheus.log_tail()
        );
        thread::sleep(Duration::from_secs(2));
    }
    // A little history for the range queries and the rates.
    thread::sleep(Duration::from_secs(30));

    let mut problems = Vec::new();
    let mut slowest: Vec<(Duration, String)> = Vec::new();
    let mut checked = 0;
    for dash in dashboards() {
        let vars = resolve_variables(&prom, &dash, &mut problems);
        for panel in panels(&dash.json) {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or_default();
            let min_step =
                panel["interval"].as_str().and_then(|i| i.strip_suffix('m')).and_then(|m| m.parse::<u64>().ok());
            let step = min_step.map_or(15, |m| (m * 60).max(15));
            for t in panel["targets"].as_array().cloned().unwrap_or_default() {
                let query = substitute(t["expr"].as_str().unwrap_or_default(), &vars);
                let range = if t["instant"] == true { None } else { Some((600, step)) };
                for r in [None, range].into_iter().collect::<BTreeSet<_>>() {
                    checked += 1;
                    match prom.timed(&query, r) {
                        Err(e) => problems.push(format!("{}: {title:?}: {query}: {e}", dash.file)),
                        Ok((series, interfaces, took)) => {
                            let what = format!(
                                "{:>6.0} ms {:>5} series  {} {title} [{}]",
                                took.as_secs_f64() * 1000.0,
                                series,
                                if r.is_some() { "range  " } else { "instant" },
                                t["refId"].as_str().unwrap_or_default()
                            );
                            if took >= BUDGET {
                                problems.push(format!("{}: took {took:?} (budget {BUDGET:?}): {what}", dash.file));
                            }
                            // Per-interface panels draw their top N, not every interface.
                            if interfaces > 10 {
                                problems.push(format!(
                                    "{}: {interfaces} interfaces, more than the top 10: {what}",
                                    dash.file
                                ));
                            }
                            slowest.push((took, what));
                        }
                    }
                }
            }
        }
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    println!("{checked} dashboard queries at {INTERFACES} interfaces; the slowest:");
    for (_, what) in slowest.iter().take(12) {
        println!("  {what}");
    }
    assert!(problems.is_empty(), "{} problem(s):\n  {}", problems.len(), problems.join("\n  "));
}
