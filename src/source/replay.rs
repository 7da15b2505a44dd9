//! The replay source: flow-log files (plain or `.gz`) and standard input, read
//! in large blocks and cut into lines in place, each file with a fresh parser
//! state (a header line in one file does not change the next file's format).
//! The aggregator is borrowed directly: replay runs on one thread, no lock.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::aggregate::Aggregator;
use crate::parse::LineParser;

/// Size of one read; lines longer than this are still handled (the buffer grows).
const BLOCK: usize = 1 << 20;

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

/// A replay failure: which input, and the I/O error.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {name}: {source}")]
pub struct ReplayError {
    pub name: String,
    #[source]
    pub source: io::Error,
}

/// Reads every input to its end into `agg`. Inputs are opened first, so that an
/// unreadable file fails before anything is counted.
pub fn replay(inputs: &[Input], parser: &mut LineParser, agg: &mut Aggregator) -> Result<(), ReplayError> {
    let mut readers = Vec::with_capacity(inputs.len());
    for input in inputs {
        let r = input.open().map_err(|source| ReplayError { name: input.name(), source })?;
        readers.push((input.name(), r));
    }
    let mut buf = vec![0u8; BLOCK];
    for (name, mut r) in readers {
        parser.reset();
        read_lines(&mut *r, &mut buf, parser, agg).map_err(|source| ReplayError { name, source })?;
    }
    Ok(())
}

/// Feeds one reader's lines to the aggregator: complete lines of each block are
/// parsed in place; the partial last line moves to the front of the buffer.
pub fn read_lines(r: &mut dyn Read, buf: &mut Vec<u8>, parser: &mut LineParser, agg: &mut Aggregator) -> io::Result<()> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // One line longer than the buffer: grow (the parser rejects very
            // long lines itself).
            buf.resize(buf.len() * 2, 0);
        }
        let n = match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = filled + n;
        match memchr::memrchr(b'\n', &buf[filled..end]) {
            Some(i) => {
                let cut = filled + i;
                agg.ingest_lines(parser, &buf[..cut]);
                buf.copy_within(cut + 1..end, 0);
                filled = end - cut - 1;
            }
            None => filled = end,
        }
    }
    if filled > 0 {
        agg.ingest_lines(parser, &buf[..filled]);
    }
    Ok(())
}
