//! S3 objects through the real pipeline: text objects (plain, gzip,
//! multi-member gzip) count exactly what `replay` counts for the same
//! records; Parquet objects (GZIP or uncompressed, `_` or `-` column names,
//! every field of versions 2 to 8, nulls) give the records the text parser
//! gives for the same rows; a download that fails halfway, a truncated
//! gzip or Parquet object leaves no counts at all. Fixtures:
//! tests/data/s3 (records of the AWS "Flow log record examples" page,
//! Parquet written by pyarrow through make_fixtures.py).

mod common;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;

use vpc_flow_exporter::aggregate::Aggregator;
use vpc_flow_exporter::config::Config;
use vpc_flow_exporter::parse::{Format, Line, LineParser, ParseError, Record};
use vpc_flow_exporter::pipeline::{FileInput, Pipeline};
use vpc_flow_exporter::source::replay::{self, Input};
use vpc_flow_exporter::source::s3::{decode, Limits, ObjectError, ObjectKind, ObjectSink};

fn data(name: &str) -> PathBuf {
    common::repo().join("tests/data/s3").join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

/// The pipeline's file input, with the invalid rows it cannot count yet
/// (the wiring step adds that to the input itself).
struct Counted {
    input: FileInput,
    invalid: BTreeMap<&'static str, u64>,
}

impl Counted {
    fn new(p: &Pipeline, key: &str) -> Counted {
        Counted { input: p.file(key, Format::default_v2()), invalid: BTreeMap::new() }
    }
}

impl ObjectSink for Counted {
    fn lines(&mut self, buf: &[u8]) {
        self.input.lines(buf);
    }
    fn line(&mut self, line: &[u8]) {
        self.input.line(line);
    }
    fn records(&mut self, records: &[Record<'_>]) {
        self.input.records(records);
    }
    fn invalid(&mut self, reason: ParseError) {
        *self.invalid.entry(reason.reason()).or_default() += 1;
    }
}

/// Reads one object into a fresh pipeline and commits it; the exposition.
fn count(name: &str, key: &str) -> (String, BTreeMap<&'static str, u64>) {
    let p = Pipeline::new(&Config::default()).unwrap();
    let mut sink = Counted::new(&p, key);
    decode(&bytes(name)[..], key, &mut sink, &Limits::default()).unwrap();
    let invalid = std::mem::take(&mut sink.invalid);
    sink.input.commit();
    (p.exposition(), invalid)
}

/// What `replay` gives for a text file.
fn replayed(name: &str) -> String {
    let agg =
        replay::run(&[Input::File(data(name))], &Format::default_v2(), Aggregator::new(&Config::default())).unwrap();
    vpc_flow_exporter::expose::encode(&vpc_flow_exporter::expose::registry(&agg.into_shared()))
}

fn lines_total(expo: &str) -> f64 {
    common::expo::sample(expo, "vpc_flow_exporter_lines_total").unwrap()
}

/// What the pipeline's file input counts for a whole text file handed over
/// at once.
fn direct(name: &str) -> String {
    let p = Pipeline::new(&Config::default()).unwrap();
    let mut input = p.file(name, Format::default_v2());
    let mut text = Vec::new();
    let file = std::fs::File::open(data(name)).unwrap();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut text).unwrap();
    } else {
        io::BufReader::new(file).read_to_end(&mut text).unwrap();
    }
    input.lines(&text);
    input.commit();
    p.exposition()
}

/// The exposition without the windowed trackers' entry gauges: a file
/// counted into a shard and merged keeps only the entries inside the window
/// of its newest record, where one aggregator reading the same lines keeps
/// older ones until it next prunes (the AWS examples are months apart).
fn without_tracker_entries(expo: &str) -> String {
    expo.lines().filter(|l| !l.starts_with("vpc_flow_exporter_tracker_entries{")).collect::<Vec<_>>().join("\n")
}

#[test]
fn text_objects_count_what_replay_counts() {
    let want = direct("default.log");
    assert_eq!(lines_total(&want), 8.0, "a header and 7 records");
    assert_eq!(common::expo::value(&want, "vpc_flow_records_total", &[("action", "ACCEPT")]), 3.0);
    assert_eq!(without_tracker_entries(&want), without_tracker_entries(&replayed("default.log")));
    for (name, key) in [
        ("default.log", "AWSLogs/123456789010/vpcflowlogs/us-east-1/2026/12/01/default.log"),
        ("default.log.gz", "AWSLogs/aws-account-id=123456789010/aws-service=vpcflowlogs/default.log.gz"),
        ("multi-member.log.gz", "my logs/multi member.log.gz"),
    ] {
        let (got, invalid) = count(name, key);
        assert_eq!(got, want, "{name}");
        assert!(invalid.is_empty());
    }
    let many = count("many.log.gz", "many.log.gz").0;
    assert_eq!(many, direct("many.log.gz"));
    assert_eq!(many, replayed("many.log.gz"));
    assert_eq!(lines_total(&many), 5001.0);
}

/// The typed fields of a record (raw text left out: Parquet rows have none).
fn typed(r: &Record<'_>) -> String {
    let text = |t: Option<&[u8]>| t.map(|t| String::from_utf8_lossy(t).into_owned());
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        r.version,
        text(r.account_id),
        text(r.interface_id),
        r.srcaddr,
        r.dstaddr,
        r.srcport,
        r.dstport,
        r.protocol,
        r.packets,
        r.bytes,
        r.start,
        r.end,
        r.action,
        r.log_status,
        r.tcp_flags,
        r.pkt_srcaddr,
        r.pkt_dstaddr
    )
}

/// The typed records of a text object, parsed line by line (its header
/// sets the format).
fn text_records(name: &str) -> Vec<String> {
    let mut raw = Vec::new();
    let file = std::fs::File::open(data(name)).unwrap();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut raw).unwrap();
    } else {
        io::BufReader::new(file).read_to_end(&mut raw).unwrap();
    }
    let mut parser = LineParser::for_file(Format::default_v2());
    let mut out = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        match parser.parse_line(line) {
            Line::Record(r) => out.push(typed(&r)),
            Line::Header | Line::Empty => {}
            Line::Invalid(e) => panic!("{name}: {e}: {}", String::from_utf8_lossy(line)),
        }
    }
    out
}

/// Collects the typed records of an object.
#[derive(Default)]
struct Typed {
    records: Vec<String>,
    invalid: Vec<ParseError>,
    lines: usize,
}

impl ObjectSink for Typed {
    fn lines(&mut self, buf: &[u8]) {
        self.lines += buf.split(|&b| b == b'\n').count();
    }
    fn line(&mut self, _: &[u8]) {
        self.lines += 1;
    }
    fn records(&mut self, records: &[Record<'_>]) {
        self.records.extend(records.iter().map(typed));
    }
    fn invalid(&mut self, reason: ParseError) {
        self.invalid.push(reason);
    }
}

#[test]
fn parquet_rows_are_the_records_of_the_same_text() {
    for (parquet, text, rows) in [
        ("default.parquet", "default.log", 7),
        ("default-uncompressed.parquet", "default.log", 7),
        ("v5-hyphen.parquet", "v5.log", 2),
        ("all-fields.parquet", "all-fields.log", 5),
        ("many.parquet", "many.log.gz", 5000),
    ] {
        let mut sink = Typed::default();
        let key = format!("AWSLogs/123456789010/vpcflowlogs/us-east-1/2026/12/01/{parquet}");
        let summary = decode(&bytes(parquet)[..], &key, &mut sink, &Limits::default()).unwrap();
        assert_eq!((summary.kind, summary.rows), (ObjectKind::Parquet, rows), "{parquet}");
        assert_eq!(summary.object_bytes, bytes(parquet).len() as u64);
        assert_eq!(sink.lines, 0);
        assert!(sink.invalid.is_empty(), "{parquet}: {:?}", sink.invalid);
        let want = text_records(text);
        assert_eq!(want.len() as u64, rows);
        assert_eq!(sink.records, want, "{parquet}");
    }
}

#[test]
fn parquet_counts_what_text_counts() {
    for (parquet, text) in
        [("default.parquet", "default.log"), ("many.parquet", "many.log.gz"), ("v5-hyphen.parquet", "v5.log")]
    {
        let (from_parquet, invalid) = count(parquet, parquet);
        assert!(invalid.is_empty());
        let (from_text, _) = count(text, text);
        // The text object's header is a line read too.
        assert_eq!(lines_total(&from_text), lines_total(&from_parquet) + 1.0, "{parquet}");
        let without_lines = |e: &str| {
            e.lines().filter(|l| !l.starts_with("vpc_flow_exporter_lines_total")).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(without_lines(&from_parquet), without_lines(&from_text), "{parquet}");
    }
}

#[test]
fn all_fields_of_every_version_and_nulls() {
    let mut sink = Typed::default();
    decode(&bytes("all-fields.parquet")[..], "a.parquet", &mut sink, &Limits::default()).unwrap();
    let r = &sink.records;
    assert_eq!(r.len(), 5);
    assert!(
        r[0].starts_with("Some(8) Some(\"123456789010\") Some(\"eni-1235b8ca123456789\") Some(10.0.1.5)"),
        "{}",
        r[0]
    );
    assert!(r[2].contains("Some(2001:db8::1) Some(2001:db8::2) Some(443) Some(50000)"), "{}", r[2]);
    // NODATA: every traffic field null.
    assert!(
        r[3].contains("None None None None None None None Some(1700000000) Some(1700000060) None Some(NoData)"),
        "{}",
        r[3]
    );
    // Times in milliseconds read as seconds.
    assert!(r[4].contains("Some(1700000100) Some(1700000160)"), "{}", r[4]);
}

#[test]
fn invalid_rows_count_by_reason_and_valid_rows_count() {
    let (expo, invalid) = count("bad-values.parquet", "bad.parquet");
    let want: BTreeMap<&str, u64> =
        [("bad_address", 1), ("bad_value", 2), ("out_of_range", 1), ("bad_number", 1)].into_iter().collect();
    assert_eq!(invalid, want);
    assert_eq!(lines_total(&expo), 2.0, "the valid rows");
    assert_eq!(common::expo::value(&expo, "vpc_flow_records_total", &[("action", "ACCEPT")]), 1.0);
}

/// Hands out the object 1000 bytes at a time, then fails at `fail_at`.
struct Download<'a> {
    data: &'a [u8],
    fail_at: usize,
    read: usize,
}

impl Read for Download<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.read >= self.fail_at {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
        }
        let n = out.len().min(self.data.len()).min(1000).min(self.fail_at - self.read);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.read += n;
        Ok(n)
    }
}

#[test]
fn a_failed_object_leaves_no_counts() {
    let p = Pipeline::new(&Config::default()).unwrap();
    let gz = bytes("many.log.gz");
    let parquet = bytes("many.parquet");
    let plain = std::fs::read(data("default.log")).unwrap();
    let cases: Vec<(&str, Box<dyn Read + '_>, &str)> = vec![
        ("many.log.gz", Box::new(Download { data: &gz, fail_at: gz.len() / 2, read: 0 }), "read"),
        ("many.log.gz", Box::new(&gz[..gz.len() - 100]), "bad_gzip"),
        ("default.log", Box::new(Download { data: &plain, fail_at: plain.len() - 10, read: 0 }), "read"),
        ("many.parquet", Box::new(Download { data: &parquet, fail_at: parquet.len() - 1, read: 0 }), "read"),
        ("many.parquet", Box::new(&parquet[..parquet.len() - 9]), "bad_parquet"),
        ("many.parquet", Box::new(&parquet[..parquet.len() / 2]), "bad_parquet"),
    ];
    for (key, reader, reason) in cases {
        let mut sink = Counted::new(&p, key);
        let e = decode(reader, key, &mut sink, &Limits::default()).unwrap_err();
        assert_eq!(e.reason(), reason, "{key}: {e}");
        // The loop drops the input of a failed object: nothing is committed.
        drop(sink);
    }
    let expo = p.exposition();
    assert_eq!(lines_total(&expo), 0.0);
    assert!(common::expo::series(&expo, "vpc_flow_records_total").values().all(|v| *v == 0.0), "{expo}");

    // The same objects read whole are counted once each.
    for (key, data) in [("many.log.gz", &gz), ("many.parquet", &parquet)] {
        let mut sink = Counted::new(&p, key);
        decode(&data[..], key, &mut sink, &Limits::default()).unwrap();
        sink.input.commit();
    }
    assert_eq!(lines_total(&p.exposition()), 5001.0 + 5000.0);
}

#[test]
fn a_huge_line_is_one_invalid_line() {
    let mut text = b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n".to_vec();
    text.extend(std::iter::repeat_n(b'7', 3 << 20));
    text.extend(b"\n2 123456789010 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &text).unwrap();
    let gz = gz.finish().unwrap();
    let p = Pipeline::new(&Config::default()).unwrap();
    let mut sink = Counted::new(&p, "huge.log.gz");
    let s = decode(&gz[..], "huge.log.gz", &mut sink, &Limits::default()).unwrap();
    assert_eq!(s.decoded_bytes, text.len() as u64);
    sink.input.commit();
    let expo = p.exposition();
    assert_eq!(lines_total(&expo), 3.0);
    assert_eq!(common::expo::value(&expo, "vpc_flow_exporter_parse_errors_total", &[("reason", "too_long")]), 1.0);
    assert_eq!(common::expo::value(&expo, "vpc_flow_records_total", &[("interface_id", "eni-a")]), 1.0);
}

#[test]
fn errors_name_their_reason() {
    let mut sink = Typed::default();
    let e = decode(&bytes("default-snappy.parquet")[..], "a.parquet", &mut sink, &Limits::default()).unwrap_err();
    assert_eq!(e.reason(), "parquet_codec");
    assert!(matches!(e, ObjectError::Parquet(_)));
    let e = decode(&bytes("default.log")[..], "a.log.gz", &mut sink, &Limits::default()).unwrap_err();
    assert_eq!(e.to_string(), "the key ends in .gz but the object is plain");
    assert!(sink.records.is_empty() && sink.lines == 0);
}
