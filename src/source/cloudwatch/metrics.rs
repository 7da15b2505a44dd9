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
        let g = &["log_group"];
        let m = Metrics {
            events: IntCounterVec::new(opts("events_total", "CloudWatch Logs events read and counted, by log group."), g)?,
            duplicates: IntCounterVec::new(
                opts("duplicate_events_total", "Events read again (lookback re-reads, retried pages) and skipped, by log group."),
                g,
            )?,
            requests: IntCounterVec::new(opts("requests_total", "CloudWatch Logs API requests sent, retries included."), &["operation"])?,
            request_errors: IntCounterVec::new(
                opts("request_errors_total", "Failed CloudWatch Logs API requests, by error; error=\"throttled\" for throttling."),
                &["operation", "error"],
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
            dedup_keys: IntGaugeVec::new(
                opts("dedup_keys", "Event keys remembered for deduplication (those ingested near the horizon), by log group."),
                g,
            )?,
            dedup_keys_limit: IntGaugeVec::new(
                opts(
                    "dedup_keys_limit",
                    "The most event keys the log group's dedup window holds: its share of the exporter's 1,000,000.",
                ),
                g,
            )?,
            dedup_cap_events: IntCounterVec::new(
                opts(
                    "dedup_cap_events_total",
                    "New events met while the dedup window was full, by outcome: counted_without_key (no later scan looks them up) or deferred (left to the next scan, which counts them).",
                ),
                &["log_group", "outcome"],
            )?,
            checkpoint_clamped: IntCounterVec::new(
                opts(
                    "checkpoint_clamped_times_total",
                    "Times read from the state file that lay in the future (beyond 5 minutes) or before 1970, clamped at start-up.",
                ),
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
            request_duration: HistogramVec::new(
                hopts(
                    "request_duration_seconds",
                    "Duration of one CloudWatch Logs API request.",
                    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
                ),
                &["operation"],
            )?,
            rate_limit: Gauge::with_opts(opts(
                "request_rate_limit",
                "Requests per second currently allowed: max_requests_per_second, lowered after throttling.",
            ))?,
            checkpoint_writes: IntCounterVec::new(
                opts("checkpoint_writes_total", "Writes of the state file, by result (success, error)."),
                &["result"],
            )?,
            checkpoint_last_write: Gauge::with_opts(opts(
                "checkpoint_last_write_timestamp_seconds",
                "Unix time of the last successful write of the state file.",
            ))?,
        };
        let all: Vec<Box<dyn Collector>> = vec![
            Box::new(m.events.clone()),
            Box::new(m.duplicates.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.request_errors.clone()),
            Box::new(m.poll_duration.clone()),
            Box::new(m.last_success.clone()),
            Box::new(m.ingestion_delay.clone()),
            Box::new(m.lookback.clone()),
            Box::new(m.poll_interval.clone()),
            Box::new(m.polls.clone()),
            Box::new(m.group_up.clone()),
            Box::new(m.pages.clone()),
            Box::new(m.malformed.clone()),
            Box::new(m.dedup_keys.clone()),
            Box::new(m.dedup_keys_limit.clone()),
            Box::new(m.dedup_cap_events.clone()),
            Box::new(m.checkpoint_clamped.clone()),
            Box::new(m.horizon.clone()),
            Box::new(m.newest_ingestion.clone()),
            Box::new(m.request_duration.clone()),
            Box::new(m.rate_limit.clone()),
            Box::new(m.checkpoint_writes.clone()),
            Box::new(m.checkpoint_last_write.clone()),
        ];
        for c in all {
            registry.register(c)?;
        }
        m.requests.with_label_values(&[FILTER_LOG_EVENTS]);
        for k in ErrorKind::ALL {
            m.request_errors.with_label_values(&[FILTER_LOG_EVENTS, k.label()]);
        }
        for name in log_groups {
            m.events.with_label_values(&[name]);
            m.duplicates.with_label_values(&[name]);
            m.poll_duration.with_label_values(&[name]);
            m.ingestion_delay.with_label_values(&[name]);
            m.polls.with_label_values(&[name, "success"]);
            m.polls.with_label_values(&[name, "error"]);
            m.group_up.with_label_values(&[name]);
            m.pages.with_label_values(&[name]);
            m.malformed.with_label_values(&[name]);
            m.dedup_keys.with_label_values(&[name]);
            m.dedup_keys_limit.with_label_values(&[name]);
            m.dedup_cap_events.with_label_values(&[name, "counted_without_key"]);
            m.dedup_cap_events.with_label_values(&[name, "deferred"]);
            m.checkpoint_clamped.with_label_values(&[name]);
        }
        m.checkpoint_writes.with_label_values(&["success"]);
        m.checkpoint_writes.with_label_values(&["error"]);
        Ok(m)
    }
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
