//! The page headers of a column chunk, read before the `parquet` crate
//! reads its pages: the crate reserves a page's stated uncompressed size
//! before decompressing it (up to 2 GiB, the format's i32), so a hostile
//! header could take that much memory. Every header of every chunk read is
//! parsed here (Thrift compact protocol, the `PageHeader` struct: field 2
//! `uncompressed_page_size`, field 3 `compressed_page_size`, the rest
//! skipped) and a page over [`MAX_PAGE_BYTES`] refuses the object. Headers
//! are bounded too ([`MAX_HEADER_BYTES`], nesting [`MAX_DEPTH`]).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

/// The largest page read, uncompressed: 8 MiB (writers use 1 MiB pages;
/// pyarrow's dictionary pages are at most 1 MiB by default).
pub const MAX_PAGE_BYTES: i32 = 8 << 20;

/// The largest page header: 1 MiB (statistics included).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Nesting of Thrift structs and containers in a header.
pub const MAX_DEPTH: u32 = 16;

/// Why a chunk's pages are refused.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("a page states {0} uncompressed bytes, over the limit of {MAX_PAGE_BYTES}")]
    TooLarge(i32),
    #[error("bad page header: {0}")]
    Header(&'static str),
    #[error("reading a page header failed: {0}")]
    Io(#[from] io::Error),
}

/// Checks every page header of the chunk at `start` of `len` bytes.
pub fn check_chunk(file: &File, start: u64, len: u64) -> Result<(), PageError> {
    let end = start.saturating_add(len);
    let mut pos = start;
    // `&File` reads and seeks: no second descriptor per chunk.
    let mut f = file;
    while pos < end {
        f.seek(SeekFrom::Start(pos))?;
        let mut r = Counted { inner: BufReader::with_capacity(8192, (&mut f).take(MAX_HEADER_BYTES)), n: 0 };
        let (uncompressed, compressed) = header(&mut r)?;
        let (Some(uncompressed), Some(compressed)) = (uncompressed, compressed) else {
            return Err(PageError::Header("page sizes missing"));
        };
        if uncompressed > MAX_PAGE_BYTES {
            return Err(PageError::TooLarge(uncompressed));
        }
        if uncompressed < 0 || compressed < 0 {
            return Err(PageError::Header("negative page size"));
        }
        pos = pos.saturating_add(r.n).saturating_add(compressed as u64);
    }
    Ok(())
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Counted<R> {
    fn byte(&mut self) -> Result<u8, PageError> {
        let mut b = [0u8; 1];
        match self.inner.read(&mut b)? {
            0 => Err(PageError::Header("truncated or over the header limit")),
            _ => {
                self.n += 1;
                Ok(b[0])
            }
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), PageError> {
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.n += copied;
        if copied < n {
            return Err(PageError::Header("truncated or over the header limit"));
        }
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, PageError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PageError::Header("varint too long"))
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The `PageHeader` struct: its fields 2 and 3.
fn header<R: Read>(r: &mut Counted<R>) -> Result<(Option<i32>, Option<i32>), PageError> {
    let (mut uncompressed, mut compressed) = (None, None);
    let mut last: i64 = 0;
    loop {
        let b = r.byte()?;
        if b == 0 {
            return Ok((uncompressed, compressed));
        }
        let ty = b & 0x0f;
        let id = match b >> 4 {
            0 => zigzag(r.varint()?),
            delta => last + i64::from(delta),
        };
        last = id;
        if ty == 5 && (id == 2 || id == 3) {
            let v = i32::try_from(zigzag(r.varint()?)).map_err(|_| PageError::Header("size out of range"))?;
            if id == 2 {
                uncompressed = Some(v);
            } else {
                compressed = Some(v);
            }
        } else {
            skip(r, ty, 1)?;
        }
    }
}

/// Skips one value of compact type `ty`.
fn skip<R: Read>(r: &mut Counted<R>, ty: u8, depth: u32) -> Result<(), PageError> {
    if depth > MAX_DEPTH {
        return Err(PageError::Header("nested too deep"));
    }
    match ty {
        1 | 2 => Ok(()),
        3 => r.byte().map(drop),
        4..=6 => r.varint().map(drop),
        7 => r.skip(8),
        8 => {
            let n = r.varint()?;
            r.skip(n)
        }
        9 | 10 => {
            let b = r.byte()?;
            let n = match b >> 4 {
                15 => r.varint()?,
                n => u64::from(n),
            };
            let et = b & 0x0f;
            for _ in 0..n {
                // Booleans in a list take a byte each.
                if et == 1 || et == 2 {
                    r.byte()?;
                } else {
                    skip(r, et, depth + 1)?;
                }
            }
            Ok(())
        }
        11 => {
            let n = r.varint()?;
            if n > 0 {
                let kv = r.byte()?;
                for _ in 0..n {
                    skip(r, kv >> 4, depth + 1)?;
                    skip(r, kv & 0x0f, depth + 1)?;
                }
            }
            Ok(())
        }
        12 => {
            let mut last: i64 = 0;
            loop {
                let b = r.byte()?;
                if b == 0 {
                    return Ok(());
                }
                if b >> 4 == 0 {
                    last = zigzag(r.varint()?);
                } else {
                    last += i64::from(b >> 4);
                }
                let _ = last;
                skip(r, b & 0x0f, depth + 1)?;
            }
        }
        13 => r.skip(16),
        _ => Err(PageError::Header("unknown type")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// A PageHeader: type, sizes, a data page header struct, stop.
    fn page(uncompressed: i32, compressed: i32) -> Vec<u8> {
        let zz = |v: i32| ((v << 1) ^ (v >> 31)) as u32 as u64;
        let mut h = vec![0x15];
        varint(0, &mut h);
        h.push(0x15);
        varint(zz(uncompressed), &mut h);
        h.push(0x15);
        varint(zz(compressed), &mut h);
        // Field 5 (delta 2): a struct holding an i32 and a binary.
        h.extend_from_slice(&[0x2c, 0x15, 0x04, 0x18, 0x03, b'a', b'b', b'c', 0x00, 0x00]);
        h.extend(std::iter::repeat_n(0u8, compressed as usize));
        h
    }

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn pages_within_the_limit_pass_and_a_huge_one_is_refused() {
        let mut ok = page(1000, 10);
        ok.extend(page(MAX_PAGE_BYTES, 3));
        let f = file(&ok);
        check_chunk(&f, 0, ok.len() as u64).unwrap();
        let mut bad = page(100, 5);
        bad.extend(page(i32::MAX, 5));
        let f = file(&bad);
        let e = check_chunk(&f, 0, bad.len() as u64).unwrap_err();
        assert!(matches!(e, PageError::TooLarge(v) if v == i32::MAX), "{e}");
        let f = file(&page(-1, 5));
        assert!(matches!(check_chunk(&f, 0, 30).unwrap_err(), PageError::Header(_)));
    }

    #[test]
    fn truncated_deep_and_endless_headers_are_errors() {
        let f = file(&[0x15, 0x02]);
        assert!(check_chunk(&f, 0, 100).is_err());
        let deep: Vec<u8> = std::iter::repeat_n(0x1c, 100).collect();
        assert!(check_chunk(&file(&deep), 0, 100).is_err());
        // A list claiming 2^60 elements stops at the header limit.
        let mut list = vec![0x19, 0xf5];
        varint(1 << 60, &mut list);
        list.extend(std::iter::repeat_n(0u8, 4096));
        assert!(check_chunk(&file(&list), 0, list.len() as u64).is_err());
    }
}
