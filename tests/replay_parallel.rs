//! `replay` on several workers gives the exposition of one worker, byte for
//! byte: the golden inputs, a large generated file split into byte ranges,
//! CRLF line ends, a giant line across a range boundary, a header further
//! down that changes the format, gzip files, standard input, and the errors
//! of unreadable inputs. The library is driven directly (any worker count and
//! range size in one process), and the real binary through its internal
//! worker knobs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vpc_flow_exporter::aggregate::Aggregator;
use vpc_flow_exporter::config::Config;
use vpc_flow_exporter::expose;
use vpc_flow_exporter::source::replay::{self, Input, Parallelism, ReplayError};

const BIN: &str = env!("CARGO_BIN_EXE_vpc-flow-exporter");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replay").join(name)
}

/// The exposition without the build line (it names the version).
fn stable(expo: &str) -> String {
    expo.lines().filter(|l| !l.starts_with("vpc_flow_exporter_build_info{")).collect::<Vec<_>>().join("\n") + "\n"
}

/// The exposition of a library replay of `paths` on `workers` workers.
fn expo(config: &Config, paths: &[&Path], workers: usize, min_range: u64) -> Result<String, ReplayError> {
    let inputs: Vec<Input> = paths.iter().map(|p| Input::File(p.to_path_buf())).collect();
    let agg =
        replay::run_with(&inputs, &config.log_format, Aggregator::new(config), Parallelism { workers, min_range })?;
    Ok(stable(&expose::encode(&expose::registry(&agg.into_shared()))))
}

/// The one series a merge may change: addresses a tracker *holds*. One
/// tracker keeps addresses whose records have left the window until its next
/// compaction; a merge carries only the live ones. Every value the trackers
/// report (top-K, port scans, error bounds, evictions) must be the same.
const HELD: &str = "vpc_flow_exporter_tracker_entries{";

fn without_held(expo: &str) -> String {
    expo.lines().filter(|l| !l.starts_with(HELD)).collect::<Vec<_>>().join("\n")
}

/// Every worker count from 2 to 4 with every range size gives the one-worker
/// exposition (held tracker entries aside: never more), which is returned.
fn same_on_every_worker_count(config: &Config, paths: &[&Path], min_ranges: &[u64]) -> String {
    let one = expo(config, paths, 1, u64::MAX).expect("one worker");
    for workers in 2..=4 {
        for &min_range in min_ranges {
            let many = expo(config, paths, workers, min_range).expect("several workers");
            assert_merged(&one, &many, &format!("{workers} workers, ranges of at least {min_range} bytes"));
        }
    }
    one
}

/// `many` is `one` (held tracker entries aside: never more).
fn assert_merged(one: &str, many: &str, what: &str) {
    assert_same(&without_held(one), &without_held(many), what);
    for (a, b) in one.lines().zip(many.lines()).filter(|(a, _)| a.starts_with(HELD)) {
        let n = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        assert!(n(b) <= n(a), "{what}: {b} above one worker's {a}");
    }
}

fn assert_same(want: &str, got: &str, what: &str) {
    if want != got {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "{what}: exposition differs from one worker's ({} vs {} lines):\n{}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

/// The value of one series, by its exact text before the value.
fn value(expo: &str, series: &str) -> Option<f64> {
    expo.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// Realistic default-format lines: 300 interfaces, 4,000 sources, 30 %
/// REJECT to random ports, NODATA and invalid lines now and then, flow times
/// over three hours (beyond every window, so that windows move during the
/// read). Deterministic.
fn realistic(lines: usize, line_end: &str) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(lines * 110);
    for i in 0..lines {
        let r = rand();
        let iface = r % 300;
        let t = 1_700_000_000 + (i as u64 * 3 * 3600) / lines as u64;
        let line = match r % 1000 {
            0 => format!("2 123456789010 eni-{iface:017x} - - - - - - - {t} {} - NODATA", t + 60),
            1 => "2 123456789010 not a record".to_owned(),
            2 => String::new(),
            _ => {
                let src = (r >> 10) % 4000;
                let reject = (r >> 24) % 100 < 30;
                let dport =
                    if reject { (r >> 32) % 65535 + 1 } else { [443, 80, 22, 23, 5432][((r >> 32) % 5) as usize] };
                let packets = (r >> 40) % 50 + 1;
                format!(
                    "2 123456789010 eni-{iface:017x} 198.{}.{}.7 10.0.{}.{} {} {dport} {} {packets} {} {t} {} {} OK",
                    src >> 8,
                    src & 255,
                    (r >> 48) % 4,
                    (r >> 50) % 250 + 1,
                    (r >> 52) % 30000 + 32768,
                    if dport == 53 { 17 } else { 6 },
                    packets * ((r >> 44) % 1400 + 40),
                    t + (r >> 56) % 70,
                    if reject { "REJECT" } else { "ACCEPT" },
                )
            }
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(line_end.as_bytes());
    }
    out
}

/// Lines that count (not empty) and invalid lines of [`realistic`] text.
fn counts(text: &[u8]) -> (f64, f64) {
    let lines = text.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let (mut counted, mut invalid) = (0, 0);
    for l in lines {
        counted += usize::from(!l.is_empty());
        invalid += usize::from(l == b"2 123456789010 not a record");
    }
    (counted as f64, invalid as f64)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write input");
    path
}

fn gzip(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    write(dir, name, &enc.finish().expect("gzip"))
}

#[test]
fn golden_inputs_give_the_golden_exposition_on_every_worker_count() {
    let default = Config::default();
    let one = same_on_every_worker_count(&default, &[&data("default.log")], &[1, 7, 64, 300]);
    let golden = std::fs::read_to_string(data("default.golden.prom")).expect("golden");
    assert_same(&stable(&golden), &one, "default.log");

    let config = Config::load(&data("config.yaml")).expect("config");
    let one = same_on_every_worker_count(&config, &[&data("v5.log")], &[1, 7, 64, 300]);
    let golden = std::fs::read_to_string(data("v5.golden.prom")).expect("golden");
    assert_same(&stable(&golden), &one, "v5.log");

    // Both golden files at once: each keeps its own format state.
    let both = same_on_every_worker_count(&default, &[&data("default.log"), &data("v5.log")], &[1, 64]);
    assert!(value(&both, "vpc_flow_exporter_lines_total").is_some_and(|n| n > 11.0));
}

#[test]
fn a_large_file_split_into_ranges_counts_like_one_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = realistic(120_000, "\n");
    let file = write(dir.path(), "flows.log", &text);
    let one = same_on_every_worker_count(&Config::default(), &[&file], &[1 << 20, 100_000]);
    let (lines, invalid) = counts(&text);
    assert!(invalid > 50.0 && lines < 120_000.0, "the mix has invalid and empty lines");
    assert_eq!(value(&one, "vpc_flow_exporter_lines_total"), Some(lines));
    assert_eq!(value(&one, "vpc_flow_exporter_parse_errors_total{reason=\"field_count\"}"), Some(invalid));
    assert!(value(&one, "vpc_flow_exporter_tracker_entries{tracker=\"rejected_sources\"}").is_some_and(|n| n > 100.0));
}

#[test]
fn crlf_lines_split_into_ranges_count_like_one_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = realistic(30_000, "\r\n");
    let file = write(dir.path(), "crlf.log", &text);
    let one = same_on_every_worker_count(&Config::default(), &[&file], &[1000, 333_333]);
    let (lines, invalid) = counts(&text);
    assert_eq!(value(&one, "vpc_flow_exporter_lines_total"), Some(lines));
    assert_eq!(value(&one, "vpc_flow_exporter_parse_errors_total{reason=\"field_count\"}"), Some(invalid));
}

#[test]
fn a_giant_line_across_a_range_boundary_is_one_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = realistic(2000, "\n");
    let half = bytes.len();
    // 3 MiB without a line end, then the rest: the middle of the file, where
    // two workers cut, is inside the giant line.
    bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
    bytes.push(b'\n');
    bytes.extend(realistic(2000, "\n"));
    assert!(half < bytes.len() / 2 && bytes.len() / 2 < half + (3 << 20));
    let file = write(dir.path(), "giant.log", &bytes);
    let one = same_on_every_worker_count(&Config::default(), &[&file], &[1, 4096, 1 << 20]);
    assert_eq!(value(&one, "vpc_flow_exporter_parse_errors_total{reason=\"too_long\"}"), Some(1.0));
}

#[test]
fn a_header_further_down_that_changes_the_format_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = realistic(5000, "\n");
    let mut bytes = b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n".to_vec();
    bytes.extend(&first);
    // A new header: lines after it have four fields; read with the first
    // format, every one of them would be a field_count error.
    bytes.extend(b"interface-id srcaddr action bytes\n");
    for i in 0..5000 {
        bytes.extend(format!("eni-fffffffffffffff{} 203.0.113.{} REJECT {}\n", i % 7, i % 250, i).as_bytes());
    }
    let file = write(dir.path(), "two-formats.log", &bytes);
    let one = same_on_every_worker_count(&Config::default(), &[&file], &[1, 10_000, 100_000]);
    let (_, invalid) = counts(&first);
    assert_eq!(value(&one, "vpc_flow_exporter_parse_errors_total{reason=\"field_count\"}"), Some(invalid));
    let rejects: f64 = one
        .lines()
        .filter(|l| l.starts_with("vpc_flow_records_total{action=\"REJECT\",interface_id=\"eni-fffffffffffffff"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejects, 5000.0, "the lines after the second header are records");

    // A header further down that repeats the format changes nothing.
    let mut same = realistic(3000, "\n");
    same.extend(b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n");
    same.extend(realistic(3000, "\n"));
    let file = write(dir.path(), "same-format.log", &same);
    same_on_every_worker_count(&Config::default(), &[&file], &[1, 50_000]);
}

#[test]
fn gzip_and_plain_files_together_count_like_one_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = gzip(dir.path(), "a.log.gz", &realistic(20_000, "\n"));
    let b = write(dir.path(), "b.log", &realistic(40_000, "\n"));
    let c = gzip(dir.path(), "c.log.gz", &realistic(7_000, "\r\n"));
    let d = data("default.log");
    let one = same_on_every_worker_count(&Config::default(), &[&a, &b, &c, &d, &b], &[1 << 20, 50_000]);
    let lines = value(&one, "vpc_flow_exporter_lines_total").expect("lines");
    assert!(lines > 100_000.0, "{lines}");
}

#[test]
fn an_unreadable_input_fails_naming_it_on_every_worker_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.log", &realistic(20_000, "\n"));
    let missing = dir.path().join("missing.log");
    // A directory opens but cannot be read.
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).expect("mkdir");
    let corrupt = write(dir.path(), "corrupt.log.gz", b"\x1f\x8b\x08\x00 not gzip at all");
    let config = Config::default();
    for bad in [&missing, &folder, &corrupt] {
        let chain = |e: ReplayError| format!("{e}: {}", e.source);
        let want = chain(expo(&config, &[&good, bad, &good], 1, u64::MAX).expect_err("one worker fails"));
        assert!(want.contains(&bad.display().to_string()), "{want}");
        for workers in 2..=4 {
            let got = chain(expo(&config, &[&good, bad, &good], workers, 1000).expect_err("fails"));
            assert_eq!(got, want, "{workers} workers");
        }
    }
    // Two inputs fail while they are read, in different workers: the first in
    // input order is named, as on one worker.
    let inputs: [&Path; 5] = [&good, &corrupt, &good, &folder, &good];
    for workers in 1..=4 {
        let e = expo(&config, &inputs, workers, 1000).expect_err("fails");
        assert_eq!(e.name, corrupt.display().to_string(), "{workers} workers");
    }
}

fn run_bin(args: &[&str], workers: usize, stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env(replay::WORKERS_ENV, workers.to_string())
        .env(replay::MIN_RANGE_ENV, "16")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vpc-flow-exporter");
    {
        let mut sin = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            sin.write_all(bytes).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait")
}

#[test]
fn the_binary_prints_the_same_metrics_on_every_worker_count() {
    let default = data("default.log");
    let v5 = data("v5.log");
    let config = data("config.yaml");
    let default_log = std::fs::read(&default).expect("read");
    let debug = ["--log.level", "debug", "replay"];
    let cases: Vec<(Vec<&str>, Option<&[u8]>)> = vec![
        ([&debug[..], &[default.to_str().unwrap()]].concat(), None),
        ([&debug[..], &["--config.file", config.to_str().unwrap(), v5.to_str().unwrap()]].concat(), None),
        ([&debug[..], &[default.to_str().unwrap(), "-", default.to_str().unwrap()]].concat(), Some(&default_log)),
        (debug.to_vec(), Some(&default_log)),
    ];
    for (i, (args, stdin)) in cases.iter().enumerate() {
        let one = run_bin(args, 1, *stdin);
        assert!(one.status.success(), "{args:?}: {}", String::from_utf8_lossy(&one.stderr));
        for workers in 2..=4 {
            let many = run_bin(args, workers, *stdin);
            let stderr = String::from_utf8_lossy(&many.stderr);
            assert!(many.status.success(), "{args:?}: {stderr}");
            if i == 0 {
                // One small file in ranges of 16 bytes: every worker has one.
                assert!(stderr.contains(&format!("msg=\"Replaying\" workers={workers} ")), "{stderr}");
            }
            assert_merged(
                &String::from_utf8_lossy(&one.stdout),
                &String::from_utf8_lossy(&many.stdout),
                &format!("{args:?} on {workers} workers"),
            );
        }
    }
}

#[test]
fn the_binary_fails_the_same_way_on_every_worker_count() {
    let default = data("default.log");
    let args = ["replay", default.to_str().unwrap(), "/nonexistent/flows.log"];
    let one = run_bin(&args, 1, None);
    assert_eq!(one.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&one.stderr).into_owned();
    assert!(stderr.contains("cannot read /nonexistent/flows.log"), "{stderr}");
    for workers in 2..=4 {
        let many = run_bin(&args, workers, None);
        assert_eq!(many.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&many.stderr), stderr, "{workers} workers");
        assert!(many.stdout.is_empty());
    }
}
