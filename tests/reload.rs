//! SIGHUP reload against the real binary: a broken, oversized or FIFO
//! configuration is refused while `/metrics` keeps answering, later reloads
//! still work, and a demo without a configuration file survives SIGHUP.

#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Exporter(Child, String);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> Exporter {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_vpc-flow-exporter"))
        .args(args)
        .args(["demo", "--web.listen-address", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let e = Exporter(child, format!("http://{addr}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{}/-/healthy", e.1)).is_err() {
        assert!(Instant::now() < deadline, "exporter did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    e
}

fn hup(e: &Exporter) {
    assert!(Command::new("kill").args(["-HUP", &e.0.id().to_string()]).status().unwrap().success());
}

fn metric(e: &Exporter, name: &str) -> Option<f64> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let text = client.get(format!("{}/metrics", e.1)).send().ok()?.text().ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `name` reads `want`.
fn wait_for(e: &Exporter, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(e, name) != Some(want) {
        assert!(Instant::now() < deadline, "{name} never became {want} (is {:?})", metric(e, name));
        std::thread::sleep(Duration::from_millis(100));
    }
}

const OK: &str = "vpc_flow_exporter_config_last_reload_successful";
const FAILURES: &str = "vpc_flow_exporter_config_reload_failures_total";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn failed_reloads_keep_the_exporter_and_later_reloads_work() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    write(&cfg, "detections:\n  forbidden_ports: [23]\n");
    let e = start(&["--config.file", cfg.to_str().unwrap()]);
    wait_for(&e, OK, 1.0);

    // Invalid values, including one that used to abort the process.
    write(&cfg, "limits:\n  max_tracked_addresses: 1000000000000\n");
    hup(&e);
    wait_for(&e, OK, 0.0);
    wait_for(&e, FAILURES, 1.0);

    write(&cfg, "detections:\n  forbidden_ports: [23, 2323]\n");
    hup(&e);
    wait_for(&e, OK, 1.0);

    // A FIFO in place of the file: refused at once, /metrics answers throughout.
    std::fs::remove_file(&cfg).unwrap();
    assert!(Command::new("mkfifo").arg(&cfg).status().unwrap().success());
    hup(&e);
    let started = Instant::now();
    wait_for(&e, FAILURES, 2.0);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(metric(&e, OK), Some(0.0));

    std::fs::remove_file(&cfg).unwrap();
    write(&cfg, "detections:\n  forbidden_ports: [23]\n");
    hup(&e);
    wait_for(&e, OK, 1.0);
}

#[test]
fn a_demo_without_configuration_survives_sighup() {
    let e = start(&[]);
    hup(&e);
    std::thread::sleep(Duration::from_millis(500));
    hup(&e);
    std::thread::sleep(Duration::from_millis(500));
    assert!(reqwest::blocking::get(format!("{}/-/healthy", e.1)).is_ok_and(|r| r.status().is_success()));
}

#[test]
fn demo_flags_are_bounded() {
    for args in [["--demo.rate", "0"], ["--demo.rate", "4294967295"], ["--demo.interfaces", "50001"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_vpc-flow-exporter")).arg("demo").args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
}
