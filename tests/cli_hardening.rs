//! Hardening checks on the real binary that do not fit a source's own tests:
//! one error text per failure, and files named by the configuration that must
//! be regular files (a device or FIFO would block or never end).

use std::process::Command;

mod common;

use common::BIN;

#[test]
fn a_replay_error_prints_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["replay"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[cfg(unix)]
#[test]
fn a_geoip_database_that_is_not_a_regular_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "geoip:\n  database: /dev/zero\n").unwrap();
    let out = Command::new(BIN).arg("--config.file").arg(&cfg).args(["replay", "/dev/null"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("geoip.database") && err.contains("not a regular file"), "{err}");
    assert_eq!(err.matches("/dev/zero").count(), 1, "{err}");
}

#[cfg(unix)]
#[test]
fn a_fifo_as_configuration_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.yaml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let started = std::time::Instant::now();
    let out = Command::new(BIN).arg("--config.file").arg(&fifo).args(["replay", "/dev/null"]).output().unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_replay_format_without_aws_syntax_is_refused_naming_the_flag() {
    let out = Command::new(BIN).args(["replay", "--log-format", "hello world", "/dev/null"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log-format") && err.contains("AWS syntax"), "{err}");
}
