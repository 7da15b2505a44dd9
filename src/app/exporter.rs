//! The builder proper: [`Exporter::build`] (configuration → rules →
//! aggregates), [`Exporter::check`] (the sources' and the server's checks,
//! nothing started), [`Exporter::start`] (registry → sources → server →
//! signals and reload) and the [`Running`] handle; [`Exporter::replay`] for
//! the `replay` subcommand.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::error::AppError;
use super::firehose::{self, FirehoseListener};
use super::ingest::{Ingest, Prepared, SourceTask};
use super::listen::Listen;
use super::reload::Reloader;
use super::{Mode, Settings, WebArgs, BIN_TARGET};
use crate::config::Config;
use crate::expose::{self, Readiness, ServerConfig, ServerLimits, WebConfigHandle};
use crate::source::cloudwatch::{checkpoint, CloudWatchSource};
use crate::source::demo;
use crate::source::s3::S3Source;

/// An exporter built from [`Settings`], not started.
pub struct Exporter {
    settings: Settings,
    prepared: Prepared,
    signals: bool,
    dedup_margin: Option<Duration>,
}

impl Exporter {
    /// The rules and aggregates of the configuration (its GeoIP database
    /// opened): every check that needs neither the network nor the server.
    pub fn build(settings: Settings) -> Result<Exporter, AppError> {
        let demo = matches!(settings.mode, Mode::Demo { .. });
        let prepared = Prepared::new(&settings.config, settings.config_path.as_deref(), demo)?;
        Ok(Exporter { settings, prepared, signals: false, dedup_margin: None })
    }

    /// Whether [`Exporter::start`] handles SIGTERM and SIGINT (shutdown) and
    /// SIGHUP (reload); off by default, for exporters embedded in tests.
    pub fn handle_signals(mut self, on: bool) -> Exporter {
        self.signals = on;
        self
    }

    /// Overrides `cloudwatch.dedup_margin` (tests use one below its 1s floor).
    pub fn cloudwatch_dedup_margin(mut self, margin: Duration) -> Exporter {
        self.dedup_margin = Some(margin);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every check the start runs, without contacting AWS or listening: the
    /// sources' (region, state file and folder) and the server flags'.
    pub async fn check(&self) -> Result<(), AppError> {
        if let Mode::Replay { .. } = self.settings.mode {
            return Ok(());
        }
        self.check_sources().await?;
        ServerSettings::check(&self.settings.web).await.map(drop)
    }

    /// `replay`: reads the files and writes the exposition to `out`.
    pub fn replay(self, out: &mut dyn std::io::Write) -> Result<(), AppError> {
        let paths = match &self.settings.mode {
            Mode::Replay { paths } => paths.as_slice(),
            _ => &[],
        };
        let text = if paths.iter().any(|p| p.starts_with("s3://")) {
            self.prepared.replay_s3(&self.settings.config, paths)?
        } else {
            self.prepared.replay(&self.settings.config, paths)?
        };
        out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(AppError::Stdout)
    }

    /// Starts the live exporter or the demo: every check first, then the
    /// registry, the sources, the server (bound before this returns), the
    /// signal handlers when asked, and the reload.
    pub async fn start(self) -> Result<Running, AppError> {
        self.check_sources().await?;
        let server = ServerSettings::check(&self.settings.web).await?;
        let ingest = Ingest::start(self.prepared);
        let registry = ingest.registry(self.settings.web.new_series_hold);
        expose::register_process_metrics(&registry);
        let sources = Sources::new(&self.settings, &registry, self.dedup_margin, (&ingest, &server)).await?;
        let listener = server.listen.bind(&self.settings.web.listen_address).await?;
        let addr = listener.local_addr().map_err(|source| super::listen::ListenError::Bind {
            key: super::listen::WEB_LISTEN_ADDRESS,
            shown: self.settings.web.listen_address.clone(),
            source,
        })?;
        tracing::info!(target: BIN_TARGET, address = %addr, path = %self.settings.web.telemetry_path, "Listening");
        sources.announce(&self.settings.config);
        let shutdown = CancellationToken::new();
        let Settings { config_path, config, web, mode } = self.settings;
        let demo = matches!(mode, Mode::Demo { .. });
        let reloader = Reloader::new(config_path, config, ingest.clone(), demo, server.web.clone(), &registry)?;
        if self.signals {
            on_signal(shutdown.clone());
            reloader.on_sighup(shutdown.clone());
        }
        let readiness = sources.readiness.clone();
        let firehose_addr = sources.firehose_addr;
        let config = ServerConfig {
            registry: registry.clone(),
            telemetry_path: web.telemetry_path,
            readiness: readiness.clone(),
            mode: sources.mode.clone(),
            web: server.web,
            limits: server.limits,
        };
        let tasks = sources.spawn(&ingest, &shutdown);
        let task = tokio::spawn(serve_until_stopped(listener, config, tasks, shutdown.clone()));
        Ok(Running { addr, firehose_addr, registry, readiness, shutdown, reloader, task })
    }

    /// The sources' checks: the live exporter's cloudwatch section (required
    /// unless another source is configured) and firehose section.
    async fn check_sources(&self) -> Result<(), AppError> {
        let Mode::Live = &self.settings.mode else { return Ok(()) };
        let (config, path) = (&self.settings.config, self.settings.config_path.as_deref());
        if config.cloudwatch.is_some() || (config.firehose.is_none() && config.s3.is_none()) {
            check_cloudwatch(path, config).await?;
        }
        super::s3::check(config, path).await?;
        firehose::check(config, path, &self.settings.web).await
    }
}

/// A started exporter: what tests and embedders need to reach it.
pub struct Running {
    addr: SocketAddr,
    firehose_addr: Option<SocketAddr>,
    registry: Registry,
    readiness: Readiness,
    shutdown: CancellationToken,
    reloader: Arc<Reloader>,
    task: JoinHandle<Result<(), AppError>>,
}

impl Running {
    /// The address the server listens on (the port chosen for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the Firehose receiver listens on, when configured.
    pub fn firehose_addr(&self) -> Option<SocketAddr> {
        self.firehose_addr
    }

    /// Everything `/metrics` exposes.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What `/-/ready` reports.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Cancelling it stops the exporter as SIGTERM does: the sources stop
    /// (the poller saves its checkpoint), then the server.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What SIGHUP does; whether the reload succeeded.
    pub async fn reload(&self) -> bool {
        self.reloader.clone().reload().await
    }

    /// Whether the exporter has stopped (shutdown, or a source failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the exporter stops; the first source error, if any.
    pub async fn wait(self) -> Result<(), AppError> {
        self.task.await.map_err(AppError::Task)?
    }

    /// Shuts down and waits.
    pub async fn stop(self) -> Result<(), AppError> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// The server flags checked: what the start runs before listening.
struct ServerSettings {
    listen: Listen,
    web: WebConfigHandle,
    limits: ServerLimits,
}

impl ServerSettings {
    /// Telemetry path, listen address (its form, and that its host name
    /// resolves), web configuration, connection cap; in that order.
    async fn check(web: &WebArgs) -> Result<ServerSettings, AppError> {
        let p = &web.telemetry_path;
        if !p.starts_with('/') || p == "/" || p.starts_with("/-/") {
            return Err(AppError::TelemetryPath(p.clone()));
        }
        let listen = Listen::parse(&web.listen_address)?;
        listen.check().await?;
        let handle = match &web.web_config_file {
            Some(path) => WebConfigHandle::open(path).map_err(AppError::WebConfig)?,
            None => WebConfigHandle::plain(),
        };
        let limits = ServerLimits::with_max_connections(web.web_max_connections)?;
        Ok(ServerSettings { listen, web: handle, limits })
    }
}

const NO_CLOUDWATCH: &str = "cloudwatch: missing: the live exporter needs a cloudwatch section with log_groups";

/// The live start's checks of the cloudwatch section: present, a region
/// resolvable (the section's, else AWS_REGION, AWS_DEFAULT_REGION, the AWS
/// profile or the instance metadata, as the AWS SDK reads them), the state
/// file readable and its folder writable.
async fn check_cloudwatch(path: Option<&Path>, config: &Config) -> Result<(), AppError> {
    let in_file = |message: &str| AppError::in_config(path, message.to_owned());
    let Some(cw) = &config.cloudwatch else {
        return Err(in_file(NO_CLOUDWATCH));
    };
    region_resolves("cloudwatch", cw.region.as_deref(), path).await?;
    if let Some(state) = &cw.state_file {
        let names = cw.log_groups.iter().map(|g| g.name.as_str());
        let shown = |e: checkpoint::CheckpointError| in_file(&crate::errors::chain(&e));
        checkpoint::load(state, checkpoint::max_file_bytes(names)).map_err(shown)?;
        checkpoint::check_writable_dir(state).map_err(shown)?;
    }
    Ok(())
}

/// That a `section` (`cloudwatch`, `s3`) has a region: its own `region`, else
/// one the AWS default chain finds (environment, profile); no request is sent.
pub(super) async fn region_resolves(section: &str, region: Option<&str>, path: Option<&Path>) -> Result<(), AppError> {
    if region.is_some()
        || aws_config::meta::region::ProvideRegion::region(&aws_config::default_provider::region::default_provider())
            .await
            .is_some()
    {
        return Ok(());
    }
    let message = format!(
        "{section}.region: no AWS region found: set {section}.region, the AWS_REGION variable or a region in the AWS profile"
    );
    Err(AppError::in_config(path, message))
}

/// The sources of the mode, built (clients made, checkpoints read), not running.
struct Sources {
    list: Vec<Source>,
    /// Every source's readiness together.
    readiness: Readiness,
    firehose_addr: Option<SocketAddr>,
    /// One line for the landing page.
    mode: String,
}

enum Source {
    Demo { rate: u32, interfaces: usize },
    CloudWatch(Box<CloudWatchSource>, Readiness),
    Firehose(Box<FirehoseListener>, Readiness),
    S3(Box<S3Source>, Readiness),
}

/// What the live sources are built with besides the settings.
type Wiring<'a> = (&'a Ingest, &'a ServerSettings);

impl Sources {
    async fn new(
        settings: &Settings,
        registry: &Registry,
        margin: Option<Duration>,
        wiring: Wiring<'_>,
    ) -> Result<Sources, AppError> {
        match &settings.mode {
            Mode::Demo { rate, interfaces } => Ok(Sources {
                list: vec![Source::Demo { rate: *rate, interfaces: *interfaces }],
                readiness: Readiness::ready(),
                firehose_addr: None,
                mode: format!("demo (generated traffic: {rate} records/s over {interfaces} interfaces)"),
            }),
            Mode::Live => Sources::live(settings, registry, margin, wiring).await,
            Mode::Replay { .. } => Ok(Sources {
                list: Vec::new(),
                readiness: Readiness::ready(),
                firehose_addr: None,
                mode: "replay".into(),
            }),
        }
    }

    /// Every source the configuration sets up (a new source adds its
    /// section here, its checks to `check_sources`, its run to `Ingest`).
    async fn live(
        settings: &Settings,
        registry: &Registry,
        margin: Option<Duration>,
        (ingest, server): Wiring<'_>,
    ) -> Result<Sources, AppError> {
        let (mut list, mut modes, mut parts) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(cw) = settings.config.cloudwatch.clone() {
            let names: Vec<&str> = cw.log_groups.iter().map(|g| g.name.as_str()).collect();
            modes.push(format!("CloudWatch Logs log group(s) {}", names.join(", ")));
            let mut source = CloudWatchSource::new(cw, registry).await.map_err(|e| AppError::Source(e.into()))?;
            if let Some(m) = margin {
                source.set_dedup_margin(m);
            }
            parts.push(Readiness::named("cloudwatch (every log group polled once)"));
            list.push(Source::CloudWatch(Box::new(source), parts[parts.len() - 1].clone()));
        }
        let firehose = firehose::start(&settings.config, ingest, registry, server.web.clone(), server.limits).await?;
        let firehose_addr = firehose.as_ref().map(|f| f.addr);
        if let Some(listener) = firehose {
            modes.push(format!("Amazon Data Firehose receiver on {}", listener.addr));
            parts.push(Readiness::named("firehose (listening)"));
            list.push(Source::Firehose(Box::new(listener), parts[parts.len() - 1].clone()));
        }
        if let Some(s3) = settings.config.s3.clone() {
            modes.push(format!(
                "S3 objects announced on {}",
                crate::source::cloudwatch::client::redact_url(&s3.queue_url)
            ));
            let source = S3Source::new(s3, registry).await.map_err(|e| AppError::Source(e.into()))?;
            parts.push(Readiness::named("s3 (the SQS queue answered)"));
            list.push(Source::S3(Box::new(source), parts[parts.len() - 1].clone()));
        }
        if list.is_empty() {
            return Err(AppError::in_config(settings.config_path.as_deref(), NO_CLOUDWATCH.to_owned()));
        }
        Ok(Sources { list, readiness: Readiness::all(parts), firehose_addr, mode: modes.join("; ") })
    }

    /// The start's log line of each source that has one.
    fn announce(&self, config: &Config) {
        for source in &self.list {
            if let Source::Demo { rate, interfaces } = source {
                tracing::info!(target: BIN_TARGET, rate, interfaces, detections = %demo::describe(&config.detections), "Demo mode: generated traffic, demo country table (not real geography)");
            }
        }
    }

    fn spawn(self, ingest: &Ingest, shutdown: &CancellationToken) -> Vec<SourceTask> {
        self.list
            .into_iter()
            .map(|source| match source {
                Source::Demo { rate, interfaces } => ingest.demo(rate, interfaces, shutdown.clone()),
                Source::CloudWatch(cw, ready) => ingest.cloudwatch(*cw, ready, shutdown.clone()),
                Source::Firehose(fh, ready) => ingest.firehose(*fh, ready, shutdown.clone()),
                Source::S3(s3, ready) => ingest.s3(*s3, ready, shutdown.clone()),
            })
            .collect()
    }
}

/// Serves until every source has stopped (on `shutdown`, or the first
/// error, which stops the others), then stops the server: the poller saves
/// its checkpoint while `/metrics` still answers.
async fn serve_until_stopped(
    listener: TcpListener,
    server: ServerConfig,
    tasks: Vec<SourceTask>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let server_shutdown = CancellationToken::new();
    let server_task = tokio::spawn(expose::serve(listener, server, server_shutdown.clone()));
    let mut set = JoinSet::new();
    for task in tasks {
        set.spawn(task);
    }
    let mut first = None;
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined.map_err(AppError::Task).and_then(|r| r) {
            shutdown.cancel();
            first.get_or_insert(e);
        }
    }
    server_shutdown.cancel();
    let _ = server_task.await;
    first.map_or(Ok(()), Err)
}

/// SIGINT or SIGTERM cancels the token.
fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!(target: BIN_TARGET, "Received SIGINT, shutting down"),
            _ = term => tracing::info!(target: BIN_TARGET, "Received SIGTERM, shutting down"),
        }
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::app::Cli;

    fn gauge(running: &Running) -> String {
        let text = expose::encode(running.registry());
        text.lines().find(|l| l.starts_with("vpc_flow_exporter_config_last_reload_successful ")).unwrap().to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_demo_serves_reloads_and_stops_through_its_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "detections:\n  forbidden_ports: [23]\n").unwrap();
        let args = ["x", "--config.file", path.to_str().unwrap(), "demo", "--web.listen-address", "127.0.0.1:0"];
        let cli = Cli::try_parse_from(args.iter().chain(&["--metrics.new-series-hold", "0s"])).unwrap();
        let running = Exporter::build(Settings::from_cli(&cli).unwrap()).unwrap().start().await.unwrap();
        let url = format!("http://{}/metrics", running.local_addr());
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert!(body.contains("vpc_flow_exporter_config_last_reload_successful 1"), "{body}");
        assert!(running.readiness().is_ready());
        // A file that does not validate keeps the running configuration.
        std::fs::write(&path, "detections:\n  forbidden_ports: [ssh]\n").unwrap();
        assert!(!running.reload().await);
        assert_eq!(gauge(&running), "vpc_flow_exporter_config_last_reload_successful 0");
        std::fs::write(&path, "detections:\n  forbidden_ports: [22]\n").unwrap();
        assert!(running.reload().await);
        assert_eq!(gauge(&running), "vpc_flow_exporter_config_last_reload_successful 1");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !expose::encode(running.registry()).contains("vpc_flow_records_total{") {
            assert!(std::time::Instant::now() < deadline, "the demo counted nothing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!running.is_finished());
        running.stop().await.unwrap();
        assert!(reqwest::get(&url).await.is_err(), "the server stopped with the exporter");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_firehose_section_alone_is_a_live_exporter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let write = |listen: &str| {
            let yaml = format!("firehose:\n  listen_address: \"{listen}\"\n  allow_unauthenticated: true\n");
            std::fs::write(&path, yaml).unwrap();
        };
        let web =
            |addr: &str| WebArgs { listen_address: addr.into(), new_series_hold: Duration::ZERO, ..WebArgs::default() };
        write("nonsense");
        let e = Exporter::build(Settings::live(&path, web("127.0.0.1:0")).unwrap()).unwrap().check().await.unwrap_err();
        let want = "firehose.listen_address: invalid address \"nonsense\" (expected host:port, [IPv6]:port or :port)";
        assert_eq!(e.to_string(), want);
        write(":10190");
        let e = Exporter::build(Settings::live(&path, web(":10190")).unwrap()).unwrap().check().await.unwrap_err();
        let want = "firehose.listen_address: must differ from --web.listen-address (:10190)";
        assert_eq!(e.to_string(), format!("{}: {want}", path.display()));

        write("127.0.0.1:0");
        let exporter = Exporter::build(Settings::live(&path, web("127.0.0.1:0")).unwrap()).unwrap();
        exporter.check().await.unwrap();
        let running = exporter.start().await.unwrap();
        let addr = running.firehose_addr().unwrap();
        let line = "2 1 eni-f 10.0.0.1 10.0.0.2 1 443 6 1 100 1700000000 1700000060 ACCEPT OK";
        let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, line);
        let body = format!("{{\"requestId\":\"r1\",\"timestamp\":1,\"records\":[{{\"data\":\"{data}\"}}]}}");
        let client = reqwest::Client::new();
        let reply = client.post(format!("http://{addr}/")).header("content-type", "application/json").body(body);
        let reply = reply.send().await.unwrap();
        assert_eq!(reply.status(), 200);
        let text = expose::encode(running.registry());
        assert!(text.contains("vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-f\"} 1"), "{text}");
        assert!(running.readiness().is_ready(), "ready once listening");
        running.stop().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the Firehose listener stopped too");
    }

    #[tokio::test]
    async fn check_runs_the_starts_checks_and_binds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "detections:\n  forbidden_ports: [23]\n").unwrap();
        let live = Exporter::build(Settings::live(&path, WebArgs::default()).unwrap()).unwrap();
        let e = live.check().await.unwrap_err();
        assert_eq!(e.to_string(), format!("{}: {NO_CLOUDWATCH}", path.display()));
        // A taken port passes the check (nothing is bound) and fails the start.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let shown = taken.local_addr().unwrap().to_string();
        let cli = Cli::try_parse_from(["x", "demo", "--web.listen-address", &shown]).unwrap();
        let demo = Exporter::build(Settings::from_cli(&cli).unwrap()).unwrap();
        demo.check().await.unwrap();
        let e = demo.start().await.err().unwrap();
        assert!(e.to_string().starts_with(&format!("--web.listen-address: cannot listen on {shown} (")), "{e}");
        let cli = Cli::try_parse_from(["x", "demo", "--web.telemetry-path", "/-/x"]).unwrap();
        let e = Exporter::build(Settings::from_cli(&cli).unwrap()).unwrap().check().await.unwrap_err();
        assert_eq!(e.to_string(), "--web.telemetry-path: must start with / and not be / or under /-/, got \"/-/x\"");
    }
}
