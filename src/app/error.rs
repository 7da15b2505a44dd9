//! Why the exporter cannot start (or stopped): one variant per kind of
//! failure, each message in the words of the flag or key to fix. `main`
//! prints the chain on one line; the texts are part of the CLI contract.

use std::path::PathBuf;

use super::listen::ListenError;
use crate::config::ConfigError;
use crate::expose::server::LimitError;
use crate::expose::web_config::WebConfigError;

/// A source's own typed error (each source has one), kept whole so that its
/// chain of causes prints as the source wrote it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("--config.file is required for the live exporter (or run `vpc-flow-exporter demo`, or `replay FILE`)")]
    ConfigFileRequired,
    /// The configuration file does not load or validate.
    #[error("{}: {error}", path.display())]
    Config { path: PathBuf, error: ConfigError },
    /// Something the configuration file names (GeoIP database, state file,
    /// region, sections a mode needs) is wrong: `message` names the key.
    #[error("{}: {message}", path.display())]
    InConfig { path: PathBuf, message: String },
    /// The same without a configuration file (the built-in defaults).
    #[error("{0}")]
    Defaults(String),
    #[error(transparent)]
    LogFormat(ConfigError),
    #[error("--web.telemetry-path: must start with / and not be / or under /-/, got {0:?}")]
    TelemetryPath(String),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("--web.config.file")]
    WebConfig(#[source] WebConfigError),
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error(transparent)]
    Metrics(#[from] prometheus::Error),
    /// A source failed to start or stopped with an error.
    #[error(transparent)]
    Source(BoxError),
    #[error(transparent)]
    Replay(#[from] crate::source::replay::ReplayError),
    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
    #[error("the exporter's task stopped: {0}")]
    Task(String),
}

impl AppError {
    /// `message` about the configuration file `path` (or the defaults).
    pub(crate) fn in_config(path: Option<&std::path::Path>, message: String) -> AppError {
        match path {
            Some(p) => AppError::InConfig { path: p.to_path_buf(), message },
            None => AppError::Defaults(message),
        }
    }
}
