//! Aggregation: every valid record becomes counts in plain in-memory arrays —
//! per interface (records, bytes, packets, log status, detections), per
//! protocol, per watched port, per country — and histograms per action; the
//! windowed detections of `detect` are fed from here. Nothing here touches a
//! Prometheus label map: `expose` encodes these aggregates at scrape time.
//! Label values are bounded by construction (interface cap, fixed enums).

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::parse::LineParser;

/// The aggregates of one exporter, shared by the sources (writers, one lock per
/// batch) and the scrape handler (reader).
pub type SharedAggregator = Arc<Mutex<Aggregator>>;

/// All counters, histograms and detection state.
#[derive(Debug)]
pub struct Aggregator {}

impl Aggregator {
    pub fn new(_config: &Config) -> Aggregator {
        Aggregator {}
    }

    /// Parses and counts one line (no trailing `\n`).
    pub fn ingest_line(&mut self, _parser: &mut LineParser, _line: &[u8]) {}

    /// Parses and counts a buffer of `\n`-separated lines.
    pub fn ingest_lines(&mut self, parser: &mut LineParser, buf: &[u8]) {
        for line in buf.split(|&b| b == b'\n') {
            self.ingest_line(parser, line);
        }
    }
}
