//! The Firehose receiver end to end, against the real binary: requests built
//! per the HTTP endpoint delivery specification sent over HTTP and over TLS
//! (the `--web.config.file` of `/metrics`, certificates made here), counted
//! exactly per record kind in `/metrics`; wrong and rotated keys, oversized
//! bodies and gzip bombs (memory bounded: the process's VmHWM), slow clients,
//! retries of one request id (sequential, concurrent, after a dropped
//! connection) counted once; moto's Firehose delivering through boto3; two
//! replicas behind the shipped deploy/nginx configuration.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

mod common;

use common::expo::value;
use common::firehose::{b64, body, cwl, gzip, gzip_bomb, headers as firehose_headers, LINE};
use common::{free_port, require, Proc, Tool, BIN, MOTO_SERVER};
const KEY: &str = "current-key-0123456789";
const PASSWORD: &str = "scrape-secret";

const NGINX: Tool =
    Tool { name: "nginx", executables: &["nginx"], env_var: "NGINX_BIN", package: "Debian package nginx" };
const DOCKER_COMPOSE: Tool = Tool {
    name: "docker-compose",
    executables: &["docker-compose"],
    env_var: "DOCKER_COMPOSE_BIN",
    package: "Debian package docker-compose",
};

// ------------------------------------------------------------------ helpers

/// An HTTP/1.1 answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Writes `request` (with `Connection: close`) and reads the answer to its end.
fn exchange(mut stream: impl Read + Write, request: &[u8]) -> Result<Reply, String> {
    stream.write_all(request).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.to_string()),
    }
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("no head in {out:?}"))?;
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    Ok(Reply { status, head, body: out[split + 4..].to_vec() })
}

fn raw_request(method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut out = r.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Certificates for localhost, and the web configuration that serves them
/// (basic auth on: it guards /metrics, not the Firehose listener).
fn write_tls(dir: &Path) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "test CA");
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{hash}'\n"
    );
    std::fs::write(dir.join("web.yml"), web).unwrap();
}

/// A running exporter whose configuration has a firehose section.
struct Receiver {
    proc: Proc,
    metrics_port: u16,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// `firehose` holds the section's keys besides listen_address (indented
    /// two spaces); `rest` more top-level configuration.
    fn start(firehose: &str, rest: &str, tls: bool) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let (metrics_port, port) = (free_port(), free_port());
        let config = format!("firehose:\n  listen_address: \"127.0.0.1:{port}\"\n{firehose}{rest}");
        std::fs::write(dir.path().join("config.yaml"), config).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--config.file").arg(dir.path().join("config.yaml"));
        cmd.args(["--web.listen-address", &format!("127.0.0.1:{metrics_port}"), "--metrics.new-series-hold", "0s"]);
        cmd.args(["--log.level", "debug"]);
        cmd.env("AWS_ACCESS_KEY_ID", "x").env("AWS_SECRET_ACCESS_KEY", "y").env("AWS_EC2_METADATA_DISABLED", "true");
        let client = tls.then(|| {
            write_tls(dir.path());
            cmd.arg("--web.config.file").arg(dir.path().join("web.yml"));
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(dir.path().join("ca.pem")).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        });
        let proc = Proc::spawn("exporter", cmd, dir.path().join("exporter.log"));
        let mut r = Receiver { proc, metrics_port, port, tls: client, _dir: dir };
        r.wait_listening();
        r
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || TcpStream::connect(("127.0.0.1", self.metrics_port)).is_err()
        {
            if let Some(status) = self.proc.exited() {
                panic!("the exporter exited ({status})\n{}", self.proc.log_tail());
            }
            assert!(Instant::now() < deadline, "the exporter did not listen\n{}", self.proc.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&self, port: u16, request: &[u8]) -> Result<Reply, String> {
        send_to(port, self.tls.as_ref(), request)
    }

    /// A Firehose request: `records` before base64, gzip or not.
    fn post(&self, id: &str, key: Option<&str>, records: &[Vec<u8>], gzip_on: bool) -> Reply {
        let request = firehose_request(id, key, records, gzip_on);
        self.send(self.port, &request).unwrap_or_else(|e| panic!("POST: {e}\n{}", self.proc.log_tail()))
    }

    fn post_raw(&self, headers: &[(String, String)], body: &[u8]) -> Reply {
        let request = raw_request("POST", "/", headers, body);
        self.send(self.port, &request).unwrap_or_else(|e| panic!("POST: {e}\n{}", self.proc.log_tail()))
    }

    /// Posts until the answer is not a 503 (Firehose retries those).
    fn post_until_done(&self, id: &str, key: Option<&str>, records: &[Vec<u8>]) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.post(id, key, records, true);
            if r.status != 503 || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn get(&self, path: &str) -> Reply {
        let auth = self.tls.as_ref().map(|_| {
            let v = format!("Basic {}", b64(format!("prometheus:{PASSWORD}").as_bytes()));
            vec![("Authorization".to_owned(), v)]
        });
        let request = raw_request("GET", path, &auth.unwrap_or_default(), b"");
        self.send(self.metrics_port, &request).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn metrics(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }

    /// The peak resident memory of the exporter (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }
}

/// Sends `request` to `port` on loopback, over TLS with `tls`.
fn send_to(port: u16, tls: Option<&Arc<rustls::ClientConfig>>, request: &[u8]) -> Result<Reply, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    match tls {
        Some(config) => {
            let name = ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
            exchange(rustls::StreamOwned::new(conn, tcp), request)
        }
        None => exchange(tcp, request),
    }
}

/// A whole Firehose request: `records` before base64, gzip or not.
fn firehose_request(id: &str, key: Option<&str>, records: &[Vec<u8>], gzip_on: bool) -> Vec<u8> {
    let data: Vec<String> = records.iter().map(|r| b64(r)).collect();
    let (headers, body) = common::firehose::request(id, key, gzip_on, &data);
    raw_request("POST", "/", &headers, &body)
}

fn firehose(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, &format!("vpc_flow_exporter_firehose_{name}"), labels)
}

fn records(text: &str, eni: &str, action: &str) -> f64 {
    value(text, "vpc_flow_records_total", &[("interface_id", eni), ("action", action)])
}

fn parse_errors(text: &str) -> f64 {
    value(text, "vpc_flow_exporter_parse_errors_total", &[])
}

// -------------------------------------------------------------------- tests

/// One request holding every record kind, counted exactly; sent over TLS
/// with the web configuration of /metrics (whose basic auth does not apply
/// to Firehose, which authenticates with its access key).
#[test]
fn every_record_kind_counts_exactly_over_tls() {
    let cloudwatch = "cloudwatch:\n  region: us-east-1\n  endpoint_url: http://127.0.0.1:9\n  poll_interval: 1h\n  \
                      log_groups:\n    - name: /vpc/short\n      log_format: \"${interface-id} ${action}\"\n";
    let r = Receiver::start(&format!("  access_keys: [\"{KEY}\"]\n"), cloudwatch, true);
    let two = format!("{LINE}\n{LINE}\n");
    let batch = vec![
        gzip(&cwl("DATA_MESSAGE", "/vpc/short", &["eni-short REJECT", "eni-short REJECT", "eni-short ACCEPT"])),
        gzip(&cwl("DATA_MESSAGE", "/vpc/unlisted", &[LINE, LINE])),
        cwl("DATA_MESSAGE", "/vpc/short", &["eni-short REJECT"]),
        gzip(&cwl("CONTROL_MESSAGE", "", &["CWL CONTROL MESSAGE: Checking health of destination Firehose."])),
        two.clone().into_bytes(),
        serde_json::json!({ "message": LINE }).to_string().into_bytes(),
        b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status".to_vec(),
        Vec::new(),
    ];
    let mut request = body("ed4acda5-034f-9f42-bba1-f29aea6d7d8f", &batch);
    // An invalid record (not base64) among them.
    let at = request.windows(10).position(|w| w == b"\"records\":").unwrap() + 11;
    request.splice(at..at, b"{\"data\":\"!!not base64!!\"},".iter().copied());
    let reply = r.post_raw(&firehose_headers("ed4acda5-034f-9f42-bba1-f29aea6d7d8f", Some(KEY), true), &gzip(&request));
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), r.proc.log_tail());
    let json = reply.json();
    assert_eq!(json["requestId"], "ed4acda5-034f-9f42-bba1-f29aea6d7d8f");
    assert!(json["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
    assert_eq!(reply.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(reply.header("content-length"), Some(reply.body.len().to_string()));
    assert!(reply.header("content-encoding").is_none());

    let m = r.metrics();
    assert_eq!(firehose(&m, "records_total", &[("kind", "cloudwatch_data")]), 3.0);
    assert_eq!(firehose(&m, "records_total", &[("kind", "cloudwatch_control")]), 1.0);
    assert_eq!(firehose(&m, "records_total", &[("kind", "lines")]), 3.0, "text, message and header-looking records");
    assert_eq!(firehose(&m, "records_total", &[("kind", "empty")]), 1.0);
    assert_eq!(firehose(&m, "records_total", &[("kind", "invalid")]), 1.0);
    assert_eq!(firehose(&m, "invalid_records_total", &[("reason", "base64")]), 1.0);
    assert_eq!(firehose(&m, "lines_total", &[]), 10.0);
    assert_eq!(records(&m, "eni-short", "REJECT"), 3.0, "the log group's own format");
    assert_eq!(records(&m, "eni-short", "ACCEPT"), 1.0);
    assert_eq!(records(&m, "eni-0a1b2c3d", "ACCEPT"), 5.0, "firehose.log_format for the rest");
    assert_eq!(parse_errors(&m), 1.0, "a header-looking line in a stream is an invalid line");
    assert_eq!(value(&m, "vpc_flow_exporter_lines_total", &[]), 10.0);
    assert_eq!(firehose(&m, "requests_total", &[("code", "200")]), 1.0);
    assert_eq!(firehose(&m, "request_bytes_count", &[]), 1.0);
    assert_eq!(firehose(&m, "request_duration_seconds_count", &[]), 1.0);
    assert_eq!(firehose(&m, "http_connections_accepted_total", &[]), 2.0, "the start-up probe and the request");

    // The same request without gzip, another id: counted again in full.
    let reply = r.post("second", Some(KEY), &[two.into_bytes()], false);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(records(&r.metrics(), "eni-0a1b2c3d", "ACCEPT"), 7.0);
    // /metrics keeps its basic auth; /-/ready waits for CloudWatch too.
    assert_eq!(r.get("/-/ready").status, 503, "CloudWatch has not been polled: not ready");
    let request = raw_request("GET", "/metrics", &[], b"");
    assert_eq!(r.send(r.metrics_port, &request).unwrap().status, 401);
}

/// Keys: the listed one and the file's are both accepted (rotation); a
/// wrong or missing key is 401, byte-exact, and counted.
#[test]
fn wrong_keys_are_refused_and_rotated_keys_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "next-key-abcdef\n\n").unwrap();
    let section = format!("  access_keys: [\"{KEY}\"]\n  access_keys_file: {}\n", file.display());
    let r = Receiver::start(&section, "", false);
    assert_eq!(r.post("a", Some(KEY), &[LINE.as_bytes().to_vec()], true).status, 200);
    assert_eq!(r.post("b", Some("next-key-abcdef"), &[LINE.as_bytes().to_vec()], true).status, 200);
    let wrong = r.post("c", Some("next-key-abcdeg"), &[LINE.as_bytes().to_vec()], true);
    assert_eq!(wrong.status, 401);
    let body = String::from_utf8(wrong.body.clone()).unwrap();
    let ts = wrong.json()["timestamp"].as_u64().unwrap();
    assert_eq!(
        body,
        format!("{{\"requestId\":\"c\",\"timestamp\":{ts},\"errorMessage\":\"Invalid X-Amz-Firehose-Access-Key\"}}")
    );
    let missing = r.post("d", None, &[LINE.as_bytes().to_vec()], true);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["errorMessage"], "Missing X-Amz-Firehose-Access-Key");
    let m = r.metrics();
    assert_eq!(records(&m, "eni-0a1b2c3d", "ACCEPT"), 2.0);
    assert_eq!(firehose(&m, "auth_failures_total", &[]), 2.0);
    assert_eq!(firehose(&m, "requests_total", &[("code", "401")]), 2.0);
    assert_eq!(firehose(&m, "request_errors_total", &[("reason", "invalid_access_key")]), 1.0);
    // Not POST: 405 with Allow.
    let reply = r.send(r.port, &raw_request("GET", "/", &[], b"")).unwrap();
    assert_eq!((reply.status, reply.header("allow").as_deref()), (405, Some("POST")));
    assert!(!r.proc.log().contains(KEY), "a key never reaches the log");
}

/// A body over 64 MiB is refused before it is read; gzip bombs are refused
/// once 64 MiB are inflated, with memory bounded by the in-flight budget.
#[test]
fn oversized_bodies_and_gzip_bombs_are_413_with_bounded_memory() {
    let r = Receiver::start("  allow_unauthenticated: true\n  max_bytes_in_flight: 134217728\n", "", false);
    let mut headers = firehose_headers("big", None, false);
    headers.push(("Content-Length".into(), (64 * 1024 * 1024 + 1).to_string()));
    let reply = r.send(r.port, &raw_request("POST", "/", &headers, b"{")).unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["errorMessage"], "Payload too large");

    // A 64 MiB + 1 KiB document of spaces, about 64 KiB gzipped.
    let bomb = gzip_bomb(b"{\"requestId\":\"bomb\",\"records\":[]", b' ', 64 * 1024 * 1024 + 1025, b"}");
    let bomb = Arc::new(bomb);
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let before = r.peak_rss();
    let r = Arc::new(r);
    // The bytes in flight, scraped while the bombs inflate.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (r, done) = (r.clone(), done.clone());
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(firehose(&r.metrics(), "bytes_in_flight", &[]));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (r, bomb) = (r.clone(), bomb.clone());
            std::thread::spawn(move || r.post_raw(&firehose_headers(&format!("bomb-{i}"), None, true), &bomb))
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap().status).collect();
    done.store(true, Ordering::Relaxed);
    let in_flight = sampler.join().unwrap();
    assert!(
        (1024.0 * 1024.0..=134_217_728.0).contains(&in_flight),
        "bytes in flight rise during the bombs, within the budget: peak {in_flight}"
    );
    assert!(statuses.iter().all(|s| *s == 413 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&413), "{statuses:?}");
    let peak = r.peak_rss();
    // The budget (128 MiB) holds every body and decompressed copy at once.
    assert!(peak < before + 200 * 1024 * 1024, "peak RSS {} MiB, before {} MiB", peak >> 20, before >> 20);
    let m = r.metrics();
    assert_eq!(
        firehose(&m, "request_errors_total", &[("reason", "decompressed_too_large")]),
        statuses.iter().filter(|s| **s == 413).count() as f64
    );
    assert_eq!(
        firehose(&m, "requests_total", &[("code", "413")]),
        1.0 + statuses.iter().filter(|s| **s == 413).count() as f64
    );
    assert_eq!(firehose(&m, "bytes_in_flight", &[]), 0.0, "every answered request released its bytes");
    assert_eq!(firehose(&m, "bytes_in_flight_limit", &[]), 134_217_728.0);
    eprintln!(
        "gzip bombs: {statuses:?}, peak RSS {} MiB (before {} MiB), peak bytes in flight {} MiB",
        peak >> 20,
        before >> 20,
        in_flight as u64 >> 20
    );
}

/// Big bodies held at once by slow uploads: the bytes in flight are their
/// declared lengths, summed; one more that does not fit is answered 503 at
/// once; when the uploads are closed at `request_timeout` the gauge is back
/// to 0 and the budget takes a request again.
#[test]
fn bytes_in_flight_follow_concurrent_big_requests() {
    const MIB: usize = 1024 * 1024;
    let r = Receiver::start(
        &format!("  allow_unauthenticated: true\n  request_timeout: 3s\n  max_bytes_in_flight: {}\n", 128 * MIB),
        "",
        false,
    );
    let m = r.metrics();
    assert_eq!(firehose(&m, "bytes_in_flight", &[]), 0.0);
    assert_eq!(firehose(&m, "bytes_in_flight_limit", &[]), (128 * MIB) as f64);
    // Two uploads of 60 MiB each: the head and the first KiB, then nothing.
    let uploads: Vec<TcpStream> = (0..2)
        .map(|i| {
            let mut headers = firehose_headers(&format!("big-{i}"), None, false);
            headers.push(("Content-Length".into(), (60 * MIB).to_string()));
            let mut request = raw_request("POST", "/", &headers, b"");
            request.extend_from_slice(&[b' '; 1024]);
            let mut tcp = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
            tcp.write_all(&request).unwrap();
            tcp
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = 0.0;
    while held != (120 * MIB) as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        held = firehose(&r.metrics(), "bytes_in_flight", &[]);
    }
    assert_eq!(held, (120 * MIB) as f64, "both uploads' declared lengths are held");
    // A third does not fit in the 8 MiB left: 503 before its body is read.
    let mut headers = firehose_headers("big-2", None, false);
    headers.push(("Content-Length".into(), (60 * MIB).to_string()));
    let reply = r.send(r.port, &raw_request("POST", "/", &headers, b"")).unwrap();
    assert_eq!((reply.status, reply.json()["errorMessage"].as_str()), (503, Some("Receiver busy, retry later")));
    assert_eq!(firehose(&r.metrics(), "bytes_in_flight", &[]), (120 * MIB) as f64, "the refused one held nothing");
    // The uploads are closed at request_timeout and release their bytes.
    for mut tcp in uploads {
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while firehose(&r.metrics(), "bytes_in_flight", &[]) != 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = r.metrics();
    assert_eq!(firehose(&m, "bytes_in_flight", &[]), 0.0, "closed uploads hold nothing");
    assert_eq!(firehose(&m, "request_errors_total", &[("reason", "busy")]), 1.0);
    assert_eq!(firehose(&m, "http_connections_closed_total", &[("reason", "request_timeout")]), 2.0);
    assert_eq!(r.post("after", None, &[LINE.as_bytes().to_vec()], true).status, 200);
    assert_eq!(firehose(&r.metrics(), "bytes_in_flight", &[]), 0.0);
}

/// A client that sends its head and then dribbles its body is closed at
/// `request_timeout`; nothing it sent is counted.
#[test]
fn slow_clients_are_closed() {
    let r = Receiver::start("  allow_unauthenticated: true\n  request_timeout: 2s\n", "", false);
    let mut tcp = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    let full = body("slow", &[LINE.as_bytes().to_vec()]);
    let request = raw_request("POST", "/", &firehose_headers("slow", None, false), &full);
    let started = Instant::now();
    tcp.write_all(&request[..request.len() - 10]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    let took = started.elapsed();
    assert!((Duration::from_secs(2)..Duration::from_secs(8)).contains(&took), "{took:?}");
    assert!(!String::from_utf8_lossy(&out).contains(" 200 "), "{out:?}");
    let m = r.metrics();
    assert_eq!(firehose(&m, "http_connections_closed_total", &[("reason", "request_timeout")]), 1.0);
    assert_eq!(records(&m, "eni-0a1b2c3d", "ACCEPT"), 0.0);
}

/// Retries of one request id count once: sent again in sequence, at once
/// from several connections, and after a connection dropped before its
/// response.
#[test]
fn retries_of_a_request_id_count_once() {
    let r = Arc::new(Receiver::start("  allow_unauthenticated: true\n", "", false));
    let batch: Vec<Vec<u8>> = (0..500).map(|_| LINE.as_bytes().to_vec()).collect();
    for _ in 0..3 {
        assert_eq!(r.post("seq", None, &batch, true).status, 200);
    }
    assert_eq!(records(&r.metrics(), "eni-0a1b2c3d", "ACCEPT"), 500.0);

    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (r, batch) = (r.clone(), batch.clone());
            std::thread::spawn(move || r.post_until_done("concurrent", None, &batch).status)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(records(&r.metrics(), "eni-0a1b2c3d", "ACCEPT"), 1000.0);

    // The connection drops right after the body: the counts are applied
    // anyway, and the retry is answered 200 without counting again.
    let full = gzip(&body("dropped", &batch));
    let mut tcp = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    tcp.write_all(&raw_request("POST", "/", &firehose_headers("dropped", None, true), &full)).unwrap();
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(10);
    while records(&r.metrics(), "eni-0a1b2c3d", "ACCEPT") < 1500.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(r.post_until_done("dropped", None, &batch).status, 200);
    let m = r.metrics();
    assert_eq!(records(&m, "eni-0a1b2c3d", "ACCEPT"), 1500.0);
    let duplicates = firehose(&m, "duplicate_requests_total", &[]);
    assert!(duplicates >= 9.0, "2 sequential retries, 7 concurrent ones and the dropped one's: {duplicates}");
    assert_eq!(firehose(&m, "dedup_ids", &[]), 3.0);
    assert_eq!(firehose(&m, "dedup_ids_limit", &[]), 100_000.0);
}

/// moto's Firehose, with an HTTP endpoint destination at the receiver,
/// delivers `put_record_batch` (through boto3); moto sends no access key.
#[test]
fn moto_firehose_delivers_to_the_receiver() {
    let Some(moto) = common::moto::MotoServer::require() else { return };
    let Some(moto_bin) = require(&MOTO_SERVER) else { return };
    let python = moto_bin.parent().unwrap().join("python");
    let r = Receiver::start("  allow_unauthenticated: true\n", "", false);
    let script = r#"
import boto3, sys
c = boto3.client("firehose", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="y")
c.create_delivery_stream(DeliveryStreamName="flow", DeliveryStreamType="DirectPut",
    HttpEndpointDestinationConfiguration={
        "EndpointConfiguration": {"Url": sys.argv[2], "Name": "exporter"},
        "S3Configuration": {"RoleARN": "arn:aws:iam::123456789012:role/x", "BucketARN": "arn:aws:s3:::b"}})
line = sys.argv[3]
for i in range(3):
    c.put_record_batch(DeliveryStreamName="flow", Records=[{"Data": (line + "\n").encode()} for _ in range(100)])
print("sent")
"#;
    let out = Command::new(&python)
        .args(["-c", script, &moto.endpoint, &format!("http://127.0.0.1:{}/", r.port), LINE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), r.proc.log_tail());
    let m = r.metrics();
    assert_eq!(firehose(&m, "requests_total", &[("code", "200")]), 3.0, "{}", r.proc.log_tail());
    assert_eq!(firehose(&m, "records_total", &[("kind", "lines")]), 300.0);
    assert_eq!(records(&m, "eni-0a1b2c3d", "ACCEPT"), 300.0);
}

/// Two replicas behind deploy/nginx's configuration (real nginx), hashing on
/// the request id: every request sent twice more (retries), the sum of both
/// replicas' counts is exact and each replica took some.
#[test]
fn two_replicas_behind_nginx_sum_exactly() {
    let Some(nginx) = require(&NGINX) else { return };
    let a = Receiver::start(&format!("  access_keys: [\"{KEY}\"]\n"), "", false);
    let b = Receiver::start(&format!("  access_keys: [\"{KEY}\"]\n"), "", false);
    let prefix = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = nginx_conf(&common::repo(), port, &[a.port, b.port]);
    std::fs::write(prefix.path().join("nginx.conf"), conf).unwrap();
    std::fs::create_dir_all(prefix.path().join("logs")).unwrap();
    let mut cmd = Command::new(&nginx);
    cmd.arg("-p").arg(prefix.path()).arg("-c").arg(prefix.path().join("nginx.conf")).args(["-g", "daemon off;"]);
    let mut proxy = Proc::spawn("nginx", cmd, prefix.path().join("nginx.out"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(proxy.exited().is_none() && Instant::now() < deadline, "nginx did not start\n{}", proxy.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = 60;
    for i in 0..n {
        let id = format!("{:08x}-0000-4000-8000-{:012x}", i * 7919, i);
        for attempt in 0..3 {
            let request = firehose_request(&id, Some(KEY), &[format!("{LINE}\n{LINE}").into_bytes()], true);
            let reply = send_to(port, None, &request).unwrap_or_else(|e| panic!("{e}\n{}", proxy.log_tail()));
            assert_eq!(reply.status, 200, "request {i} attempt {attempt}: {}\n{}", reply.text(), proxy.log_tail());
            assert_eq!(reply.json()["requestId"], id.as_str());
        }
    }
    let (ma, mb) = (a.metrics(), b.metrics());
    let (ca, cb) = (records(&ma, "eni-0a1b2c3d", "ACCEPT"), records(&mb, "eni-0a1b2c3d", "ACCEPT"));
    assert_eq!(ca + cb, 2.0 * n as f64, "a {ca} + b {cb}");
    assert!(ca > 0.0 && cb > 0.0, "each replica takes some: a {ca}, b {cb}");
    let dup = firehose(&ma, "duplicate_requests_total", &[]) + firehose(&mb, "duplicate_requests_total", &[]);
    assert_eq!(dup, 2.0 * n as f64, "every retry reached the replica that applied its id");
}

/// The `firehose` compose profile as docker-compose reads it over the stack:
/// two replicas and nginx, all in the profile (the stack alone unchanged);
/// nginx given the shipped configuration, whose upstream is those replicas
/// at the example configuration's port and whose certificate is in the
/// mounted folder; every mounted file or folder there; and the example
/// configuration valid once copied with an access key, as the instructions
/// say.
#[test]
fn the_compose_profile_wires_the_shipped_files() {
    let Some(compose) = require(&DOCKER_COMPOSE) else { return };
    let repo = common::repo();
    let out = Command::new(&compose)
        .current_dir(&repo)
        .args([
            "-f",
            "docker-compose.yml",
            "-f",
            "deploy/docker-compose.firehose.yml",
            "--profile",
            "firehose",
            "config",
        ])
        .env_remove("VPC_FLOW_FIREHOSE_CONFIG_DIR")
        .env_remove("VPC_FLOW_FIREHOSE_TLS_DIR")
        .env_remove("VPC_FLOW_FIREHOSE_ADDRESS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_norway::from_slice(&out.stdout).unwrap();
    let services = doc["services"].as_object().unwrap();
    for name in ["firehose-1", "firehose-2", "firehose-lb"] {
        assert_eq!(services[name]["profiles"], serde_json::json!(["firehose"]), "{name}");
    }
    for name in ["exporter", "prometheus", "alertmanager", "grafana"] {
        assert!(services[name].get("profiles").is_none(), "{name} stays in the default stack");
    }
    // Every bind mount, as (service, source, target); each source exists.
    let mut mounts = Vec::new();
    for (name, svc) in services.iter().filter(|(n, _)| n.starts_with("firehose-")) {
        for v in svc["volumes"].as_array().unwrap() {
            let (src, dst) = match v.as_str() {
                Some(short) => {
                    let mut parts = short.split(':');
                    (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
                }
                None => (v["source"].as_str().unwrap().to_owned(), v["target"].as_str().unwrap().to_owned()),
            };
            assert!(Path::new(&src).exists(), "{name} mounts {src}, which does not exist");
            mounts.push((name.clone(), src, dst));
        }
    }
    let mounted = |service: &str, target: &str| {
        mounts.iter().find(|(n, _, t)| n == service && t == target).map(|(_, s, _)| Path::new(s).to_path_buf())
    };
    let conf = mounted("firehose-lb", "/etc/nginx/conf.d/firehose.conf").expect("nginx gets the shipped conf");
    assert_eq!(conf, repo.join("deploy/nginx/firehose.conf"));
    let tls = mounted("firehose-lb", "/etc/nginx/tls").expect("nginx gets the certificate folder");
    assert!(tls.join("README.md").is_file(), "the certificate folder says what goes in it");
    let nginx = std::fs::read_to_string(&conf).unwrap();
    for file in ["firehose.crt", "firehose.key"] {
        assert!(nginx.contains(&format!("/etc/nginx/tls/{file};")), "nginx reads {file} from the mounted folder");
        assert!(std::fs::read_to_string(tls.join("README.md")).unwrap().contains(file));
    }
    assert!(nginx.contains("listen 443 ssl;"));
    assert_eq!(services["firehose-lb"]["ports"].to_string().matches("443").count(), 2, "443 published to 443");

    // The replicas read config.yml from their mounted folder, whose example
    // listens where nginx sends.
    let example = repo.join("deploy/firehose/config.example.yml");
    let config: serde_json::Value = serde_norway::from_slice(&std::fs::read(&example).unwrap()).unwrap();
    let listen = config["firehose"]["listen_address"].as_str().unwrap();
    let port = listen.rsplit(':').next().unwrap();
    let upstream: Vec<&str> = nginx
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server ")?.strip_suffix(';'))
        .filter(|s| !s.contains(' '))
        .collect();
    assert_eq!(upstream, [format!("firehose-1:{port}"), format!("firehose-2:{port}")]);
    for name in ["firehose-1", "firehose-2"] {
        let folder = mounted(name, "/etc/vpc-flow-exporter").expect("the configuration folder");
        assert_eq!(folder, repo.join("deploy/firehose"));
        let command = services[name]["command"].to_string();
        assert!(command.contains("--config.file=/etc/vpc-flow-exporter/config.yml"), "{command}");
        assert!(services[name]["expose"].to_string().contains(port), "{name} exposes {port}");
    }
    // Copied as the instructions say, with an access key beside it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&example, dir.path().join("config.yml")).unwrap();
    std::fs::write(dir.path().join("access-key"), "0123456789abcdef0123456789abcdef\n").unwrap();
    let check =
        Command::new(BIN).arg("--config.file").arg(dir.path().join("config.yml")).arg("--config.check").output();
    let check = check.unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

/// deploy/nginx/firehose.conf's server block, its upstream pointed at the
/// test's replicas and its listener at `port` (plain HTTP: TLS is the
/// deployment's certificate).
fn nginx_conf(repo: &Path, port: u16, replicas: &[u16]) -> String {
    let shipped = std::fs::read_to_string(repo.join("deploy/nginx/firehose.conf")).unwrap();
    let servers: String = replicas.iter().map(|p| format!("    server 127.0.0.1:{p};\n")).collect();
    let body = shipped
        .replace("    server firehose-1:10191;\n    server firehose-2:10191;\n", &servers)
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port};"))
        .lines()
        .filter(|l| !l.trim_start().starts_with("ssl_"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(body.contains(&format!("server 127.0.0.1:{};", replicas[0])), "the shipped upstream block changed");
    // As root, nginx would run its workers as nobody, who cannot use the
    // test's private folder.
    let user = if rustix::process::geteuid().is_root() { "user root;\n" } else { "" };
    let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("  {t}_temp_path logs/{t};\n"))
        .collect();
    format!(
        "{user}worker_processes 1;\nerror_log logs/error.log info;\npid logs/nginx.pid;\n\
         events {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n{temp}{body}\n}}\n"
    )
}
