//! The exporter under test: in-process through the library's builder
//! (`app::Exporter`, the wiring main.rs uses, with its server on a loopback
//! port and no signal handlers), or the real binary scraped over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vpc_flow_exporter::app::{Exporter, Mode, Running, Settings, WebArgs};
use vpc_flow_exporter::config::Config;
use vpc_flow_exporter::expose::{self, Readiness};

use super::moto::{free_port, init_aws_env};

/// Writes `config.yaml` into `dir` and loads it.
pub fn write_config(dir: &Path, yaml: &str) -> (PathBuf, Config) {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
    (path, cfg)
}

/// The exporter run in-process.
pub struct InProcess {
    pub registry: prometheus::Registry,
    pub ready: Readiness,
    running: Running,
}

impl InProcess {
    /// Starts the live exporter of `cfg`; `margin` overrides the dedup margin.
    pub async fn start(cfg: &Config, margin: Option<Duration>) -> InProcess {
        InProcess::try_start(cfg, margin).await.unwrap_or_else(|e| panic!("start: {e:#}"))
    }

    pub async fn try_start(cfg: &Config, margin: Option<Duration>) -> anyhow::Result<InProcess> {
        init_aws_env();
        // The counts are checked as soon as they are made: no 0 first.
        let web =
            WebArgs { listen_address: "127.0.0.1:0".to_owned(), new_series_hold: Duration::ZERO, ..WebArgs::default() };
        let settings = Settings { mode: Mode::Live, config_path: None, config: cfg.clone(), web };
        let mut exporter = Exporter::build(settings)?;
        if let Some(m) = margin {
            exporter = exporter.cloudwatch_dedup_margin(m);
        }
        let running = exporter.start().await?;
        Ok(InProcess { registry: running.registry().clone(), ready: running.readiness().clone(), running })
    }

    /// `http://127.0.0.1:PORT` of its server.
    pub fn base(&self) -> String {
        format!("http://{}", self.running.local_addr())
    }

    pub fn text(&self) -> String {
        expose::encode(&self.registry)
    }

    /// Waits until `pred` holds on the exposition; panics with it after `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text();
            if pred(&t) {
                return t;
            }
            if Instant::now() > deadline || self.running.is_finished() {
                panic!("timed out waiting for {what}; exposition:\n{}", relevant(&t));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM's equivalent: stops polling, saves the checkpoint, stops the server.
    pub async fn stop(self) -> (String, anyhow::Result<()>) {
        let InProcess { registry, running, .. } = self;
        let res = match tokio::time::timeout(Duration::from_secs(30), running.stop()).await {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("the exporter did not stop within 30 s of shutdown")),
        };
        (expose::encode(&registry), res)
    }
}

/// The lines of an exposition worth showing in a failure.
pub fn relevant(t: &str) -> String {
    t.lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.contains("cloudwatch") || l.starts_with("vpc_flow_records_total") || l.contains("parse_errors"))
        })
        .filter(|l| !l.contains("_bucket{"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The real binary, scraped over HTTP.
pub struct Binary {
    child: Child,
    pub base: String,
    pub stderr_path: PathBuf,
}

impl Binary {
    pub fn start(config: &Path, log_dir: &Path) -> Binary {
        Binary::start_with_env(config, log_dir, &[])
    }

    /// Starts it with extra environment variables (after the test defaults).
    pub fn start_with_env(config: &Path, log_dir: &Path, env: &[(&str, &str)]) -> Binary {
        let port = free_port();
        let stderr_path = log_dir.join(format!("exporter-{port}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpc-flow-exporter"));
        let child = crate::common::aws::child_env(&mut cmd)
            .arg("--config.file")
            .arg(config)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}"), "--log.level", "debug"])
            // The counts are checked as soon as they are made: no 0 first.
            .args(["--metrics.new-series-hold", "0s"])
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start vpc-flow-exporter");
        Binary { child, base: format!("http://127.0.0.1:{port}"), stderr_path }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    pub async fn scrape(&self) -> String {
        self.get("/metrics").await.map(|(_, t)| t).unwrap_or_default()
    }

    pub async fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.scrape().await;
            if !t.is_empty() && pred(&t) {
                return t;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the exporter exited ({status}) while waiting for {what}; log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; exposition:\n{}\nlog tail:\n{}",
                    relevant(&t),
                    tail(&self.log(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the exporter did not exit within 30 s of SIGTERM; log:\n{}", tail(&self.log(), 40));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
