//! Diagnostics of invalid flow-log lines: every invalid line is counted (in
//! `vpc_flow_exporter_invalid_lines_total`), but at most one is logged per
//! source (file, log group, `demo`) and reason per [`INTERVAL`], at debug
//! level, with the source, the reason, the field when it can be told, and the
//! first [`SNIPPET_BYTES`] bytes of the line, escaped. The log line also says
//! how many lines of that source and reason went unlogged since the last one.
//! Nothing is done when debug logging is off. At most [`MAX_SOURCES`] sources
//! are remembered; beyond, lines of new sources are only counted until the
//! remembered ones age out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::parse::{Format, ParseError};

/// At most one log line per source and reason within this interval.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Bytes of the line shown in the log (escaped: `\xff`, `\t`, `\"`).
pub const SNIPPET_BYTES: usize = 120;
/// Sources remembered at once.
pub const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: Instant,
    suppressed: u64,
}

/// The rate limiter of invalid-line logs.
#[derive(Debug, Default)]
pub struct InvalidLineLog {
    last: FxHashMap<Arc<str>, [Option<Entry>; ParseError::ALL.len()]>,
}

impl InvalidLineLog {
    /// Notes one invalid line; logs it when its source and reason were not
    /// logged within [`INTERVAL`].
    #[inline]
    pub fn note(&mut self, source: &Arc<str>, e: ParseError, format: &Format, line: &[u8]) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        self.note_at(Instant::now(), source, e, format, line);
    }

    fn note_at(&mut self, now: Instant, source: &Arc<str>, e: ParseError, format: &Format, line: &[u8]) {
        if !self.last.contains_key(&**source) {
            if self.last.len() >= MAX_SOURCES {
                self.last.retain(|_, es| es.iter().flatten().any(|en| now.duration_since(en.at) < INTERVAL));
                if self.last.len() >= MAX_SOURCES {
                    return;
                }
            }
            self.last.insert(source.clone(), [None; ParseError::ALL.len()]);
        }
        let Some(slots) = self.last.get_mut(&**source) else { return };
        let slot = &mut slots[e.index()];
        let suppressed = match slot {
            Some(en) if now.duration_since(en.at) < INTERVAL => {
                en.suppressed += 1;
                return;
            }
            Some(en) => en.suppressed,
            None => 0,
        };
        *slot = Some(Entry { at: now, suppressed: 0 });
        let (field, detail) = explain(e, format, line);
        tracing::debug!(
            source = %source,
            reason = e.reason(),
            field = field.unwrap_or("-"),
            detail = detail.as_deref().unwrap_or(""),
            line = %snippet(line),
            line_bytes = line.len(),
            unlogged_since_last = suppressed,
            "Invalid flow-log line (at most one per source and reason a minute is logged; all are counted)"
        );
    }
}

/// The first [`SNIPPET_BYTES`] bytes of a line, escaped, with `...` when cut.
pub fn snippet(line: &[u8]) -> String {
    let cut = &line[..line.len().min(SNIPPET_BYTES)];
    let mut s = cut.escape_ascii().to_string();
    if cut.len() < line.len() {
        s.push_str("...");
    }
    s
}

const NUMERIC: &[&str] =
    &["version", "srcport", "dstport", "protocol", "packets", "bytes", "start", "end", "tcp-flags", "traffic-path"];
const ADDRESSES: &[&str] = &["srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr"];

/// The field a value error is about, told by checking each value of a
/// space-separated line against its field's kind; for a wrong field count,
/// how many there are and how many the format has.
fn explain(e: ParseError, format: &Format, line: &[u8]) -> (Option<&'static str>, Option<String>) {
    let text = String::from_utf8_lossy(line);
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return (None, None);
    }
    let values: Vec<&str> = trimmed.split_ascii_whitespace().collect();
    match e {
        ParseError::FieldCount => (None, Some(format!("{} fields, the format has {}", values.len(), format.len()))),
        ParseError::BadNumber | ParseError::OutOfRange | ParseError::BadAddress | ParseError::BadValue => {
            for (name, v) in format.fields().zip(values) {
                if v == "-" {
                    continue;
                }
                let bad = if NUMERIC.contains(&name) {
                    match v.parse::<u64>() {
                        Err(_) => true,
                        Ok(n) => match name {
                            "srcport" | "dstport" => n > 65_535,
                            "protocol" => n > 255,
                            _ => false,
                        },
                    }
                } else if ADDRESSES.contains(&name) {
                    v.parse::<std::net::IpAddr>().is_err()
                } else if name == "action" {
                    !matches!(v, "ACCEPT" | "REJECT")
                } else if name == "log-status" {
                    !matches!(v, "OK" | "NODATA" | "SKIPDATA")
                } else {
                    false
                };
                if bad {
                    return (FIELDS.iter().copied().find(|f| *f == name), None);
                }
            }
            (None, None)
        }
        _ => (None, None),
    }
}

/// The field names that [`explain`] can name (static, for the log's field).
const FIELDS: &[&str] = &[
    "version",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "tcp-flags",
    "traffic-path",
    "srcaddr",
    "dstaddr",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "action",
    "log-status",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_cut_and_escaped() {
        assert_eq!(snippet(b"a\tb\xff\"c"), "a\\tb\\xff\\\"c");
        let long = vec![b'x'; 500];
        let s = snippet(&long);
        assert_eq!(s.len(), SNIPPET_BYTES + 3);
        assert!(s.ends_with("..."));
    }

    #[test]
    fn the_field_of_a_bad_value_is_named() {
        let f = Format::default_v2();
        let line = b"2 123456789010 eni-a 10.0.0.1 10.0.0.2 1 99999 6 1 1 1418530010 1418530070 ACCEPT OK";
        assert_eq!(explain(ParseError::OutOfRange, &f, line).0, Some("dstport"));
        let line = b"2 123456789010 eni-a 10.0.0.x 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK";
        assert_eq!(explain(ParseError::BadAddress, &f, line).0, Some("srcaddr"));
        let (field, detail) = explain(ParseError::FieldCount, &f, b"a b c");
        assert_eq!(field, None);
        assert_eq!(detail.as_deref(), Some("3 fields, the format has 14"));
    }

    #[test]
    fn one_log_per_source_and_reason_per_interval() {
        let mut log = InvalidLineLog::default();
        let f = Format::default_v2();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a.log"), Arc::from("b.log"));
        let t0 = Instant::now();
        for i in 0..1000u64 {
            log.note_at(t0 + Duration::from_millis(i), &a, ParseError::FieldCount, &f, b"x");
        }
        log.note_at(t0, &b, ParseError::FieldCount, &f, b"x");
        let ea = log.last[&*a][ParseError::FieldCount.index()].unwrap();
        assert_eq!((ea.at, ea.suppressed), (t0, 999));
        log.note_at(t0 + INTERVAL, &a, ParseError::FieldCount, &f, b"x");
        let ea = log.last[&*a][ParseError::FieldCount.index()].unwrap();
        assert_eq!((ea.at, ea.suppressed), (t0 + INTERVAL, 0));
    }
}
