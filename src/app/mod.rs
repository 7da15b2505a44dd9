//! The exporter assembled: the command line ([`cli`], raw) → validated
//! [`Settings`] (mode, configuration file loaded and checked) → an
//! [`Exporter`] built from them (rules and aggregates; that is what
//! `--config.check` checks, with the sources' and the server's own checks) →
//! [`Exporter::start`]: registry, sources, HTTP server, SIGTERM/SIGINT and
//! SIGHUP reload, returning a [`Running`] handle (bound address, shutdown,
//! readiness, reload). `main.rs` and the integration tests both start the
//! exporter through it; see docs/embedding.md.
//!
//! ```no_run
//! # async fn example() -> Result<(), vpc_flow_exporter::app::AppError> {
//! use vpc_flow_exporter::app::{Exporter, Settings, WebArgs};
//! let web = WebArgs { listen_address: "127.0.0.1:0".into(), ..WebArgs::default() };
//! let running = Exporter::build(Settings::live("config.yaml".as_ref(), web)?)?.start().await?;
//! println!("serving on http://{}/metrics", running.local_addr());
//! running.stop().await
//! # }
//! ```

pub mod cli;
mod error;
mod exporter;
mod firehose;
mod ingest;
pub mod listen;
mod reload;
mod s3;

use std::path::{Path, PathBuf};

pub use cli::{Cli, Command, WebArgs};
pub use error::{AppError, BoxError};
pub use exporter::{Exporter, Running};

use crate::config::{self, Config};
use crate::source::demo;

/// The log target of the wiring's own events (the binary's, as before the
/// wiring moved into the library).
const BIN_TARGET: &str = "vpc_flow_exporter";

/// What the exporter does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The live sources (`--config.file` with a `cloudwatch` and/or a
    /// `firehose` section).
    Live,
    /// The built-in traffic generator.
    Demo { rate: u32, interfaces: usize },
    /// Read files (none: standard input), print the metrics, exit.
    Replay { paths: Vec<String> },
}

/// The command line validated: the mode, the configuration file loaded and
/// checked (or the mode's defaults), and the server flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub config_path: Option<PathBuf>,
    pub config: Config,
    /// The server flags; checked (and the host name resolved) by
    /// [`Exporter::check`] and [`Exporter::start`].
    pub web: WebArgs,
}

impl Settings {
    /// Loads what the command line names. The live exporter needs a
    /// configuration file; `demo` uses its own configuration without one,
    /// `replay` the defaults (and `--log-format` over the file's).
    pub fn from_cli(cli: &Cli) -> Result<Settings, AppError> {
        let path = cli.config_file.as_deref();
        let settings = match &cli.command {
            None => Settings::live(path.ok_or(AppError::ConfigFileRequired)?, cli.web.clone())?,
            Some(Command::Demo { web, rate, interfaces }) => Settings {
                mode: Mode::Demo { rate: *rate, interfaces: *interfaces as usize },
                config_path: path.map(Path::to_path_buf),
                config: match path {
                    Some(p) => load(p)?,
                    None => demo::demo_config(),
                },
                web: web.clone(),
            },
            Some(Command::Replay { log_format, paths }) => {
                let mut config = path.map_or_else(|| Ok(Config::default()), load)?;
                if let Some(spec) = log_format {
                    config.log_format = config::compile_format("--log-format", spec).map_err(AppError::LogFormat)?;
                }
                let mode = Mode::Replay { paths: paths.clone() };
                Settings { mode, config_path: path.map(Path::to_path_buf), config, web: cli.web.clone() }
            }
        };
        if !matches!(settings.mode, Mode::Live) {
            warn_unknown_fields(&settings.config);
        }
        Ok(settings)
    }

    /// The live exporter of the configuration file `path`.
    pub fn live(path: &Path, web: WebArgs) -> Result<Settings, AppError> {
        let config = load(path)?;
        warn_unknown_fields(&config);
        Ok(Settings { mode: Mode::Live, config_path: Some(path.to_path_buf()), config, web })
    }

    /// The configuration's name in messages: its path, or `built-in defaults`.
    pub fn config_name(&self) -> String {
        self.config_path.as_ref().map_or_else(|| "built-in defaults".to_owned(), |p| p.display().to_string())
    }
}

fn load(path: &Path) -> Result<Config, AppError> {
    Config::load(path).map_err(|error| AppError::Config { path: path.to_path_buf(), error })
}

fn warn_unknown_fields(config: &Config) {
    for (key, fields) in config.unknown_format_fields() {
        tracing::warn!(target: BIN_TARGET, key, fields = ?fields, "Format names fields that AWS does not define; they are read as ignored columns");
    }
}
