//! The workers of a replay: each reads its planned units (see [`super::plan`])
//! on its own thread with its own parser into its own aggregator shard; the
//! shards are then merged in worker order, which is input order. A range other
//! than the first of its file starts with the format set by the file's first
//! line; when a header line further down changed the format at a range
//! boundary (the end format of one range is not the start format of the
//! next), the counts are thrown away and every input is read again on one
//! worker, so the result is always that of a sequential read.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::plan::{Part, Unit};
use super::range::{line_start, take_first_line_format, RangeReader};
use super::{read_lines, ReplayError};
use crate::aggregate::Aggregator;
use crate::parse::{Format, LineParser};
use crate::source::lines::BLOCK;

/// An input opened before anything is read.
#[derive(Debug)]
pub(crate) struct Opened {
    pub name: Arc<str>,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Stdin,
    /// A regular, uncompressed file of this size: it may be read by ranges.
    Plain(File, u64),
    Gzip(File),
    /// Anything else opened by path (a FIFO, a character device): read once.
    Stream(File),
}

impl Kind {
    /// Whether the input can be read again from its start.
    pub(crate) fn rewinds(&self) -> bool {
        matches!(self, Kind::Plain(..) | Kind::Gzip(_))
    }
}

/// The format a range started and ended with, to check the ranges' seams.
#[derive(Debug)]
struct Seam {
    input: usize,
    index: usize,
    start: Format,
    end: Format,
}

/// What one worker did.
struct Done {
    agg: Aggregator,
    seams: Vec<Seam>,
    /// The first unit that failed, and why.
    error: Option<(Unit, ReplayError)>,
}

/// Reads `plan` (the units of each worker, in input order) into `agg`, which
/// should be empty: the first worker counts into it on this thread, the
/// others each into a shard of it on their own thread; the shards are then
/// added to it in order.
pub(crate) fn run(
    opened: &[Opened],
    plan: Vec<Vec<Unit>>,
    format: &Format,
    agg: Aggregator,
) -> Result<Aggregator, ReplayError> {
    let mut plan = plan.into_iter().filter(|units| !units.is_empty());
    let first = plan.next().unwrap_or_default();
    let rest: Vec<Vec<Unit>> = plan.collect();
    let units = first.len() + rest.iter().map(Vec::len).sum::<usize>();
    tracing::debug!(workers = 1 + rest.len(), units, "Replaying");
    if rest.is_empty() {
        return finish(work(opened, &first, format, agg, (&AtomicUsize::new(usize::MAX), 0)));
    }
    let started = std::time::Instant::now();
    let shards: Vec<Aggregator> = rest.iter().map(|_| agg.shard()).collect();
    // The first worker that failed: the ones after it stop (their units come
    // later in input order, so the error reported stays the first one).
    let failed = AtomicUsize::new(usize::MAX);
    let (head, tail) = std::thread::scope(|s| {
        let failed = &failed;
        let handles: Vec<_> = rest
            .iter()
            .zip(shards)
            .enumerate()
            .map(|(i, (units, shard))| s.spawn(move || work(opened, units, format, shard, (failed, i + 1))))
            .collect();
        let head = work(opened, &first, format, agg, (failed, 0));
        let tail: Vec<Done> =
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
        (head, tail)
    });
    let (mut head, mut tail) = (head, tail);
    if let Some(e) = first_error(std::iter::once(&mut head).chain(&mut tail)) {
        return Err(e);
    }
    let mut seams: Vec<&Seam> = std::iter::once(&head).chain(&tail).flat_map(|d| &d.seams).collect();
    if !seams_match(&mut seams) {
        tracing::debug!("A header line changed the format at a range boundary; reading the inputs again on one worker");
        let mut units: Vec<Unit> = std::iter::once(&first)
            .chain(&rest)
            .flatten()
            .map(|u| Unit { input: u.input, part: Part::Whole })
            .collect();
        units.dedup_by_key(|u| u.input);
        return finish(work(opened, &units, format, head.agg.shard(), (&AtomicUsize::new(usize::MAX), 0)));
    }
    let (read, merging) = (started.elapsed(), std::time::Instant::now());
    let mut agg = head.agg;
    for d in &tail {
        agg.merge_from(&d.agg);
    }
    tracing::debug!(read_ms = read.as_millis() as u64, merge_ms = merging.elapsed().as_millis() as u64, "Replayed");
    Ok(agg)
}

/// The error of the first unit in input order that failed, if any did.
fn first_error<'a>(done: impl Iterator<Item = &'a mut Done>) -> Option<ReplayError> {
    done.filter_map(|d| d.error.take()).min_by_key(|(unit, _)| order(unit)).map(|(_, e)| e)
}

fn order(u: &Unit) -> (usize, usize) {
    match u.part {
        Part::Whole => (u.input, 0),
        Part::Range { index, .. } => (u.input, index),
    }
}

fn finish(d: Done) -> Result<Aggregator, ReplayError> {
    match d.error {
        Some((_, e)) => Err(e),
        None => Ok(d.agg),
    }
}

/// Whether each range of a file started with the format the range before it
/// ended with.
fn seams_match(seams: &mut [&Seam]) -> bool {
    seams.sort_by_key(|s| (s.input, s.index));
    seams.windows(2).all(|w| w[0].input != w[1].input || w[0].end == w[1].start)
}

/// One worker (`me`, in worker order): its units in order, stopping at the
/// first that fails or when a worker before it (`failed`) has failed.
fn work(
    opened: &[Opened],
    units: &[Unit],
    format: &Format,
    mut agg: Aggregator,
    (failed, me): (&AtomicUsize, usize),
) -> Done {
    let mut parser = LineParser::for_file(format.clone());
    let mut buf = vec![0u8; BLOCK];
    let mut seams = Vec::new();
    for unit in units {
        if failed.load(Ordering::Relaxed) < me {
            break;
        }
        let input = &opened[unit.input];
        // Invalid-line diagnostics name the file.
        agg.set_source(&input.name);
        match read_unit(input, unit.part, &mut parser, &mut agg, &mut buf) {
            Ok(Some((start, end))) => {
                if let Part::Range { index, .. } = unit.part {
                    seams.push(Seam { input: unit.input, index, start, end });
                }
            }
            Ok(None) => {}
            Err(source) => {
                failed.fetch_min(me, Ordering::Relaxed);
                let error = ReplayError { name: input.name.to_string(), source };
                return Done { agg, seams, error: Some((*unit, error)) };
            }
        }
    }
    Done { agg, seams, error: None }
}

/// Reads one unit; for a range, the formats it started and ended with.
fn read_unit(
    input: &Opened,
    part: Part,
    parser: &mut LineParser,
    agg: &mut Aggregator,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(Format, Format)>> {
    match (part, &input.kind) {
        (Part::Whole, kind) => {
            parser.reset();
            let mut r: Box<dyn Read> = match kind {
                Kind::Stdin => Box::new(io::stdin().lock()),
                Kind::Plain(f, _) => Box::new(rewound(f)?),
                Kind::Gzip(f) => Box::new(flate2::read::MultiGzDecoder::new(rewound(f)?)),
                Kind::Stream(f) => Box::new(f),
            };
            read_lines(&mut r, buf, parser, agg)?;
            Ok(None)
        }
        (Part::Range { index, start, end }, Kind::Plain(f, _)) => {
            if index == 0 {
                parser.reset();
            } else {
                take_first_line_format(f, parser, buf)?;
            }
            let first = parser.format().clone();
            if let Some(from) = line_start(f, start, buf)? {
                read_lines(&mut RangeReader::new(f, from, end), buf, parser, agg)?;
            }
            Ok(Some((first, parser.format().clone())))
        }
        (Part::Range { .. }, _) => Err(io::Error::other("only a plain file can be read by ranges")),
    }
}

/// The file from its first byte (it may have been read once already).
fn rewound(f: &File) -> io::Result<&File> {
    let mut r = f;
    r.rewind()?;
    Ok(f)
}
