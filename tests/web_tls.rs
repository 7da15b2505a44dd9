//! `--web.config.file` end to end: the real binary serving over TLS with
//! basic auth and verified client certificates (a CA, server and client
//! certificates made here with rcgen), scraped by a real Prometheus (`up ==
//! 1`), while wrong passwords, missing credentials, plain HTTP and untrusted
//! client certificates are refused, by Prometheus and by a rustls client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

mod common;

use common::{Exporter, BIN};

const PASSWORD: &str = "s3cret-scrape";

/// A CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate signed by it, and a client certificate signed by another CA.
fn write_pki(dir: &Path) {
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    };
    let leaf = |issuer: &CertifiedIssuer<'_, KeyPair>, sans: &[&str], usage: ExtendedKeyUsagePurpose, base: &str| {
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, base);
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, issuer).unwrap();
        std::fs::write(dir.join(format!("{base}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{base}.key")), key.serialize_pem()).unwrap();
    };
    let trusted = ca("test CA");
    std::fs::write(dir.join("ca.pem"), trusted.pem()).unwrap();
    leaf(&trusted, &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, "server");
    leaf(&trusted, &["prometheus"], ExtendedKeyUsagePurpose::ClientAuth, "client");
    let rogue = ca("rogue CA");
    leaf(&rogue, &["prometheus"], ExtendedKeyUsagePurpose::ClientAuth, "rogue");
}

/// The exporter's web configuration; relative paths, resolved against its folder.
fn write_web_config(dir: &Path) {
    // A low cost keeps the debug build quick; the cache makes later checks free anyway.
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS12\n\
             basic_auth_users:\n  prometheus: '{hash}'\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ),
    )
    .unwrap();
}

/// What a rustls client got: the status code and the response text, or why it failed.
fn https_get(
    dir: &Path,
    port: u16,
    client_cert: Option<&str>,
    auth: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        Some(base) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join(format!("{base}.pem")))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{base}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let authorization = auth
        .map(|(u, p)| {
            use base64::Engine;
            format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        })
        .unwrap_or_default();
    tls.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))?;
    Ok((status, text))
}

/// The exporter (demo) serving `dir/web.yml`, answering over TLS.
fn start_exporter(dir: &Path) -> (Exporter, u16) {
    let web_config = dir.join("web.yml");
    let exporter = Exporter::spawn(Command::new(BIN), &[], &["--web.config.file", web_config.to_str().unwrap()]);
    let port = exporter.port;
    let deadline = Instant::now() + Duration::from_secs(20);
    while https_get(dir, port, Some("client"), Some(("prometheus", PASSWORD))).is_err() {
        assert!(Instant::now() < deadline, "the exporter did not answer over TLS\n{}", exporter.proc.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    (exporter, port)
}

#[test]
fn tls_basic_auth_and_client_certificates_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_pki(dir);
    write_web_config(dir);
    let (_exporter, port) = start_exporter(dir);

    let (status, text) = https_get(dir, port, Some("client"), Some(("prometheus", PASSWORD))).unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("vpc_flow_exporter_build_info"));
    assert!(text.to_ascii_lowercase().contains("x-content-type-options: nosniff"), "configured headers: {text}");

    for (auth, what) in [(Some(("prometheus", "wrong")), "wrong password"), (None, "no credentials")] {
        let (status, text) = https_get(dir, port, Some("client"), auth).unwrap();
        assert_eq!(status, 401, "{what}: {text}");
        assert!(text.to_ascii_lowercase().contains("www-authenticate: basic"), "{what}: {text}");
    }
    let (status, _) = https_get(dir, port, Some("client"), Some(("nobody", PASSWORD))).unwrap();
    assert_eq!(status, 401, "unknown user");

    let err = https_get(dir, port, Some("rogue"), Some(("prometheus", PASSWORD))).unwrap_err();
    assert!(err.contains("UnknownCA"), "untrusted client certificate: {err}");
    let err = https_get(dir, port, None, Some(("prometheus", PASSWORD))).unwrap_err();
    assert!(err.contains("CertificateRequired"), "no client certificate: {err}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/"), "plain HTTP answered: {}", String::from_utf8_lossy(&got));

    // A flood of wrong passwords (each one a bcrypt check) does not slow a
    // scraper whose credentials are cached.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..6)
        .map(|i| {
            let (dir, stop) = (dir.to_owned(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let got = https_get(&dir, port, Some("client"), Some(("prometheus", &format!("guess{i}-{n}"))));
                    assert_eq!(got.map(|(s, _)| s).ok(), Some(401));
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    let flood_start = Instant::now();
    while flood_start.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let (status, _) = https_get(dir, port, Some("client"), Some(("prometheus", PASSWORD))).unwrap();
        assert_eq!(status, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let guesses: usize = flooders.into_iter().map(|h| h.join().unwrap()).sum();
    eprintln!("{guesses} wrong passwords in 3 s; slowest cached scrape {worst:?}");
    assert!(worst < Duration::from_secs(1), "slowest cached scrape under a password flood: {worst:?}");

    let (_, text) = https_get(dir, port, Some("client"), Some(("prometheus", PASSWORD))).unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name}"))
            .parse()
            .unwrap()
    };
    assert!(value("vpc_flow_exporter_http_requests_unauthorized_total") >= 3.0);
    assert!(value("vpc_flow_exporter_http_connections_closed_total{reason=\"tls_handshake_failed\"}") >= 2.0);
}

/// One scrape job of the test Prometheus.
fn job(name: &str, port: u16, scheme: &str, cert: &str, password: &str) -> String {
    format!(
        "  - job_name: {name}\n    scheme: {scheme}\n    tls_config:\n      ca_file: ca.pem\n      cert_file: {cert}.pem\n      \
         key_file: {cert}.key\n      server_name: localhost\n    basic_auth:\n      username: prometheus\n      \
         password: {password}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
}

#[test]
fn prometheus_scrapes_over_https_with_basic_auth() {
    let Some(prometheus_bin) = common::require(&common::PROMETHEUS) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_pki(dir);
    write_web_config(dir);
    let (_exporter, port) = start_exporter(dir);

    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}{}{}",
        job("good", port, "https", "client", PASSWORD),
        job("wrong_password", port, "https", "client", "not-it"),
        job("untrusted_cert", port, "https", "rogue", PASSWORD),
        job("plain_http", port, "http", "client", PASSWORD),
    );
    let (_prometheus, prom_port) = common::prometheus::start_prometheus(&prometheus_bin, dir, &config, &[]);

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let query = |q: &str| -> Option<serde_json::Value> {
        let resp = http.get(format!("http://127.0.0.1:{prom_port}/api/v1/query")).query(&[("query", q)]).send().ok()?;
        serde_json::from_str(&resp.text().ok()?).ok()
    };
    let up = |job: &str| -> Option<String> {
        let body = query(&format!("up{{job=\"{job}\"}}"))?;
        body["data"]["result"][0]["value"][1].as_str().map(str::to_owned)
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let jobs = ["good", "wrong_password", "untrusted_cert", "plain_http"];
    let ups = loop {
        let ups: Vec<Option<String>> = jobs.iter().map(|j| up(j)).collect();
        if ups.iter().all(Option::is_some) && ups[0].as_deref() == Some("1") {
            break ups;
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape the exporter: up = {ups:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(ups[0].as_deref(), Some("1"), "good scrape");
    for (job, up) in jobs.iter().zip(&ups).skip(1) {
        assert_eq!(up.as_deref(), Some("0"), "{job} must be refused");
    }
    let scraped = query("vpc_flow_exporter_build_info{job=\"good\"}").unwrap();
    assert_eq!(scraped["data"]["result"][0]["value"][1], "1", "{scraped}");

    let targets: serde_json::Value = serde_json::from_str(
        &http.get(format!("http://127.0.0.1:{prom_port}/api/v1/targets")).send().unwrap().text().unwrap(),
    )
    .unwrap();
    let last_error = |job: &str| -> String {
        targets["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .map(|t| t["lastError"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    assert!(last_error("wrong_password").contains("401"), "{}", last_error("wrong_password"));
    assert!(last_error("untrusted_cert").contains("unknown certificate authority"), "{}", last_error("untrusted_cert"));
    assert!(last_error("plain_http").contains("malformed HTTP response"), "{}", last_error("plain_http"));
}
