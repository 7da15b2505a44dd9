//! The live source: polls CloudWatch Logs (FilterLogEvents) for every configured
//! log group and counts each event exactly once — across pages, across polls
//! that re-read the `lookback` window for late events, and across restarts
//! with `state_file`.
//!
//! The parts, one file each:
//! * [`client`]: the narrow [`client::LogsApi`] trait (FilterLogEvents only)
//!   and its AWS SDK implementation (credentials, region, endpoint, role);
//! * [`poller`]: one log group's scans, pages and poll loop;
//! * [`dedup`]: the horizon + margin-of-keys window that decides "new or seen";
//! * [`checkpoint`]: the state file, written atomically;
//! * [`ratelimit`] and [`retry`]: the shared request-rate limit and the one
//!   retry layer;
//! * [`metrics`]: the health metrics; [`clock`]: epoch time, fakeable.
//!
//! docs/cloudwatch.md explains the design and the exactly-once argument.

pub mod checkpoint;
pub mod client;
pub mod clock;
pub mod dedup;
pub mod metrics;
pub mod poller;
pub mod ratelimit;
pub mod retry;

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{CloudWatchConfig, LogGroupConfig};
use crate::expose::Readiness;
use crate::pipeline::Pipeline;

use checkpoint::{Checkpoint, GroupCheckpoint};
use client::{LogsApi, SdkLogsClient};
use clock::{Clock, SystemClock};
use metrics::Metrics;
use poller::{AggregatorSink, EventSink, GroupPoller, ReadyCount, SaveGroup, Settings, Shared};
use ratelimit::RateLimiter;

/// Why the source cannot start, or stopped other than on shutdown. The cause,
/// when there is one, is the error's source: print it with
/// [`crate::errors::chain`].
#[derive(Debug, thiserror::Error)]
pub enum CloudWatchError {
    #[error("cannot set up the CloudWatch Logs client")]
    Client(#[source] client::SetupError),
    #[error("cannot register the CloudWatch health metrics")]
    Metrics(#[source] prometheus::Error),
    #[error(transparent)]
    StateFile(#[from] checkpoint::CheckpointError),
    #[error("cloudwatch.state_file: log group {group:?}")]
    Restore { group: String, source: checkpoint::KeysError },
    #[error("a log group's poller stopped unexpectedly")]
    PollerStopped(#[source] tokio::task::JoinError),
}

/// The live CloudWatch Logs source of the exporter.
pub struct CloudWatchSource {
    inner: Source<SdkLogsClient>,
}

impl CloudWatchSource {
    /// Builds the SDK client (aws-config default chain, region, endpoint_url or
    /// AWS_ENDPOINT_URL, optional role_arn assume-role), registers the health
    /// metrics, and reads the checkpoint: a corrupt/unreadable state_file is an
    /// Err naming the file.
    pub async fn new(
        cfg: CloudWatchConfig,
        registry: &prometheus::Registry,
    ) -> Result<CloudWatchSource, CloudWatchError> {
        let client = client::build_client(&cfg).await?;
        let inner = Source::with_client(client, cfg, registry, Arc::new(SystemClock))?;
        Ok(CloudWatchSource { inner })
    }

    /// Overrides the margin of the dedup window around the horizon
    /// (`cloudwatch.dedup_margin`, default [`dedup::DEFAULT_MARGIN`]): it must exceed the delay before a new event
    /// is visible to FilterLogEvents. Tests
    /// use a short one so that the horizon, not the keys, skips re-reads.
    pub fn set_dedup_margin(&mut self, margin: std::time::Duration) {
        self.inner.set_dedup_margin(margin);
    }

    /// Polls every log group into `pipeline` (a stream input per group, in
    /// its log format) until `shutdown`, then saves the checkpoint and returns.
    pub async fn run(
        self,
        pipeline: Pipeline,
        ready: Readiness,
        shutdown: CancellationToken,
    ) -> Result<(), CloudWatchError> {
        self.inner
            .run_with_sinks(|g| AggregatorSink::for_group(&pipeline, &g.name, g.log_format.clone()), ready, shutdown)
            .await
    }
}

/// The source over any [`LogsApi`] (the SDK client, or a fake in tests).
pub struct Source<C> {
    shared: Shared<C>,
    groups: Vec<LogGroupConfig>,
    writer: Arc<CheckpointWriter>,
    restored: Option<Checkpoint>,
    target: (String, String),
}

impl<C: LogsApi> Source<C> {
    /// Registers the metrics and reads the checkpoint.
    pub fn with_client(
        client: C,
        cfg: CloudWatchConfig,
        registry: &prometheus::Registry,
        clock: Arc<dyn Clock>,
    ) -> Result<Source<C>, CloudWatchError> {
        let names: Vec<&str> = cfg.log_groups.iter().map(|g| g.name.as_str()).collect();
        let metrics = Metrics::register(registry, &names).map_err(CloudWatchError::Metrics)?;
        metrics.lookback.set(cfg.lookback.as_secs_f64());
        metrics.poll_interval.set(cfg.poll_interval.as_secs_f64());
        metrics.rate_limit.set(cfg.max_requests_per_second);
        let restored = match &cfg.state_file {
            Some(path) => {
                let mut cp = checkpoint::load(path, checkpoint::max_file_bytes(names.iter().copied()))?;
                checkpoint::check_writable_dir(path)?;
                if let Some(cp) = &mut cp {
                    for c in checkpoint::clamp_future(cp, clock.now_ms()) {
                        warn!(file = %path.display(), log_group = %c.log_group, field = c.field, was_ms = c.was_ms, "A time in the state file lies in the future (or before 1970); clamped to now so that new events are counted");
                        if names.contains(&c.log_group.as_str()) {
                            metrics.checkpoint_clamped.with_label_values(&[&c.log_group]).inc();
                        }
                    }
                }
                cp
            }
            None => None,
        };
        let writer = Arc::new(CheckpointWriter {
            path: cfg.state_file.clone(),
            state: tokio::sync::Mutex::new(Checkpoint { version: checkpoint::VERSION, ..Checkpoint::default() }),
            metrics: metrics.clone(),
            clock: clock.clone(),
        });
        let settings = Settings {
            poll_interval: cfg.poll_interval,
            lookback: cfg.lookback,
            start_from: cfg.start_from,
            margin: cfg.dedup_margin,
        };
        let target = client::describe_target(&cfg);
        let shared =
            Shared { client, limiter: RateLimiter::new(cfg.max_requests_per_second), metrics, clock, settings };
        Ok(Source { shared, groups: cfg.log_groups, writer, restored, target })
    }

    /// See [`CloudWatchSource::set_dedup_margin`].
    pub fn set_dedup_margin(&mut self, margin: std::time::Duration) {
        self.shared.settings.margin = margin;
    }

    /// Polls every log group concurrently, each into the sink `make_sink`
    /// builds for it, until `shutdown`; then saves the checkpoint.
    pub async fn run_with_sinks<S: EventSink>(
        self,
        mut make_sink: impl FnMut(&LogGroupConfig) -> S,
        ready: Readiness,
        shutdown: CancellationToken,
    ) -> Result<(), CloudWatchError> {
        let Source { shared, groups, writer, restored, target } = self;
        let key_cap = dedup::key_cap(groups.len());
        let shared = Arc::new(shared);
        let ready = Arc::new(ReadyCount::new(groups.len(), ready));
        let mut tasks = tokio::task::JoinSet::new();
        let restored_groups = restored.map(|c| c.log_groups).unwrap_or_default();
        {
            // Groups no longer configured are dropped from the file.
            let mut st = writer.state.lock().await;
            for g in &groups {
                if let Some(cp) = restored_groups.get(&g.name) {
                    st.log_groups.insert(g.name.clone(), cp.clone());
                }
            }
        }
        for g in &groups {
            let mut p = GroupPoller::new(
                g.name.clone(),
                g.log_stream_prefix.clone(),
                make_sink(g),
                &shared.metrics,
                shared.settings.margin,
            );
            p.set_key_cap(key_cap);
            if let Some(cp) = restored_groups.get(&g.name) {
                // Checked when loaded; a failure here would be a bug.
                if let Err(source) = p.restore(cp) {
                    return Err(CloudWatchError::Restore { group: g.name.clone(), source });
                }
                info!(log_group = %g.name, horizon_ms = %cp.horizon_ms.map_or_else(|| "none".to_owned(), |h| h.to_string()), resuming_scan = cp.scan.is_some(), keys = p.window().len(), "Resuming from the state file");
            }
            tasks.spawn(poller::run_group(p, shared.clone(), writer.clone(), ready.clone(), shutdown.clone()));
        }
        info!(log_groups = groups.len(), region = %target.0, endpoint = %target.1, poll_interval_s = shared.settings.poll_interval.as_secs(), lookback_s = shared.settings.lookback.as_secs(), dedup_key_cap = key_cap, "Polling CloudWatch Logs");
        let mut finals = Vec::with_capacity(groups.len());
        let mut panicked = None;
        while let Some(res) = tasks.join_next().await {
            match res {
                Ok(p) => finals.push(p),
                Err(e) => {
                    error!(error = %e, "A log group's poller stopped unexpectedly");
                    panicked.get_or_insert(e);
                    // Without it the others would poll on alone: stop them all.
                    shutdown.cancel();
                }
            }
        }
        for p in &finals {
            writer.put(p.name(), p.checkpoint()).await;
        }
        let saved = writer.write().await;
        if let Some(e) = panicked {
            return Err(CloudWatchError::PollerStopped(e));
        }
        Ok(saved?)
    }
}

/// Keeps the latest checkpoint of every group and writes the state file.
struct CheckpointWriter {
    path: Option<PathBuf>,
    state: tokio::sync::Mutex<Checkpoint>,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

impl CheckpointWriter {
    async fn put(&self, group: &str, cp: GroupCheckpoint) {
        self.state.lock().await.log_groups.insert(group.to_owned(), cp);
    }

    /// Writes the file (if configured); holds the lock so writes never overlap.
    async fn write(&self) -> Result<(), checkpoint::CheckpointError> {
        let Some(path) = self.path.clone() else { return Ok(()) };
        let mut st = self.state.lock().await;
        st.saved_at_ms = self.clock.now_ms();
        let bytes = serde_json::to_vec(&*st).map_err(checkpoint::CheckpointError::Encode)?;
        let res = tokio::task::spawn_blocking(move || checkpoint::write_atomic(&path, &bytes))
            .await
            .unwrap_or_else(|e| Err(checkpoint::CheckpointError::WriterStopped(e)));
        drop(st);
        match &res {
            Ok(()) => {
                self.metrics.checkpoint_writes.with_label_values(&["success"]).inc();
                self.metrics.checkpoint_last_write.set(self.clock.now_ms() as f64 / 1000.0);
            }
            Err(e) => {
                self.metrics.checkpoint_writes.with_label_values(&["error"]).inc();
                warn!(
                    error = crate::errors::chain(e),
                    "Cannot write the state file; the next successful poll tries again"
                );
            }
        }
        res
    }
}

impl SaveGroup for CheckpointWriter {
    async fn save(&self, group: &str, cp: GroupCheckpoint) {
        self.put(group, cp).await;
        // A failed write is logged and counted; polling goes on.
        let _ = self.write().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::chain;

    /// Each message says its own part; the chain says the whole, once.
    #[test]
    fn errors_print_their_causes_once_on_one_line() {
        let e = CloudWatchError::Client(client::SetupError::NoRegion);
        assert_eq!(
            chain(&e),
            "cannot set up the CloudWatch Logs client: cloudwatch.region: no AWS region found: set cloudwatch.region, \
             the AWS_REGION variable or a region in the AWS profile"
        );
        let keys = checkpoint::KeysError::NotHex { bucket_ms: 60_000 };
        let e = CloudWatchError::Restore { group: "/vpc/a".into(), source: keys };
        assert_eq!(
            chain(&e),
            "cloudwatch.state_file: log group \"/vpc/a\": bucket 60000: keys are not 32-digit hex numbers"
        );
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied (os error 13)");
        let e = CloudWatchError::from(checkpoint::CheckpointError::Read { path: "/s/state.json".into(), source: io });
        assert_eq!(chain(&e), "cloudwatch.state_file: cannot read /s/state.json: Permission denied (os error 13)");
        assert!(!chain(&e).contains('\n'));
    }
}
