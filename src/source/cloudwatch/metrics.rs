//! The source's health metrics, registered in the registry the exporter serves.
//! Names and labels of the contract's health table are fixed; the others are
//! documented in docs/cloudwatch.md. They are updated once per request or page,
//! never per event (the ingestion-delay histogram buffers per page with a
//! local histogram). Every log-group and error label is created at start-up so
//! that series exist at zero before the first event.

use prometheus::core::Collector;
use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::client::{ErrorKind, FILTER_LOG_EVENTS};

/// All metrics of the CloudWatch source.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub events: IntCounterVec,
    pub duplicates: IntCounterVec,
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub poll_duration: HistogramVec,
    pub last_success: GaugeVec,
    pub ingestion_delay: HistogramVec,
    pub lookback: Gauge,
    // Beyond the contract's table.
    pub poll_interval: Gauge,
    pub polls: IntCounterVec,
    pub group_up: IntGaugeVec,
    pub pages: IntCounterVec,
    pub malformed: IntCounterVec,
    pub dedup_keys: IntGaugeVec,
    pub dedup_keys_limit: IntGaugeVec,
    pub dedup_cap_events: IntCounterVec,
    pub checkpoint_clamped: IntCounterVec,
    pub horizon: GaugeVec,
    pub newest_ingestion: GaugeVec,
    pub request_duration: HistogramVec,
    pub rate_limit: Gauge,
    pub checkpoint_writes: IntCounterVec,
    pub checkpoint_last_write: Gauge,
}

const NS: &str = "vpc_flow_exporter_cloudwatch";

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{NS}_{name}"), help)
}

fn hopts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(format!("{NS}_{name}"), help).buckets(buckets.to_vec())
}

impl Metrics {
    /// Creates the metrics, registers them and initializes the label values of
    /// `log_groups`.
    pub fn register(registry: &Registry, log_groups: &[&str]) -> prometheus::Result<Metrics> {
        let m = Metrics::new()?;
        for c in m.collectors() {
            registry.register(c)?;
        }
        m.init_labels(log_groups);
        Ok(m)
    }

    /// The metrics, not registered yet.
    fn new() -> prometheus::Result<Metrics> {
        let g = &["log_group"];
        let (dedup_keys, dedup_keys_limit, dedup_cap_events) = dedup_metrics()?;
        let (checkpoint_clamped, checkpoint_writes, checkpoint_last_write) = state_file_metrics()?;
        let (requests, request_errors, request_duration, rate_limit) = request_metrics()?;
        Ok(Metrics {
            events: IntCounterVec::new(opts("events_total", "CloudWatch Logs events read and counted, by log group."), g)?,
            duplicates: IntCounterVec::new(
                opts("duplicate_events_total", "Events read again (lookback re-reads, retried pages) and skipped, by log group."),
                g,
            )?,
            poll_duration: HistogramVec::new(
                hopts(
                    "poll_duration_seconds",
                    "Duration of one complete poll (all pages) of one log group.",
                    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0],
                ),
                g,
            )?,
            last_success: GaugeVec::new(
                opts("last_success_timestamp_seconds", "Unix time of the end of the last successful poll of the log group."),
                g,
            )?,
            ingestion_delay: HistogramVec::new(
                hopts(
                    "ingestion_delay_seconds",
                    "Ingestion time minus event time of counted events; a tail near lookback_seconds means events arrive later than the lookback re-reads.",
                    &[5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0, 7200.0],
                ),
                g,
            )?,
            lookback: Gauge::with_opts(opts("lookback_seconds", "The configured lookback: how far back in event time each poll re-reads."))?,
            poll_interval: Gauge::with_opts(opts("poll_interval_seconds", "The configured poll interval."))?,
            polls: IntCounterVec::new(
                opts("polls_total", "Polls of a log group, by result (success, error)."),
                &["log_group", "result"],
            )?,
            group_up: IntGaugeVec::new(opts("log_group_up", "1 if the last poll of the log group succeeded, else 0."), g)?,
            pages: IntCounterVec::new(opts("pages_total", "FilterLogEvents pages read, by log group."), g)?,
            malformed: IntCounterVec::new(
                opts("malformed_events_total", "Events without an eventId, time or message, skipped."),
                g,
            )?,
            horizon: GaugeVec::new(
                opts(
                    "horizon_timestamp_seconds",
                    "The dedup horizon of the log group, on CloudWatch's clock: events ingested before it minus the margin are known to be counted.",
                ),
                g,
            )?,
            newest_ingestion: GaugeVec::new(
                opts(
                    "last_ingestion_timestamp_seconds",
                    "Newest ingestion time of any event read from the log group: how fresh the delivered flow logs are.",
                ),
                g,
            )?,
            dedup_keys,
            dedup_keys_limit,
            dedup_cap_events,
            checkpoint_clamped,
            checkpoint_writes,
            checkpoint_last_write,
            requests,
            request_errors,
            request_duration,
            rate_limit,
        })
    }

    /// Every metric, for the registry.
    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.events.clone()),
            Box::new(self.duplicates.clone()),
            Box::new(self.requests.clone()),
            Box::new(self.request_errors.clone()),
            Box::new(self.poll_duration.clone()),
            Box::new(self.last_success.clone()),
            Box::new(self.ingestion_delay.clone()),
            Box::new(self.lookback.clone()),
            Box::new(self.poll_interval.clone()),
            Box::new(self.polls.clone()),
            Box::new(self.group_up.clone()),
            Box::new(self.pages.clone()),
            Box::new(self.malformed.clone()),
            Box::new(self.dedup_keys.clone()),
            Box::new(self.dedup_keys_limit.clone()),
            Box::new(self.dedup_cap_events.clone()),
            Box::new(self.checkpoint_clamped.clone()),
            Box::new(self.horizon.clone()),
            Box::new(self.newest_ingestion.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.rate_limit.clone()),
            Box::new(self.checkpoint_writes.clone()),
            Box::new(self.checkpoint_last_write.clone()),
        ]
    }

    /// Creates every label value known at start-up, so that the series exist at zero.
    fn init_labels(&self, log_groups: &[&str]) {
        self.requests.with_label_values(&[FILTER_LOG_EVENTS]);
        for k in ErrorKind::ALL {
            self.request_errors.with_label_values(&[FILTER_LOG_EVENTS, k.label()]);
        }
        for name in log_groups {
            self.events.with_label_values(&[name]);
            self.duplicates.with_label_values(&[name]);
            self.poll_duration.with_label_values(&[name]);
            self.ingestion_delay.with_label_values(&[name]);
            self.polls.with_label_values(&[name, "success"]);
            self.polls.with_label_values(&[name, "error"]);
            self.group_up.with_label_values(&[name]);
            self.pages.with_label_values(&[name]);
            self.malformed.with_label_values(&[name]);
            self.dedup_keys.with_label_values(&[name]);
            self.dedup_keys_limit.with_label_values(&[name]);
            self.dedup_cap_events.with_label_values(&[name, "counted_without_key"]);
            self.dedup_cap_events.with_label_values(&[name, "deferred"]);
            self.checkpoint_clamped.with_label_values(&[name]);
        }
        self.checkpoint_writes.with_label_values(&["success"]);
        self.checkpoint_writes.with_label_values(&["error"]);
    }
}

/// The API requests' metrics.
fn request_metrics() -> prometheus::Result<(IntCounterVec, IntCounterVec, HistogramVec, Gauge)> {
    let requests = IntCounterVec::new(
        opts("requests_total", "CloudWatch Logs API requests sent, retries included."),
        &["operation"],
    )?;
    let request_errors = IntCounterVec::new(
        opts(
            "request_errors_total",
            "Failed CloudWatch Logs API requests, by error; error=\"throttled\" for throttling.",
        ),
        &["operation", "error"],
    )?;
    let request_duration = HistogramVec::new(
        hopts(
            "request_duration_seconds",
            "Duration of one CloudWatch Logs API request.",
            &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
        ),
        &["operation"],
    )?;
    let rate_limit = Gauge::with_opts(opts(
        "request_rate_limit",
        "Requests per second currently allowed: max_requests_per_second, lowered after throttling.",
    ))?;
    Ok((requests, request_errors, request_duration, rate_limit))
}

/// The dedup window's metrics.
fn dedup_metrics() -> prometheus::Result<(IntGaugeVec, IntGaugeVec, IntCounterVec)> {
    let g = &["log_group"];
    let dedup_keys = IntGaugeVec::new(
        opts("dedup_keys", "Event keys remembered for deduplication (those ingested near the horizon), by log group."),
        g,
    )?;
    let dedup_keys_limit = IntGaugeVec::new(
        opts(
            "dedup_keys_limit",
            "The most event keys the log group's dedup window holds: its share of the exporter's 1,000,000.",
        ),
        g,
    )?;
    let dedup_cap_events = IntCounterVec::new(
        opts(
            "dedup_cap_events_total",
            "New events met while the dedup window was full, by outcome: counted_without_key (no later scan looks them up) or deferred (left to the next scan, which counts them).",
        ),
        &["log_group", "outcome"],
    )?;
    Ok((dedup_keys, dedup_keys_limit, dedup_cap_events))
}

/// The state file's metrics.
fn state_file_metrics() -> prometheus::Result<(IntCounterVec, IntCounterVec, Gauge)> {
    let g = &["log_group"];
    let checkpoint_clamped = IntCounterVec::new(
        opts(
            "checkpoint_clamped_times_total",
            "Times read from the state file that lay in the future (beyond 5 minutes) or before 1970, clamped at start-up.",
        ),
        g,
    )?;
    let checkpoint_writes = IntCounterVec::new(
        opts("checkpoint_writes_total", "Writes of the state file, by result (success, error)."),
        &["result"],
    )?;
    let checkpoint_last_write = Gauge::with_opts(opts(
        "checkpoint_last_write_timestamp_seconds",
        "Unix time of the last successful write of the state file.",
    ))?;
    Ok((checkpoint_clamped, checkpoint_writes, checkpoint_last_write))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_the_contract_names() {
        let r = Registry::new();
        let m = Metrics::register(&r, &["/vpc/a"]).expect("register");
        m.lookback.set(1200.0);
        let names: Vec<String> = r.gather().iter().map(|f| f.name().to_owned()).collect();
        for n in [
            "vpc_flow_exporter_cloudwatch_events_total",
            "vpc_flow_exporter_cloudwatch_duplicate_events_total",
            "vpc_flow_exporter_cloudwatch_requests_total",
            "vpc_flow_exporter_cloudwatch_request_errors_total",
            "vpc_flow_exporter_cloudwatch_poll_duration_seconds",
            "vpc_flow_exporter_cloudwatch_ingestion_delay_seconds",
            "vpc_flow_exporter_cloudwatch_lookback_seconds",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        // Registering twice in one registry is an error, not a panic.
        assert!(Metrics::register(&r, &["/vpc/a"]).is_err());
    }
}
