//! Wall-clock time in epoch milliseconds, the unit of CloudWatch Logs'
//! `timestamp` and `ingestionTime`. Behind a trait so that the window and the
//! poller can be tested with paused tokio time ([`TokioClock`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The host's clock. Keep it in sync (NTP): see docs/cloudwatch.md on skew.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// Epoch time that advances with tokio's clock: `base_ms` plus the tokio time
/// elapsed since creation. Under `tokio::time::pause()` it only moves when the
/// test advances time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(base_ms: i64) -> TokioClock {
        TokioClock { base_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.base_ms.saturating_add(elapsed)
    }
}
