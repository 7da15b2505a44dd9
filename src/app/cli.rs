//! The command line as typed: clap's structs and the raw values of every flag
//! (the "low" arguments). Nothing here touches a file or the network; the
//! builder ([`super::Settings`], [`super::Exporter`]) validates and wires them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::expose;
use crate::logging;
use crate::source::demo;

/// `--web.listen-address` when none is given.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":10190";
/// `--web.telemetry-path` when none is given.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";
/// `--metrics.new-series-hold` when none is given (the flag's text: `1m`).
pub const DEFAULT_NEW_SERIES_HOLD: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(name = "vpc-flow-exporter", version, about = "Turns AWS VPC Flow Logs into Prometheus metrics.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Configuration file (YAML). Required for the live exporter.
    #[arg(long = "config.file", value_name = "PATH", global = true)]
    pub config_file: Option<PathBuf>,

    /// Run every check the start would run (configuration, sources, region,
    /// state folder, GeoIP database, web configuration), print the result and
    /// exit: 0 when all pass, 1 when one fails.
    #[arg(long = "config.check", global = true)]
    pub config_check: bool,

    /// The HTTP server of the live exporter (`demo` has its own).
    #[command(flatten)]
    pub web: WebArgs,

    /// Least severe log events written (trace adds the AWS SDK's and HTTP stack's own).
    #[arg(long = "log.level", value_name = "LEVEL", value_enum, default_value = "info", global = true)]
    pub log_level: logging::LogLevel,

    /// Format of the exporter's own logs on standard error, one line per event.
    #[arg(long = "log.format", value_name = "FORMAT", value_parser = logging::LogFormatParser,
          default_value = "logfmt", global = true)]
    pub log_format: logging::LogFormat,
}

/// Flags of the HTTP server: the live exporter and `demo` only (`replay`
/// serves nothing).
#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// Address to listen on for the metrics and health endpoints: host:port
    /// (a host name, an IPv4 address or [IPv6]), or :port for every address
    /// of both IPv4 and IPv6.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = DEFAULT_LISTEN_ADDRESS)]
    pub listen_address: String,

    /// Path under which the metrics are exposed.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = DEFAULT_TELEMETRY_PATH)]
    pub telemetry_path: String,

    /// Web configuration file (TLS, basic auth) in the Prometheus exporter-toolkit format; see docs/web.md.
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Most HTTP connections open at once; clamped to the open-files limit minus 64.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = expose::server::DEFAULT_MAX_CONNECTIONS)]
    pub web_max_connections: usize,

    /// How long a new counter series is exposed as 0 before its value, so that
    /// alert rules' increase() counts its first records; above the scrape
    /// interval. 0s turns it off.
    #[arg(long = "metrics.new-series-hold", value_name = "DURATION", default_value = "1m",
          value_parser = parse_hold)]
    pub new_series_hold: Duration,
}

impl Default for WebArgs {
    /// The flags' defaults: what a command line without server flags gives.
    fn default() -> WebArgs {
        WebArgs {
            listen_address: DEFAULT_LISTEN_ADDRESS.to_owned(),
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_owned(),
            web_config_file: None,
            web_max_connections: expose::server::DEFAULT_MAX_CONNECTIONS,
            new_series_hold: DEFAULT_NEW_SERIES_HOLD,
        }
    }
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
pub enum Command {
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

impl Cli {
    /// Parses the process's command line, exiting 2 (with clap's message) on
    /// a bad flag; a server flag given before a subcommand (where it would be
    /// ignored) is refused the same way.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Some((sub, _)) = matches.subcommand() {
            for (id, flag) in WEB_ARG_IDS {
                if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                    let hint = if sub == "demo" { "; put it after `demo`".to_owned() } else { String::new() };
                    Cli::command()
                        .error(
                            clap::error::ErrorKind::ArgumentConflict,
                            format!("{flag} does not apply to `{sub}`{hint}"),
                        )
                        .exit();
                }
            }
        }
        cli
    }
}

/// `--metrics.new-series-hold`: a Prometheus duration of at most 10m.
fn parse_hold(s: &str) -> Result<Duration, String> {
    let d = crate::config::parse_duration(s).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(600) {
        return Err("at most 10m".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_web_args_are_the_flags_defaults() {
        let cli = Cli::try_parse_from(["vpc-flow-exporter"]).unwrap();
        let d = WebArgs::default();
        assert_eq!(cli.web.listen_address, d.listen_address);
        assert_eq!(cli.web.telemetry_path, d.telemetry_path);
        assert_eq!(cli.web.web_max_connections, d.web_max_connections);
        assert_eq!(cli.web.new_series_hold, d.new_series_hold);
        assert_eq!(cli.web.web_config_file, d.web_config_file);
    }

    #[test]
    fn the_hold_is_at_most_ten_minutes() {
        assert_eq!(parse_hold("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_hold("11m"), Err("at most 10m".to_owned()));
    }
}
