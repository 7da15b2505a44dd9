//! The Firehose receiver's health metrics (`vpc_flow_exporter_firehose_*`),
//! registered in the registry the exporter serves and updated once per
//! request, never per record. Every status code, record kind and invalid
//! reason is created at registration so its series exists at zero.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::budget::Budget;
use super::dedup::DedupStats;
use super::records::{InvalidReason, RecordKind, RecordStats};
use super::request::RequestError;

const NS: &str = "vpc_flow_exporter_firehose";

/// Every status the receiver answers with.
pub const STATUS_CODES: [&str; 8] = ["200", "400", "401", "405", "413", "415", "500", "503"];

/// Request sizes as received: 1 KiB to 64 MiB.
const SIZE_BUCKETS: [f64; 9] =
    [1024.0, 8192.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 33554432.0, 67108864.0];
/// Request durations, 1 ms to 10 s.
const DURATION_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// All metrics of the Firehose receiver.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub records: IntCounterVec,
    pub invalid_records: IntCounterVec,
    pub lines: IntCounter,
    pub duplicate_requests: IntCounter,
    pub request_bytes: Histogram,
    pub request_duration: Histogram,
    pub auth_failures: IntCounter,
    pub dedup_ids: IntGauge,
    pub dedup_ids_limit: IntGauge,
    pub dedup_dropped: IntCounter,
    pub bytes_in_flight: IntGauge,
    pub bytes_in_flight_limit: IntGauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{NS}_{name}"), help)
}

fn hopts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(format!("{NS}_{name}"), help).buckets(buckets.to_vec())
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Metrics> {
        let m = Metrics {
            requests: IntCounterVec::new(
                opts("requests_total", "Firehose requests answered, by HTTP status code."),
                &["code"],
            )?,
            request_errors: IntCounterVec::new(
                opts("request_errors_total", "Firehose requests refused, by reason."),
                &["reason"],
            )?,
            records: IntCounterVec::new(
                opts("records_total", "Firehose records read from applied requests, by kind."),
                &["kind"],
            )?,
            invalid_records: IntCounterVec::new(
                opts("invalid_records_total", "Firehose records that could not be read, by reason."),
                &["reason"],
            )?,
            lines: IntCounter::with_opts(opts(
                "lines_total",
                "Flow-log lines handed to the parser from applied requests.",
            ))?,
            duplicate_requests: IntCounter::with_opts(opts(
                "duplicate_requests_total",
                "Retried Firehose requests whose counts were already applied: answered 200, not counted again.",
            ))?,
            request_bytes: Histogram::with_opts(hopts(
                "request_bytes",
                "Size of Firehose request bodies as received, in bytes.",
                &SIZE_BUCKETS,
            ))?,
            request_duration: Histogram::with_opts(hopts(
                "request_duration_seconds",
                "Time from a Firehose request's head to its response, in seconds.",
                &DURATION_BUCKETS,
            ))?,
            auth_failures: IntCounter::with_opts(opts(
                "auth_failures_total",
                "Firehose requests refused for a missing or wrong access key.",
            ))?,
            dedup_ids: IntGauge::with_opts(opts("dedup_ids", "Request ids remembered (applied or in work)."))?,
            dedup_ids_limit: IntGauge::with_opts(opts("dedup_ids_limit", "The most applied request ids remembered."))?,
            dedup_dropped: IntCounter::with_opts(opts(
                "dedup_ids_dropped_total",
                "Applied request ids forgotten at the limit before their time (a retry of one would count again).",
            ))?,
            bytes_in_flight: IntGauge::with_opts(opts(
                "bytes_in_flight",
                "Bytes of request bodies (raw and decompressed) held now under firehose.max_bytes_in_flight.",
            ))?,
            bytes_in_flight_limit: IntGauge::with_opts(opts(
                "bytes_in_flight_limit",
                "firehose.max_bytes_in_flight: beyond it requests are answered 503.",
            ))?,
        };
        m.init_labels();
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.request_errors.clone()))?;
        registry.register(Box::new(m.records.clone()))?;
        registry.register(Box::new(m.invalid_records.clone()))?;
        registry.register(Box::new(m.lines.clone()))?;
        registry.register(Box::new(m.duplicate_requests.clone()))?;
        registry.register(Box::new(m.request_bytes.clone()))?;
        registry.register(Box::new(m.request_duration.clone()))?;
        registry.register(Box::new(m.auth_failures.clone()))?;
        registry.register(Box::new(m.dedup_ids.clone()))?;
        registry.register(Box::new(m.dedup_ids_limit.clone()))?;
        registry.register(Box::new(m.dedup_dropped.clone()))?;
        registry.register(Box::new(m.bytes_in_flight.clone()))?;
        registry.register(Box::new(m.bytes_in_flight_limit.clone()))?;
        Ok(m)
    }

    fn init_labels(&self) {
        for code in STATUS_CODES {
            self.requests.with_label_values(&[code]);
        }
        for kind in RecordKind::LABELS {
            self.records.with_label_values(&[kind]);
        }
        for reason in InvalidReason::ALL {
            self.invalid_records.with_label_values(&[reason.as_str()]);
        }
    }

    /// Records an answered request: its status, and for an applied request
    /// its records (a duplicate's records are not counted again).
    pub fn observe_request(&self, status: u16, stats: Option<&RecordStats>, duplicate: bool) {
        self.requests.with_label_values(&[&status.to_string()]).inc();
        if duplicate {
            self.duplicate_requests.inc();
            return;
        }
        let Some(stats) = stats else { return };
        for (kind, label) in [
            (RecordKind::CloudWatchData, RecordKind::LABELS[0]),
            (RecordKind::CloudWatchControl, RecordKind::LABELS[1]),
            (RecordKind::Lines, RecordKind::LABELS[2]),
            (RecordKind::Empty, RecordKind::LABELS[3]),
        ] {
            self.records.with_label_values(&[label]).inc_by(stats.records(kind));
        }
        for reason in InvalidReason::ALL {
            let n = stats.invalid(reason);
            self.records.with_label_values(&[RecordKind::LABELS[4]]).inc_by(n);
            self.invalid_records.with_label_values(&[reason.as_str()]).inc_by(n);
        }
        self.lines.inc_by(stats.lines);
    }

    /// Records a refused request's reason (and an auth failure).
    pub fn observe_error(&self, error: &RequestError) {
        self.request_errors.with_label_values(&[error.reason()]).inc();
        if matches!(error, RequestError::MissingAccessKey | RequestError::InvalidAccessKey) {
            self.auth_failures.inc();
        }
    }

    /// The shared byte budget of request bodies, its bytes held kept in
    /// `bytes_in_flight` as they change and its total in
    /// `bytes_in_flight_limit`.
    pub fn budget(&self, total: usize) -> Budget {
        let budget = Budget::with_gauge(total, self.bytes_in_flight.clone());
        self.bytes_in_flight_limit.set(i64::try_from(budget.total()).unwrap_or(i64::MAX));
        budget
    }

    /// Copies the dedup set's counts (at scrape or after each request).
    pub fn observe_dedup(&self, stats: &DedupStats) {
        self.dedup_ids.set(i64::try_from(stats.applied + stats.in_work).unwrap_or(i64::MAX));
        self.dedup_ids_limit.set(i64::try_from(stats.limit).unwrap_or(i64::MAX));
        // The set's own count only grows: the counter follows it.
        let seen = self.dedup_dropped.get();
        if stats.dropped > seen {
            self.dedup_dropped.inc_by(stats.dropped - seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    #[test]
    fn registers_every_series_at_zero_and_counts() {
        let registry = Registry::new();
        let m = Metrics::register(&registry).unwrap();
        m.observe_request(200, Some(&RecordStats::default()), false);
        m.observe_request(200, None, true);
        m.observe_error(&RequestError::InvalidAccessKey);
        m.observe_dedup(&DedupStats { applied: 2, in_work: 1, limit: 100, dropped: 4, expired: 0, duplicates: 1 });
        let budget = m.budget(4096);
        let mut held = budget.reserve();
        held.grow(1500).unwrap();
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&registry.gather(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "vpc_flow_exporter_firehose_requests_total{code=\"200\"} 2",
            "vpc_flow_exporter_firehose_requests_total{code=\"413\"} 0",
            "vpc_flow_exporter_firehose_records_total{kind=\"cloudwatch_control\"} 0",
            "vpc_flow_exporter_firehose_invalid_records_total{reason=\"base64\"} 0",
            "vpc_flow_exporter_firehose_duplicate_requests_total 1",
            "vpc_flow_exporter_firehose_auth_failures_total 1",
            "vpc_flow_exporter_firehose_request_errors_total{reason=\"invalid_access_key\"} 1",
            "vpc_flow_exporter_firehose_dedup_ids 3",
            "vpc_flow_exporter_firehose_dedup_ids_limit 100",
            "vpc_flow_exporter_firehose_dedup_ids_dropped_total 4",
            "vpc_flow_exporter_firehose_bytes_in_flight 1500",
            "vpc_flow_exporter_firehose_bytes_in_flight_limit 4096",
            "vpc_flow_exporter_firehose_request_bytes_bucket",
            "vpc_flow_exporter_firehose_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        drop(held);
        assert_eq!(m.bytes_in_flight.get(), 0);
    }
}
