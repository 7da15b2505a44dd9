//! The exporter's own logs, through the real binary: `--log.level` refuses
//! anything but the documented levels (exit 2, naming the flag), `--log.format
//! logfmt` writes lines that a strict logfmt reader parses (`msg` quoted),
//! `json` one object per line, and a flow-log format given to `--log.format`
//! gets a hint towards `--log-format`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::BIN;

/// The default format plus a field AWS does not define: a warning at start-up
/// whose `fields` value holds quotes, brackets and a hyphen.
const FORMAT_WITH_UNKNOWN: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} \
     ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${made-up}";

/// Lines with a bad field count, a bad address and a bad number, then a good one.
const FLOWS: &str = "\
this is not a flow log line
2 123456789012 eni-0a1 10.0.0.300 10.0.0.2 443 51000 6 10 840 1700000000 1700000060 ACCEPT OK x
2 123456789012 eni-0a1 10.0.0.1 10.0.0.2 443 many 6 10 840 1700000000 1700000060 ACCEPT OK x
2 123456789012 eni-0a1 10.0.0.1 10.0.0.2 443 51000 6 10 840 1700000000 1700000060 ACCEPT OK x
";

/// A strict logfmt reader (the go-logfmt grammar Loki uses): `key=value`
/// pairs separated by single spaces; a bare value has no space, `=` or `"`; a
/// quoted value is decoded with JSON escapes. Returns the pairs in order, and
/// whether each value was quoted.
fn parse_logfmt(line: &str) -> Result<Vec<(String, String, bool)>, String> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            if c <= ' ' || c == '"' {
                return Err(format!("bad character {c:?} in key {key:?}"));
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return Err(format!("expected key= at {:?}", chars.clone().collect::<String>()));
        }
        let mut value = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quote in {key}")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"') => value.push('"'),
                        Some('\\') => value.push('\\'),
                        Some('/') => value.push('/'),
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some('u') => {
                            let hex: String = chars.by_ref().take(4).collect();
                            let n = u32::from_str_radix(&hex, 16).map_err(|e| format!("bad \\u{hex}: {e}"))?;
                            value.push(char::from_u32(n).ok_or("bad code point")?);
                        }
                        other => return Err(format!("bad escape {other:?} in {key}")),
                    },
                    Some(c) if c.is_control() => return Err(format!("raw control character in {key}")),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                if c == '=' || c == '"' || c.is_control() {
                    return Err(format!("bare value of {key} holds {c:?}"));
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value, quoted));
        match chars.next() {
            None => return Ok(pairs),
            Some(' ') if chars.peek().is_some_and(|&c| c != ' ') => {}
            Some(c) => return Err(format!("expected one space between pairs, got {c:?}")),
        }
    }
}

fn get<'a>(pairs: &'a [(String, String, bool)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _, _)| k == key).map(|(_, v, _)| v.as_str())
}

/// Runs `replay` of [`FLOWS`] on standard input with the given flags before it.
fn replay(flags: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(flags)
        .args(["replay", "--log-format", FORMAT_WITH_UNKNOWN, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    // A refused flag exits before reading standard input: ignore a broken pipe.
    let _ = child.stdin.take().expect("stdin").write_all(FLOWS.as_bytes());
    child.wait_with_output().expect("wait for the binary")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr").lines().map(str::to_owned).collect()
}

#[test]
fn logfmt_lines_parse_with_msg_quoted() {
    let out = replay(&["--log.level", "debug", "--log.format", "logfmt"]);
    assert!(out.status.success(), "{out:?}");
    let lines = stderr_lines(&out);
    assert!(lines.len() >= 2, "expected the warning and per-line diagnostics: {lines:#?}");
    for line in &lines {
        let pairs = parse_logfmt(line).unwrap_or_else(|e| panic!("not logfmt ({e}): {line}"));
        let keys: Vec<&str> = pairs.iter().take(4).map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["ts", "level", "target", "msg"], "{line}");
        let (_, msg, quoted) = &pairs[3];
        assert!(*quoted && !msg.is_empty(), "msg must be quoted and non-empty: {line}");
        assert!(["error", "warn", "info", "debug", "trace"].contains(&get(&pairs, "level").unwrap_or("")), "{line}");
        let ts = get(&pairs, "ts").unwrap_or("");
        assert!(ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "RFC 3339 UTC: {line}");
    }
    let warning = lines
        .iter()
        .map(|l| parse_logfmt(l).unwrap_or_default())
        .find(|p| get(p, "level") == Some("warn") && get(p, "fields").is_some())
        .unwrap_or_else(|| panic!("no unknown-field warning: {lines:#?}"));
    // A value with quotes and brackets survives the round trip.
    assert_eq!(get(&warning, "fields"), Some(r#"["made-up"]"#), "{warning:?}");
    assert!(lines.iter().any(|l| l.contains("level=debug")), "debug level shows debug events: {lines:#?}");
    // The exposition on standard output is untouched by the logs.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("vpc_flow_records_total{"), "{stdout}");
}

#[test]
fn json_lines_are_objects_with_the_same_keys() {
    let out = replay(&["--log.level", "debug", "--log.format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let lines = stderr_lines(&out);
    assert!(lines.len() >= 2, "{lines:#?}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["ts", "level", "target", "msg"] {
            assert!(v[key].is_string(), "{key} missing in {line}");
        }
    }
    let warning: serde_json::Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "warn")
        .unwrap_or_else(|| panic!("no warning: {lines:#?}"));
    assert_eq!(warning["fields"], r#"["made-up"]"#);
}

#[test]
fn level_hides_less_severe_events() {
    let out = replay(&["--log.level", "error"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stderr_lines(&out), Vec::<String>::new(), "error hides the warning and the debug lines");
    let out = replay(&["--log.level", "warn"]);
    let lines = stderr_lines(&out);
    assert!(lines.iter().any(|l| l.contains("level=warn")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("level=debug") || l.contains("level=info")), "{lines:#?}");
}

#[test]
fn a_bad_level_is_a_start_up_error_naming_the_flag() {
    for bad in ["verbose", "warning", "WARN", "", "info,hyper=debug", "aws_config=debug"] {
        let out = replay(&["--log.level", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--log.level {bad:?}: {stderr}");
        assert!(stderr.contains("--log.level"), "names the flag: {stderr}");
        assert!(stderr.contains("error, warn, info, debug, trace"), "lists the levels: {stderr}");
        assert!(out.stdout.is_empty(), "nothing ran: {}", String::from_utf8_lossy(&out.stdout));
    }
    let out = replay(&["--log.level", "warning"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("'warn'"), "suggests warn");
}

#[test]
fn a_flow_log_format_in_log_format_gets_a_hint() {
    let out = replay(&["--log.format", "${version} ${srcaddr} ${dstaddr}"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--log.format"), "{stderr}");
    assert!(stderr.contains("did you mean --log-format (the flow-log format of replay)?"), "{stderr}");
    assert!(stderr.contains("logfmt, json"), "{stderr}");

    let out = replay(&["--log.format", "text"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("did you mean --log-format"), "no hint for an ordinary typo: {stderr}");
}

/// Starts `demo` on a free port, collects standard error until the listening
/// line, and stops it.
fn demo_start_lines(format: &str) -> Vec<String> {
    let mut child = Command::new(BIN)
        .args(["--log.format", format, "demo", "--web.listen-address", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("Listening");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.contains("Listening")), "the demo did not log its listening line: {lines:#?}");
    lines
}

#[test]
fn demo_logs_parse_in_both_formats() {
    for line in demo_start_lines("logfmt") {
        let pairs = parse_logfmt(&line).unwrap_or_else(|e| panic!("not logfmt ({e}): {line}"));
        assert!(pairs.iter().any(|(k, _, q)| k == "msg" && *q), "{line}");
        if get(&pairs, "msg") == Some("Listening") {
            let address = get(&pairs, "address").unwrap_or("");
            assert!(address.starts_with("127.0.0.1:"), "{line}");
        }
    }
    for line in demo_start_lines("json") {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["msg"].is_string(), "{line}");
    }
}

#[test]
fn the_logfmt_reader_rejects_what_loki_would_misparse() {
    // The reader above must be able to fail, or the tests prove nothing.
    assert!(parse_logfmt(r#"ts=1 level=info msg="ok" a=b"#).is_ok());
    for bad in [
        "2026-12-01T03:53:09Z  INFO vpc_flow_exporter: Listening address=127.0.0.1:1",
        r#"msg=two words"#,
        r#"msg="unterminated"#,
        r#"a=b  c=d"#,
        "a=\"tab\tinside\"",
    ] {
        assert!(parse_logfmt(bad).is_err(), "accepted {bad:?}");
    }
}
