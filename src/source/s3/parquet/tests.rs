use super::*;

fn fixture(name: &str) -> File {
    File::open(format!("{}/tests/data/s3/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The typed fields of the valid rows, and the reasons of the invalid ones.
#[derive(Debug, Default)]
struct Rows {
    records: Vec<String>,
    invalid: Vec<ParseError>,
}

impl ObjectSink for Rows {
    fn lines(&mut self, _: &[u8]) {
        unreachable!("Parquet rows are not lines")
    }
    fn line(&mut self, _: &[u8]) {
        unreachable!("Parquet rows are not lines")
    }
    fn records(&mut self, records: &[Record<'_>]) {
        self.records.extend(records.iter().map(|r| format!("{r:?}")));
    }
    fn invalid(&mut self, reason: ParseError) {
        self.invalid.push(reason);
    }
}

fn read_fixture(name: &str) -> Result<(u64, Rows), ParquetError> {
    let mut rows = Rows::default();
    let n = read(fixture(name), &mut rows)?;
    Ok((n, rows))
}

#[test]
fn columns_are_named_either_way() {
    let slot = |name: &str| typed_field(name).map(|f| f.slot);
    assert_eq!(slot("pkt_srcaddr"), Some(Slot::PktSrcAddr));
    assert_eq!(slot("pkt-srcaddr"), Some(Slot::PktSrcAddr));
    assert_eq!(slot("log_status"), Some(Slot::LogStatus));
    assert_eq!(slot("vpc_id"), None, "kept out: no typed field");
    assert_eq!(slot("Srcaddr"), None);
    for name in ["version", "tcp-flags", "pkt-dstaddr", "log-status"] {
        assert_eq!(typed_field(name).map(|f| f.name), Some(name));
    }
}

#[test]
fn integers_are_checked_for_range() {
    assert_eq!(integer(&Cell::Int(443), 65535), Ok(443));
    assert_eq!(integer(&Cell::Int(-1), 65535), Err(ParseError::OutOfRange));
    assert_eq!(integer(&Cell::Int(256), 255), Err(ParseError::OutOfRange));
    assert_eq!(integer(&Cell::Text(b"0443"), 65535), Ok(443));
    assert_eq!(integer(&Cell::Text(b"12a"), 65535), Err(ParseError::BadNumber));
    assert_eq!(integer(&Cell::Text(b"+1"), 65535), Err(ParseError::BadNumber));
    assert_eq!(integer(&Cell::Text(b"99999999999999999999"), u64::MAX), Err(ParseError::OutOfRange));
    assert_eq!(integer(&Cell::Text(b"18446744073709551615"), u64::MAX), Ok(u64::MAX));
    assert_eq!(seconds(1_700_000_000), 1_700_000_000);
    assert_eq!(seconds(1_700_000_000_123), 1_700_000_000);
}

#[test]
fn a_bad_value_makes_its_row_invalid_by_reason() {
    let (n, rows) = read_fixture("bad-values.parquet").unwrap();
    assert_eq!(n, 7);
    assert_eq!(
        rows.invalid,
        [
            ParseError::BadAddress,
            ParseError::BadValue,
            ParseError::OutOfRange,
            ParseError::BadNumber,
            ParseError::BadValue
        ]
    );
    // The first row (integers as strings of digits) and the all-null row.
    assert_eq!(rows.records.len(), 2);
    assert!(rows.records[0].contains("srcport: Some(443)"), "{}", rows.records[0]);
    assert!(rows.records[1].contains("srcaddr: None") && rows.records[1].contains("action: None"));

    let (n, rows) = read_fixture("negative.parquet").unwrap();
    assert_eq!((n, rows.records.len(), rows.invalid.as_slice()), (2, 1, &[ParseError::OutOfRange][..]));
}

#[test]
fn unreadable_files_are_errors_by_reason() {
    let e = read_fixture("unknown-columns.parquet").unwrap_err();
    assert!(matches!(e, ParquetError::NoKnownColumns), "{e}");
    let e = read_fixture("wrong-type.parquet").unwrap_err();
    assert_eq!(e.to_string(), "column srcaddr (srcaddr) has physical type INT64");
    assert_eq!(e.reason(), "parquet_column_type");
    let e = read_fixture("default-snappy.parquet").unwrap_err();
    assert_eq!(e.reason(), "parquet_codec", "{e}");
    assert!(e.to_string().contains("SNAPPY"), "{e}");
    let e = read_fixture("default.log.gz").unwrap_err();
    assert_eq!(e.reason(), "bad_parquet", "{e}");
}

/// Corrupt files are errors (or rows), never a panic: a byte of every
/// eleven of a small file, flipped three ways in turn. Before the checks,
/// 136 of all single-byte flips of this file panicked in the `parquet`
/// crate (a column chunk at a negative offset, a missing dictionary).
#[test]
fn corrupt_files_never_panic() {
    let good = std::fs::read(format!("{}/tests/data/s3/default.parquet", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    let (mut errors, mut read_ok) = (0, 0);
    for i in (0..good.len()).step_by(11) {
        let mut bad = good.clone();
        bad[i] ^= [0xffu8, 0x01, 0x80][i / 11 % 3];
        std::fs::write(&path, &bad).unwrap();
        let file = File::open(&path).unwrap();
        match std::panic::catch_unwind(|| read(file, &mut Rows::default())) {
            Ok(Ok(_)) => read_ok += 1,
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!("byte {i}: the reader panicked out of read()"),
        }
    }
    assert!(errors > 100 && read_ok > 50, "{errors} errors, {read_ok} read");
    // The two panics the crate has: both are errors now, one checked
    // before reading, one caught.
    for (at, flip, says) in [(5784, 0x01, "outside the file"), (5788, 0xff, "Decoder for dict should have been set")] {
        let mut bad = good.clone();
        bad[at] ^= flip;
        std::fs::write(&path, &bad).unwrap();
        let e = read(File::open(&path).unwrap(), &mut Rows::default()).unwrap_err();
        assert_eq!(e.reason(), "bad_parquet", "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}
