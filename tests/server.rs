//! The HTTP surface of the real binary (in demo mode): landing page, health,
//! readiness, metrics with content type and gzip, unknown paths, flag errors,
//! a clean exit on SIGTERM, and a server that idle and slowloris connections
//! under a 256-descriptor limit cannot starve.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::process::Signal;
use common::{Exporter, BIN};

#[test]
fn endpoints_answer_as_documented() {
    let e = Exporter::demo(&["--web.telemetry-path", "/custom-metrics"]);
    let client = reqwest::blocking::Client::builder().no_gzip().build().unwrap();
    let get = |p: &str| client.get(format!("{}{p}", e.base)).send().unwrap();

    let landing = get("/");
    assert_eq!(landing.status(), 200);
    assert!(landing.text().unwrap().contains("href=\"/custom-metrics\""));
    assert_eq!(get("/-/healthy").status(), 200);
    assert_eq!(get("/-/ready").status(), 200, "the demo is ready at once");
    assert_eq!(get("/nope").status(), 404);
    assert_eq!(get("/metrics").status(), 404, "the telemetry path moved");

    std::thread::sleep(Duration::from_millis(500));
    let m = get("/custom-metrics");
    assert_eq!(m.status(), 200);
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let body = m.text().unwrap();
    assert!(body.contains("vpc_flow_records_total{"), "{body}");
    assert!(body.contains("vpc_flow_exporter_build_info{version=\""));

    let z = client.get(format!("{}/custom-metrics", e.base)).header("Accept-Encoding", "gzip").send().unwrap();
    assert_eq!(z.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&z.bytes().unwrap()[..]).read_to_string(&mut text).unwrap();
    assert!(text.contains("# TYPE vpc_flow_records_total counter"));

    let post = client.post(format!("{}/custom-metrics", e.base)).send().unwrap();
    assert_eq!(post.status(), 405);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut e = Exporter::demo(&[]);
    e.signal(Signal::TERM);
    let status = e.proc.wait_exit(Duration::from_secs(10)).expect("still running 10 s after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let err = e.log();
    assert!(err.contains("SIGTERM"), "{err}");
}

#[test]
fn bad_flags_and_missing_config_fail_with_a_message() {
    let out = Command::new(BIN).args(["demo", "--web.listen-address", "nonsense"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.listen-address"));
    let out = Command::new(BIN).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config.file is required"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "detections: {}\n").unwrap();
    let out = Command::new(BIN).args(["--config.file", cfg.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cloudwatch"), "{}", String::from_utf8_lossy(&out.stderr));
}

fn scrape(e: &Exporter) -> String {
    e.scrape().expect("GET /metrics")
}

/// Waits until the exposition satisfies `ok`, or fails with the last one.
fn wait_for(e: &Exporter, what: &str, ok: impl Fn(&str) -> bool) -> String {
    e.wait_for(what, Duration::from_secs(20), ok)
}

#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("demo.yaml");
    // The demo's background noise includes rejected telnet (23) and RDP (3389).
    std::fs::write(&cfg, "detections:\n  forbidden_ports: [23]\n").unwrap();
    let e = Exporter::demo(&["--config.file", cfg.to_str().unwrap()]);
    let hup = |e: &Exporter| e.signal(Signal::HUP);
    let forbidden = |b: &str, port: &str| {
        b.lines().any(|l| {
            l.starts_with("vpc_flow_forbidden_port_records_total{") && l.contains(&format!("dstport=\"{port}\""))
        })
    };

    wait_for(&e, "telnet records", |b| forbidden(b, "23"));
    assert!(scrape(&e).contains("vpc_flow_exporter_config_last_reload_successful 1"));

    std::fs::write(&cfg, "detections:\n  forbidden_ports: [3389]\n").unwrap();
    hup(&e);
    wait_for(&e, "the new forbidden port", |b| forbidden(b, "3389") && !forbidden(b, "23"));

    std::fs::write(&cfg, "detections:\n  forbidden_portz: [22]\n").unwrap();
    hup(&e);
    let body = wait_for(&e, "a failed reload", |b| b.contains("vpc_flow_exporter_config_last_reload_successful 0"));
    assert!(forbidden(&body, "3389"), "the running configuration is kept");
    assert_eq!(reqwest::blocking::get(format!("{}/-/healthy", e.base)).unwrap().status(), 200);
}

/// A connection that sends a request head one byte at a time, never ending it.
struct Slowloris {
    stream: TcpStream,
    opened: Instant,
    closed: Option<Duration>,
}

impl Slowloris {
    fn open(addr: &str) -> Slowloris {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
        stream.set_nonblocking(true).unwrap();
        Slowloris { stream, opened: Instant::now(), closed: None }
    }

    /// Sends one more header byte and notes when the server has closed it.
    fn poke(&mut self, send: bool) {
        if self.closed.is_some() {
            return;
        }
        let mut buf = [0u8; 256];
        let gone = match self.stream.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        };
        let gone = gone || (send && self.stream.write_all(b"X").is_err());
        if gone {
            self.closed = Some(self.opened.elapsed());
        }
    }
}

fn metric(body: &str, name: &str) -> f64 {
    common::expo::sample(body, name).unwrap_or_else(|| panic!("no {name} in the exposition"))
}

#[test]
fn idle_and_slowloris_connections_cannot_starve_the_server() {
    // The exporter runs with 256 descriptors; the attackers hold 320 connections.
    let mut sh = Command::new("sh");
    sh.args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\"", BIN]);
    let mut e = Exporter::start(sh, &[], &[]);
    let addr = e.addr.clone();

    let idle: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let mut slow: Vec<Slowloris> = (0..20).map(|_| Slowloris::open(&addr)).collect();

    // A normal client with a fresh connection per request keeps being answered
    // quickly while the attack connections are open.
    let client =
        reqwest::blocking::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(3)).build().unwrap();
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut requests = 0;
    let mut last_poke = Instant::now();
    while started.elapsed() < Duration::from_secs(14) {
        for path in ["/-/healthy", "/metrics"] {
            let t = Instant::now();
            let resp = client.get(format!("{}{path}", e.base)).send();
            let took = t.elapsed();
            let resp = resp.unwrap_or_else(|err| panic!("{path} failed after {took:?} under attack: {err}"));
            assert_eq!(resp.status(), 200, "{path}");
            assert!(!resp.bytes().unwrap().is_empty());
            worst = worst.max(took);
            requests += 1;
        }
        let send = last_poke.elapsed() >= Duration::from_secs(2);
        if send {
            last_poke = Instant::now();
        }
        for s in &mut slow {
            s.poke(send);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("{requests} requests under attack, slowest {worst:?}");
    assert!(worst < Duration::from_secs(1), "slowest answer under attack: {worst:?}");

    // Every slowloris connection was closed by the 10 s header-read timeout.
    for (i, s) in slow.iter().enumerate() {
        let closed = s.closed.unwrap_or_else(|| panic!("slowloris {i} still open after {:?}", s.opened.elapsed()));
        assert!(
            closed >= Duration::from_secs(5) && closed <= Duration::from_secs(13),
            "slowloris {i} closed after {closed:?}"
        );
    }
    let body = scrape(&e);
    assert_eq!(metric(&body, "vpc_flow_exporter_http_connections_max"), 192.0, "256 descriptors minus 64");
    assert!(metric(&body, "vpc_flow_exporter_http_connections_open") <= 192.0);
    assert!(metric(&body, "vpc_flow_exporter_http_connections_closed_total{reason=\"header_timeout\"}") >= 20.0);
    assert!(metric(&body, "vpc_flow_exporter_http_connections_closed_total{reason=\"evicted\"}") >= 100.0);
    drop(idle);

    // SIGTERM with attack connections and a half-sent request open: the
    // process still exits within a few seconds.
    let _idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let _slow: Vec<Slowloris> = (0..10).map(|_| Slowloris::open(&addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    e.signal(Signal::TERM);
    let status = e.proc.wait_exit(Duration::from_secs(5)).expect("still running 5 s after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    eprintln!("exited {:?} after SIGTERM", t.elapsed());
    let err = e.log();
    assert!(err.contains("web.max-connections"), "the clamp is logged: {err}");
}
