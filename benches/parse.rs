//! Parser throughput: ns per line for default-format (version 2) lines, a
//! 29-field version 5 custom format, and JSON-object lines. Each iteration
//! parses a batch of varied lines (accepts, rejects, NODATA, IPv6) so that the
//! figures are per line, as the pipeline sees them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vpc_flow_exporter::parse::{Format, Line, LineParser};

const BATCH: usize = 1024;

/// A small deterministic generator (xorshift), so the lines vary.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn addr(rng: &mut Rng) -> String {
    if rng.below(20) == 0 {
        format!("2001:db8:{:x}:{:x}::{:x}", rng.below(65536), rng.below(65536), rng.below(65536))
    } else {
        format!("{}.{}.{}.{}", 10 + rng.below(200), rng.below(256), rng.below(256), 1 + rng.below(254))
    }
}

struct Flow {
    eni: String,
    src: String,
    dst: String,
    sport: u64,
    dport: u64,
    proto: u64,
    packets: u64,
    bytes: u64,
    start: u64,
    action: &'static str,
    nodata: bool,
}

fn flows() -> Vec<Flow> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..BATCH)
        .map(|_| {
            let packets = 1 + rng.below(5000);
            Flow {
                eni: format!("eni-{:017x}", rng.below(1 << 40)),
                src: addr(&mut rng),
                dst: addr(&mut rng),
                sport: rng.below(65536),
                dport: [22, 80, 443, 3389, 5432][rng.below(5) as usize],
                proto: [6, 6, 6, 17, 1][rng.below(5) as usize],
                packets,
                bytes: packets * (40 + rng.below(1400)),
                start: 1_700_000_000 + rng.below(86_400),
                action: if rng.below(4) == 0 { "REJECT" } else { "ACCEPT" },
                nodata: rng.below(50) == 0,
            }
        })
        .collect()
}

fn default_lines() -> Vec<String> {
    flows()
        .into_iter()
        .map(|f| {
            if f.nodata {
                format!("2 123456789010 {} - - - - - - - {} {} - NODATA", f.eni, f.start, f.start + 60)
            } else {
                format!(
                    "2 123456789010 {} {} {} {} {} {} {} {} {} {} {} OK",
                    f.eni,
                    f.src,
                    f.dst,
                    f.sport,
                    f.dport,
                    f.proto,
                    f.packets,
                    f.bytes,
                    f.start,
                    f.start + 60,
                    f.action
                )
            }
        })
        .collect()
}

const V5_FORMAT: &str = "${version} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${start} ${end} ${type} ${packets} ${bytes} ${account-id} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${region} ${az-id} ${sublocation-type} ${sublocation-id} ${action} ${tcp-flags} ${pkt-srcaddr} ${pkt-dstaddr} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${traffic-path} ${flow-direction} ${log-status}";

fn v5_lines() -> Vec<String> {
    flows()
        .into_iter()
        .map(|f| {
            format!(
                "5 {src} {dst} {} {} {} {} {} IPv4 {} {} 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b {} ap-southeast-2 apse2-az3 - - {} 19 {src} {dst} - S3 8 egress OK",
                f.sport, f.dport, f.proto, f.start, f.start + 60, f.packets, f.bytes, f.eni, f.action,
                src = f.src,
                dst = f.dst,
            )
        })
        .collect()
}

fn json_lines() -> Vec<String> {
    flows()
        .into_iter()
        .map(|f| {
            format!(
                r#"{{"version":2,"account-id":"123456789010","interface-id":"{}","srcaddr":"{}","dstaddr":"{}","srcport":{},"dstport":{},"protocol":{},"packets":{},"bytes":{},"start":{},"end":{},"action":"{}","log-status":"OK"}}"#,
                f.eni, f.src, f.dst, f.sport, f.dport, f.proto, f.packets, f.bytes, f.start, f.start + 60, f.action
            )
        })
        .collect()
}

fn run(c: &mut Criterion, name: &str, format: Format, lines: &[String]) {
    let mut parser = LineParser::for_file(format);
    // Every line must be a record, or the figure would measure errors.
    for l in lines {
        assert!(matches!(parser.parse_line(l.as_bytes()), Line::Record(_)), "{l}");
    }
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for l in lines {
                if let Line::Record(r) = parser.parse_line(black_box(l.as_bytes())) {
                    sum = sum.wrapping_add(r.bytes.unwrap_or(0)).wrapping_add(u64::from(r.dstport.unwrap_or(0)));
                }
            }
            sum
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    run(c, "default_v2", Format::default_v2(), &default_lines());
    run(c, "custom_v5", Format::parse(V5_FORMAT).unwrap(), &v5_lines());
    run(c, "json", Format::default_v2(), &json_lines());
}

criterion_group!(parse, benches);
criterion_main!(parse);
