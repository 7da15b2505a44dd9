//! The builder's only door to the ingest side: the [`Pipeline`] built from
//! the configuration, and the sources' runs over it. Every source counts
//! through the pipeline's inputs and never sees the parser or the aggregates.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use super::error::AppError;
use super::firehose::FirehoseListener;
use crate::config::{Config, FirehoseConfig, LogGroupConfig};
use crate::detect::geo;
use crate::expose::Readiness;
use crate::pipeline::{self, Pipeline};
use crate::source::cloudwatch::CloudWatchSource;
use crate::source::firehose::{Receiver, ReceiverError};
use crate::source::s3::S3Source;
use crate::source::{demo, replay};

/// A source's run until shutdown, as the builder spawns it.
pub(crate) type SourceTask = Pin<Box<dyn Future<Output = Result<(), AppError>> + Send>>;

/// The pipeline of a configuration, not yet counting: at the start, and on
/// the blocking pool during a reload.
pub(crate) struct Prepared(pipeline::Prepared);

impl Prepared {
    /// The rules and aggregates of `config`, with its GeoIP database (errors
    /// prefixed with the configuration's `path`); `demo` uses the demo's
    /// country table.
    pub(crate) fn new(config: &Config, path: Option<&Path>, demo: bool) -> Result<Prepared, AppError> {
        let prepared = pipeline::Prepared::new(config).map_err(|e| AppError::in_config(path, e))?;
        Ok(Prepared(if demo { prepared.with_countries(Arc::new(geo::demo_countries())) } else { prepared }))
    }

    /// Reads `paths` to their end (none: standard input) on every core and
    /// returns the exposition (no hold, no process metrics: reproducible).
    pub(crate) fn replay(self, config: &Config, paths: &[String]) -> Result<String, AppError> {
        let inputs: Vec<replay::Input> = if paths.is_empty() {
            vec![replay::Input::Stdin]
        } else {
            paths.iter().map(|p| replay::Input::from_arg(p)).collect()
        };
        let pipeline = Pipeline::start(self.0);
        pipeline.replay_with(|empty| replay::run(&inputs, &config.log_format, empty))?;
        Ok(pipeline.exposition())
    }

    /// `replay s3://...`: the objects under the prefixes `urls`, counted on
    /// every core; the exposition.
    pub(crate) fn replay_s3(self, config: &Config, urls: &[String]) -> Result<String, AppError> {
        super::s3::replay(Pipeline::start(self.0), config, urls)
    }
}

/// The running pipeline that sources count into and scrapes read.
#[derive(Clone)]
pub(crate) struct Ingest {
    pipeline: Pipeline,
}

impl Ingest {
    pub(crate) fn start(prepared: Prepared) -> Ingest {
        Ingest { pipeline: Pipeline::start(prepared.0) }
    }

    /// A registry exposing the aggregates, new series held at 0 for `hold`.
    pub(crate) fn registry(&self, hold: Duration) -> Registry {
        self.pipeline.registry(hold)
    }

    /// A reload: see [`Pipeline::replace`].
    pub(crate) fn replace(&self, fresh: Prepared) {
        self.pipeline.replace(fresh.0);
    }

    pub(crate) fn demo(&self, rate: u32, interfaces: usize, shutdown: CancellationToken) -> SourceTask {
        let pipeline = self.pipeline.clone();
        Box::pin(async move {
            demo::run_pipeline(&pipeline, rate, interfaces, shutdown).await;
            Ok(())
        })
    }

    pub(crate) fn cloudwatch(
        &self,
        source: CloudWatchSource,
        ready: Readiness,
        shutdown: CancellationToken,
    ) -> SourceTask {
        let pipeline = self.pipeline.clone();
        Box::pin(async move { source.run(pipeline, ready, shutdown).await.map_err(|e| AppError::Source(e.into())) })
    }

    /// The Firehose receiver counting into the pipeline.
    pub(crate) fn firehose_receiver(
        &self,
        config: &FirehoseConfig,
        groups: &[LogGroupConfig],
        registry: &Registry,
    ) -> Result<Receiver, ReceiverError> {
        Receiver::new(config, groups, self.pipeline.clone(), registry)
    }

    /// The S3 source counting into the pipeline (ready once the queue answered).
    pub(crate) fn s3(&self, source: S3Source, ready: Readiness, shutdown: CancellationToken) -> SourceTask {
        let pipeline = self.pipeline.clone();
        Box::pin(async move { source.run(pipeline, ready, shutdown).await.map_err(|e| AppError::Source(e.into())) })
    }

    /// Serves the Firehose listener until shutdown; ready once serving.
    pub(crate) fn firehose(&self, l: FirehoseListener, ready: Readiness, shutdown: CancellationToken) -> SourceTask {
        Box::pin(async move {
            ready.set(true);
            crate::expose::server::serve_with(l.listener, l.connections, Arc::new(l.receiver), shutdown).await;
            Ok(())
        })
    }
}
