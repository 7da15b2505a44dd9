//! The text path allocates nothing per line: a counting allocator watches
//! this thread while records, invalid lines and empty lines of several formats
//! are parsed (after the parser's first line, which may size its buffers).
//! Header lines (a new format) and JSON lines may allocate, and are not here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use vpc_flow_exporter::parse::{Format, Line, LineParser};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// counter only reads a thread-local flag (const-initialised, no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    WATCHED.with(|w| w.set(true));
    f();
    WATCHED.with(|w| w.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn lines_of(parser: &mut LineParser, lines: &[Vec<u8>]) -> (usize, usize) {
    let (mut records, mut invalid) = (0, 0);
    for l in lines {
        match parser.parse_line(l) {
            Line::Record(r) => {
                records += 1;
                // Reading the raw view does not allocate either.
                std::hint::black_box(r.field("srcaddr"));
                std::hint::black_box(r.get("dstport"));
            }
            Line::Invalid(_) => invalid += 1,
            Line::Empty => {}
            Line::Header => panic!("no header expected"),
        }
    }
    (records, invalid)
}

#[test]
fn text_lines_allocate_nothing() {
    let default: Vec<Vec<u8>> = [
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
        "2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK\r",
        "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA",
        "  2\t123456789010  eni-1 10.0.0.1 10.0.0.2 1 2 17 1 1 1512564058000 1512564059000 REJECT OK \r\n",
        "",
        "   \t ",
        "2 123456789010 eni-1 - - - - - - - 1 2 -",
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 99999 2 6 1 1 1 1 ACCEPT OK",
        "x 123456789010 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 1 ACCEPT OK",
        "2 123456789010 eni-1 10.0.0 10.0.0.2 1 2 6 1 1 1 1 ACCEPT OK",
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 1 DENY OK",
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 99999999999999999999999 1 ACCEPT OK",
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .chain(std::iter::once(vec![b'7'; 40_000]))
    .collect();
    let mut p = LineParser::for_file(Format::default_v2());
    lines_of(&mut p, &default);
    let mut counts = (0, 0);
    let n = allocations(|| {
        for _ in 0..100 {
            counts = lines_of(&mut p, &default);
        }
    });
    assert_eq!(counts, (4, 7));
    assert_eq!(n, 0, "allocations while parsing text lines of the default format");
}

#[test]
fn custom_formats_and_lowercase_records_allocate_nothing() {
    let spec = "${version} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${start} ${end} ${type} ${packets} ${bytes} ${account-id} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${region} ${az-id} ${sublocation-type} ${sublocation-id} ${action} ${tcp-flags} ${pkt-srcaddr} ${pkt-dstaddr} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${traffic-path} ${flow-direction} ${log-status} ${resource-id}";
    let v5: Vec<Vec<u8>> = [
        "5 52.95.128.179 10.0.0.71 80 34210 6 1616729292 1616729349 IPv4 14 15044 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 19 52.95.128.179 10.0.0.71 S3 - - ingress OK nat-1",
        "5 52.95.128.179 10.0.0.71 80 34210 6 1616729292 1616729349 IPv4 14 15044 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 19 52.95.128.179 10.0.0.71 S3 - - ingress OK",
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .collect();
    let mut p = LineParser::for_file(Format::parse(spec).unwrap());
    lines_of(&mut p, &v5);
    assert_eq!(allocations(|| assert_eq!(lines_of(&mut p, &v5), (1, 1))), 0);

    // Records made only of lowercase words are checked as header candidates
    // without allocating.
    let ids: Vec<Vec<u8>> = vec![b"eni-0abc vpc-0def".to_vec(), b"i-0123 subnet-9".to_vec()];
    let mut p = LineParser::for_file(Format::parse("${interface-id} ${vpc-id}").unwrap());
    lines_of(&mut p, &ids);
    assert_eq!(allocations(|| assert_eq!(lines_of(&mut p, &ids), (2, 0))), 0);
}

#[test]
fn header_lines_in_a_stream_allocate_nothing() {
    let lines: Vec<Vec<u8>> = [
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
        "version srcaddr dstaddr",
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .collect();
    let mut p = LineParser::for_stream(Format::default_v2());
    lines_of(&mut p, &lines);
    assert_eq!(allocations(|| assert_eq!(lines_of(&mut p, &lines), (1, 2))), 0);
}
