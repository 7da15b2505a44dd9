//! Why the exporter cannot start (or stopped): one variant per kind of
//! failure, each message in the words of the flag or key to fix. `main`
//! prints the chain on one line; the texts are part of the CLI contract.

use std::path::{Path, PathBuf};

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
    /// region, sections a mode needs) is wrong: the error names the key.
    #[error(transparent)]
    InConfig(InConfig),
    /// The same without a configuration file (the built-in defaults).
    #[error(transparent)]
    Defaults(BoxError),
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
    #[error("the exporter's task stopped")]
    Task(#[source] tokio::task::JoinError),
}

impl AppError {
    /// `error` (a typed error, or a message) about the configuration file
    /// `path` (or the defaults).
    pub(crate) fn in_config(path: Option<&Path>, error: impl Into<BoxError>) -> AppError {
        match path {
            Some(p) => AppError::InConfig(InConfig { path: p.to_path_buf(), error: error.into() }),
            None => AppError::Defaults(error.into()),
        }
    }
}

/// An error about what the configuration file `path` names, printed as
/// `path: error`; its causes are the error's own.
#[derive(Debug)]
pub struct InConfig {
    pub path: PathBuf,
    pub error: BoxError,
}

impl std::fmt::Display for InConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for InConfig {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_in_the_configuration_keeps_its_type_and_its_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("cloudwatch.state_file: cannot read /x")]
        struct Read(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::IsADirectory, "Is a directory");
        let e = AppError::in_config(Some(Path::new("c.yaml")), Read(io));
        assert_eq!(e.to_string(), "c.yaml: cloudwatch.state_file: cannot read /x");
        assert_eq!(crate::errors::chain(&e), "c.yaml: cloudwatch.state_file: cannot read /x: Is a directory");
        let AppError::InConfig(InConfig { error, .. }) = &e else { panic!("{e:?}") };
        assert!(error.downcast_ref::<Read>().is_some());
        let e = AppError::in_config(None, "replay: \"x\": not both".to_owned());
        assert_eq!(crate::errors::chain(&e), "replay: \"x\": not both");
    }

    #[tokio::test]
    async fn a_stopped_task_keeps_the_join_error_as_its_cause() {
        let join = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let shown = join.to_string();
        let e = AppError::Task(join);
        assert_eq!(crate::errors::chain(&e), format!("the exporter's task stopped: {shown}"));
    }
}
