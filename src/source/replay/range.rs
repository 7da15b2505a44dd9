//! Reading a plain file by byte ranges on line boundaries. A line belongs to
//! the range its first byte is in: a range `start..end` skips the end of the
//! line that began before `start` (up to the first `\n` at or after
//! `start - 1`) and reads past `end` to the end of its last line (the first
//! `\n` at or after `end - 1`). Consecutive ranges thus read every line of
//! the file exactly once, whatever its length, and CRLF files need nothing
//! more (the `\r` stays with its line). Reads are positioned (`pread`), so
//! the workers share one open file.

use std::fs::File;
use std::io::{self, Read};

use crate::parse::{LineParser, MAX_LINE_LEN};

/// Whether this platform has positioned reads; elsewhere files stay whole.
pub(crate) const SUPPORTED: bool = cfg!(any(unix, windows));

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::read_at(file, buf, offset);
        #[cfg(windows)]
        let r = std::os::windows::fs::FileExt::seek_read(file, buf, offset);
        #[cfg(not(any(unix, windows)))]
        let r: io::Result<usize> = {
            let _ = (file, buf, offset);
            Err(io::Error::from(io::ErrorKind::Unsupported))
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// The offset of the first line that starts at or after `offset`: 0 for 0,
/// else just after the first `\n` at or after `offset - 1`; `None` when no
/// line starts there (the end of the file comes first). A long line is
/// scanned in blocks, in bounded memory.
pub(crate) fn line_start(file: &File, offset: u64, scratch: &mut [u8]) -> io::Result<Option<u64>> {
    if offset == 0 {
        return Ok(Some(0));
    }
    let mut pos = offset - 1;
    loop {
        let n = read_at(file, scratch, pos)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr::memchr(b'\n', &scratch[..n]) {
            return Ok(Some(pos + i as u64 + 1));
        }
        pos += n as u64;
    }
}

/// Sets `parser` to the format in force after the file's first line: the
/// format that line names when it is a header, else the configured one. A
/// range other than the first starts in that state (see the verification
/// in the parent module for a header further down).
pub(crate) fn take_first_line_format(file: &File, parser: &mut LineParser, scratch: &mut [u8]) -> io::Result<()> {
    parser.reset();
    // A line longer than MAX_LINE_LEN is `too_long`, never a header: reading
    // two bytes more (a CRLF) is enough to tell.
    let want = scratch.len().min(MAX_LINE_LEN + 2);
    let mut filled = 0;
    while filled < want {
        let n = read_at(file, &mut scratch[filled..want], filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let line = match memchr::memchr(b'\n', &scratch[..filled]) {
        Some(i) => &scratch[..i],
        None => &scratch[..filled],
    };
    let _ = parser.parse_line(line);
    Ok(())
}

/// The bytes of the lines that start in `start..end` (`end` `None`: to the
/// end of the file), as a reader.
pub(crate) struct RangeReader<'f> {
    file: &'f File,
    pos: u64,
    /// The range stops at the first `\n` at or after this offset.
    stop_from: Option<u64>,
    done: bool,
}

impl<'f> RangeReader<'f> {
    /// `start` must be a line start (see [`line_start`]).
    pub(crate) fn new(file: &'f File, start: u64, end: Option<u64>) -> RangeReader<'f> {
        let done = end.is_some_and(|e| start >= e);
        RangeReader { file, pos: start, stop_from: end.map(|e| e.saturating_sub(1)), done }
    }
}

impl Read for RangeReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        let mut n = read_at(self.file, out, self.pos)?;
        if n == 0 {
            self.done = true;
            return Ok(0);
        }
        if let Some(stop) = self.stop_from {
            if self.pos + n as u64 > stop {
                let from = stop.saturating_sub(self.pos) as usize;
                if let Some(i) = memchr::memchr(b'\n', &out[from..n]) {
                    n = from + i + 1;
                    self.done = true;
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    /// The bytes of every range of `cuts`, read with a tiny buffer to cross
    /// every boundary.
    fn ranges(f: &File, cuts: &[u64]) -> Vec<Vec<u8>> {
        let mut bounds: Vec<u64> = vec![0];
        bounds.extend_from_slice(cuts);
        let mut out = Vec::new();
        let mut scratch = [0u8; 7];
        for (i, &s) in bounds.iter().enumerate() {
            let end = bounds.get(i + 1).copied();
            let mut bytes = Vec::new();
            if let Some(start) = line_start(f, s, &mut scratch).unwrap() {
                let mut r = RangeReader::new(f, start, end);
                let mut buf = [0u8; 5];
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&buf[..n]);
                }
            }
            out.push(bytes);
        }
        out
    }

    #[test]
    fn every_cut_of_a_file_reads_each_line_once() {
        let text = b"aa\nbbbb\r\n\nc\nlong-line-here\nlast";
        let f = file(text);
        for a in 1..text.len() as u64 {
            for b in a + 1..text.len() as u64 {
                let parts = ranges(&f, &[a, b]);
                assert_eq!(parts.concat(), text, "cuts {a} {b}: {parts:?}");
                // Only the end of the file ends a range inside a line.
                for (i, p) in parts.iter().enumerate() {
                    let at_end = parts[i + 1..].iter().all(|q| q.is_empty());
                    assert!(p.is_empty() || p.ends_with(b"\n") || at_end, "cuts {a} {b}: {parts:?}");
                }
            }
        }
    }

    #[test]
    fn a_cut_just_after_a_newline_starts_the_next_line_there() {
        let f = file(b"ab\ncd\nef\n");
        assert_eq!(ranges(&f, &[3]), vec![b"ab\n".to_vec(), b"cd\nef\n".to_vec()]);
        assert_eq!(ranges(&f, &[4]), vec![b"ab\ncd\n".to_vec(), b"ef\n".to_vec()]);
        assert_eq!(ranges(&f, &[2]), vec![b"ab\n".to_vec(), b"cd\nef\n".to_vec()]);
    }

    #[test]
    fn a_range_inside_one_long_line_is_empty() {
        let mut text = b"a\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 100));
        text.extend(b"\nb\n");
        let f = file(&text);
        let parts = ranges(&f, &[10, 50, 90]);
        assert_eq!(parts[1], b"");
        assert_eq!(parts[2], b"");
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn the_first_line_sets_the_format_of_later_ranges() {
        use crate::parse::Format;
        let header = b"version srcaddr dstaddr action\n2 10.0.0.1 10.0.0.2 ACCEPT\n";
        let mut p = LineParser::for_file(Format::default_v2());
        let mut scratch = vec![0u8; 1 << 16];
        take_first_line_format(&file(header), &mut p, &mut scratch).unwrap();
        assert_eq!(p.format().len(), 4);
        take_first_line_format(&file(b"2 1 eni-a\n"), &mut p, &mut scratch).unwrap();
        assert_eq!(p.format(), &Format::default_v2());
        // A header-looking first line too long to be a line is not a header.
        let mut long = b"version srcaddr".to_vec();
        long.extend(std::iter::repeat_n(b' ', MAX_LINE_LEN));
        long.extend(b" dstaddr\n");
        take_first_line_format(&file(&long), &mut p, &mut scratch).unwrap();
        assert_eq!(p.format(), &Format::default_v2());
    }
}
