//! Exposition: the HTTP server (metrics, landing page, health and readiness)
//! and the Prometheus collector that encodes the in-memory aggregates at scrape
//! time.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Readiness as `/-/ready` reports it: set once every source is up (for the
/// CloudWatch poller: every log group polled successfully once).
#[derive(Debug, Default, Clone)]
pub struct Readiness(pub Arc<AtomicBool>);
