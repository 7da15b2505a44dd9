use std::io::Write as _;

use super::*;
use crate::parse::MAX_LINE_LEN;

/// Collects what a decoder hands over.
#[derive(Debug, Default)]
struct Collect {
    lines: Vec<Vec<u8>>,
    records: usize,
    invalid: Vec<ParseError>,
}

impl ObjectSink for Collect {
    fn lines(&mut self, buf: &[u8]) {
        self.lines.extend(buf.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    fn line(&mut self, line: &[u8]) {
        self.lines.push(line.to_vec());
    }
    fn records(&mut self, records: &[Record<'_>]) {
        self.records += records.len();
    }
    fn invalid(&mut self, reason: ParseError) {
        self.invalid.push(reason);
    }
}

/// Hands out at most `step` bytes per read, then fails with `error` once
/// `fail_at` bytes were read (if set).
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    fail_at: Option<usize>,
    read: usize,
}

impl<'a> Trickle<'a> {
    fn new(data: &'a [u8], step: usize) -> Trickle<'a> {
        Trickle { data, step, fail_at: None, read: 0 }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.fail_at.is_some_and(|at| self.read >= at) {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer"));
        }
        let limit = self.fail_at.map_or(usize::MAX, |at| at - self.read);
        let n = out.len().min(self.data.len()).min(self.step).min(limit);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.read += n;
        Ok(n)
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn text(lines: usize) -> Vec<u8> {
    (0..lines).map(|i| format!("line {i}\n")).collect::<String>().into_bytes()
}

fn decode_all(data: &[u8], key: &str, step: usize) -> (Result<Summary, ObjectError>, Collect) {
    let mut sink = Collect::default();
    let r = decode(Trickle::new(data, step), key, &mut sink, &Limits::default());
    (r, sink)
}

#[test]
fn kinds_come_from_magic_bytes_checked_against_the_key() {
    assert_eq!(kind_of("a.log.gz", &[0x1f, 0x8b, 8, 0]).unwrap(), ObjectKind::Gzip);
    assert_eq!(kind_of("a.log", &[0x1f, 0x8b, 8, 0]).unwrap(), ObjectKind::Gzip);
    assert_eq!(kind_of("a.log.parquet", b"PAR1").unwrap(), ObjectKind::Parquet);
    assert_eq!(kind_of("a", b"PAR1").unwrap(), ObjectKind::Parquet);
    assert_eq!(kind_of("a.log", b"vers").unwrap(), ObjectKind::Plain);
    assert_eq!(kind_of("a.txt", b"2").unwrap(), ObjectKind::Plain);
    let e = kind_of("a.log.gz", b"vers").unwrap_err();
    assert_eq!((e.reason(), e.to_string().as_str()), ("kind_mismatch", "the key ends in .gz but the object is plain"));
    assert_eq!(kind_of("a.parquet", &[0x1f, 0x8b]).unwrap_err().reason(), "kind_mismatch");
    assert_eq!(kind_of("a.gz", b"PAR1").unwrap_err().reason(), "kind_mismatch");
}

#[test]
fn plain_and_gzip_text_give_the_same_lines_whatever_the_read_sizes() {
    let data = text(5000);
    let want: Vec<Vec<u8>> = data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    let packed = gzip(&data);
    for step in [1, 3, 977, 64 * 1024, usize::MAX] {
        let (r, sink) = decode_all(&data, "a.log", step);
        let s = r.unwrap();
        assert_eq!(
            (s.kind, s.object_bytes, s.decoded_bytes),
            (ObjectKind::Plain, data.len() as u64, data.len() as u64)
        );
        assert_eq!(sink.lines, want, "step {step}");
        let (r, sink) = decode_all(&packed, "a.log.gz", step);
        let s = r.unwrap();
        assert_eq!(
            (s.kind, s.object_bytes, s.decoded_bytes),
            (ObjectKind::Gzip, packed.len() as u64, data.len() as u64)
        );
        assert_eq!(sink.lines, want, "gzip, step {step}");
    }
}

#[test]
fn every_gzip_member_is_read() {
    let mut data = gzip(b"a\nb\n");
    data.extend(gzip(b"c\n"));
    data.extend(gzip(b""));
    data.extend(gzip(b"d"));
    let (r, sink) = decode_all(&data, "x.gz", 5);
    assert_eq!(r.unwrap().decoded_bytes, 7);
    assert_eq!(sink.lines, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
}

#[test]
fn a_last_line_without_newline_and_crlf_lines() {
    let (r, sink) = decode_all(b"a\r\nb\r\nc", "x", 2);
    r.unwrap();
    // Line ends are the parser's business: `\r` stays.
    assert_eq!(sink.lines, [b"a\r".to_vec(), b"b\r".to_vec(), b"c".to_vec()]);
}

#[test]
fn nul_and_invalid_utf8_reach_the_sink_untouched() {
    let data = b"a\0b\r\n\xff\xfe\n\n\0\n\xe2\x82";
    let want = [&b"a\0b\r"[..], b"\xff\xfe", b"", b"\0", b"\xe2\x82"].map(<[u8]>::to_vec);
    for step in [1, 3, usize::MAX] {
        let (r, sink) = decode_all(data, "x.log", step);
        assert_eq!(r.unwrap().decoded_bytes, data.len() as u64);
        assert_eq!(sink.lines, want, "step {step}");
        let (r, sink) = decode_all(&gzip(data), "x.log.gz", step);
        assert_eq!(r.unwrap().decoded_bytes, data.len() as u64);
        assert_eq!(sink.lines, want, "gzip, step {step}");
    }
}

#[test]
fn an_over_long_line_is_cut_once_and_skipped() {
    let mut data = b"first\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 3 * READ_BLOCK + 5));
    data.extend(b"\nlast\n");
    for step in [4096, usize::MAX] {
        let (r, sink) = decode_all(&data, "x", step);
        r.unwrap();
        assert_eq!(sink.lines.len(), 3, "step {step}");
        assert_eq!((sink.lines[0].as_slice(), sink.lines[2].as_slice()), (&b"first"[..], &b"last"[..]));
        assert!(sink.lines[1].len() > MAX_LINE_LEN && sink.lines[1].len() <= READ_BLOCK);
    }
}

#[test]
fn empty_objects_are_errors() {
    assert!(matches!(decode_all(b"", "a.log", 1).0, Err(ObjectError::Empty)));
    assert!(matches!(decode_all(b"", "a.log.gz", 1).0, Err(ObjectError::Empty)));
}

#[test]
fn truncated_and_corrupt_gzip_are_gzip_errors() {
    let packed = gzip(&text(1000));
    for cut in [3, 10, packed.len() / 2, packed.len() - 4, packed.len() - 1] {
        let (r, _) = decode_all(&packed[..cut], "a.log.gz", 100);
        let e = r.unwrap_err();
        assert_eq!(e.reason(), "bad_gzip", "cut at {cut}: {e}");
    }
    let mut corrupt = packed.clone();
    corrupt[20] ^= 0xff;
    corrupt[21] ^= 0xff;
    assert_eq!(decode_all(&corrupt, "a.log.gz", 100).0.unwrap_err().reason(), "bad_gzip");
    // A valid member followed by junk.
    let mut junk = packed;
    junk.extend(b"not gzip");
    assert_eq!(decode_all(&junk, "a.log.gz", 100).0.unwrap_err().reason(), "bad_gzip");
}

#[test]
fn a_download_that_fails_is_a_read_error() {
    let data = text(1000);
    let packed = gzip(&data);
    for (bytes, key) in [(&data, "a.log"), (&packed, "a.log.gz")] {
        for at in [0, 2, bytes.len() / 2] {
            let mut sink = Collect::default();
            let reader = Trickle { fail_at: Some(at), ..Trickle::new(bytes, 64) };
            let e = decode(reader, key, &mut sink, &Limits::default()).unwrap_err();
            assert_eq!(e.reason(), "read", "{key} at {at}: {e}");
            assert!(e.to_string().contains("connection reset"), "{e}");
        }
    }
}

#[test]
fn a_gzip_bomb_stops_at_the_text_limit() {
    let limits = Limits { max_text_bytes: 1 << 20, ..Limits::default() };
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..16 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let mut sink = Collect::default();
    let err = decode(&bomb[..], "bomb.log.gz", &mut sink, &limits).unwrap_err();
    assert!(matches!(err, ObjectError::TooLarge { what: "text", limit } if limit == 1 << 20), "{err}");
    assert_eq!(err.reason(), "too_large");
    // Plain text has the same bound.
    let err = decode(&zeros[..], "plain.log", &mut sink, &Limits { max_text_bytes: 1000, ..Limits::default() });
    assert_eq!(err.unwrap_err().reason(), "too_large");
    // At the limit exactly, the text is read.
    let exact = Limits { max_text_bytes: 8, ..Limits::default() };
    assert!(decode(&b"1234567\n"[..], "a.log", &mut Collect::default(), &exact).is_ok());
}

#[test]
fn a_parquet_spool_is_bounded() {
    let mut sink = Collect::default();
    let mut data = b"PAR1".to_vec();
    data.resize(10_000, 0);
    let limits = Limits { max_parquet_bytes: 9_999, ..Limits::default() };
    let e = decode(&data[..], "a.parquet", &mut sink, &limits).unwrap_err();
    assert!(matches!(e, ObjectError::TooLarge { what: "Parquet", limit: 9_999 }), "{e}");
    // Within the bound, this is not a Parquet file.
    let e = decode(&data[..], "a.parquet", &mut sink, &Limits::default()).unwrap_err();
    assert_eq!(e.reason(), "bad_parquet", "{e}");
    let e =
        decode(Trickle { fail_at: Some(100), ..Trickle::new(&data, 10) }, "a.parquet", &mut sink, &Limits::default());
    assert_eq!(e.unwrap_err().reason(), "read");
    let missing = Limits { spool_dir: Some("/nonexistent/spool".into()), ..Limits::default() };
    assert_eq!(decode(&data[..], "a.parquet", &mut sink, &missing).unwrap_err().reason(), "spool");
    assert_eq!(sink.records + sink.invalid.len(), 0);
}
