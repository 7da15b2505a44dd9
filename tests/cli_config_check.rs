//! `--config.check` with the real binary: it runs every check the live start
//! runs (a cloudwatch section, a region, the state folder, GeoIP, the web
//! configuration), so that the configurations it used to call valid while the
//! start refused them now fail; and it is accepted by `demo` and `replay`.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::BIN;

/// Runs the binary with no AWS settings from the environment: no region
/// variable, an empty AWS profile, no instance metadata.
fn run(dir: &Path, args: &[&str], region: Option<&str>) -> Output {
    let empty = dir.join("aws-empty");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir);
    if let Some(r) = region {
        cmd.env("AWS_REGION", r);
    }
    cmd.output().unwrap()
}

fn check(dir: &Path, yaml: &str, region: Option<&str>) -> (bool, String) {
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = run(dir, &["--config.check", "--config.file", cfg.to_str().unwrap()], region);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

const GROUPS: &str = "  log_groups:\n    - name: /vpc/flow-logs\n";

#[test]
fn an_empty_file_is_not_a_valid_live_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(dir.path(), "", Some("eu-west-1"));
    assert!(!ok, "{text}");
    assert!(text.contains("config.yaml: cloudwatch: missing"), "{text}");
}

#[test]
fn a_region_must_be_found_somewhere() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("cloudwatch:\n{GROUPS}");
    let (ok, text) = check(dir.path(), &yaml, None);
    assert!(!ok, "{text}");
    assert!(text.contains("config.yaml: cloudwatch.region: no AWS region found"), "{text}");
    // From the environment, or from the file: valid.
    let (ok, text) = check(dir.path(), &yaml, Some("eu-west-1"));
    assert!(ok, "{text}");
    assert!(text.contains("configuration is valid"), "{text}");
    let (ok, text) = check(dir.path(), &format!("cloudwatch:\n  region: eu-west-1\n{GROUPS}"), None);
    assert!(ok, "{text}");
    // From the AWS profile.
    let profile = dir.path().join("aws-profile");
    std::fs::write(&profile, "[default]\nregion = eu-central-1\n").unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let out = Command::new(BIN)
        .args(["--config.check", "--config.file", cfg.to_str().unwrap()])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", &profile)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_state_folder_must_be_writable() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the folder should be: no one, root included, can write there.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    let state = blocker.join("state.json");
    let yaml = format!("cloudwatch:\n  region: eu-west-1\n  state_file: {}\n{GROUPS}", state.display());
    let (ok, text) = check(dir.path(), &yaml, None);
    assert!(!ok, "{text}");
    assert!(text.contains("config.yaml: cloudwatch.state_file: cannot"), "{text}");
    // A folder that cannot be created (sysfs refuses even root).
    let yaml =
        format!("cloudwatch:\n  region: eu-west-1\n  state_file: /sys/vpc-flow-exporter-check/state.json\n{GROUPS}");
    let (ok, text) = check(dir.path(), &yaml, None);
    assert!(!ok, "{text}");
    assert!(text.contains("cloudwatch.state_file: cannot create the folder /sys/vpc-flow-exporter-check"), "{text}");
    // A corrupt state file is refused as at the start.
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{not json").unwrap();
    let yaml = format!("cloudwatch:\n  region: eu-west-1\n  state_file: {}\n{GROUPS}", state.display());
    let (ok, text) = check(dir.path(), &yaml, None);
    assert!(!ok, "{text}");
    assert!(text.contains("state.json"), "{text}");
}

#[test]
fn a_missing_geoip_database_is_named_once_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("geoip:\n  database: /nonexistent/country.mmdb\ncloudwatch:\n  region: eu-west-1\n{GROUPS}");
    let (ok, text) = check(dir.path(), &yaml, None);
    assert!(!ok, "{text}");
    assert!(text.contains("config.yaml: geoip.database: cannot open /nonexistent/country.mmdb"), "{text}");
    assert_eq!(text.matches("GeoIP").count() + text.matches("geoip").count(), 1, "{text}");
}

#[test]
fn the_web_configuration_and_server_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, format!("cloudwatch:\n  region: eu-west-1\n{GROUPS}")).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: /nonexistent.pem\n").unwrap();
    let c = cfg.to_str().unwrap();
    let out =
        run(dir.path(), &["--config.check", "--config.file", c, "--web.config.file", web.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.config.file"));
    let out = run(dir.path(), &["--config.check", "--config.file", c, "--web.telemetry-path", "metrics"], None);
    assert!(!out.status.success());
    let out = run(dir.path(), &["--config.check", "--config.file", c, "--web.listen-address", "nonsense"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.listen-address"));
}

#[test]
fn demo_and_replay_accept_config_check() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["demo", "--config.check"][..], &["replay", "--config.check"], &["--config.check", "demo"]] {
        let out = run(dir.path(), args, None);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"), "{args:?}");
    }
    // Without a cloudwatch section: fine for replay and demo, not for the live exporter.
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "detections:\n  forbidden_ports: [23]\n").unwrap();
    let c = cfg.to_str().unwrap();
    assert!(run(dir.path(), &["replay", "--config.check", "--config.file", c], None).status.success());
    assert!(run(dir.path(), &["demo", "--config.check", "--config.file", c], None).status.success());
    assert!(!run(dir.path(), &["--config.check", "--config.file", c], None).status.success());
    // A bad file fails each of them, naming the key.
    std::fs::write(&cfg, "detections:\n  forbidden_ports: [ssh]\n").unwrap();
    for sub in ["replay", "demo"] {
        let out = run(dir.path(), &[sub, "--config.check", "--config.file", c], None);
        assert_eq!(out.status.code(), Some(1), "{sub}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("detections.forbidden_ports[0]"), "{sub}");
    }
    // demo checks its server flags; replay its --log-format.
    let out = run(dir.path(), &["demo", "--config.check", "--web.telemetry-path", "/"], None);
    assert!(!out.status.success());
    let out = run(dir.path(), &["replay", "--config.check", "--log-format", "${version} ..."], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-format"));
}
