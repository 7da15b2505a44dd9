//! The two kinds of input a source writes to: a stream (one record per
//! line, counted batch by batch under the shared lock) and a file (counted
//! into a private shard, added to the live aggregates when committed).

use std::sync::{Arc, PoisonError};

use crate::aggregate::{Aggregator, SharedAggregator};
use crate::parse::{LineParser, ParseError, Record};

/// A stream of records in one format (a log group, a delivery stream, the
/// demo): every batch takes the shared lock once.
#[derive(Debug)]
pub struct StreamInput {
    live: SharedAggregator,
    parser: LineParser,
    /// Names the stream in invalid-line diagnostics.
    name: Arc<str>,
}

impl StreamInput {
    pub(crate) fn new(live: SharedAggregator, parser: LineParser, name: &str) -> StreamInput {
        StreamInput { live, parser, name: Arc::from(name) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aggregator> {
        let mut agg = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        agg.set_source(&self.name);
        agg
    }

    /// Counts a batch of messages, each one record (a CloudWatch event, a
    /// Firehose record); a trailing `\n` is dropped. One lock for the batch.
    pub fn batch<M: AsRef<[u8]>>(&mut self, messages: &[M]) {
        if messages.is_empty() {
            return;
        }
        let mut agg = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        agg.set_source(&self.name);
        for m in messages {
            let line = m.as_ref();
            agg.ingest_line(&mut self.parser, line.strip_suffix(b"\n").unwrap_or(line));
        }
    }

    /// Counts a buffer of `\n`-separated lines (a last line without `\n`
    /// counts too). One lock for the buffer.
    pub fn lines(&mut self, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        let mut agg = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        agg.set_source(&self.name);
        agg.ingest_lines(&mut self.parser, buf);
    }

    /// Counts typed records (Parquet rows) without the text parser, each as
    /// one line read. One lock for the batch.
    pub fn records(&mut self, records: &[Record<'_>]) {
        if records.is_empty() {
            return;
        }
        let mut agg = self.lock();
        for r in records {
            agg.ingest_record(r);
        }
    }
}

/// One file or object, applied all or nothing: its lines count into a
/// private shard without any lock; [`FileInput::commit`] adds the shard to
/// the live aggregates under the lock, and dropping the input instead (a
/// download that failed halfway) leaves no counts.
#[derive(Debug)]
pub struct FileInput {
    live: SharedAggregator,
    scratch: Aggregator,
    parser: LineParser,
}

impl FileInput {
    pub(crate) fn new(live: SharedAggregator, mut scratch: Aggregator, parser: LineParser, name: &str) -> FileInput {
        scratch.set_source(&Arc::from(name));
        FileInput { live, scratch, parser }
    }

    /// Counts a buffer of `\n`-separated lines (a last line without `\n`
    /// counts too) into the shard. A line must not be cut between two calls.
    pub fn lines(&mut self, buf: &[u8]) {
        self.scratch.ingest_lines(&mut self.parser, buf);
    }

    /// Counts one line (no trailing `\n`) into the shard.
    pub fn line(&mut self, line: &[u8]) {
        self.scratch.ingest_line(&mut self.parser, line);
    }

    /// Counts typed records (Parquet rows) into the shard.
    pub fn records(&mut self, records: &[Record<'_>]) {
        for r in records {
            self.scratch.ingest_record(r);
        }
    }

    /// Counts one invalid typed input (a Parquet row with a bad value) into
    /// the shard, as an invalid line by reason.
    pub fn invalid(&mut self, reason: ParseError) {
        self.scratch.ingest_invalid(reason);
    }

    /// Lines counted so far (records, headers and invalid lines).
    pub fn lines_read(&self) -> u64 {
        self.scratch.lines()
    }

    /// Adds everything counted to the live aggregates, in one step under the lock.
    pub fn commit(self) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.merge_from(&self.scratch);
    }
}

/// Lines of several streams, each in its own format (a Firehose request: log
/// groups and direct lines), applied all or nothing: every line is parsed as a
/// stream line (a header-looking line is invalid) into a private shard without
/// any lock; [`StreamBatch::commit`] adds the shard to the live aggregates in
/// one step under the lock, and dropping the batch instead leaves no counts.
#[derive(Debug)]
pub struct StreamBatch {
    live: SharedAggregator,
    scratch: Aggregator,
    parsers: Vec<LineParser>,
}

impl StreamBatch {
    pub(crate) fn new(live: SharedAggregator, mut scratch: Aggregator, parsers: Vec<LineParser>, name: &str) -> Self {
        scratch.set_source(&Arc::from(name));
        StreamBatch { live, scratch, parsers }
    }

    /// Counts one line (no trailing `\n`) into the shard, in the `format`-th
    /// format the batch was made with (the first when out of range).
    pub fn line(&mut self, format: usize, line: &[u8]) {
        let i = if format < self.parsers.len() { format } else { 0 };
        if let Some(parser) = self.parsers.get_mut(i) {
            self.scratch.ingest_line(parser, line);
        }
    }

    /// Lines counted so far (records and invalid lines).
    pub fn lines_read(&self) -> u64 {
        self.scratch.lines()
    }

    /// Adds everything counted to the live aggregates, in one step under the lock.
    pub fn commit(self) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.merge_from(&self.scratch);
    }
}
