//! The `vpc-flow-exporter` binary: flags, logging, wiring, exit codes. The
//! live exporter (`--config.file`), `replay` and `demo` share one pipeline.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use vpc_flow_exporter::aggregate::{Aggregator, SharedAggregator};
use vpc_flow_exporter::config::Config;
use vpc_flow_exporter::detect::geo;
use vpc_flow_exporter::expose::{self, Readiness, ServerConfig, ServerLimits, WebConfigHandle};
use vpc_flow_exporter::logging;
use vpc_flow_exporter::parse::LineParser;
use vpc_flow_exporter::reload;
use vpc_flow_exporter::source::cloudwatch::CloudWatchSource;
use vpc_flow_exporter::source::{demo, replay};

#[derive(Debug, Parser)]
#[command(name = "vpc-flow-exporter", version, about = "Turns AWS VPC Flow Logs into Prometheus metrics.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Configuration file (YAML). Required for the live exporter.
    #[arg(long = "config.file", value_name = "PATH", global = true)]
    config_file: Option<PathBuf>,

    /// Validate the configuration file and exit (0 when valid, 1 when not).
    #[arg(long = "config.check")]
    config_check: bool,

    /// Address to listen on for the metrics and health endpoints.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = ":10190", global = true)]
    listen_address: String,

    /// Path under which the metrics are exposed.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = "/metrics", global = true)]
    telemetry_path: String,

    /// Web configuration file (TLS, basic auth) in the Prometheus exporter-toolkit format; see docs/web.md.
    #[arg(long = "web.config.file", value_name = "PATH", global = true)]
    web_config_file: Option<PathBuf>,

    /// Most HTTP connections open at once; clamped to the open-files limit minus 64.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = expose::server::DEFAULT_MAX_CONNECTIONS, global = true)]
    web_max_connections: usize,

    /// How long a new counter series is exposed as 0 before its value, so that
    /// alert rules' increase() counts its first records; above the scrape
    /// interval. 0s turns it off.
    #[arg(long = "metrics.new-series-hold", value_name = "DURATION", default_value = "1m", global = true,
          value_parser = parse_hold)]
    new_series_hold: std::time::Duration,

    /// Least severe log events written (trace adds the AWS SDK's and HTTP stack's own).
    #[arg(long = "log.level", value_name = "LEVEL", value_enum, default_value = "info", global = true)]
    log_level: logging::LogLevel,

    /// Format of the exporter's own logs on standard error, one line per event.
    #[arg(long = "log.format", value_name = "FORMAT", value_parser = logging::LogFormatParser,
          default_value = "logfmt", global = true)]
    log_format: logging::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read flow-log files (or standard input), print the metrics, exit.
    Replay {
        /// Log format of the files, in AWS ${field} syntax (overrides the config's log_format).
        #[arg(long = "log-format", id = "replay_log_format", value_name = "FORMAT")]
        log_format: Option<String>,
        /// Files to read; `-` or none: standard input. `.gz` files are decompressed.
        #[arg(value_name = "PATH")]
        paths: Vec<String>,
    },
    /// Serve metrics from a built-in generator of realistic traffic (no AWS needed).
    Demo {
        /// Base records per second (1 to 1000000).
        #[arg(long = "demo.rate", value_name = "N", default_value_t = 150,
              value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rate: u32,
        /// Interfaces in the demo VPC (8 to 50000).
        #[arg(long = "demo.interfaces", value_name = "N", default_value_t = demo::DEFAULT_INTERFACES as u32,
              value_parser = clap::value_parser!(u32).range(8..=50_000))]
        interfaces: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        eprintln!("vpc-flow-exporter: {e:#}");
        return ExitCode::from(2);
    }
    let result = match &cli.command {
        Some(Command::Replay { log_format, paths }) => run_replay(&cli, log_format.as_deref(), paths),
        Some(Command::Demo { rate, interfaces }) => {
            runtime().and_then(|rt| rt.block_on(run_demo(&cli, *rate, *interfaces as usize)))
        }
        None if cli.config_check => check_config(&cli),
        None => runtime().and_then(|rt| rt.block_on(run_live(&cli))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, with the whole chain of causes.
            eprintln!("vpc-flow-exporter: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--metrics.new-series-hold`: a Prometheus duration of at most 10m.
fn parse_hold(s: &str) -> std::result::Result<std::time::Duration, String> {
    let d = vpc_flow_exporter::config::parse_duration(s)?;
    if d > std::time::Duration::from_secs(600) {
        return Err("at most 10m".to_owned());
    }
    Ok(d)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logging(cli: &Cli) -> Result<()> {
    // The values were checked by clap: a bad --log.level or --log.format already exited 2.
    Ok(logging::init(cli.log_level, cli.log_format)?)
}

/// The configuration file, or the defaults when none is given.
fn load_config(cli: &Cli) -> Result<Config> {
    match &cli.config_file {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        None => Ok(Config::default()),
    }
}

fn warn_unknown_fields(config: &Config) {
    for (key, fields) in config.unknown_format_fields() {
        tracing::warn!(key, fields = ?fields, "Format names fields that AWS does not define; they are read as ignored columns");
    }
}

/// The aggregator for a configuration, with GeoIP when configured.
fn aggregator(config: &Config) -> Result<Aggregator> {
    let agg = Aggregator::new(config);
    Ok(match &config.geoip {
        Some(g) => {
            let db = geo::MaxMindCountries::open(&g.database).map_err(|e| anyhow::anyhow!("geoip.database: {e}"))?;
            agg.with_countries(Box::new(db))
        }
        None => agg,
    })
}

fn check_config(cli: &Cli) -> Result<ExitCode> {
    let Some(path) = &cli.config_file else { bail!("--config.check needs --config.file") };
    let config = load_config(cli)?;
    warn_unknown_fields(&config);
    aggregator(&config)?;
    println!("{}: configuration is valid", path.display());
    Ok(ExitCode::SUCCESS)
}

fn run_replay(cli: &Cli, log_format: Option<&str>, paths: &[String]) -> Result<ExitCode> {
    let mut config = load_config(cli)?;
    if let Some(spec) = log_format {
        config.log_format = vpc_flow_exporter::config::compile_format("--log-format", spec)?;
    }
    warn_unknown_fields(&config);
    let mut agg = aggregator(&config)?;
    let inputs: Vec<replay::Input> = if paths.is_empty() {
        vec![replay::Input::Stdin]
    } else {
        paths.iter().map(|p| replay::Input::from_arg(p)).collect()
    };
    let mut parser = LineParser::for_file(config.log_format.clone());
    replay::replay(&inputs, &mut parser, &mut agg)?;
    let shared = agg.into_shared();
    let registry = expose::registry(&shared);
    let text = expose::encode(&registry);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|_| out.flush()).context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

fn listen_addr(s: &str) -> Result<SocketAddr> {
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_owned() };
    full.parse().with_context(|| format!("--web.listen-address: invalid address {s:?} (expected host:port or :port)"))
}

async fn bind(cli: &Cli) -> Result<TcpListener> {
    let addr = listen_addr(&cli.listen_address)?;
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("--web.listen-address: cannot listen on {addr}"))?;
    tracing::info!(address = %listener.local_addr().unwrap_or(addr), path = %cli.telemetry_path, "Listening");
    Ok(listener)
}

/// The web configuration (`--web.config.file`) and connection cap (`--web.max-connections`).
fn web_server(cli: &Cli) -> Result<(WebConfigHandle, ServerLimits)> {
    let web = match &cli.web_config_file {
        Some(path) => WebConfigHandle::open(path).context("--web.config.file")?,
        None => WebConfigHandle::plain(),
    };
    Ok((web, ServerLimits::with_max_connections(cli.web_max_connections)?))
}

fn check_telemetry_path(cli: &Cli) -> Result<()> {
    let p = &cli.telemetry_path;
    if !p.starts_with('/') || p == "/" || p.starts_with("/-/") {
        bail!("--web.telemetry-path: must start with / and not be / or under /-/, got {p:?}");
    }
    Ok(())
}

/// What identifies the loaded files: a reload whose files are unchanged is a
/// no-op. The configuration's bytes, and the GeoIP database's size and mtime.
fn digest(path: &std::path::Path, config: Option<&Config>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    vpc_flow_exporter::config::read_limited(path, vpc_flow_exporter::config::defaults::MAX_CONFIG_BYTES)
        .ok()?
        .hash(&mut h);
    if let Some(g) = config.and_then(|c| c.geoip.as_ref()) {
        let meta = std::fs::metadata(&g.database).ok()?;
        (meta.len(), meta.modified().ok()).hash(&mut h);
    }
    Some(h.finish())
}

/// SIGHUP re-reads the configuration file and the web configuration (on the
/// blocking pool, within `reload::RELOAD_TIMEOUT`) and applies both or
/// neither. A changed configuration rebuilds the aggregates with its
/// detections, limits, formats and GeoIP database (the counters restart from
/// zero, as after a restart); an unchanged one is a no-op. A file that does not
/// validate, a timeout or a panic while loading is logged and the running
/// configuration kept. Changes to `cloudwatch` take effect at the next
/// restart. With neither file, SIGHUP only logs that there is nothing to
/// reload. See `vpc_flow_exporter::reload`.
struct Reload {
    config_path: Option<PathBuf>,
    running: Config,
    agg: SharedAggregator,
    web: WebConfigHandle,
    demo: bool,
}

type Loaded = (Option<(Config, Aggregator, Option<u64>)>, Option<vpc_flow_exporter::expose::WebConfig>);

fn on_reload(r: Reload, registry: &Registry, shutdown: CancellationToken) -> Result<()> {
    let metrics = reload::ReloadMetrics::register(registry)?;
    if r.config_path.is_none() && r.web.path().is_none() {
        reload::on_sighup(shutdown, || async {
            tracing::info!("Received SIGHUP; there is no --config.file or --web.config.file to reload");
        });
        return Ok(());
    }
    let last =
        std::sync::Arc::new(std::sync::Mutex::new(r.config_path.as_deref().and_then(|p| digest(p, Some(&r.running)))));
    let r = std::sync::Arc::new(r);
    reload::on_sighup(shutdown, move || {
        let (r, metrics, last) = (r.clone(), metrics.clone(), last.clone());
        async move {
            let (path, web) = (r.config_path.clone(), r.web.clone());
            let load = move || -> Result<Loaded, reload::LoadError> {
                let config = match &path {
                    Some(path) => {
                        let config = Config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
                        let d = digest(path, Some(&config));
                        let fresh = aggregator(&config).map_err(|e| format!("{}: {e:#}", path.display()))?;
                        Some((config, fresh, d))
                    }
                    None => None,
                };
                Ok((config, web.load_replacement()?))
            };
            reload::reload_once(&metrics, reload::RELOAD_TIMEOUT, load, |(config, web)| {
                if let Some(web) = web {
                    r.web.apply(web);
                    tracing::info!("Web configuration reloaded");
                }
                let Some((config, fresh, d)) = config else { return Ok(()) };
                let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if d.is_some() && *last == d {
                    tracing::info!("Configuration file unchanged; counters and windows kept");
                    return Ok(());
                }
                warn_unknown_fields(&config);
                if config.cloudwatch != r.running.cloudwatch {
                    tracing::warn!("The cloudwatch section changed; it takes effect at the next restart");
                }
                let fresh = if r.demo { fresh.with_countries(Box::new(geo::demo_countries())) } else { fresh };
                *r.agg.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                *last = d;
                tracing::info!("Configuration reloaded; counters restart from zero");
                Ok(())
            })
            .await;
        }
    });
    Ok(())
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
            _ = ctrl_c => tracing::info!("Received SIGINT, shutting down"),
            _ = term => tracing::info!("Received SIGTERM, shutting down"),
        }
        token.cancel();
    });
}

async fn run_demo(cli: &Cli, rate: u32, interfaces: usize) -> Result<ExitCode> {
    check_telemetry_path(cli)?;
    let (web, limits) = web_server(cli)?;
    let config = match &cli.config_file {
        Some(_) => load_config(cli)?,
        None => demo::demo_config(),
    };
    let agg: SharedAggregator = aggregator(&config)?.with_countries(Box::new(geo::demo_countries())).into_shared();
    tracing::info!(rate, interfaces, detections = %demo::describe(&config.detections), "Demo mode: generated traffic, demo country table (not real geography)");
    let registry = expose::registry_with_new_series_hold(&agg, cli.new_series_hold);
    expose::register_process_metrics(&registry);
    let listener = bind(cli).await?;
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    let r = Reload {
        config_path: cli.config_file.clone(),
        running: config,
        agg: agg.clone(),
        web: web.clone(),
        demo: true,
    };
    on_reload(r, &registry, shutdown.clone())?;
    let generator = tokio::spawn(demo::run(agg.clone(), rate, interfaces, shutdown.clone()));
    let server = ServerConfig {
        registry,
        telemetry_path: cli.telemetry_path.clone(),
        readiness: Readiness::ready(),
        mode: "demo (generated traffic)".to_owned(),
        web,
        limits,
    };
    expose::serve(listener, server, shutdown.clone()).await;
    let _ = generator.await;
    Ok(ExitCode::SUCCESS)
}

async fn run_live(cli: &Cli) -> Result<ExitCode> {
    check_telemetry_path(cli)?;
    let (web, limits) = web_server(cli)?;
    let Some(path) = &cli.config_file else {
        bail!("--config.file is required for the live exporter (or run `vpc-flow-exporter demo`, or `replay FILE`)");
    };
    let config = load_config(cli)?;
    warn_unknown_fields(&config);
    let Some(cw) = config.cloudwatch.clone() else {
        bail!("{}: cloudwatch: missing: the live exporter needs a cloudwatch section with log_groups", path.display());
    };
    let agg = aggregator(&config)?.into_shared();
    let registry = expose::registry_with_new_series_hold(&agg, cli.new_series_hold);
    expose::register_process_metrics(&registry);
    let groups = cw.log_groups.len();
    let source = CloudWatchSource::new(cw, &registry).await?;
    let listener = bind(cli).await?;
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    let r =
        Reload { config_path: Some(path.clone()), running: config, agg: agg.clone(), web: web.clone(), demo: false };
    on_reload(r, &registry, shutdown.clone())?;
    let readiness = Readiness::default();
    let server = ServerConfig {
        registry,
        telemetry_path: cli.telemetry_path.clone(),
        readiness: readiness.clone(),
        mode: format!("live: {groups} CloudWatch log group(s)"),
        web,
        limits,
    };
    let server_shutdown = CancellationToken::new();
    let server_task = tokio::spawn(expose::serve(listener, server, server_shutdown.clone()));
    // The poller stops on the signal, saves its checkpoint, then the server stops.
    let result = source.run(agg, readiness, shutdown).await;
    server_shutdown.cancel();
    let _ = server_task.await;
    result.map(|()| ExitCode::SUCCESS)
}
