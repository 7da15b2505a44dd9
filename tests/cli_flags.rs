//! Flags of the real binary: each subcommand lists only the flags that apply
//! to it; `--web.listen-address` takes host names, `[::]:PORT`, and `:PORT`
//! listens on IPv4 and IPv6; a bad flag is refused before the demo's banner;
//! the landing page shows the sources and readiness.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, Proc, BIN};

/// `demo` listening on `listen` (not waited for: see [`answers`]).
fn demo(listen: &str) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--web.listen-address", listen]);
    Proc::spawn_logged("exporter", cmd)
}

/// Waits until `url` answers 200.
fn answers(url: &str) -> Option<String> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send() {
            if r.status().is_success() {
                return r.text().ok();
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn each_subcommand_lists_only_its_flags() {
    let replay = help(&["replay"]);
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--web.config.file",
        "--web.max-connections",
        "--metrics.new-series-hold",
        "--demo.rate",
    ] {
        assert!(!replay.contains(flag), "replay --help lists {flag}:\n{replay}");
    }
    assert!(replay.contains("--log-format") && replay.contains("--config.check"), "{replay}");
    let demo = help(&["demo"]);
    for flag in
        ["--web.listen-address", "--web.config.file", "--metrics.new-series-hold", "--demo.rate", "--config.check"]
    {
        assert!(demo.contains(flag), "demo --help misses {flag}:\n{demo}");
    }
    assert!(!demo.contains("--log-format"), "{demo}");
    let live = help(&[]);
    assert!(live.contains("--web.listen-address") && !live.contains("--demo.rate"), "{live}");
}

#[test]
fn server_flags_are_refused_where_they_do_nothing() {
    for args in [
        &["replay", "--web.listen-address", ":1"][..],
        &["--web.listen-address", ":1", "replay"],
        &["--metrics.new-series-hold", "0s", "demo"],
    ] {
        let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args.iter().find(|a| a.starts_with("--")).unwrap()), "{args:?}: {err}");
    }
}

#[test]
fn host_names_and_ipv6_addresses_are_accepted() {
    let port = free_port();
    let _e = demo(&format!("localhost:{port}"));
    assert!(answers(&format!("http://127.0.0.1:{port}/-/healthy")).is_some(), "localhost:{port}");

    let port = free_port();
    let _e = demo(&format!("[::1]:{port}"));
    assert!(answers(&format!("http://[::1]:{port}/-/healthy")).is_some(), "[::1]:{port}");

    let port = free_port();
    let _e = demo(&format!("[::]:{port}"));
    assert!(answers(&format!("http://[::1]:{port}/-/healthy")).is_some(), "[::]:{port}");
}

#[test]
fn a_bare_port_listens_on_both_families() {
    let port = free_port();
    let _e = demo(&format!(":{port}"));
    assert!(answers(&format!("http://127.0.0.1:{port}/-/healthy")).is_some(), "IPv4");
    assert!(answers(&format!("http://[::1]:{port}/-/healthy")).is_some(), "IPv6");
}

#[test]
fn bad_flags_are_refused_before_the_banner() {
    for args in [
        &["demo", "--web.listen-address", "nonsense"][..],
        &["demo", "--web.listen-address", "::1:80"],
        &["demo", "--web.telemetry-path", "/-/x"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("Demo mode"), "{args:?} logged the banner before failing:\n{err}");
        assert!(err.contains(args[1]), "{args:?}: {err}");
    }
}

#[test]
fn the_landing_page_shows_sources_and_readiness() {
    let port = free_port();
    let _e = demo(&format!("127.0.0.1:{port}"));
    let page = answers(&format!("http://127.0.0.1:{port}/")).expect("landing page");
    assert!(page.contains("Sources: demo (generated traffic"), "{page}");
    assert!(page.contains("Readiness: ready"), "{page}");
}
