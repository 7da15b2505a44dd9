//! A real Prometheus or Alertmanager with the test's configuration, in the
//! test's folder, on a free loopback port.

use std::fs;
use std::path::Path;

use super::process::{free_port, Proc};

/// Prometheus at `bin` with `config` (written to `dir/prometheus.yml`; paths
/// in it are relative to `dir`), its data in `dir/prom-data`, and `extra`
/// flags; logs to `dir/prometheus.log`. Returns it and its port.
pub fn start_prometheus(bin: &Path, dir: &Path, config: &str, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
    let mut args = vec![
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    (Proc::start("prometheus", bin, &args, dir), port)
}

/// Alertmanager at `bin` with `config` (written to `dir/alertmanager.yml`),
/// its data in `dir/am-data`, no cluster; logs to `dir/alertmanager.log`.
/// Returns it and its port.
pub fn start_alertmanager(bin: &Path, dir: &Path, config: &str) -> (Proc, u16) {
    let port = free_port();
    fs::write(dir.join("alertmanager.yml"), config).expect("write alertmanager.yml");
    fs::create_dir_all(dir.join("am-data")).expect("am-data");
    let args = [
        format!("--config.file={}", dir.join("alertmanager.yml").display()),
        format!("--storage.path={}", dir.join("am-data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    (Proc::start("alertmanager", bin, &args, dir), port)
}
