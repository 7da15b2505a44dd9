//! Configuration reload on SIGHUP, kept away from the running exporter: the
//! file and everything it names (GeoIP database, web configuration) are read
//! on the blocking pool under a time limit, so a slow disk or a FIFO in place
//! of a file cannot freeze `/metrics` or signal handling; a failure of any
//! kind — an invalid file, a timeout, a panic in the loader — keeps the running
//! configuration, sets `vpc_flow_exporter_config_last_reload_successful` to 0
//! and leaves later reloads working. One reload runs at a time: a SIGHUP that
//! arrives while a load is still running is logged and dropped. What a reload
//! reads and applies is the builder's (`app::reload`); this is the mechanism.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{Gauge, IntCounter, Registry};
use tokio_util::sync::CancellationToken;

/// How long a reload may take to read its files.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A boxed error from a loader: printed with its whole chain.
pub type LoadError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a reload failed (the running configuration is kept); logged with
/// [`crate::errors::chain`].
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reading the configuration took longer than {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("the configuration loader panicked")]
    Panicked,
    #[error("the configuration loader stopped")]
    Stopped(#[source] tokio::task::JoinError),
    /// The loader's error: the file, or something it names, is wrong.
    #[error(transparent)]
    Load(LoadError),
    /// The loaded configuration could not be applied.
    #[error(transparent)]
    Apply(LoadError),
}

/// The reload outcome metrics.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    ok: Gauge,
    ts: Gauge,
    failures: IntCounter,
}

impl ReloadMetrics {
    /// Registers the metrics and records a successful load now (the start).
    pub fn register(registry: &Registry) -> Result<ReloadMetrics, prometheus::Error> {
        let ok = Gauge::new(
            "vpc_flow_exporter_config_last_reload_successful",
            "1 if the last configuration reload (SIGHUP) succeeded, else 0.",
        )?;
        let ts = Gauge::new(
            "vpc_flow_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (start or SIGHUP), in unix seconds.",
        )?;
        let failures = IntCounter::new(
            "vpc_flow_exporter_config_reload_failures_total",
            "Configuration reloads that failed (invalid file, timeout, or an error while loading).",
        )?;
        registry.register(Box::new(ok.clone()))?;
        registry.register(Box::new(ts.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        let m = ReloadMetrics { ok, ts, failures };
        m.succeeded();
        Ok(m)
    }

    fn succeeded(&self) {
        self.ok.set(1.0);
        self.ts.set(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
    }

    fn failed(&self) {
        self.ok.set(0.0);
        self.failures.inc();
    }
}

/// One reload: `load` runs on the blocking pool within `timeout`; its result
/// goes to `apply` on the caller's task. Returns whether it was applied.
pub async fn reload_once<T, L, A>(metrics: &ReloadMetrics, timeout: Duration, load: L, apply: A) -> bool
where
    T: Send + 'static,
    L: FnOnce() -> Result<T, LoadError> + Send + 'static,
    A: FnOnce(T) -> Result<(), LoadError>,
{
    let task = tokio::task::spawn_blocking(load);
    let outcome = match tokio::time::timeout(timeout, task).await {
        Err(_) => Err(ReloadError::Timeout(timeout)),
        Ok(Err(join)) if join.is_panic() => Err(ReloadError::Panicked),
        Ok(Err(join)) => Err(ReloadError::Stopped(join)),
        Ok(Ok(Err(e))) => Err(ReloadError::Load(e)),
        Ok(Ok(Ok(loaded))) => apply(loaded).map_err(ReloadError::Apply),
    };
    match outcome {
        Ok(()) => {
            metrics.succeeded();
            true
        }
        Err(e) => {
            let error = crate::errors::chain(&e);
            metrics.failed();
            tracing::error!(error, "Configuration reload failed; keeping the running configuration");
            false
        }
    }
}

/// Runs `reload` on every SIGHUP until `shutdown`; a SIGHUP during a reload
/// still running (slow files) is dropped with a warning.
#[cfg(unix)]
pub fn on_sighup<F, Fut>(shutdown: CancellationToken, mut reload: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("Cannot listen for SIGHUP; configuration reloads are off");
            return;
        };
        let mut running: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                got = hup.recv() => if got.is_none() { break },
            }
            if running.as_ref().is_some_and(|t| !t.is_finished()) {
                tracing::warn!("Received SIGHUP while a reload is still running; ignored");
                continue;
            }
            running = Some(tokio::spawn(reload()));
        }
    });
}

#[cfg(not(unix))]
pub fn on_sighup<F, Fut>(_shutdown: CancellationToken, _reload: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> (Registry, ReloadMetrics) {
        let r = Registry::new();
        let m = ReloadMetrics::register(&r).unwrap();
        (r, m)
    }

    fn ok_value(r: &Registry) -> f64 {
        let text = crate::expose::encode(r);
        let line = text.lines().find(|l| l.starts_with("vpc_flow_exporter_config_last_reload_successful ")).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn a_panicking_loader_fails_the_reload_and_the_next_one_works() {
        let (r, m) = metrics();
        let applied = reload_once(&m, RELOAD_TIMEOUT, || -> Result<u8, LoadError> { panic!("boom") }, |_| Ok(())).await;
        assert!(!applied);
        assert_eq!(ok_value(&r), 0.0);
        let mut got = 0;
        assert!(
            reload_once(
                &m,
                RELOAD_TIMEOUT,
                || Ok(7u8),
                |v| {
                    got = v;
                    Ok(())
                }
            )
            .await
        );
        assert_eq!(got, 7);
        assert_eq!(ok_value(&r), 1.0);
        assert_eq!(m.failures.get(), 1);
    }

    #[tokio::test]
    async fn a_slow_loader_times_out_without_blocking_the_runtime() {
        let (r, m) = metrics();
        let started = std::time::Instant::now();
        let slow = || -> Result<u8, LoadError> {
            std::thread::sleep(Duration::from_secs(2));
            Ok(1)
        };
        let applied = reload_once(&m, Duration::from_millis(200), slow, |_| panic!("must not apply")).await;
        assert!(!applied);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(ok_value(&r), 0.0);
    }

    #[tokio::test]
    async fn errors_and_failed_applies_keep_the_running_configuration() {
        let (r, m) = metrics();
        let err = || -> Result<u8, LoadError> {
            Err("config.yaml: limits.max_interfaces: must be between 1 and 1000000".into())
        };
        assert!(!reload_once(&m, RELOAD_TIMEOUT, err, |_| Ok(())).await);
        assert!(!reload_once(&m, RELOAD_TIMEOUT, || Ok(1u8), |_| Err("cannot apply".into())).await);
        assert_eq!(ok_value(&r), 0.0);
        assert_eq!(m.failures.get(), 2);
    }
}
