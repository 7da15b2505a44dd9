//! Reading sample values out of a Prometheus text exposition.

type Labels = Vec<(String, String)>;

/// Parses `name{a="b",...} value` into (name, labels, value).
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match series.find('{') {
        Some(i) => (&series[..i], &series[i + 1..series.len() - 1]),
        None => (series, ""),
    };
    let mut out = Vec::new();
    let mut rest = labels;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').to_owned();
        let after = &rest[eq + 2..];
        let mut end = 0;
        let bytes = after.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        out.push((key, after[..end].to_owned()));
        rest = &after[(end + 1).min(after.len())..];
    }
    Some((name, out, value))
}

/// Sum of the samples of `name` whose labels include every pair of `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(parse_sample)
        .filter(|(n, ls, _)| *n == name && labels.iter().all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| v)
        .sum()
}

/// Whether any sample of `name` exists.
pub fn has(text: &str, name: &str) -> bool {
    text.lines().filter_map(parse_sample).any(|(n, _, _)| n == name)
}

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
