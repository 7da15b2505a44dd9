//! The exporter's reload (SIGHUP, or [`super::Running::reload`]): re-reads
//! the configuration file and the web configuration on the blocking pool
//! (within [`reload::RELOAD_TIMEOUT`]) and applies both or neither. A changed
//! configuration builds new aggregates with its detections, limits, formats
//! and GeoIP database, which take every counter whose series still exists and
//! every window whose settings are unchanged; an unchanged file is a no-op. A
//! file that does not validate, a timeout or a panic while loading is logged,
//! counted in the reload gauges ([`reload::ReloadMetrics`]) and the running
//! configuration kept. Changes to `cloudwatch` and `firehose` take effect at
//! the next restart. With neither file, a reload only logs that there is
//! nothing to reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use super::error::AppError;
use super::ingest::{Ingest, Prepared};
use super::BIN_TARGET;
use crate::config::{self, Config};
use crate::expose::{WebConfig, WebConfigHandle};
use crate::reload::{self, LoadError, ReloadMetrics};

/// What a reload reads: the configuration (with its aggregates and digest)
/// when there is a file, and a new web configuration when it changed.
type Loaded = (Option<(Config, Prepared, Option<u64>)>, Option<WebConfig>);

pub(crate) struct Reloader {
    config_path: Option<PathBuf>,
    /// The configuration of the start (its cloudwatch section is not reloaded).
    running: Config,
    ingest: Ingest,
    demo: bool,
    web: WebConfigHandle,
    metrics: ReloadMetrics,
    /// The digest of the files last applied.
    last: Mutex<Option<u64>>,
}

impl Reloader {
    /// Registers the reload gauges in `registry` (a successful load now).
    pub(crate) fn new(
        config_path: Option<PathBuf>,
        running: Config,
        ingest: Ingest,
        demo: bool,
        web: WebConfigHandle,
        registry: &Registry,
    ) -> Result<Arc<Reloader>, prometheus::Error> {
        let metrics = ReloadMetrics::register(registry)?;
        let last = Mutex::new(config_path.as_deref().and_then(|p| digest(p, Some(&running))));
        Ok(Arc::new(Reloader { config_path, running, ingest, demo, web, metrics, last }))
    }

    /// Reloads on every SIGHUP until `shutdown`.
    pub(crate) fn on_sighup(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = self.clone();
        reload::on_sighup(shutdown, move || {
            let me = me.clone();
            async move {
                me.reload().await;
            }
        });
    }

    /// One reload; whether it succeeded (or there was nothing to reload).
    pub(crate) async fn reload(self: Arc<Self>) -> bool {
        if self.config_path.is_none() && self.web.path().is_none() {
            tracing::info!(target: BIN_TARGET, "Received SIGHUP; there is no --config.file or --web.config.file to reload");
            return true;
        }
        let (path, web, demo) = (self.config_path.clone(), self.web.clone(), self.demo);
        let load = move || -> Result<Loaded, LoadError> {
            let config = match &path {
                Some(path) => {
                    let config =
                        Config::load(path).map_err(|error| AppError::Config { path: path.to_path_buf(), error })?;
                    let d = digest(path, Some(&config));
                    let fresh = Prepared::new(&config, Some(path), demo)?;
                    Some((config, fresh, d))
                }
                None => None,
            };
            Ok((config, web.load_replacement()?))
        };
        reload::reload_once(&self.metrics, reload::RELOAD_TIMEOUT, load, |loaded| self.apply(loaded)).await
    }

    fn apply(&self, (config, web): Loaded) -> Result<(), LoadError> {
        if let Some(web) = web {
            self.web.apply(web);
            tracing::info!(target: BIN_TARGET, "Web configuration reloaded");
        }
        let Some((config, fresh, d)) = config else { return Ok(()) };
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if d.is_some() && *last == d {
            tracing::info!(target: BIN_TARGET, "Configuration file unchanged; counters and windows kept");
            return Ok(());
        }
        super::warn_unknown_fields(&config);
        if config.cloudwatch != self.running.cloudwatch {
            tracing::warn!(target: BIN_TARGET, "The cloudwatch section changed; it takes effect at the next restart");
        }
        if config.firehose != self.running.firehose {
            tracing::warn!(target: BIN_TARGET, "The firehose section changed; it takes effect at the next restart");
        }
        self.ingest.replace(fresh);
        *last = d;
        tracing::info!(
            target: BIN_TARGET,
            "Configuration reloaded; counters of series that still exist and unchanged windows kept"
        );
        Ok(())
    }
}

/// What identifies the loaded files: a reload whose files are unchanged is a
/// no-op. The configuration's bytes, and the GeoIP database's size and mtime.
fn digest(path: &Path, config: Option<&Config>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    config::read_limited(path, config::defaults::MAX_CONFIG_BYTES).ok()?.hash(&mut h);
    if let Some(g) = config.and_then(|c| c.geoip.as_ref()) {
        let meta = std::fs::metadata(&g.database).ok()?;
        (meta.len(), meta.modified().ok()).hash(&mut h);
    }
    Some(h.finish())
}
