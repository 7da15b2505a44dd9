//! The builder's only door to the ingest side (aggregator, parser, exposition
//! registry): every call of today's `aggregate` API that the wiring makes is
//! here, so that moving the builder onto `pipeline::Pipeline` is an edit of
//! this file alone.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use super::error::AppError;
use crate::aggregate::{Aggregator, SharedAggregator};
use crate::config::Config;
use crate::detect::geo;
use crate::expose::{self, Readiness};
use crate::parse::LineParser;
use crate::source::cloudwatch::CloudWatchSource;
use crate::source::{demo, replay};

/// A source's run until shutdown, as the builder spawns it.
pub(crate) type SourceTask = Pin<Box<dyn Future<Output = Result<(), AppError>> + Send>>;

/// Aggregates built from a configuration and not yet counting: at the start,
/// and on the blocking pool during a reload.
pub(crate) struct Prepared(Aggregator);

impl Prepared {
    /// The aggregates of `config`, with its GeoIP database (errors prefixed
    /// with the configuration's `path`); `demo` uses the demo's country table
    /// and names the source for invalid-line diagnostics.
    pub(crate) fn new(config: &Config, path: Option<&Path>, demo: bool) -> Result<Prepared, AppError> {
        let mut agg = Aggregator::new(config);
        if let Some(g) = &config.geoip {
            let db = geo::MaxMindCountries::open(&g.database).map_err(|e| match e {
                geo::GeoIpError::Open { path: db, reason } => {
                    AppError::in_config(path, format!("geoip.database: cannot open {}: {reason}", db.display()))
                }
            })?;
            agg = agg.with_countries(Box::new(db));
        }
        if demo {
            agg = agg.with_countries(Box::new(geo::demo_countries()));
            agg.set_source(&Arc::from("demo"));
        }
        Ok(Prepared(agg))
    }

    /// Reads `inputs` to their end (`None`: standard input) and returns the
    /// exposition (no hold, no process metrics: reproducible output).
    pub(crate) fn replay(self, config: &Config, paths: &[String]) -> Result<String, AppError> {
        let Prepared(mut agg) = self;
        let inputs: Vec<replay::Input> = if paths.is_empty() {
            vec![replay::Input::Stdin]
        } else {
            paths.iter().map(|p| replay::Input::from_arg(p)).collect()
        };
        let mut parser = LineParser::for_file(config.log_format.clone());
        replay::replay(&inputs, &mut parser, &mut agg)?;
        Ok(expose::encode(&expose::registry(&agg.into_shared())))
    }
}

/// The running aggregates that sources count into and scrapes read.
#[derive(Clone)]
pub(crate) struct Ingest {
    agg: SharedAggregator,
}

impl Ingest {
    pub(crate) fn start(prepared: Prepared) -> Ingest {
        Ingest { agg: prepared.0.into_shared() }
    }

    /// A registry exposing the aggregates, new series held at 0 for `hold`.
    pub(crate) fn registry(&self, hold: Duration) -> Registry {
        expose::registry_with_new_series_hold(&self.agg, hold)
    }

    /// A reload: `fresh` takes every counter whose series still exists and
    /// every window whose settings are unchanged, then replaces the running
    /// aggregates.
    pub(crate) fn replace(&self, fresh: Prepared) {
        let Prepared(mut fresh) = fresh;
        let mut agg = self.agg.lock().unwrap_or_else(PoisonError::into_inner);
        fresh.keep_from(&mut agg);
        *agg = fresh;
    }

    pub(crate) fn demo(&self, rate: u32, interfaces: usize, shutdown: CancellationToken) -> SourceTask {
        let agg = self.agg.clone();
        Box::pin(async move {
            demo::run(agg, rate, interfaces, shutdown).await;
            Ok(())
        })
    }

    pub(crate) fn cloudwatch(
        &self,
        source: CloudWatchSource,
        ready: Readiness,
        shutdown: CancellationToken,
    ) -> SourceTask {
        let agg = self.agg.clone();
        Box::pin(async move { source.run(agg, ready, shutdown).await.map_err(|e| AppError::Source(e.into())) })
    }
}
