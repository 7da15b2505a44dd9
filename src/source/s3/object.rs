//! One S3 object's bytes, streamed from a [`Read`] (the caller runs this on
//! a blocking worker thread), to the lines or typed records of an
//! [`ObjectSink`]: gzip text (every member of a multi-member file), plain
//! text, or Parquet (spooled to an anonymous temporary file, then read row
//! group by row group, see [`super::parquet`]). The kind comes from the
//! first bytes (gzip and Parquet magic), checked against the key's suffix.
//! Every read is bounded: lines by [`crate::parse::MAX_LINE_LEN`], the
//! decompressed text by [`Limits::max_text_bytes`] (gzip bombs), a Parquet
//! spool by [`Limits::max_parquet_bytes`]. An error part-way leaves the
//! sink's counts uncommitted: the caller drops it (all or nothing).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;

use crate::parse::{ParseError, Record};
use crate::source::lines::{self, LineSink};

/// The size of one read into the line buffer; lines longer than the buffer
/// are cut and counted once as `too_long` (the shared splitter's
/// `source::lines::BLOCK`).
pub const READ_BLOCK: usize = lines::BLOCK;

/// The most decompressed text one object may hold: 4 GiB. AWS writes text
/// objects of up to about 75 MB compressed (some 1 GiB of text); a gzip
/// bomb stops here with [`ObjectError::TooLarge`].
pub const MAX_TEXT_BYTES: u64 = 4 << 30;

/// The largest Parquet object spooled to disk to be read: 1 GiB. Parquet
/// needs random access (its footer is at the end), so the object is copied
/// to an anonymous temporary file first; memory holds one page at a time.
pub const MAX_PARQUET_BYTES: u64 = 1 << 30;

/// Where the counts of one object go: the pipeline's
/// [`FileInput`](crate::pipeline::FileInput) in the exporter (committed by
/// the caller once the whole object was read; the wiring step implements
/// this trait for it), a plain counter in tests.
pub trait ObjectSink {
    /// Complete `\n`-separated lines (a last line without `\n` is complete
    /// too); a line is never cut between two calls.
    fn lines(&mut self, buf: &[u8]);
    /// One line, without its `\n` (an over-long line's first bytes).
    fn line(&mut self, line: &[u8]);
    /// Typed records (Parquet rows), each counted as one line read.
    fn records(&mut self, records: &[Record<'_>]);
    /// One row that is not a valid record, counted as an invalid line.
    fn invalid(&mut self, reason: ParseError);
}

/// What an object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Gzip,
    Plain,
    Parquet,
}

impl ObjectKind {
    /// The bounded label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Gzip => "gzip",
            ObjectKind::Plain => "plain",
            ObjectKind::Parquet => "parquet",
        }
    }
}

/// The bounds of one object's read; [`Limits::default`] are the constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_TEXT_BYTES`].
    pub max_text_bytes: u64,
    /// See [`MAX_PARQUET_BYTES`].
    pub max_parquet_bytes: u64,
    /// Where Parquet objects are spooled; `None`: the system temporary directory.
    pub spool_dir: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_text_bytes: MAX_TEXT_BYTES, max_parquet_bytes: MAX_PARQUET_BYTES, spool_dir: None }
    }
}

/// What one object gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub kind: ObjectKind,
    /// Bytes read from the object (its size).
    pub object_bytes: u64,
    /// Bytes of text after decompression (the object size for plain text
    /// and Parquet).
    pub decoded_bytes: u64,
    /// Parquet rows read (valid or not); 0 for text, whose lines the sink counts.
    pub rows: u64,
}

/// Why an object could not be read whole. The caller drops its counts.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the object is empty")]
    Empty,
    /// The download failed (the reader returned an error).
    #[error("reading the object failed: {0}")]
    Read(#[source] io::Error),
    /// The bytes are not a valid gzip stream (corrupt or truncated).
    #[error("bad gzip data: {0}")]
    Gzip(#[source] io::Error),
    #[error("the object holds more than {limit} bytes of {what}")]
    TooLarge { what: &'static str, limit: u64 },
    /// The key says one kind (`.gz`, `.parquet`) and the bytes another.
    #[error("the key ends in {suffix} but the object is {found}")]
    KindMismatch { suffix: &'static str, found: &'static str },
    #[error("spooling the Parquet object to a temporary file failed: {0}")]
    Spool(#[source] io::Error),
    #[error(transparent)]
    Parquet(#[from] super::parquet::ParquetError),
}

impl ObjectError {
    /// The bounded `reason` label value.
    pub fn reason(&self) -> &'static str {
        match self {
            ObjectError::Empty => "empty",
            ObjectError::Read(_) => "read",
            ObjectError::Gzip(_) => "bad_gzip",
            ObjectError::TooLarge { .. } => "too_large",
            ObjectError::KindMismatch { .. } => "kind_mismatch",
            ObjectError::Spool(_) => "spool",
            ObjectError::Parquet(e) => e.reason(),
        }
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const PARQUET_MAGIC: &[u8] = b"PAR1";

/// The kind of an object from its first bytes (at most 4) and its key: the
/// magic bytes decide; a key ending in `.gz` or `.parquet` must agree.
pub fn kind_of(key: &str, head: &[u8]) -> Result<ObjectKind, ObjectError> {
    let found = if head.starts_with(GZIP_MAGIC) {
        ObjectKind::Gzip
    } else if head.starts_with(PARQUET_MAGIC) {
        ObjectKind::Parquet
    } else {
        ObjectKind::Plain
    };
    let expected = if key.ends_with(".gz") {
        Some((".gz", ObjectKind::Gzip))
    } else if key.ends_with(".parquet") {
        Some((".parquet", ObjectKind::Parquet))
    } else {
        None
    };
    match expected {
        Some((suffix, kind)) if kind != found => Err(ObjectError::KindMismatch { suffix, found: found.as_str() }),
        _ => Ok(found),
    }
}

/// Reads one object whole into `sink`. On `Err` the sink holds part of
/// the object: drop it.
pub fn decode<R: Read, S: ObjectSink>(
    reader: R,
    key: &str,
    sink: &mut S,
    limits: &Limits,
) -> Result<Summary, ObjectError> {
    let mut src = Counted::new(reader);
    let mut head = [0u8; 4];
    let n = read_head(&mut src, &mut head).map_err(ObjectError::Read)?;
    if n == 0 {
        return Err(ObjectError::Empty);
    }
    let kind = kind_of(key, &head[..n])?;
    let mut summary = Summary { kind, object_bytes: 0, decoded_bytes: 0, rows: 0 };
    let body = io::Cursor::new(&head[..n]).chain(&mut src);
    match kind {
        ObjectKind::Plain => {
            let text = read_text(body, sink, limits.max_text_bytes);
            summary.decoded_bytes = text.map_err(|e| src.classify(e))?;
        }
        ObjectKind::Gzip => {
            let text = read_text(flate2::read::MultiGzDecoder::new(body), sink, limits.max_text_bytes);
            summary.decoded_bytes = text.map_err(|e| src.classify(e))?;
        }
        ObjectKind::Parquet => {
            let file = spool(body, limits)?;
            summary.rows = super::parquet::read(file, sink)?;
        }
    }
    summary.object_bytes = src.bytes;
    if kind != ObjectKind::Gzip {
        summary.decoded_bytes = src.bytes;
    }
    Ok(summary)
}

/// Fills `head` as far as the object allows.
fn read_head(r: &mut impl Read, head: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The error text that marks "more text than the limit" inside an io::Error.
#[derive(Debug, thiserror::Error)]
#[error("more than {0} bytes of text")]
struct TextLimit(u64);

/// Cuts text into lines for the sink with the shared splitter
/// ([`crate::source::lines::split`], one [`READ_BLOCK`] buffer: a line
/// longer than it is handed once, cut, as one line, which the parser counts
/// `too_long`, then skipped to its end) and returns the text's length, at
/// most `max_bytes`.
fn read_text<R: Read, S: ObjectSink>(r: R, sink: &mut S, max_bytes: u64) -> io::Result<u64> {
    let mut text = Bounded { inner: r, total: 0, max: max_bytes };
    lines::split(&mut text, &mut vec![0u8; READ_BLOCK], &mut Text(sink))?;
    Ok(text.total)
}

/// The object's sink as the splitter's.
struct Text<'a, S>(&'a mut S);

impl<S: ObjectSink> LineSink for Text<'_, S> {
    fn lines(&mut self, batch: &[u8]) {
        self.0.lines(batch);
    }

    fn over_long(&mut self, head: &[u8]) {
        self.0.line(head);
    }
}

/// The decoded text, counted, failing with [`TextLimit`] as soon as it holds
/// more than `max` bytes (the bytes of that read are not handed over).
struct Bounded<R> {
    inner: R,
    total: u64,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > self.max {
            return Err(io::Error::other(TextLimit(self.max)));
        }
        Ok(n)
    }
}

/// Copies a Parquet object to an anonymous temporary file (deleted when
/// dropped), at most [`Limits::max_parquet_bytes`].
fn spool(mut body: impl Read, limits: &Limits) -> Result<File, ObjectError> {
    let mut file = match &limits.spool_dir {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    }
    .map_err(ObjectError::Spool)?;
    let mut take = (&mut body).take(limits.max_parquet_bytes.saturating_add(1));
    let copied = copy(&mut take, &mut file)?;
    if copied > limits.max_parquet_bytes {
        return Err(ObjectError::TooLarge { what: "Parquet", limit: limits.max_parquet_bytes });
    }
    file.flush().map_err(ObjectError::Spool)?;
    file.rewind().map_err(ObjectError::Spool)?;
    Ok(file)
}

/// `io::copy` that tells a failed download from a failed write.
fn copy(r: &mut impl Read, w: &mut File) -> Result<u64, ObjectError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ObjectError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(ObjectError::Spool)?;
        total += n as u64;
    }
}

/// The object's reader, counting its bytes and remembering whether it
/// failed, so that a decoder's error can be told from a download's.
struct Counted<R> {
    inner: R,
    bytes: u64,
    failed: bool,
}

impl<R: Read> Counted<R> {
    fn new(inner: R) -> Counted<R> {
        Counted { inner, bytes: 0, failed: false }
    }

    /// An error from reading text: the text limit, the download's own
    /// error, or else (only the gzip decoder makes its own) bad gzip data.
    fn classify(&self, e: io::Error) -> ObjectError {
        if let Some(TextLimit(limit)) = e.get_ref().and_then(|i| i.downcast_ref::<TextLimit>()) {
            return ObjectError::TooLarge { what: "text", limit: *limit };
        }
        if self.failed {
            ObjectError::Read(e)
        } else {
            ObjectError::Gzip(e)
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.bytes += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
