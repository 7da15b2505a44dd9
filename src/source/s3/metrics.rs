//! The S3 source's health metrics (`vpc_flow_exporter_s3_*` for objects,
//! claims and AWS requests, `vpc_flow_exporter_sqs_*` for messages),
//! updated once per message, object or request; every label value is from
//! a fixed set and created at start-up, so series exist at zero.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::client::op;
use crate::source::cloudwatch::client::ErrorKind;

/// `result` of `vpc_flow_exporter_s3_objects_total`.
pub const RESULTS: [&str; 4] = ["ok", "error", "duplicate", "skipped"];

/// `reason` of `vpc_flow_exporter_s3_object_errors_total`: the decoder's
/// ([`super::ObjectError::reason`]) and the download's or claim's.
pub const ERROR_REASONS: [&str; 15] = [
    "empty",
    "read",
    "bad_gzip",
    "too_large",
    "kind_mismatch",
    "spool",
    "bad_parquet",
    "parquet_codec",
    "parquet_column_type",
    "parquet_schema",
    "not_found",
    "access_denied",
    "get_failed",
    "claim_failed",
    "released",
];

/// `reason` of `vpc_flow_exporter_sqs_message_errors_total` (notification errors).
pub const MESSAGE_ERRORS: [&str; 7] =
    ["too_large", "bad_json", "unknown_shape", "too_many_records", "missing_field", "invalid_field", "too_deep"];

/// `reason` of `vpc_flow_exporter_sqs_messages_ignored_total`.
pub const IGNORED: [&str; 3] = ["test_event", "not_created", "no_records"];

/// `result` of `vpc_flow_exporter_s3_claims_total`.
pub const CLAIMS: [&str; 5] = ["won", "taken_over", "done_elsewhere", "busy", "lost_lease"];

#[derive(Debug, Clone)]
pub struct Metrics {
    pub objects: IntCounterVec,
    pub object_errors: IntCounterVec,
    pub object_bytes: IntCounter,
    pub records: IntCounter,
    pub in_work: IntGauge,
    pub lag: Histogram,
    pub object_seconds: Histogram,
    pub commit_to_done: Histogram,
    pub claims: IntCounterVec,
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub received: IntCounter,
    pub deleted: IntCounter,
    pub ignored: IntCounterVec,
    pub message_errors: IntCounterVec,
    pub extensions: IntCounter,
    pub released: IntCounter,
    pub concurrency: IntGauge,
    pub recent: IntGauge,
    pub recent_forgotten: IntCounter,
}

fn s3(name: &str, help: &str) -> Opts {
    Opts::new(format!("vpc_flow_exporter_s3_{name}"), help)
}

fn sqs(name: &str, help: &str) -> Opts {
    Opts::new(format!("vpc_flow_exporter_sqs_{name}"), help)
}

impl Metrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Metrics> {
        let m = Metrics::new()?;
        let all: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.objects.clone()),
            Box::new(m.object_errors.clone()),
            Box::new(m.object_bytes.clone()),
            Box::new(m.records.clone()),
            Box::new(m.in_work.clone()),
            Box::new(m.lag.clone()),
            Box::new(m.object_seconds.clone()),
            Box::new(m.commit_to_done.clone()),
            Box::new(m.claims.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.request_errors.clone()),
            Box::new(m.received.clone()),
            Box::new(m.deleted.clone()),
            Box::new(m.ignored.clone()),
            Box::new(m.message_errors.clone()),
            Box::new(m.extensions.clone()),
            Box::new(m.released.clone()),
            Box::new(m.concurrency.clone()),
            Box::new(m.recent.clone()),
            Box::new(m.recent_forgotten.clone()),
        ];
        for c in all {
            registry.register(c)?;
        }
        m.init_labels();
        Ok(m)
    }

    fn new() -> prometheus::Result<Metrics> {
        let lag_buckets = vec![10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0];
        let object_buckets = vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
        let window_buckets = vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        Ok(Metrics {
            commit_to_done: Histogram::with_opts(HistogramOpts::new("vpc_flow_exporter_s3_commit_to_done_seconds", "From an object's counts applied to its claim marked done in the dedup table: the window in which a crash can count it twice.").buckets(window_buckets))?,
            objects: IntCounterVec::new(s3("objects_total", "S3 objects by result: ok (counted), error (not counted, message left to the redrive policy), duplicate (already counted), skipped (outside key_prefix)."), &["result"])?,
            object_errors: IntCounterVec::new(s3("object_errors_total", "S3 objects that could not be counted, by reason."), &["reason"])?,
            object_bytes: IntCounter::with_opts(s3("object_bytes_total", "Bytes of S3 objects counted (as stored, compressed)."))?,
            records: IntCounter::with_opts(s3("records_total", "Lines and rows of counted S3 objects (records, headers and invalid lines)."))?,
            in_work: IntGauge::with_opts(s3("objects_in_work", "S3 objects being read now."))?,
            lag: Histogram::with_opts(HistogramOpts::new("vpc_flow_exporter_s3_lag_seconds", "From the object's event time (its notification) to its counts being applied.").buckets(lag_buckets))?,
            object_seconds: Histogram::with_opts(HistogramOpts::new("vpc_flow_exporter_s3_object_duration_seconds", "From GetObject to the counts applied, per counted object.").buckets(object_buckets))?,
            claims: IntCounterVec::new(s3("claims_total", "Claims in the dedup table, by result: won, taken_over (an expired claim of a replica that stopped), done_elsewhere (counted by another replica), busy (held by a live replica), lost_lease (the claim was no longer ours when marked done)."), &["result"])?,
            requests: IntCounterVec::new(s3("requests_total", "Requests to SQS, S3 and DynamoDB, by operation."), &["operation"])?,
            request_errors: IntCounterVec::new(s3("request_errors_total", "Failed requests to SQS, S3 and DynamoDB, by operation and kind (throttled, server_error, ...)."), &["operation", "error"])?,
            received: IntCounter::with_opts(sqs("messages_received_total", "SQS messages received."))?,
            deleted: IntCounter::with_opts(sqs("messages_deleted_total", "SQS messages deleted (their objects counted, duplicate, skipped, or nothing to read)."))?,
            ignored: IntCounterVec::new(sqs("messages_ignored_total", "SQS messages with nothing to read (deleted), by reason."), &["reason"])?,
            message_errors: IntCounterVec::new(sqs("message_errors_total", "SQS messages that are not a notification (left to the redrive policy), by reason."), &["reason"])?,
            extensions: IntCounter::with_opts(sqs("visibility_extensions_total", "Visibility timeouts extended while an object was in work."))?,
            released: IntCounter::with_opts(sqs("messages_released_total", "Messages made visible again at shutdown (visibility 0) because their objects did not finish within the grace."))?,
            concurrency: IntGauge::with_opts(s3("concurrency", "The configured number of objects in work at once."))?,
            recent: IntGauge::with_opts(s3("recent_objects", "Objects this replica remembers as counted (at most 100,000): a notification of one of them again is a duplicate."))?,
            recent_forgotten: IntCounter::with_opts(s3("recent_objects_forgotten_total", "Objects dropped from the remembered set, oldest first, to keep it within 100,000: a later notification of one of them counts it again unless dedup_table is set."))?,
        })
    }

    fn init_labels(&self) {
        for r in RESULTS {
            self.objects.with_label_values(&[r]);
        }
        for r in ERROR_REASONS {
            self.object_errors.with_label_values(&[r]);
        }
        for r in MESSAGE_ERRORS {
            self.message_errors.with_label_values(&[r]);
        }
        for r in IGNORED {
            self.ignored.with_label_values(&[r]);
        }
        for r in CLAIMS {
            self.claims.with_label_values(&[r]);
        }
        for o in op::ALL {
            self.requests.with_label_values(&[o]);
        }
        for k in [ErrorKind::Throttled, ErrorKind::ServerError] {
            for o in op::ALL {
                self.request_errors.with_label_values(&[o, k.label()]);
            }
        }
    }

    /// One request's result.
    pub fn request<T>(&self, operation: &str, res: &Result<T, crate::source::cloudwatch::client::ApiError>) {
        self.requests.with_label_values(&[operation]).inc();
        if let Err(e) = res {
            self.request_errors.with_label_values(&[operation, e.kind.label()]).inc();
        }
    }

    pub fn object(&self, result: &str) {
        self.objects.with_label_values(&[result]).inc();
    }

    pub fn object_error(&self, reason: &str) {
        self.objects.with_label_values(&["error"]).inc();
        self.object_errors.with_label_values(&[reason]).inc();
    }
}
