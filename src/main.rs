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

    /// Run every check the start would run (configuration, sources, region,
    /// state folder, GeoIP database, web configuration), print the result and
    /// exit: 0 when all pass, 1 when one fails.
    #[arg(long = "config.check", global = true)]
    config_check: bool,

    /// The HTTP server of the live exporter (`demo` has its own).
    #[command(flatten)]
    web: WebArgs,

    /// Least severe log events written (trace adds the AWS SDK's and HTTP stack's own).
    #[arg(long = "log.level", value_name = "LEVEL", value_enum, default_value = "info", global = true)]
    log_level: logging::LogLevel,

    /// Format of the exporter's own logs on standard error, one line per event.
    #[arg(long = "log.format", value_name = "FORMAT", value_parser = logging::LogFormatParser,
          default_value = "logfmt", global = true)]
    log_format: logging::LogFormat,
}

/// Flags of the HTTP server: the live exporter and `demo` only (`replay`
/// serves nothing).
#[derive(Debug, Clone, clap::Args)]
struct WebArgs {
    /// Address to listen on for the metrics and health endpoints: host:port
    /// (a host name, an IPv4 address or [IPv6]), or :port for every address
    /// of both IPv4 and IPv6.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = ":10190")]
    listen_address: String,

    /// Path under which the metrics are exposed.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = "/metrics")]
    telemetry_path: String,

    /// Web configuration file (TLS, basic auth) in the Prometheus exporter-toolkit format; see docs/web.md.
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,

    /// Most HTTP connections open at once; clamped to the open-files limit minus 64.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = expose::server::DEFAULT_MAX_CONNECTIONS)]
    web_max_connections: usize,

    /// How long a new counter series is exposed as 0 before its value, so that
    /// alert rules' increase() counts its first records; above the scrape
    /// interval. 0s turns it off.
    #[arg(long = "metrics.new-series-hold", value_name = "DURATION", default_value = "1m",
          value_parser = parse_hold)]
    new_series_hold: std::time::Duration,
}

/// The ids of [`WebArgs`], to refuse them before a subcommand.
const WEB_ARG_IDS: [(&str, &str); 5] = [
    ("listen_address", "--web.listen-address"),
    ("telemetry_path", "--web.telemetry-path"),
    ("web_config_file", "--web.config.file"),
    ("web_max_connections", "--web.max-connections"),
    ("new_series_hold", "--metrics.new-series-hold"),
];

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
        #[command(flatten)]
        web: WebArgs,
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

/// Parses the command line; a server flag given before a subcommand (where
/// it would be ignored) is refused like any other bad flag (exit 2).
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some((sub, _)) = matches.subcommand() {
        for (id, flag) in WEB_ARG_IDS {
            if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                let hint = if sub == "demo" { "; put it after `demo`".to_owned() } else { String::new() };
                Cli::command()
                    .error(clap::error::ErrorKind::ArgumentConflict, format!("{flag} does not apply to `{sub}`{hint}"))
                    .exit();
            }
        }
    }
    cli
}

fn main() -> ExitCode {
    let cli = parse_cli();
    if let Err(e) = init_logging(&cli) {
        eprintln!("vpc-flow-exporter: {e:#}");
        return ExitCode::from(2);
    }
    let result = match &cli.command {
        Some(Command::Replay { log_format, .. }) if cli.config_check => check_replay(&cli, log_format.as_deref()),
        Some(Command::Replay { log_format, paths }) => run_replay(&cli, log_format.as_deref(), paths),
        Some(Command::Demo { web, .. }) if cli.config_check => {
            runtime().and_then(|rt| rt.block_on(check_demo(&cli, web)))
        }
        Some(Command::Demo { web, rate, interfaces }) => {
            runtime().and_then(|rt| rt.block_on(run_demo(&cli, web, *rate, *interfaces as usize)))
        }
        None if cli.config_check => runtime().and_then(|rt| rt.block_on(check_live(&cli))),
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
    let d = vpc_flow_exporter::config::parse_duration(s).map_err(|e| e.to_string())?;
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

/// The aggregator of the configuration file of the command line (errors
/// prefixed with its path).
fn cli_aggregator(cli: &Cli, config: &Config) -> Result<Aggregator> {
    match &cli.config_file {
        Some(path) => aggregator(config).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display())),
        None => aggregator(config),
    }
}

/// The aggregator for a configuration, with GeoIP when configured.
fn aggregator(config: &Config) -> Result<Aggregator> {
    let agg = Aggregator::new(config);
    Ok(match &config.geoip {
        Some(g) => {
            let db = geo::MaxMindCountries::open(&g.database).map_err(|e| match e {
                geo::GeoIpError::Open { path, reason } => {
                    anyhow::anyhow!("geoip.database: cannot open {}: {reason}", path.display())
                }
            })?;
            agg.with_countries(Box::new(db))
        }
        None => agg,
    })
}

/// The configuration file is required for the live exporter and its check.
fn live_config_path(cli: &Cli) -> Result<&std::path::Path> {
    match &cli.config_file {
        Some(p) => Ok(p),
        None => {
            bail!("--config.file is required for the live exporter (or run `vpc-flow-exporter demo`, or `replay FILE`)")
        }
    }
}

/// The live start's checks of the cloudwatch section: present, a region
/// resolvable (the section's, else AWS_REGION, AWS_DEFAULT_REGION, the AWS
/// profile or the instance metadata, as the AWS SDK reads them), the state
/// file readable and its folder writable.
async fn check_cloudwatch(path: &std::path::Path, config: &Config) -> Result<()> {
    use vpc_flow_exporter::source::cloudwatch::checkpoint;
    let Some(cw) = &config.cloudwatch else {
        bail!("{}: cloudwatch: missing: the live exporter needs a cloudwatch section with log_groups", path.display());
    };
    if cw.region.is_none()
        && aws_config::meta::region::ProvideRegion::region(&aws_config::default_provider::region::default_provider())
            .await
            .is_none()
    {
        bail!(
            "{}: cloudwatch.region: no AWS region found: set cloudwatch.region, the AWS_REGION variable or a region in the AWS profile",
            path.display()
        );
    }
    if let Some(state) = &cw.state_file {
        let names = cw.log_groups.iter().map(|g| g.name.as_str());
        let shown = |e: checkpoint::CheckpointError| {
            anyhow::anyhow!("{}: {}", path.display(), vpc_flow_exporter::errors::chain(&e))
        };
        checkpoint::load(state, checkpoint::max_file_bytes(names)).map_err(shown)?;
        checkpoint::check_writable_dir(state).map_err(shown)?;
    }
    Ok(())
}

/// `--config.check` of the live exporter: every check its start runs, without
/// contacting AWS or listening.
async fn check_live(cli: &Cli) -> Result<ExitCode> {
    let path = live_config_path(cli)?;
    let config = load_config(cli)?;
    warn_unknown_fields(&config);
    cli_aggregator(cli, &config)?;
    check_cloudwatch(path, &config).await?;
    check_server(&cli.web).await?;
    println!("{}: configuration is valid", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `demo --config.check`: the configuration (or the demo's own) and the server flags.
async fn check_demo(cli: &Cli, web: &WebArgs) -> Result<ExitCode> {
    let config = match &cli.config_file {
        Some(_) => load_config(cli)?,
        None => demo::demo_config(),
    };
    warn_unknown_fields(&config);
    cli_aggregator(cli, &config)?;
    check_server(web).await?;
    println!("{}: configuration is valid", config_name(cli));
    Ok(ExitCode::SUCCESS)
}

/// `replay --config.check`: the configuration, `--log-format` and the GeoIP database.
fn check_replay(cli: &Cli, log_format: Option<&str>) -> Result<ExitCode> {
    let mut config = load_config(cli)?;
    if let Some(spec) = log_format {
        config.log_format = vpc_flow_exporter::config::compile_format("--log-format", spec)?;
    }
    warn_unknown_fields(&config);
    cli_aggregator(cli, &config)?;
    println!("{}: configuration is valid", config_name(cli));
    Ok(ExitCode::SUCCESS)
}

fn config_name(cli: &Cli) -> String {
    cli.config_file.as_ref().map_or_else(|| "built-in defaults".to_owned(), |p| p.display().to_string())
}

fn run_replay(cli: &Cli, log_format: Option<&str>, paths: &[String]) -> Result<ExitCode> {
    let mut config = load_config(cli)?;
    if let Some(spec) = log_format {
        config.log_format = vpc_flow_exporter::config::compile_format("--log-format", spec)?;
    }
    warn_unknown_fields(&config);
    let mut agg = cli_aggregator(cli, &config)?;
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

/// A `--web.listen-address`, checked for form before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listen {
    /// `:port`: every address of both families.
    Any(u16),
    /// `host:port`, `ip:port` or `[ipv6]:port`, resolved when binding.
    Host(String),
}

fn parse_listen(s: &str) -> Result<Listen> {
    let bad =
        || anyhow::anyhow!("--web.listen-address: invalid address {s:?} (expected host:port, [IPv6]:port or :port)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Ok(Listen::Any(port));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if !bracketed && (host.contains(':') || host.contains('[') || host.contains(']')) {
        return Err(bad());
    }
    if bracketed && host[1..host.len() - 1].parse::<std::net::Ipv6Addr>().is_err() {
        return Err(bad());
    }
    Ok(Listen::Host(s.to_owned()))
}

/// The addresses a `host:port` stands for.
async fn resolve_listen(s: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(s)
        .await
        .with_context(|| format!("--web.listen-address: cannot resolve {s:?}"))?
        .collect();
    if addrs.is_empty() {
        bail!("--web.listen-address: {s:?} resolves to no address");
    }
    Ok(addrs)
}

/// `:port`: one IPv6 socket that takes IPv4 too (IPV6_V6ONLY off).
fn bind_dual_stack(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v6()?;
    rustix::net::sockopt::set_ipv6_v6only(&socket, false)?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))?;
    socket.listen(1024)
}

async fn bind(web: &WebArgs) -> Result<TcpListener> {
    let shown = &web.listen_address;
    let listener = match parse_listen(shown)? {
        Listen::Any(port) => match bind_dual_stack(port) {
            Ok(l) => l,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied) => {
                return Err(e).with_context(|| format!("--web.listen-address: cannot listen on {shown}"));
            }
            Err(e) => {
                tracing::info!(error = %e, "IPv6 is not available; listening on IPv4 only");
                TcpListener::bind(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)))
                    .await
                    .with_context(|| format!("--web.listen-address: cannot listen on {shown}"))?
            }
        },
        Listen::Host(s) => {
            let mut last = None;
            let mut bound = None;
            for addr in resolve_listen(&s).await? {
                match TcpListener::bind(addr).await {
                    Ok(l) => {
                        bound = Some(l);
                        break;
                    }
                    Err(e) => last = Some((addr, e)),
                }
            }
            match (bound, last) {
                (Some(l), _) => l,
                (None, Some((addr, e))) => {
                    return Err(e).with_context(|| format!("--web.listen-address: cannot listen on {shown} ({addr})"))
                }
                (None, None) => bail!("--web.listen-address: {shown:?} resolves to no address"),
            }
        }
    };
    let local = listener.local_addr().map_or_else(|_| shown.clone(), |a| a.to_string());
    tracing::info!(address = %local, path = %web.telemetry_path, "Listening");
    Ok(listener)
}

/// The web configuration (`--web.config.file`) and connection cap (`--web.max-connections`).
fn web_server(web: &WebArgs) -> Result<(WebConfigHandle, ServerLimits)> {
    let handle = match &web.web_config_file {
        Some(path) => WebConfigHandle::open(path).context("--web.config.file")?,
        None => WebConfigHandle::plain(),
    };
    Ok((handle, ServerLimits::with_max_connections(web.web_max_connections)?))
}

fn check_telemetry_path(web: &WebArgs) -> Result<()> {
    let p = &web.telemetry_path;
    if !p.starts_with('/') || p == "/" || p.starts_with("/-/") {
        bail!("--web.telemetry-path: must start with / and not be / or under /-/, got {p:?}");
    }
    Ok(())
}

/// Every check of the server flags that a start runs before listening:
/// telemetry path, web configuration, connection cap, listen address (its
/// form, and that its host name resolves).
async fn check_server(web: &WebArgs) -> Result<(WebConfigHandle, ServerLimits)> {
    check_telemetry_path(web)?;
    if let Listen::Host(s) = parse_listen(&web.listen_address)? {
        resolve_listen(&s).await?;
    }
    web_server(web)
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
/// neither. A changed configuration builds new aggregates with its
/// detections, limits, formats and GeoIP database and moves into them every
/// counter whose series still exists and every window whose settings are
/// unchanged (`Aggregator::keep_from`); an unchanged one is a no-op. A file that does not
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
                let mut fresh = if r.demo { fresh.with_countries(Box::new(geo::demo_countries())) } else { fresh };
                let mut agg = r.agg.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                fresh.keep_from(&mut agg);
                *agg = fresh;
                drop(agg);
                *last = d;
                tracing::info!(
                    "Configuration reloaded; counters of series that still exist and unchanged windows kept"
                );
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

async fn run_demo(cli: &Cli, web_args: &WebArgs, rate: u32, interfaces: usize) -> Result<ExitCode> {
    // Every flag and file is checked, and the port bound, before the banner.
    let (web, limits) = check_server(web_args).await?;
    let config = match &cli.config_file {
        Some(_) => load_config(cli)?,
        None => demo::demo_config(),
    };
    let mut agg = cli_aggregator(cli, &config)?.with_countries(Box::new(geo::demo_countries()));
    agg.set_source(&std::sync::Arc::from("demo"));
    let agg: SharedAggregator = agg.into_shared();
    let listener = bind(web_args).await?;
    tracing::info!(rate, interfaces, detections = %demo::describe(&config.detections), "Demo mode: generated traffic, demo country table (not real geography)");
    let registry = expose::registry_with_new_series_hold(&agg, web_args.new_series_hold);
    expose::register_process_metrics(&registry);
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
        telemetry_path: web_args.telemetry_path.clone(),
        readiness: Readiness::ready(),
        mode: format!("demo (generated traffic: {rate} records/s over {interfaces} interfaces)"),
        web,
        limits,
    };
    expose::serve(listener, server, shutdown.clone()).await;
    let _ = generator.await;
    Ok(ExitCode::SUCCESS)
}

async fn run_live(cli: &Cli) -> Result<ExitCode> {
    let path = live_config_path(cli)?.to_path_buf();
    let (web, limits) = check_server(&cli.web).await?;
    let config = load_config(cli)?;
    warn_unknown_fields(&config);
    check_cloudwatch(&path, &config).await?;
    let Some(cw) = config.cloudwatch.clone() else {
        bail!("{}: cloudwatch: missing: the live exporter needs a cloudwatch section with log_groups", path.display());
    };
    let agg = cli_aggregator(cli, &config)?.into_shared();
    let registry = expose::registry_with_new_series_hold(&agg, cli.web.new_series_hold);
    expose::register_process_metrics(&registry);
    let names: Vec<&str> = cw.log_groups.iter().map(|g| g.name.as_str()).collect();
    let mode = format!("CloudWatch Logs log group(s) {}", names.join(", "));
    let source = CloudWatchSource::new(cw, &registry).await?;
    let listener = bind(&cli.web).await?;
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    let r = Reload { config_path: Some(path), running: config, agg: agg.clone(), web: web.clone(), demo: false };
    on_reload(r, &registry, shutdown.clone())?;
    let readiness = Readiness::default();
    let server = ServerConfig {
        registry,
        telemetry_path: cli.web.telemetry_path.clone(),
        readiness: readiness.clone(),
        mode,
        web,
        limits,
    };
    let server_shutdown = CancellationToken::new();
    let server_task = tokio::spawn(expose::serve(listener, server, server_shutdown.clone()));
    // The poller stops on the signal, saves its checkpoint, then the server stops.
    let result = source.run(agg, readiness, shutdown).await;
    server_shutdown.cancel();
    let _ = server_task.await;
    result?;
    Ok(ExitCode::SUCCESS)
}
