//! The replay source: flow-log files (plain or `.gz`) and standard input, read
//! in large blocks and cut into lines in place, each file with a fresh parser
//! state (a header line in one file does not change the next file's format).
//! [`run`] spreads the inputs over the available cores: several files go to
//! several workers, one large plain file is read by byte ranges on line
//! boundaries ([`range`]), each worker counts into its own shard, and the
//! shards are merged in input order ([`plan`], [`workers`]), so the
//! exposition is the one a single worker gives. docs/replay.md has the rules.

mod plan;
mod range;
mod workers;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::aggregate::Aggregator;
use crate::parse::{Format, LineParser};
use crate::source::lines::{self, LineSink};
use workers::{Kind, Opened};

/// Where lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// `-` is standard input.
    pub fn from_arg(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(arg))
        }
    }

    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_owned(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// Opens the input, decompressing `.gz` files (all members of a multi-member
    /// gzip file).
    pub fn open(&self) -> io::Result<Box<dyn Read>> {
        match self {
            Input::Stdin => Ok(Box::new(io::stdin().lock())),
            Input::File(p) => {
                let f = File::open(p)?;
                if is_gzip(p) {
                    Ok(Box::new(flate2::read::MultiGzDecoder::new(f)))
                } else {
                    Ok(Box::new(f))
                }
            }
        }
    }
}

fn is_gzip(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// A replay failure: which input, and the I/O error (its source, printed once
/// by the error chain).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {name}")]
pub struct ReplayError {
    pub name: String,
    #[source]
    pub source: io::Error,
}

/// Most workers a replay starts, whatever the number of cores (each holds a
/// shard of the aggregates: its own trackers and counters).
pub const MAX_WORKERS: usize = 16;

/// Smallest byte range a plain file is split into: a file shorter than twice
/// this is read by one worker.
pub const MIN_RANGE: u64 = 8 << 20;

/// Internal: the number of workers, instead of the available cores (tests and
/// benchmarks; not part of the command line contract).
pub const WORKERS_ENV: &str = "VPC_FLOW_EXPORTER_REPLAY_WORKERS";
/// Internal: the smallest byte range, instead of [`MIN_RANGE`] (tests).
pub const MIN_RANGE_ENV: &str = "VPC_FLOW_EXPORTER_REPLAY_MIN_RANGE";

/// How many workers a replay uses and how finely it splits plain files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    /// 1 to [`MAX_WORKERS`] (clamped).
    pub workers: usize,
    /// At least 1 byte.
    pub min_range: u64,
}

impl Parallelism {
    /// The cores this process may run on (its CPU affinity and cgroup quota,
    /// as `std::thread::available_parallelism` reads them), at most
    /// [`MAX_WORKERS`], and [`MIN_RANGE`]; [`WORKERS_ENV`] (1 to
    /// [`MAX_WORKERS`]) and [`MIN_RANGE_ENV`] (bytes, above 0) override them,
    /// other values of theirs are ignored.
    pub fn from_env() -> Parallelism {
        let env = |name| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok());
        let workers = match env(WORKERS_ENV) {
            Some(n) if (1..=MAX_WORKERS as u64).contains(&n) => n as usize,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS),
        };
        let min_range = env(MIN_RANGE_ENV).filter(|&n| n > 0).unwrap_or(MIN_RANGE);
        Parallelism { workers, min_range }
    }

    /// One worker: the sequential read.
    pub fn one() -> Parallelism {
        Parallelism { workers: 1, min_range: MIN_RANGE }
    }
}

/// Reads every input to its end into `agg` (normally empty), with lines in
/// `format` unless a file's header says otherwise, on the available cores
/// ([`Parallelism::from_env`]). The result is the one a single-threaded read
/// gives: the counts of every line, merged in input order. Inputs are opened
/// first, so that an unreadable file fails before anything is counted; a
/// read error fails the run, naming the input (the first in input order when
/// several fail).
pub fn run(inputs: &[Input], format: &Format, agg: Aggregator) -> Result<Aggregator, ReplayError> {
    run_with(inputs, format, agg, Parallelism::from_env())
}

/// [`run`] with the given parallelism.
pub fn run_with(inputs: &[Input], format: &Format, agg: Aggregator, p: Parallelism) -> Result<Aggregator, ReplayError> {
    let opened = open_all(inputs)?;
    // Ranges only when every input can be read again: a file whose format
    // changes at a range boundary is then re-read on one worker.
    let split = range::SUPPORTED && opened.iter().all(|o| o.kind.rewinds());
    let weights: Vec<plan::Weight> = opened
        .iter()
        .map(|o| match o.kind {
            Kind::Plain(_, size) => plan::Weight { bytes: size, splittable: split },
            Kind::Gzip(ref f) => plan::Weight {
                bytes: f.metadata().map_or(plan::UNKNOWN_WEIGHT, |m| m.len().saturating_mul(plan::GZIP_WEIGHT)),
                splittable: false,
            },
            Kind::Stdin | Kind::Stream(_) => plan::Weight { bytes: plan::UNKNOWN_WEIGHT, splittable: false },
        })
        .collect();
    let plan = plan::plan(&weights, p.workers.clamp(1, MAX_WORKERS), p.min_range.max(1));
    workers::run(&opened, plan, format, agg)
}

/// Opens every input, in order; the first that cannot be opened is the error.
fn open_all(inputs: &[Input]) -> Result<Vec<Opened>, ReplayError> {
    inputs
        .iter()
        .map(|input| {
            let name: std::sync::Arc<str> = std::sync::Arc::from(input.name().as_str());
            let kind = match input {
                Input::Stdin => Kind::Stdin,
                Input::File(p) => {
                    let fail = |source| ReplayError { name: input.name(), source };
                    let f = File::open(p).map_err(fail)?;
                    let meta = f.metadata().map_err(fail)?;
                    if is_gzip(p) {
                        Kind::Gzip(f)
                    } else if meta.is_file() {
                        Kind::Plain(f, meta.len())
                    } else {
                        Kind::Stream(f)
                    }
                }
            };
            Ok(Opened { name, kind })
        })
        .collect()
}

/// Feeds one reader's lines to the aggregator, through the line splitter
/// the sources share (`source::lines`): the complete lines of each block are
/// parsed in place, as one batch; a line longer than the whole buffer is
/// counted once as an invalid line (the parser's `too_long`) and skipped up
/// to its end, so memory stays at `buf` (grown to twice
/// [`crate::parse::MAX_LINE_LEN`] if smaller) whatever the input.
pub fn read_lines(
    r: &mut dyn Read,
    buf: &mut Vec<u8>,
    parser: &mut LineParser,
    agg: &mut Aggregator,
) -> io::Result<()> {
    lines::split(r, buf, &mut Ingest { parser, agg })
}

/// The aggregator as the splitter's sink, with the parser of the input.
struct Ingest<'a> {
    parser: &'a mut LineParser,
    agg: &'a mut Aggregator,
}

impl LineSink for Ingest<'_> {
    #[inline]
    fn lines(&mut self, batch: &[u8]) {
        self.agg.ingest_lines(self.parser, batch);
    }

    fn over_long(&mut self, head: &[u8]) {
        self.agg.ingest_line(self.parser, head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::parse::{Format, ParseError};

    fn run(input: &[u8], block: usize) -> Aggregator {
        let mut agg = Aggregator::new(&Config::default());
        let mut parser = LineParser::for_file(Format::default_v2());
        let mut buf = vec![0u8; block];
        // A reader that hands out small pieces, to cross every boundary.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.0.len()).min(977);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        read_lines(&mut Trickle(input), &mut buf, &mut parser, &mut agg).unwrap();
        agg
    }

    const LINE: &str = "2 123456789010 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK";

    #[test]
    fn a_giant_line_is_one_error_and_the_lines_around_it_count() {
        let mut input = format!("{LINE}\n").into_bytes();
        input.extend(std::iter::repeat_n(b'x', 5 * crate::parse::MAX_LINE_LEN + 3));
        input.extend(format!("\n{LINE}\n{LINE}").bytes());
        let agg = run(&input, 0);
        assert_eq!(agg.records(crate::parse::Action::Accept), 3);
        let too_long = agg.parse_errors().find(|(e, _)| *e == ParseError::TooLong).map(|(_, n)| n);
        assert_eq!(too_long, Some(1));
        assert_eq!(agg.lines(), 4);
    }

    #[test]
    fn nul_and_invalid_utf8_reach_the_parser_whole_and_the_read_goes_on() {
        let mut input = Vec::new();
        // Interface ids are bytes: a record.
        input.extend(LINE.replace("eni-a", "eni-\0a\u{7f}").bytes().chain(*b"\n"));
        input.extend(LINE.replace("eni-a", "eni-\x01").bytes().map(|b| if b == 1 { 0xff } else { b }));
        input.extend(b"\r\n\0\n\xff\xfe\n");
        // A NUL ending the status, starting the version.
        input.extend(format!("{LINE}\0\n\0{LINE}\n").bytes());
        input.extend(LINE.replace("ACCEPT", "ACCE\x01T").bytes().map(|b| if b == 1 { 0xc3 } else { b }));
        for block in [0, 1 << 20] {
            let agg = run(&input, block);
            assert_eq!(agg.records(crate::parse::Action::Accept), 2);
            let errors: Vec<(ParseError, u64)> = agg.parse_errors().filter(|(_, n)| *n > 0).collect();
            let want = [(ParseError::FieldCount, 2), (ParseError::BadNumber, 1), (ParseError::BadValue, 2)];
            assert_eq!(errors, want);
            assert_eq!(agg.lines(), 7);
        }
    }

    #[test]
    fn lines_split_across_reads_are_whole() {
        let input: String = (0..500).map(|_| format!("{LINE}\r\n")).collect();
        let agg = run(input.as_bytes(), 1 << 20);
        assert_eq!(agg.records(crate::parse::Action::Accept), 500);
        assert_eq!(agg.lines(), 500);
    }
}
