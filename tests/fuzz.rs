//! Fuzzing on stable Rust, through the real code paths: structure-aware
//! random input (valid inputs of every kind, mutated, and random bytes) for
//! the flow-log parser and aggregator up to the exposition, the configuration
//! YAML, the web configuration YAML, the CloudWatch state file, CloudWatch
//! pages through a group's poller, and raw HTTP/1.1 requests to the real
//! server. Each target checks invariants beyond "no panic" (see
//! docs/fuzzing.md). `FUZZ_ITERATIONS` scales the run (default: a few
//! seconds, part of `cargo test`); `FUZZ_SEED` picks the random stream;
//! `scripts/fuzz.sh` is the long run. A failing input is written under
//! `target/fuzz-failures/` and named in the panic message.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vpc_flow_exporter::aggregate::{Aggregator, SharedAggregator};
use vpc_flow_exporter::config::Config;
use vpc_flow_exporter::expose::{self, Readiness, ServerConfig, ServerLimits, WebConfig};
use vpc_flow_exporter::parse::{Format, Line, LineParser, ParseError, KNOWN_FIELDS, MAX_LINE_LEN};
use vpc_flow_exporter::pipeline::Pipeline;
use vpc_flow_exporter::source::cloudwatch::checkpoint::{self, Checkpoint, GroupCheckpoint, KeyBucket, ScanCheckpoint};
use vpc_flow_exporter::source::cloudwatch::client::{ApiError, ErrorKind, FilterRequest, LogEvent, LogsApi, Page};
use vpc_flow_exporter::source::cloudwatch::clock::Clock;
use vpc_flow_exporter::source::cloudwatch::metrics::Metrics;
use vpc_flow_exporter::source::cloudwatch::poller::{
    AggregatorSink, EventSink, GroupPoller, SaveGroup, Settings, Shared,
};
use vpc_flow_exporter::source::cloudwatch::ratelimit::RateLimiter;

// ------------------------------------------------------------------ harness

/// Panics on the server's threads, which tokio would otherwise swallow
/// (a panic in a target's own code fails its input through `catch_unwind`).
static PANICS: AtomicUsize = AtomicUsize::new(0);

const SERVER_THREADS: &str = "fuzz-server";

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name().is_some_and(|n| n.starts_with(SERVER_THREADS)) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// `FUZZ_ITERATIONS` (default 5,000) divided by the target's divisor (its
/// inputs cost more), at least `min`.
fn iterations(divisor: u64, min: u64) -> u64 {
    let base: u64 = std::env::var("FUZZ_ITERATIONS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(5_000);
    (base / divisor).max(min)
}

fn seed(target: &str) -> u64 {
    let base: u64 = std::env::var("FUZZ_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0x5eed_f10e);
    // FNV-1a of the target name: each target its own stream.
    target.bytes().fold(base ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Runs `n` steps of one target: `step` makes an input (written to `input`
/// for the failure file), checks it, and returns how many inputs it held (the
/// lines of a buffer, the events of a scan; else 1). A panic saves the input
/// and fails the test.
fn run<T>(target: &str, n: u64, state: &mut T, mut step: impl FnMut(&mut SmallRng, &mut T, &mut Vec<u8>) -> u64) {
    count_panics();
    let seed = seed(target);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut input = Vec::new();
    let t = Instant::now();
    let mut inputs = 0u64;
    for i in 0..n {
        input.clear();
        let res = catch_unwind(AssertUnwindSafe(|| step(&mut rng, state, &mut input)));
        if let Ok(k) = res {
            inputs += k;
        }
        if let Err(e) = res {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{target}-{seed}-{i}"));
            let _ = std::fs::write(&file, &input);
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("fuzz {target}: input {i} (seed {seed}) failed: {msg:?}; input saved to {}", file.display());
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    println!(
        "fuzz {target}: {inputs} inputs ({n} steps) in {secs:.1} s ({:.0} inputs/s), seed {seed}, process peak RSS {peak} KiB",
        inputs as f64 / secs.max(1e-9),
    );
}

/// VmHWM of this process.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches("kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pick<'a, T>(rng: &mut SmallRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

// ------------------------------------------------------------------ mutations

/// Tokens that parsers care about, spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"-",
    b" ",
    b"\t",
    b"\r",
    b"\r\n",
    b"\n",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b":",
    b",",
    b"version",
    b"srcaddr",
    b"${",
    b"}",
    b"#",
    b"%",
    b"'",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"340282366920938463463374607431768211455",
    b"1e308",
    b"1e999",
    b"-0",
    b"0x1F",
    b"+1",
    b"NaN",
    b"inf",
    b"::",
    b"::ffff:1.2.3.4",
    b"fe80::1%eth0",
    b"256.1.1.1",
    b"1.2.3",
    b"ACCEPT",
    b"REJECT",
    b"OK",
    b"NODATA",
    b"SKIPDATA",
    b"eni-",
    b"null",
    b"true",
    b"~",
    b"!!binary",
    b"&a",
    b"*a",
    b"<<",
    b"---",
    b"...",
    b"? ",
    b"|",
    b">",
];

fn mutate(rng: &mut SmallRng, data: &mut Vec<u8>, max_len: usize) {
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.random_range(0..10) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = rng.random();
            }
            2 => {
                let i = rng.random_range(0..=len);
                data.insert(i, rng.random());
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=16)).min(len);
                data.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=64)).min(len);
                let chunk = data[a..b].to_vec();
                let at = rng.random_range(0..=data.len());
                data.splice(at..at, chunk.iter().copied().cycle().take(chunk.len() * rng.random_range(1..=4)));
            }
            5 | 6 => {
                let at = rng.random_range(0..=len);
                let tok = *pick(rng, TOKENS);
                data.splice(at..at, tok.iter().copied());
            }
            7 if len > 0 => {
                let at = rng.random_range(0..len);
                data.truncate(at);
            }
            8 if len > 1 => {
                // Replace a whitespace-separated word with a token.
                let at = rng.random_range(0..len);
                let start = data[..at].iter().rposition(|b| b.is_ascii_whitespace()).map_or(0, |p| p + 1);
                let end = data[at..].iter().position(|b| b.is_ascii_whitespace()).map_or(len, |p| at + p);
                let tok = *pick(rng, TOKENS);
                data.splice(start..end, tok.iter().copied());
            }
            _ => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(0..8);
                data.splice(at..at, (0..n).map(|_| rng.random::<u8>()));
            }
        }
    }
    data.truncate(max_len);
}

fn random_bytes(rng: &mut SmallRng, out: &mut Vec<u8>, max: usize) {
    let n = rng.random_range(0..=max);
    if rng.random_bool(0.5) {
        out.extend((0..n).map(|_| rng.random::<u8>()));
    } else {
        // Printable ASCII and blanks: closer to what a text parser looks at.
        out.extend((0..n).map(|_| *pick(rng, b" \t\r-.:{}\",0123456789abcdefABCDEF ACCEPTxyz")));
    }
}

// ------------------------------------------------------------------ flow-log lines

/// The AWS versions' field lists: 2, 3, 4, 5, 7 (ECS) and 8 (reject-reason).
fn version_fields(v: u8) -> Vec<&'static str> {
    let all: Vec<&'static str> = KNOWN_FIELDS.iter().map(|f| f.name).collect();
    let pos = |name: &str| all.iter().position(|n| *n == name).expect("known field");
    let upto = match v {
        2 => pos("log-status") + 1,
        3 => pos("pkt-dstaddr") + 1,
        4 => pos("sublocation-id") + 1,
        5 => pos("traffic-path") + 1,
        7 => pos("ecs-task-id") + 1,
        _ => all.len(),
    };
    all[..upto].to_vec()
}

fn random_format(rng: &mut SmallRng) -> Vec<String> {
    let mut names: Vec<String> = match rng.random_range(0..8) {
        0 => version_fields(2),
        1 => version_fields(3),
        2 => version_fields(4),
        3 => version_fields(5),
        4 => version_fields(7),
        5 => version_fields(8),
        _ => {
            let mut all: Vec<&str> = KNOWN_FIELDS.iter().map(|f| f.name).collect();
            all.extend(["resource-id", "x-future-field", "encryption-status"]);
            let n = rng.random_range(1..=all.len());
            let mut out = Vec::new();
            for _ in 0..n {
                let i = rng.random_range(0..all.len());
                out.push(all.swap_remove(i));
            }
            out
        }
    }
    .into_iter()
    .map(str::to_string)
    .collect();
    if rng.random_bool(0.05) {
        names.push(names[0].clone()); // a field twice
    }
    names
}

fn ip(rng: &mut SmallRng) -> String {
    match rng.random_range(0..6) {
        0 => std::net::Ipv6Addr::from(rng.random::<u128>()).to_string(),
        1 => pick(rng, &["::", "::1", "::ffff:10.0.0.1", "fe80::1", "2001:db8::", "0.0.0.0", "255.255.255.255"])
            .to_string(),
        2 => format!("10.{}.{}.{}", rng.random::<u8>(), rng.random::<u8>(), rng.random_range(0..4)),
        _ => std::net::Ipv4Addr::from(rng.random::<u32>()).to_string(),
    }
}

fn number(rng: &mut SmallRng, typical: std::ops::Range<u64>) -> String {
    match rng.random_range(0..12) {
        0 => u64::MAX.to_string(),
        1 => {
            pick(rng, &["0", "18446744073709551616", "99999999999999999999999", "-1", "1.5", "1e3", "007"]).to_string()
        }
        2 => rng.random::<u64>().to_string(),
        _ => rng.random_range(typical).to_string(),
    }
}

fn value(rng: &mut SmallRng, field: &str, now: u64) -> String {
    if rng.random_bool(0.08) {
        return "-".to_string();
    }
    match field {
        "version" => pick(rng, &["2", "3", "4", "5", "7", "8"]).to_string(),
        "account-id" => format!("{:012}", rng.random_range(0..1_000_000_000_000u64)),
        "interface-id" => format!("eni-{:017x}", rng.random_range(0..64u64)),
        "srcaddr" | "dstaddr" | "pkt-srcaddr" | "pkt-dstaddr" => ip(rng),
        "srcport" | "dstport" => number(rng, 0..65536),
        "protocol" => number(rng, 0..256),
        "tcp-flags" => number(rng, 0..64),
        "packets" | "bytes" => number(rng, 1..100_000),
        "start" | "end" => match rng.random_range(0..6) {
            0 => (now * 1000).to_string(), // milliseconds
            1 => number(rng, 0..u64::MAX),
            _ => rng.random_range(now.saturating_sub(3600)..now + 60).to_string(),
        },
        "action" => pick(rng, &["ACCEPT", "REJECT", "accept", "DROP"]).to_string(),
        "log-status" => pick(rng, &["OK", "NODATA", "SKIPDATA", "ok"]).to_string(),
        "type" => pick(rng, &["IPv4", "IPv6", "EFA"]).to_string(),
        "flow-direction" => pick(rng, &["ingress", "egress"]).to_string(),
        "traffic-path" => number(rng, 1..9),
        _ => format!("V{}", rng.random::<u32>()),
    }
}

fn separator(rng: &mut SmallRng) -> &'static str {
    if rng.random_bool(0.9) {
        " "
    } else {
        const SEPARATORS: [&str; 4] = ["\t", "  ", " \t ", "\t\t"];
        pick::<&str>(rng, &SEPARATORS)
    }
}

/// One line of input: a text record, a header, a JSON object, a long line or
/// random bytes, maybe mutated. No `\n` unless a mutation put one in.
fn flow_line(rng: &mut SmallRng, fields: &[String], now: u64, out: &mut Vec<u8>) {
    let kind = rng.random_range(0..20);
    match kind {
        0..=9 => {
            if rng.random_bool(0.05) {
                out.extend_from_slice(separator(rng).as_bytes());
            }
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(separator(rng).as_bytes());
                }
                out.extend_from_slice(value(rng, f, now).as_bytes());
            }
            if rng.random_bool(0.1) {
                out.extend_from_slice(b"\r");
            }
        }
        10 | 11 => {
            // A header line: this format's, a version's, or random names.
            let names = if rng.random_bool(0.5) { fields.to_vec() } else { random_format(rng) };
            out.extend_from_slice(names.join(separator(rng)).as_bytes());
        }
        12..=14 => json_line(rng, fields, now, out),
        15 => {
            // Over 32 KiB, or just under it.
            let target = if rng.random_bool(0.5) { MAX_LINE_LEN + rng.random_range(1..100) } else { MAX_LINE_LEN - 1 };
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(value(rng, f, now).as_bytes());
            }
            while out.len() < target {
                out.extend_from_slice(if rng.random_bool(0.5) { b" x" } else { b"  " });
            }
        }
        16 => random_bytes(rng, out, 300),
        _ => {
            // Empty-ish.
            const BLANKS: [&[u8]; 5] = [b"", b" ", b"\t", b"\r", b" \r"];
            let blank: &[u8] = pick::<&[u8]>(rng, &BLANKS);
            out.extend_from_slice(blank);
        }
    }
    if kind != 15 && rng.random_bool(0.35) {
        mutate(rng, out, MAX_LINE_LEN + 200);
    }
}

fn json_value(rng: &mut SmallRng, field: &str, now: u64) -> String {
    match rng.random_range(0..14) {
        0 => "null".into(),
        1 => pick(rng, &["true", "[]", "{}", "[1,2]", "{\"a\":{\"b\":[]}}", "\"\"", "\"\\u0000\"", "\"\\ud800\""])
            .to_string(),
        2 => pick(rng, &["1e308", "-1", "1.0", "18446744073709551616", "1e400", "-0", "0.0000001", "123456789e-9"])
            .to_string(),
        3 => format!("{:?}", value(rng, field, now)), // a quoted value
        _ => {
            let v = value(rng, field, now);
            if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() && rng.random_bool(0.7) {
                v
            } else {
                serde_json::to_string(&v).unwrap_or_default()
            }
        }
    }
}

fn json_line(rng: &mut SmallRng, fields: &[String], now: u64, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for f in fields {
        if rng.random_bool(0.1) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        let key = match rng.random_range(0..20) {
            0 => f.replace('-', "_"),
            1 => "\\u0073rcaddr".to_string(),
            2 => "unknown-key".to_string(),
            _ => f.clone(),
        };
        out.extend_from_slice(format!("\"{key}\":{}", json_value(rng, f, now)).as_bytes());
        if rng.random_bool(0.02) {
            // A repeated key.
            out.extend_from_slice(format!(",\"{f}\":{}", json_value(rng, f, now)).as_bytes());
        }
    }
    out.push(b'}');
}

/// How the lines of a buffer split, as `Aggregator::ingest_lines` splits them.
fn split_lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let trailing = !buf.is_empty() && !buf.ends_with(b"\n");
    let mut parts: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    if !trailing {
        parts.pop(); // after the last `\n`: nothing
    }
    parts.into_iter()
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Tally {
    records: u64,
    headers: u64,
    invalid: [u64; ParseError::ALL.len()],
}

impl Tally {
    fn lines(&self) -> u64 {
        self.records + self.headers + self.invalid.iter().sum::<u64>()
    }
}

/// Parses with a shadow parser (a clone of the real one before the buffer),
/// checking what each line may be, and tallies.
fn shadow_parse(parser: &mut LineParser, buf: &[u8], tally: &mut Tally) {
    let stream = parser.kind() == vpc_flow_exporter::parse::InputKind::Stream;
    for line in split_lines(buf) {
        match parser.parse_line(line) {
            Line::Record(r) => {
                tally.records += 1;
                // Every accessor of a record, on every field of its format.
                let _ = (r.is_traffic(), r.time());
                for n in KNOWN_FIELDS.iter().map(|f| f.name).chain(["x-future-field"]) {
                    if let Some(v) = r.get(n) {
                        let _ = v.to_string();
                    }
                    let _ = r.field(n);
                }
            }
            Line::Header => {
                assert!(!stream, "a stream parser took a header line");
                tally.headers += 1;
            }
            Line::Empty => {}
            Line::Invalid(e) => {
                assert!(e != ParseError::HeaderInStream || stream, "header_in_stream from a file parser");
                tally.invalid[e.index()] += 1
            }
        }
    }
}

/// Checks that an exposition is well formed: comments are HELP/TYPE lines,
/// every sample has a valid metric name, well-quoted labels and a float
/// value, and no series appears twice. Returns the samples.
fn check_exposition(text: &str) -> usize {
    fn valid_name(s: &str) -> bool {
        let mut cs = s.chars();
        cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut seen = HashSet::new();
    let mut samples = 0;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut w = rest.trim_start().splitn(3, ' ');
            let kind = w.next().unwrap_or("");
            let name = w.next().unwrap_or("");
            assert!(kind == "HELP" || kind == "TYPE", "bad comment line {line:?}");
            assert!(valid_name(name), "bad metric name in {line:?}");
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        assert!(valid_name(name), "bad metric name in {line:?}");
        let mut rest = &line[name_end..];
        let mut series = name.to_string();
        if let Some(r) = rest.strip_prefix('{') {
            // name="value" pairs, values with \\, \" and \n escapes.
            let mut i = 0;
            let b = r.as_bytes();
            loop {
                if b.get(i) == Some(&b'}') {
                    i += 1;
                    break;
                }
                let eq = r[i..].find('=').map(|p| i + p).unwrap_or_else(|| panic!("no = in labels of {line:?}"));
                assert!(valid_name(&r[i..eq]) && !r[i..eq].contains(':'), "bad label name in {line:?}");
                assert_eq!(b.get(eq + 1), Some(&b'"'), "unquoted label value in {line:?}");
                let mut j = eq + 2;
                loop {
                    match b.get(j) {
                        Some(b'\\') => {
                            assert!(matches!(b.get(j + 1), Some(b'\\' | b'"' | b'n')), "bad escape in {line:?}");
                            j += 2;
                        }
                        Some(b'"') => break,
                        Some(b'\n') | None => panic!("unterminated label value in {line:?}"),
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {}
                    _ => panic!("bad label list in {line:?}"),
                }
            }
            series.push_str(&r[..i]);
            rest = &r[i..];
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value = value.split(' ').next().unwrap_or("");
        let ok = matches!(value, "+Inf" | "-Inf" | "NaN") || value.parse::<f64>().is_ok_and(|v| v.is_finite());
        assert!(ok, "bad sample value in {line:?}");
        assert!(seen.insert(series), "series twice in the exposition: {line:?}");
        samples += 1;
    }
    samples
}

fn config_with_rules() -> Config {
    let yaml = "detections:\n  allowed_source_cidrs: [10.0.0.0/8, \"2001:db8::/32\"]\n  approved_destination_cidrs: [10.0.0.0/8, 172.16.0.0/12]\n  forbidden_ports: [23, 2323, 0, 65535]\n  watch_ports: [22, 80, 443]\n  top_k:\n    size: 5\n  port_scan:\n    min_distinct_ports: 3\nlimits:\n  max_interfaces: 50\n  max_tracked_addresses: 2000\n  max_port_scan_sources: 500\n";
    Config::from_yaml(yaml, Path::new(".")).expect("config")
}

/// The line target for one input kind: a buffer of 1..8 generated lines
/// through `Aggregator::ingest_lines`, checked against a shadow parser; every
/// so often a format change (a new parser) and an exposition, checked.
fn lines_target(target: &str, stream: bool) {
    struct St {
        agg: SharedAggregator,
        registry: prometheus::Registry,
        config: Config,
        parser: LineParser,
        fields: Vec<String>,
        now: u64,
        buf: Vec<u8>,
        inputs: u64,
    }
    let config = config_with_rules();
    let agg = Aggregator::new(&config).into_shared();
    let registry = expose::registry(&agg);
    let fields = version_fields(2).into_iter().map(str::to_string).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mk = |f: Format| if stream { LineParser::for_stream(f) } else { LineParser::for_file(f) };
    let mut st =
        St { agg, registry, parser: mk(Format::default_v2()), config, fields, now, buf: Vec::new(), inputs: 0 };
    let n = iterations(2, 200);
    // Each step is one buffer of lines; the inputs reported are its lines.
    run(target, n, &mut st, |rng, st, input| {
        st.inputs += 1;
        if rng.random_bool(0.002) {
            // Another configured format (as a config reload would bring).
            let names = random_format(rng);
            let spec = names.iter().map(|n| format!("${{{n}}}")).collect::<Vec<_>>().join(" ");
            let f = Format::parse(&spec).expect("generated format");
            st.parser = mk(f);
            st.fields = names;
        }
        if !stream && rng.random_bool(0.01) {
            st.parser.reset();
        }
        st.buf.clear();
        for _ in 0..rng.random_range(1..=8) {
            // Lines of the configured format mostly, some of another.
            let fields = if rng.random_bool(0.9) { st.fields.clone() } else { random_format(rng) };
            flow_line(rng, &fields, st.now, &mut st.buf);
            st.buf.push(b'\n');
        }
        if rng.random_bool(0.2) {
            st.buf.pop(); // last line without `\n`
        }
        input.extend_from_slice(&st.buf);
        let configured = st.parser.configured_format().clone();
        let mut shadow = st.parser.clone();
        let mut tally = Tally::default();
        shadow_parse(&mut shadow, &st.buf, &mut tally);
        let mut agg = st.agg.lock().unwrap_or_else(|p| p.into_inner());
        let before_lines = agg.lines();
        let before_errors: Vec<u64> = agg.parse_errors().map(|(_, n)| n).collect();
        agg.ingest_lines(&mut st.parser, &st.buf);
        // Lines counted = records + headers + invalid, each reason as the shadow saw it.
        assert_eq!(agg.lines() - before_lines, tally.lines(), "lines counted");
        let got: Vec<u64> = agg.parse_errors().zip(&before_errors).map(|((_, n), b)| n - b).collect();
        assert_eq!(got, tally.invalid.to_vec(), "invalid lines by reason");
        if stream {
            assert_eq!(st.parser.format(), &configured, "a stream parser's format changed");
        }
        assert_eq!(st.parser.format(), shadow.format(), "the parser and its shadow disagree on the format");
        // Bounded: interfaces at most the cap.
        assert!(agg.interface_count() <= st.config.limits.max_interfaces, "interfaces over the cap");
        drop(agg);
        if st.inputs % 2000 == 0 {
            let text = expose::encode(&st.registry);
            assert!(check_exposition(&text) > 10);
        }
        split_lines(&st.buf).count() as u64
    });
    let text = expose::encode(&st.registry);
    let samples = check_exposition(&text);
    let agg = st.agg.lock().unwrap_or_else(|p| p.into_inner());
    println!("fuzz {target}: {} lines counted, {samples} samples in the last exposition", agg.lines());
}

#[test]
fn fuzz_lines_file() {
    lines_target("lines_file", false);
}

#[test]
fn fuzz_lines_stream() {
    lines_target("lines_stream", true);
}

// ------------------------------------------------------------------ configuration YAML

/// Valid configurations covering every key, for mutation.
const CONFIGS: &[&str] = &[
    "",
    "log_format: \"${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${tcp-flags} ${pkt-srcaddr} ${pkt-dstaddr}\"\n",
    "detections:\n  allowed_source_cidrs: [\"10.0.0.0/8\", \"172.31.0.0/16\", \"2001:db8::/32\"]\n  approved_destination_cidrs: [\"10.0.0.0/8\"]\n  forbidden_ports: [23, 2323]\n  watch_ports: [22, 23, 443, 3389]\n  top_k:\n    size: 3\n    window: 15m\n  port_scan:\n    window: 10m\n    min_distinct_ports: 5\n    shard_min_ports: 3\n",
    "limits:\n  max_interfaces: 100\n  max_tracked_addresses: 1000\n  max_port_scan_sources: 100\ngeoip:\n  database: country.mmdb\n",
    "cloudwatch:\n  region: eu-west-1\n  endpoint_url: http://user:secret@localhost:5000\n  role_arn: arn:aws:iam::123456789012:role/flow\n  poll_interval: 30s\n  lookback: 20m\n  start_from: 1h\n  state_file: state.json\n  max_requests_per_second: 4\n  dedup_margin: 5m\n  log_groups:\n    - name: /vpc/flow\n      log_stream_prefix: eni-\n    - name: other\n      log_format: \"${srcaddr} ${dstaddr} ${dstport} ${action}\"\n",
    "log_format: version srcaddr dstaddr dstport action\ndetections:\n  forbidden_ports: []\n  watch_ports: [0, 65535]\n",
];

/// YAML-aware mutations: a value replaced by an odd one, a line duplicated or
/// dropped, indentation changed; then maybe byte mutations.
fn mutate_yaml(rng: &mut SmallRng, text: &str, out: &mut Vec<u8>) {
    const ODD: &[&str] = &[
        "0",
        "-1",
        "18446744073709551615",
        "18446744073709551616",
        "1e308",
        ".nan",
        "-.inf",
        "~",
        "null",
        "[]",
        "{}",
        "[[]]",
        "''",
        "\"\"",
        "0s",
        "1ns",
        "99999999999h",
        "-5m",
        "1.5s",
        "10x",
        "0/0",
        "10.0.0.1/33",
        "::/0",
        "10.0.0.1/8",
        "*a",
        "&a x",
        "!!int 3",
        "!!str",
        "!!binary aGVsbG8=",
        "${}",
        "${srcaddr",
        "hello world",
        "\"\\u0000\"",
        "[1, 2, 3, 65536]",
        "{a: 1}",
        "4294967296",
        "1000000",
        "5000001",
        "2000001",
        "1025",
        "|\n  block",
        ">-\n  folded",
        "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]",
        "/dev/zero",
        "/",
        "\"\\xff\"",
        "yes",
        "on",
    ];
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..rng.random_range(0..4) {
        if lines.is_empty() {
            lines.push(format!("{}: {}", pick(rng, &["log_format", "limits", "detections", "x"]), pick(rng, ODD)));
            continue;
        }
        let i = rng.random_range(0..lines.len());
        match rng.random_range(0..6) {
            0 | 1 => {
                let l = &lines[i];
                let key = l.split_once(':').map_or(l.as_str(), |(k, _)| k).to_string();
                lines[i] = format!("{key}: {}", pick(rng, ODD));
            }
            2 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            3 => {
                lines.remove(i);
            }
            4 => lines[i] = format!("{}{}", " ".repeat(rng.random_range(0..5)), lines[i].trim_start()),
            _ => {
                let j = rng.random_range(0..lines.len());
                lines.swap(i, j);
            }
        }
    }
    out.extend_from_slice(lines.join("\n").as_bytes());
    if rng.random_bool(0.3) {
        mutate(rng, out, 64 * 1024);
    }
}

/// Valid key paths start with a top-level key and hold only path characters.
fn key_is_named(key: &str) -> bool {
    let top = key.split(['.', '[']).next().unwrap_or("");
    ["log_format", "detections", "geoip", "limits", "cloudwatch"].contains(&top)
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c))
}

#[test]
fn fuzz_config() {
    let base = std::env::temp_dir();
    let mut named = 0u64;
    let mut whole = 0u64;
    let mut accepted = 0u64;
    let mut samples: Vec<String> = Vec::new();
    run("config", iterations(40, 300), &mut (), |rng, (), input| {
        match rng.random_range(0..10) {
            0 => random_bytes(rng, input, 400),
            _ => {
                let seed = *pick(rng, CONFIGS);
                mutate_yaml(rng, seed, input)
            }
        }
        let text = String::from_utf8_lossy(input);
        match Config::from_yaml(&text, &base) {
            Ok(config) => {
                accepted += 1;
                // What a start or a reload does next with an accepted file.
                let agg = Aggregator::new(&config);
                drop(agg);
                let _ = config.unknown_format_fields();
            }
            Err(e) => {
                let shown = e.to_string();
                assert!(!e.message.trim().is_empty(), "an error without a message: {e:?}");
                if e.key.is_empty() {
                    // About the file as a whole (YAML syntax): the caller names the file.
                    whole += 1;
                    if samples.len() < 8
                        && !samples.iter().any(|m: &String| m[..m.len().min(20)] == shown[..shown.len().min(20)])
                    {
                        // Whole characters, at most 150: an error may repeat the file.
                        samples.push(shown.chars().take(150).collect());
                    }
                } else {
                    assert!(key_is_named(&e.key), "an error naming no key: {e:?}");
                    assert!(shown.starts_with(&e.key));
                    named += 1;
                }
            }
        }
        1
    });
    println!("fuzz config: {accepted} accepted, {named} refused naming a key, {whole} refused as a whole file");
    for m in &samples {
        println!("fuzz config: a whole-file error: {m}");
    }
    assert!(accepted > 0 && named > 0);
}

// ------------------------------------------------------------------ web configuration YAML

#[test]
fn fuzz_web_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).and_then(|p| p.self_signed(&key)).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("write");
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write");
    std::fs::create_dir(dir.path().join("adir")).expect("mkdir");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // A bcrypt hash of "secret" at cost 4.
    let hash = bcrypt::hash("secret", 4).expect("bcrypt");
    let configs: Vec<String> = vec![
        String::new(),
        format!("basic_auth_users:\n  alice: {hash}\n  bob: {hash}\n"),
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n".into(),
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [localhost]\n  min_version: TLS12\n  max_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  prefer_server_cipher_suites: true\n  curve_preferences: [X25519, CurveP256]\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  alice: {hash}\n"
        ),
        "tls_server_config:\n  cert_file: fifo\n  key_file: /dev/zero\n".into(),
        "tls_server_config:\n  cert_file: adir\n  key_file: key.pem\n  client_ca_file: fifo\n".into(),
    ];
    let mut ok = 0u64;
    let mut refused = 0u64;
    run("web_config", iterations(40, 300), &mut (), |rng, (), input| {
        match rng.random_range(0..10) {
            0 => random_bytes(rng, input, 400),
            _ => {
                let seed = pick(rng, &configs).clone();
                mutate_yaml(rng, &seed, input)
            }
        }
        let t = Instant::now();
        match WebConfig::parse(input, dir.path()) {
            Ok(w) => {
                ok += 1;
                let _ = (w.tls(), w.auth_enabled(), w.headers().len());
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().trim().is_empty(), "an empty error");
            }
        }
        // A FIFO or a device is refused at once, never read.
        assert!(t.elapsed() < Duration::from_secs(5), "parsing took {:?}", t.elapsed());
        1
    });
    println!("fuzz web_config: {ok} accepted, {refused} refused");
    assert!(ok > 0 && refused > 0);
}

// ------------------------------------------------------------------ CloudWatch: pages and state files

/// Times at the edges, and around now.
fn time_ms(rng: &mut SmallRng, now: i64) -> i64 {
    match rng.random_range(0..12) {
        0 => *pick(rng, &[i64::MIN, i64::MAX, 0, -1, 1, i64::MIN + 1, i64::MAX - 1, 253_402_300_799_999]),
        1 => rng.random(),
        _ => now.saturating_add(rng.random_range(-3_600_000..120_000)),
    }
}

struct FuzzClock(AtomicI64);

impl Clock for FuzzClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// FilterLogEvents from a queue of responses; an empty queue is a last page.
#[derive(Default)]
struct FuzzLogs {
    responses: Mutex<VecDeque<Result<Page, ApiError>>>,
    served_events: AtomicU64,
}

impl LogsApi for FuzzLogs {
    async fn filter_log_events(&self, _req: FilterRequest<'_>) -> Result<Page, ApiError> {
        let next = self.responses.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        let r = next.unwrap_or_else(|| Ok(Page::default()));
        if let Ok(p) = &r {
            self.served_events.fetch_add(p.events.len() as u64, Ordering::SeqCst);
        }
        r
    }
}

/// The exporter's sink, with a copy of every message it was given.
struct CheckedSink {
    inner: AggregatorSink,
    seen: Arc<Mutex<Vec<String>>>,
}

impl EventSink for CheckedSink {
    fn ingest(&mut self, messages: &[&str]) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).extend(messages.iter().map(|m| m.to_string()));
        self.inner.ingest(messages);
    }
}

struct NoSave;

impl SaveGroup for NoSave {
    async fn save(&self, _group: &str, _cp: GroupCheckpoint) {}
}

fn random_text(rng: &mut SmallRng, max: usize) -> String {
    let n = rng.random_range(0..=max);
    (0..n)
        .map(|_| *pick(rng, &['a', 'Z', '0', '/', '-', '_', '.', ' ', '"', '\\', 'é', '\u{2028}', '\0', '\u{ffff}']))
        .collect()
}

/// One scan's responses: pages of random events (ids from a small pool, so
/// that some repeat), times at the edges, flow-log messages (some hostile),
/// tokens, and now and then an error.
fn random_scan(rng: &mut SmallRng, now: i64, fields: &[String]) -> VecDeque<Result<Page, ApiError>> {
    let mut out = VecDeque::new();
    let pages = rng.random_range(1..=5);
    for p in 0..pages {
        if rng.random_bool(0.08) {
            let kind = *pick(rng, &ErrorKind::ALL);
            out.push_back(Err(ApiError::new(kind, "fuzz")));
        }
        let mut events = Vec::new();
        for _ in 0..rng.random_range(0..=40) {
            let mut line = Vec::new();
            flow_line(rng, fields, u64::try_from(now / 1000).unwrap_or(0), &mut line);
            let mut message = String::from_utf8_lossy(&line).into_owned();
            if rng.random_bool(0.05) {
                message.push('\n');
            }
            events.push(LogEvent {
                log_stream: if rng.random_bool(0.9) {
                    format!("eni-{}", rng.random_range(0..4))
                } else {
                    random_text(rng, 20)
                },
                event_id: if rng.random_bool(0.8) {
                    rng.random_range(0..500u32).to_string()
                } else {
                    random_text(rng, 60)
                },
                timestamp_ms: time_ms(rng, now),
                ingestion_ms: time_ms(rng, now),
                message,
            });
        }
        let next_token = (p + 1 < pages).then(|| {
            if rng.random_bool(0.02) {
                "t".repeat(rng.random_range(1..20_000))
            } else {
                random_text(rng, 40)
            }
        });
        out.push_back(Ok(Page { events, next_token, malformed: rng.random_range(0..2) }));
    }
    out
}

struct Cw {
    rt: tokio::runtime::Runtime,
    shared: Shared<FuzzLogs>,
    clock: Arc<FuzzClock>,
    pipeline: Pipeline,
    seen: Arc<Mutex<Vec<String>>>,
    fields: Vec<String>,
    cap: usize,
}

impl Cw {
    fn new(cap: usize) -> Cw {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("rt");
        let registry = prometheus::Registry::new();
        let metrics = Metrics::register(&registry, &["g"]).expect("metrics");
        let clock = Arc::new(FuzzClock(AtomicI64::new(1_700_000_000_000)));
        let settings = Settings {
            poll_interval: Duration::from_secs(60),
            lookback: Duration::from_secs(20 * 60),
            start_from: Duration::from_secs(3600),
            margin: Duration::from_secs(300),
        };
        let shared = Shared {
            client: FuzzLogs::default(),
            limiter: RateLimiter::new(1e9),
            metrics,
            clock: clock.clone(),
            settings,
        };
        let pipeline = Pipeline::new(&config_with_rules()).expect("pipeline");
        let fields = version_fields(2).into_iter().map(str::to_string).collect();
        Cw { rt, shared, clock, pipeline, seen: Arc::default(), fields, cap }
    }

    fn poller(&self, name: &str) -> GroupPoller<CheckedSink> {
        let sink = CheckedSink {
            inner: AggregatorSink::for_group(&self.pipeline, "g", Format::default_v2()),
            seen: self.seen.clone(),
        };
        let mut p = GroupPoller::new(name.to_string(), None, sink, &self.shared.metrics, self.shared.settings.margin);
        p.set_key_cap(self.cap);
        p
    }

    /// One poll with `responses`; checks what reached the aggregator.
    fn poll(&self, p: &mut GroupPoller<CheckedSink>, responses: VecDeque<Result<Page, ApiError>>) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.shared.client.responses.lock().unwrap_or_else(|e| e.into_inner()) = responses;
        let served_before = self.shared.client.served_events.load(Ordering::SeqCst);
        let (lines_before, errors_before): (u64, Vec<u64>) =
            self.pipeline.inspect(|a| (a.lines(), a.parse_errors().map(|(_, n)| n).collect()));
        let keys_before = p.window().len();
        let cancel = tokio_util::sync::CancellationToken::new();
        let res = self.rt.block_on(p.poll(&self.shared, &cancel, &NoSave));
        let served = self.shared.client.served_events.load(Ordering::SeqCst) - served_before;
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        if let Ok(stats) = res {
            assert_eq!(stats.events, seen.len() as u64, "events counted and events ingested");
            assert!(stats.events + stats.duplicates <= served, "more events than served");
        }
        // A window over its cap (restored from a file written with fewer log
        // groups) adds no key until it is below the cap again.
        let bound = self.cap.max(keys_before);
        assert!(
            p.window().len() <= bound,
            "dedup keys {} over the cap {} and the {keys_before} before",
            p.window().len(),
            self.cap
        );
        // Every message is one line of a stream: a header-looking one is
        // header_in_stream, and the format never changes.
        let mut shadow = LineParser::for_stream(Format::default_v2());
        let mut tally = Tally::default();
        for m in &seen {
            let line = m.as_bytes();
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            // One event is one line, whatever it holds.
            let mut t = Tally::default();
            match shadow.parse_line(line) {
                Line::Record(_) => t.records += 1,
                Line::Header => panic!("a stream parser took a header"),
                Line::Empty => {}
                Line::Invalid(e) => t.invalid[e.index()] += 1,
            }
            tally.records += t.records;
            for (a, b) in tally.invalid.iter_mut().zip(t.invalid) {
                *a += b;
            }
        }
        let (lines, got): (u64, Vec<u64>) = self
            .pipeline
            .inspect(|a| (a.lines(), a.parse_errors().zip(&errors_before).map(|((_, n), b)| n - b).collect()));
        assert_eq!(lines - lines_before, tally.lines(), "lines counted from the events");
        assert_eq!(got, tally.invalid.to_vec(), "invalid events by reason");
    }
}

#[test]
fn fuzz_cloudwatch_pages() {
    let mut cw = Cw::new(300);
    let mut p = cw.poller("g");
    let mut restarts = 0u64;
    run("cloudwatch_pages", iterations(40, 300), &mut cw, |rng, cw, input| {
        let now = match rng.random_range(0..20) {
            0 => *pick(rng, &[0, i64::MAX, 1, 253_402_300_799_999]),
            _ => cw.clock.0.load(Ordering::SeqCst).clamp(0, 4_000_000_000_000) + rng.random_range(0..120_000),
        };
        cw.clock.0.store(now, Ordering::SeqCst);
        let fields = cw.fields.clone();
        let scan = random_scan(rng, now, &fields);
        input.extend_from_slice(format!("now {now}\n{scan:#?}").as_bytes());
        let events: usize = scan.iter().map(|r| r.as_ref().map_or(0, |p| p.events.len())).sum();
        cw.poll(&mut p, scan);
        if rng.random_bool(0.05) {
            // A restart: the checkpoint through JSON into a new poller.
            let cp = p.checkpoint();
            let json = serde_json::to_vec(&cp).expect("encode");
            let back: GroupCheckpoint = serde_json::from_slice(&json).expect("decode");
            assert_eq!(back, cp, "the checkpoint does not round-trip");
            let mut fresh = cw.poller("g");
            fresh.restore(&back).expect("restore what was saved");
            assert!(fresh.window().len() <= cw.cap);
            p = fresh;
            restarts += 1;
        }
        events as u64
    });
    println!("fuzz cloudwatch_pages: {restarts} restarts through the checkpoint");
}

/// A state file as the exporter writes it, with times and keys at the edges.
fn random_checkpoint(rng: &mut SmallRng, now: i64, groups: &[&str]) -> Checkpoint {
    let mut log_groups = BTreeMap::new();
    for g in groups {
        if rng.random_bool(0.2) {
            continue;
        }
        let mut t = || if rng.random_bool(0.2) { None } else { Some(time_ms(rng, now)) };
        let (horizon_ms, last_scan_start_ms, newest_ingestion_ms) = (t(), t(), t());
        let scan = rng.random_bool(0.4).then(|| ScanCheckpoint {
            started_ms: time_ms(rng, now),
            start_time_ms: time_ms(rng, now),
            next_token: rng.random_bool(0.7).then(|| random_text(rng, 30)),
            bound_ms: rng.random_bool(0.5).then(|| time_ms(rng, now)),
            deferred_from_ms: rng.random_bool(0.2).then(|| time_ms(rng, now)),
        });
        let n = if rng.random_bool(0.05) { rng.random_range(0..5000) } else { rng.random_range(0..40) };
        let pairs: Vec<(i64, u128)> = (0..n)
            .map(|_| {
                let b = if rng.random_bool(0.7) { now - now.rem_euclid(10_000) } else { time_ms(rng, now) };
                (b, rng.random())
            })
            .collect();
        let keys = GroupCheckpoint::pack_keys(pairs.into_iter());
        log_groups
            .insert(g.to_string(), GroupCheckpoint { horizon_ms, last_scan_start_ms, newest_ingestion_ms, scan, keys });
    }
    if rng.random_bool(0.1) {
        log_groups.insert(random_text(rng, 30), GroupCheckpoint::default());
    }
    Checkpoint { version: checkpoint::VERSION, saved_at_ms: time_ms(rng, now), log_groups }
}

/// JSON-aware mutations: a number or a string replaced by an odd one.
fn mutate_json(rng: &mut SmallRng, data: &mut Vec<u8>) {
    const ODD: &[&[u8]] = &[
        b"1e400",
        b"-1e400",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"1.5",
        b"-0",
        b"null",
        b"true",
        b"\"\"",
        b"\"x\"",
        b"[]",
        b"{}",
        b"0",
        b"2",
        b"4294967296",
        b"\"zz\"",
        b"\"0123456789abcdef0123456789abcdeg\"",
        b"\"+123456789abcdef0123456789abcdef\"",
        b"\"\\ud800\"",
    ];
    for _ in 0..rng.random_range(1..=3) {
        if data.is_empty() {
            break;
        }
        let at = rng.random_range(0..data.len());
        // The token (number, string, literal) at or after `at`.
        let Some(start) =
            data[at..].iter().position(|b| b.is_ascii_digit() || *b == b'"' || *b == b'-').map(|p| at + p)
        else {
            continue;
        };
        let end = if data[start] == b'"' {
            data[start + 1..].iter().position(|b| *b == b'"').map_or(data.len(), |p| start + p + 2)
        } else {
            data[start..].iter().position(|b| !(b.is_ascii_digit() || *b == b'-')).map_or(data.len(), |p| start + p)
        };
        let tok = *pick(rng, ODD);
        data.splice(start..end, tok.iter().copied());
    }
}

#[test]
fn fuzz_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    let groups = ["g0", "/aws/vpc/flow-logs", "g\"2"];
    let max = checkpoint::max_file_bytes(groups.iter().copied());
    let mut cw = Cw::new(1000);
    let (mut loaded, mut refused, mut clamped) = (0u64, 0u64, 0u64);
    run("state_file", iterations(100, 200), &mut cw, |rng, cw, input| {
        let now = match rng.random_range(0..10) {
            0 => *pick(rng, &[0, i64::MAX, 1]),
            _ => 1_700_000_000_000 + rng.random_range(0..100_000_000),
        };
        cw.clock.0.store(now, Ordering::SeqCst);
        let cp = random_checkpoint(rng, now, &groups);
        match rng.random_range(0..10) {
            0 => random_bytes(rng, input, 300),
            1..=4 => input.extend_from_slice(&serde_json::to_vec(&cp).expect("encode")),
            5..=7 => {
                input.extend_from_slice(&serde_json::to_vec_pretty(&cp).expect("encode"));
                mutate_json(rng, input);
            }
            _ => {
                input.extend_from_slice(&serde_json::to_vec(&cp).expect("encode"));
                mutate(rng, input, 1 << 20);
            }
        }
        std::fs::write(&path, &*input).expect("write");
        match checkpoint::load(&path, max) {
            Ok(Some(mut cp)) => {
                loaded += 1;
                let fixes = checkpoint::clamp_future(&mut cp, now);
                clamped += u64::from(!fixes.is_empty());
                let limit = now.saturating_add(checkpoint::FUTURE_TOLERANCE_MS);
                for g in cp.log_groups.values() {
                    let times = [g.horizon_ms, g.last_scan_start_ms, g.newest_ingestion_ms]
                        .into_iter()
                        .flatten()
                        .chain(g.scan.iter().flat_map(|s| {
                            [Some(s.started_ms), Some(s.start_time_ms), s.bound_ms, s.deferred_from_ms]
                                .into_iter()
                                .flatten()
                        }));
                    for t in times {
                        assert!((0..=limit).contains(&t), "a time left out of range after clamping: {t}");
                    }
                    assert!(g.keys.iter().all(|b: &KeyBucket| b.bucket_ms <= limit), "a key bucket in the future");
                }
                // What a start does with it: each configured group resumes, then polls.
                for name in groups {
                    let Some(g) = cp.log_groups.get(name) else { continue };
                    let mut p = cw.poller(name);
                    p.restore(g).expect("a loaded state file restores");
                    // Over the cap only with what the file held (bounded by its size limit).
                    let in_file = g.unpack_keys().expect("checked by load").len();
                    assert!(
                        p.window().len() <= cw.cap.max(in_file),
                        "dedup keys {} over the cap {}",
                        p.window().len(),
                        cw.cap
                    );
                    let fields = cw.fields.clone();
                    let scan = random_scan(rng, now, &fields);
                    cw.poll(&mut p, scan);
                }
            }
            Ok(None) => panic!("the file exists"),
            Err(e) => {
                refused += 1;
                let shown = format!("{e:#}");
                assert!(shown.contains("state_file") && shown.contains(&*path.to_string_lossy()), "{shown}");
            }
        }
        1
    });
    println!("fuzz state_file: {loaded} loaded ({clamped} with times clamped), {refused} refused");
    assert!(loaded > 0 && refused > 0);
}

// ------------------------------------------------------------------ HTTP requests

/// The credentials of the `http_auth` server's one user.
const USER: &str = "alice";
const PASSWORD: &str = "secret";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An `Authorization` header that is almost right, or not at all.
fn odd_auth(rng: &mut SmallRng) -> String {
    let raw: Vec<u8> = match rng.random_range(0..8) {
        0 => format!("{USER}:{}", &PASSWORD[..PASSWORD.len() - 1]).into_bytes(),
        1 => format!("{USER}:{PASSWORD}\0").into_bytes(),
        2 => format!("{USER}:{PASSWORD} ").into_bytes(),
        3 => format!("{}:{PASSWORD}", USER.to_uppercase()).into_bytes(),
        4 => format!("{USER}:{}", "p".repeat(rng.random_range(60..300))).into_bytes(),
        5 => format!("{USER}{PASSWORD}").into_bytes(),
        6 => format!(":{PASSWORD}").into_bytes(),
        _ => (0..rng.random_range(0..100)).map(|_| rng.random::<u8>()).collect(),
    };
    let enc = b64(&raw);
    match rng.random_range(0..8) {
        0 => format!("basic  {enc} "),
        1 => format!("Basic {}", &enc[..enc.len() / 2]),
        2 => format!("Bearer {enc}"),
        3 => "Basic".to_string(),
        4 => format!("Basic {enc}={}", random_text(rng, 4)),
        5 => format!("Basic {}", "A".repeat(rng.random_range(1..20_000))),
        _ => format!("Basic {enc}"),
    }
}

/// One request; with `auth` (the valid header value), it often carries the
/// right credentials, else odd ones.
fn http_request(rng: &mut SmallRng, out: &mut Vec<u8>, auth: Option<&str>) {
    let method = if rng.random_bool(0.8) {
        "GET".to_string()
    } else {
        pick(rng, &["HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PRI", "get", "G T", "GET\0", "X"])
            .to_string()
    };
    let path = match rng.random_range(0..12) {
        0 => "/".to_string(),
        1 => "/-/healthy".to_string(),
        2 => "/-/ready".to_string(),
        3 => pick(rng, &["*", "//", "/metrics?x=1&y", "http://h/metrics", "/%00", "/metrics/", "/..", "", "/\u{e9}"])
            .to_string(),
        4 => format!("/{}", "a".repeat(rng.random_range(1..80_000))),
        _ => "/metrics".to_string(),
    };
    let version = if rng.random_bool(0.9) {
        "HTTP/1.1"
    } else {
        *pick(rng, &["HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1.1 extra", "", "http/1.1"])
    };
    out.extend_from_slice(format!("{method} {path} {version}\r\n").as_bytes());
    if rng.random_bool(0.9) {
        out.extend_from_slice(b"Host: localhost\r\n");
    }
    if let Some(valid) = auth {
        match rng.random_range(0..10) {
            0..=3 => out.extend_from_slice(format!("Authorization: {valid}\r\n").as_bytes()),
            4..=8 => out.extend_from_slice(format!("Authorization: {}\r\n", odd_auth(rng)).as_bytes()),
            _ => {}
        }
    }
    let mut body = false;
    for _ in 0..rng.random_range(0..6) {
        let h: String = match rng.random_range(0..16) {
            0 => "Accept-Encoding: gzip".into(),
            1 => {
                (*pick(rng, &["Accept-Encoding: gzip;q=0", "Accept-Encoding: *", "Accept-Encoding: br, deflate, gzip"]))
                    .into()
            }
            2 if auth.is_none() => format!("Authorization: Basic {}", random_text(rng, 40)),
            3 => (*pick(rng, &["Connection: close", "Connection: keep-alive", "Connection: upgrade"])).into(),
            4 => {
                body = true;
                (*pick(rng, &["Content-Length: 5", "Content-Length: -1", "Content-Length: 99999999999999999999999"]))
                    .into()
            }
            5 => {
                body = true;
                "Transfer-Encoding: chunked".into()
            }
            6 => (*pick(
                rng,
                &["Transfer-Encoding: chunked, identity", "Transfer-Encoding: gzip", "Expect: 100-continue"],
            ))
            .into(),
            7 => format!("X-Big: {}", "b".repeat(rng.random_range(1..100_000))),
            8 => (0..rng.random_range(1..200)).map(|i| format!("X-{i}: v")).collect::<Vec<_>>().join("\r\n"),
            9 => (*pick(rng, &["NoColon", " folded: continued", ": empty-name", "X-Nul: a\0b", "X\u{e9}: 1"])).into(),
            10 => "Content-Length: 3\r\nContent-Length: 4".into(),
            11 => "Upgrade: h2c".into(),
            _ => {
                if rng.random_bool(0.8) {
                    let n = rng.random_range(0..40);
                    let v: String = (0..n).map(|_| char::from(rng.random_range(0x20u8..0x7f))).collect();
                    format!("X-Random: {v}")
                } else {
                    format!("X-Random: {}", random_text(rng, 30))
                }
            }
        };
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if body || rng.random_bool(0.1) {
        const CHUNKS: [&[u8]; 6] =
            [b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"ffffffffffffffffff\r\n", b"5\r\nhel", b"0\r\n\r\n"];
        let chunk: &[u8] = pick::<&[u8]>(rng, &CHUNKS);
        out.extend_from_slice(chunk);
    }
}

/// Status of a raw HTTP response: the response, if any, must be HTTP/1.x.
fn status_of(resp: &[u8]) -> Option<u16> {
    if resp.is_empty() {
        return None;
    }
    assert!(
        resp.starts_with(b"HTTP/1.1 ") || resp.starts_with(b"HTTP/1.0 "),
        "not an HTTP response: {:?}",
        &resp[..resp.len().min(80)]
    );
    let code = std::str::from_utf8(&resp[9..resp.len().min(12)]).ok()?.parse().ok();
    assert!(code.is_some(), "no status code: {:?}", &resp[..resp.len().min(80)]);
    code
}

/// Sends `req` and reads what comes back until the server closes or `wait` passes.
fn exchange(addr: std::net::SocketAddr, req: &[u8], close_write: bool, wait: Duration) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        panic!("the server does not accept connections");
    };
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(req);
    if close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut resp = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && resp.len() < 4 << 20 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
        }
    }
    resp
}

fn scrape_ok(addr: std::net::SocketAddr, auth: Option<&str>) -> String {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let resp = exchange(
        addr,
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
        false,
        Duration::from_secs(10),
    );
    assert_eq!(
        status_of(&resp),
        Some(200),
        "GET /metrics after hostile requests: {:?}",
        String::from_utf8_lossy(&resp[..resp.len().min(200)])
    );
    String::from_utf8_lossy(&resp).into_owned()
}

/// The real server on 127.0.0.1:0 with an aggregator that has seen a line,
/// short timeouts, and its own runtime (threads named [`SERVER_THREADS`]).
struct Server {
    rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops it: within 10 s of the signal, without a panic.
    fn stop(self) -> Duration {
        self.shutdown.cancel();
        let t = Instant::now();
        let task = self.task;
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await })
            .expect("the server stops within 10 s of shutdown")
            .expect("the server task ended without a panic");
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked (see the output)");
        t.elapsed()
    }
}

fn start_server(web: Option<expose::WebConfigHandle>) -> Server {
    let agg = Aggregator::new(&config_with_rules()).into_shared();
    {
        let mut a = agg.lock().unwrap_or_else(|p| p.into_inner());
        let mut parser = LineParser::for_file(Format::default_v2());
        a.ingest_lines(
            &mut parser,
            b"2 123456789010 eni-1 10.0.0.1 8.8.8.8 40000 443 6 2 100 1700000000 1700000060 ACCEPT OK\nbad line\n",
        );
    }
    let registry = expose::registry(&agg);
    let mut config = ServerConfig::new(registry, "/metrics".into(), Readiness::ready(), "fuzz".into());
    if let Some(web) = web {
        config.web = web;
    }
    config.limits = ServerLimits {
        max_connections: 32,
        header_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(1),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("rt");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = rt.spawn(expose::serve(listener, config, shutdown.clone()));
    Server { rt, addr, shutdown, task }
}

#[test]
fn fuzz_http() {
    http_target("http", None);
}

/// The server with basic auth: a response other than 401 only to a request
/// that holds the right credentials.
#[test]
fn fuzz_http_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("web.yml");
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    std::fs::write(&path, format!("basic_auth_users:\n  {USER}: {hash}\n")).expect("write");
    let web = expose::WebConfigHandle::open(&path).expect("web config");
    http_target("http_auth", Some(web));
}

fn http_target(target: &str, web: Option<expose::WebConfigHandle>) {
    count_panics();
    let valid = web.as_ref().map(|_| format!("Basic {}", b64(format!("{USER}:{PASSWORD}").as_bytes())));
    let auth = valid.as_deref();
    let server = start_server(web);
    let addr = server.addr;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut silent = 0u64;
    run(target, iterations(400, 150), &mut (), |rng, (), input| {
        match rng.random_range(0..10) {
            0 => random_bytes(rng, input, 2000),
            1..=6 => http_request(rng, input, auth),
            7 => {
                // Pipelined.
                for _ in 0..rng.random_range(2..=5) {
                    http_request(rng, input, auth);
                }
            }
            _ => {
                http_request(rng, input, auth);
                mutate(rng, input, 1 << 20);
            }
        }
        // Mostly the client ends its side; sometimes it just stops talking.
        let close = rng.random_bool(0.95);
        let resp = exchange(addr, input, close, Duration::from_millis(if close { 5000 } else { 100 }));
        let status = status_of(&resp);
        match status {
            Some(code) => *statuses.entry(code).or_default() += 1,
            None => silent += 1,
        }
        if let (Some(valid), Some(code)) = (auth, status) {
            // Without the right credentials: 401, or an error before any
            // endpoint (a request hyper could not read).
            let holds = input.windows(valid.len()).any(|w| w == valid.as_bytes());
            assert!(
                holds || code == 401 || code >= 400 && code != 404 && code != 405,
                "status {code} without the credentials"
            );
        }
        if rng.random_bool(0.04) {
            scrape_ok(addr, auth);
        }
        1
    });
    // The server still serves, its exposition is well formed, and no
    // connection is left open but the scraper's.
    let mut open = f64::NAN;
    for _ in 0..100 {
        let text = scrape_ok(addr, auth);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        open = open_connections(body);
        if open == 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(open, 1.0, "connections left open after the run");
    let client = reqwest::blocking::Client::new();
    let mut req = client.get(format!("http://{addr}/metrics"));
    if auth.is_some() {
        req = req.basic_auth(USER, Some(PASSWORD));
    }
    let body = req.send().and_then(|r| r.text()).expect("scrape");
    assert!(check_exposition(&body) > 10);
    let t = server.stop();
    println!(
        "fuzz {target}: responses by status {statuses:?}, {silent} closed without a response; shutdown in {:.1} ms",
        t.as_secs_f64() * 1e3
    );
}

// ------------------------------------------------------------------ TLS handshakes

/// A TLS client of the `tls` target's server.
fn tls_client(cert: &rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn localhost() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").expect("name")
}

/// GET /metrics over TLS: the status and the response.
fn https_get(addr: std::net::SocketAddr, client: &Arc<rustls::ClientConfig>) -> (Option<u16>, String) {
    let conn = rustls::ClientConnection::new(client.clone(), localhost()).expect("client");
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let sent = tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(sent.is_ok(), "TLS handshake or write failed: {sent:?}");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    (status_of(&out), String::from_utf8_lossy(&out).into_owned())
}

/// Hostile bytes to the TLS listener: real ClientHellos (fresh from rustls),
/// mutated; random bytes; plain HTTP; a ClientHello followed by garbage. The
/// server must close them within its header-read deadline, never panic, and
/// keep serving real TLS clients.
#[test]
fn fuzz_tls() {
    count_panics();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).and_then(|p| p.self_signed(&key)).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("write");
    let path = dir.path().join("web.yml");
    std::fs::write(&path, "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n").expect("write");
    let web = expose::WebConfigHandle::open(&path).expect("web config");
    let client = tls_client(cert.der());
    let server = start_server(Some(web));
    let addr = server.addr;
    let mut answered = 0u64;
    run("tls", iterations(400, 150), &mut (), |rng, (), input| {
        let mut hello = Vec::new();
        let mut conn = rustls::ClientConnection::new(client.clone(), localhost()).expect("client");
        while conn.wants_write() {
            if conn.write_tls(&mut hello).is_err() {
                break;
            }
        }
        match rng.random_range(0..10) {
            0 => random_bytes(rng, input, 2000),
            1 => http_request(rng, input, None),
            2 => {
                input.extend_from_slice(&hello);
                random_bytes(rng, input, 2000);
            }
            3 => input.extend_from_slice(&hello[..rng.random_range(0..hello.len())]),
            _ => {
                input.extend_from_slice(&hello);
                mutate(rng, input, 1 << 16);
            }
        }
        let t = Instant::now();
        let resp = exchange(addr, input, true, Duration::from_secs(10));
        // Closed at the latest at the header-read deadline (2 s).
        assert!(t.elapsed() < Duration::from_secs(8), "a hostile TLS client was held {:?}", t.elapsed());
        answered += u64::from(!resp.is_empty());
        if rng.random_bool(0.04) {
            assert_eq!(https_get(addr, &client).0, Some(200), "GET /metrics over TLS after hostile handshakes");
        }
        1
    });
    let mut open = f64::NAN;
    let mut body = String::new();
    for _ in 0..100 {
        let (status, text) = https_get(addr, &client);
        assert_eq!(status, Some(200));
        body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
        open = open_connections(&body);
        if open == 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(open, 1.0, "connections left open after the run");
    assert!(check_exposition(&body) > 10);
    let t = server.stop();
    println!(
        "fuzz tls: {answered} hostile handshakes got bytes back (alerts); shutdown in {:.1} ms",
        t.as_secs_f64() * 1e3
    );
}

/// `vpc_flow_exporter_http_connections_open` in an exposition body (NaN when absent).
fn open_connections(body: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix("vpc_flow_exporter_http_connections_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}
