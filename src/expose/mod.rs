//! Exposition: the HTTP server (metrics, landing page, health and readiness)
//! and the Prometheus collector that encodes the in-memory aggregates at
//! scrape time. A scrape only reads memory: it never calls AWS.

pub mod basic_auth;
pub mod collector;
#[cfg(target_os = "linux")]
pub mod process_cpu;
pub mod server;
pub mod tls;
pub mod web_config;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};

pub use collector::AggregatorCollector;
pub use server::{serve, ServerConfig, ServerLimits};
pub use web_config::{WebConfig, WebConfigError, WebConfigHandle};

use crate::aggregate::SharedAggregator;

/// Readiness as `/-/ready` reports it: set once a source is up (for the
/// CloudWatch poller: every log group polled successfully once; S3: the
/// queue answered; Firehose: listening), or the conjunction of several
/// sources' ([`Readiness::all`]). A source's readiness has a name, so that a
/// 503 can say which sources are still waited for.
#[derive(Debug, Default, Clone)]
pub struct Readiness {
    flag: Arc<AtomicBool>,
    name: &'static str,
    parts: Option<Arc<[Readiness]>>,
}

impl Readiness {
    pub fn ready() -> Readiness {
        Readiness { flag: Arc::new(AtomicBool::new(true)), name: "", parts: None }
    }
    /// A source's readiness, not ready until [`set`](Self::set).
    pub fn named(name: &'static str) -> Readiness {
        Readiness { flag: Arc::new(AtomicBool::new(false)), name, parts: None }
    }
    /// Ready when every one of `parts` is (each source sets its own).
    pub fn all(parts: Vec<Readiness>) -> Readiness {
        Readiness { flag: Arc::new(AtomicBool::new(true)), name: "", parts: Some(parts.into()) }
    }
    pub fn set(&self, ready: bool) {
        self.flag.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        match &self.parts {
            Some(parts) => parts.iter().all(Readiness::is_ready),
            None => self.flag.load(Ordering::Acquire),
        }
    }
    /// The names of the sources not ready yet, in the order they were
    /// configured (`source` for an unnamed one).
    pub fn waiting(&self) -> Vec<&'static str> {
        match &self.parts {
            Some(parts) => parts.iter().flat_map(Readiness::waiting).collect(),
            None if self.is_ready() => Vec::new(),
            None if self.name.is_empty() => vec!["source"],
            None => vec![self.name],
        }
    }
}

/// A registry holding the aggregator's collector; sources add their own
/// health metrics to it.
pub fn registry(agg: &SharedAggregator) -> Registry {
    registry_with_new_series_hold(agg, Duration::ZERO)
}

/// A registry whose collector exposes new series as 0 for `hold` (the live
/// modes: see [`collector`]).
pub fn registry_with_new_series_hold(agg: &SharedAggregator, hold: Duration) -> Registry {
    let registry = Registry::new();
    // Registration fails only for duplicate or malformed descriptors, which
    // the fixed table in `collector` cannot produce.
    if let Err(e) = registry.register(Box::new(AggregatorCollector::with_new_series_hold(agg.clone(), hold))) {
        tracing::error!(error = %e, "Cannot register the aggregator collector");
    }
    registry
}

/// Adds the standard `process_*` metrics (CPU, memory, open files) for the
/// long-running modes; replay leaves them out so its output is reproducible.
pub fn register_process_metrics(registry: &Registry) {
    #[cfg(target_os = "linux")]
    if let Err(e) = process_cpu::ProcessMetrics::for_self().and_then(|m| registry.register(Box::new(m))) {
        tracing::warn!(error = %e, "Cannot register the process metrics");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

/// The text exposition of everything in `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut buf = Vec::with_capacity(64 * 1024);
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %e, "Cannot encode the metrics");
    }
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn waiting_names_the_sources_not_ready_in_order() {
        let (cw, s3) = (Readiness::named("cloudwatch"), Readiness::named("s3"));
        let all = Readiness::all(vec![cw.clone(), Readiness::ready(), s3.clone()]);
        assert!(!all.is_ready());
        assert_eq!(all.waiting(), ["cloudwatch", "s3"]);
        cw.set(true);
        assert_eq!(all.waiting(), ["s3"]);
        s3.set(true);
        assert!(all.is_ready() && all.waiting().is_empty());
        s3.set(false);
        assert_eq!(all.waiting(), ["s3"], "a source may become unready again");
        assert_eq!(Readiness::default().waiting(), ["source"], "an unnamed part");
        assert!(Readiness::all(Vec::new()).is_ready(), "no source: nothing to wait for");
    }
}
