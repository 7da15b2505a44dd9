//! The CloudWatch metrics read out of an exposition (the parsing itself is
//! the shared `tests/common/expo.rs`).

// Not every binary that includes this module reads both.
#[allow(unused_imports)]
pub use crate::common::expo::{has, value};

pub const EVENTS: &str = "vpc_flow_exporter_cloudwatch_events_total";
pub const DUPLICATES: &str = "vpc_flow_exporter_cloudwatch_duplicate_events_total";
pub const REQUESTS: &str = "vpc_flow_exporter_cloudwatch_requests_total";
pub const ERRORS: &str = "vpc_flow_exporter_cloudwatch_request_errors_total";
pub const POLLS: &str = "vpc_flow_exporter_cloudwatch_polls_total";
pub const RECORDS: &str = "vpc_flow_records_total";
pub const PARSE_ERRORS: &str = "vpc_flow_exporter_parse_errors_total";

/// Events counted for a log group.
pub fn events(text: &str, group: &str) -> f64 {
    value(text, EVENTS, &[("log_group", group)])
}

/// Successful polls of a log group.
pub fn polls_ok(text: &str, group: &str) -> f64 {
    value(text, POLLS, &[("log_group", group), ("result", "success")])
}
