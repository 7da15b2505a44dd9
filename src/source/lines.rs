//! The bounded line splitter of the sources that read a byte stream: replay's
//! files and standard input, and S3 text objects. [`split`] reads the stream
//! in blocks into one buffer and hands the complete `\n`-separated lines of
//! each block to a [`LineSink`] in place, as one batch; the partial last line
//! moves to the front of the buffer for the next read. Line ends are the
//! parser's business (a `\r` before `\n` stays in the line), and so are the
//! bytes: NUL and invalid UTF-8 pass through untouched. A line longer than
//! the whole buffer is handed over once, cut to the buffer
//! ([`LineSink::over_long`], which the parser counts as `too_long`), and the
//! rest of it is skipped up to its `\n`: memory stays at one buffer, nothing
//! is allocated per line.

use std::io::{self, Read};

use crate::parse::MAX_LINE_LEN;

/// The size of one read, and of the buffer the sources give [`split`]: 1 MiB.
/// It bounds how long a line can be before it is cut as over-long.
pub const BLOCK: usize = 1 << 20;

/// The smallest buffer [`split`] works with (a smaller one is grown to it):
/// twice [`MAX_LINE_LEN`], so that a line the parser accepts is never cut,
/// and one just over the limit still reaches the parser whole.
pub const MIN_BUFFER: usize = 2 * MAX_LINE_LEN;

/// Where [`split`] hands the lines.
pub trait LineSink {
    /// Complete `\n`-separated lines, without the last one's `\n` (a last
    /// line without `\n` at the end of the stream is complete too); a line is
    /// never cut between two calls.
    fn lines(&mut self, batch: &[u8]);
    /// The first bytes (a whole buffer, no `\n`) of a line longer than the
    /// buffer, once per such line; the rest of it is skipped.
    fn over_long(&mut self, head: &[u8]);
}

/// Reads `r` to its end, handing its lines to `sink` (see the module
/// documentation). `buf` is the working buffer, grown to [`MIN_BUFFER`] if
/// it is smaller; its length bounds a line. A read error ends the split with
/// that error (the lines before it were handed over); `Interrupted` reads are
/// retried.
pub fn split<R, S>(r: &mut R, buf: &mut Vec<u8>, sink: &mut S) -> io::Result<()>
where
    R: Read + ?Sized,
    S: LineSink + ?Sized,
{
    if buf.len() < MIN_BUFFER {
        buf.resize(MIN_BUFFER, 0);
    }
    // `buf[..filled]`: the start of a line not ended yet.
    let mut filled = 0;
    // Inside an over-long line already handed over: drop bytes up to its end.
    let mut skipping = false;
    loop {
        if filled == buf.len() {
            // A whole buffer without a newline: longer than any valid line.
            if !skipping {
                sink.over_long(&buf[..filled]);
                skipping = true;
            }
            filled = 0;
        }
        let n = match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = filled + n;
        let mut start = 0;
        if skipping {
            let Some(nl) = memchr::memchr(b'\n', &buf[filled..end]) else {
                filled = 0;
                continue;
            };
            skipping = false;
            start = filled + nl + 1;
        }
        filled = match memchr::memrchr(b'\n', &buf[start..end]) {
            Some(nl) => {
                let cut = start + nl;
                sink.lines(&buf[start..cut]);
                buf.copy_within(cut + 1..end, 0);
                end - cut - 1
            }
            None => {
                buf.copy_within(start..end, 0);
                end - start
            }
        };
    }
    if filled > 0 && !skipping {
        sink.lines(&buf[..filled]);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
