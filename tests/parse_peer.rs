//! Conformance with other public flow-log parsers: every case of
//! tests/data/parse/peer-cases.jsonl (see the README there for sources and the
//! two peer habits read through this project's contract). Each case is checked
//! three ways: with the format configured, after an S3 header line naming the
//! format, and (for valid records) as a JSON object built from the line.

use std::net::IpAddr;

use serde_json::Value as Json;
use vpc_flow_exporter::parse::{Format, Line, LineParser, ParseError, Record, Value};

const CASES: &str = include_str!("data/parse/peer-cases.jsonl");

struct Case {
    n: usize,
    source: String,
    format: Format,
    line: String,
    expect: serde_json::Map<String, Json>,
    ok: bool,
}

fn cases() -> Vec<Case> {
    CASES
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let c: Json = serde_json::from_str(l).unwrap_or_else(|e| panic!("case {}: {e}", i + 1));
            let spec = c["format"].as_str().unwrap();
            let format = if spec == "default" {
                Format::default_v2()
            } else {
                Format::parse(spec).unwrap_or_else(|e| panic!("case {}: format {spec:?}: {e}", i + 1))
            };
            let outcome = c["outcome"].as_str().unwrap();
            assert!(outcome == "ok" || outcome == "error", "case {}: outcome {outcome}", i + 1);
            Case {
                n: i + 1,
                source: c["source"].as_str().unwrap().to_string(),
                format,
                line: c["line"].as_str().unwrap().to_string(),
                expect: c["expect"].as_object().cloned().unwrap_or_default(),
                ok: outcome == "ok",
            }
        })
        .collect()
}

/// The expected value as text, or `None` for "no value". A peer that keeps
/// `-` as a string (node-vpc-flow-log-parser) means "no value" by it.
fn expected_text(v: &Json) -> Option<String> {
    match v {
        Json::Null => None,
        Json::String(s) if s == "-" => None,
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        other => panic!("unexpected expect value {other}"),
    }
}

/// Compares values, not types: numbers as numbers, addresses as addresses.
fn matches(got: Value<'_>, want: &str) -> bool {
    match got {
        Value::Number(n) => want.parse::<u64>() == Ok(n),
        Value::Addr(a) => want.parse::<IpAddr>() == Ok(a),
        Value::Action(a) => a.as_str() == want,
        Value::LogStatus(s) => s.as_str() == want,
        Value::Text(t) => t == want.as_bytes(),
    }
}

fn check_fields(case: &Case, how: &str, r: &Record<'_>) {
    assert!(!case.expect.is_empty(), "case {} has nothing to check", case.n);
    for (name, want) in &case.expect {
        let got = r.get(name);
        match (expected_text(want), got) {
            (None, None) => {}
            (Some(w), Some(g)) => assert!(
                matches(g, &w),
                "case {} ({}, {how}): {name} = {g} (raw {:?}), peer expects {w}",
                case.n,
                case.source,
                r.field(name).map(String::from_utf8_lossy)
            ),
            (w, g) => panic!("case {} ({}, {how}): {name} = {g:?}, peer expects {w:?}", case.n, case.source),
        }
    }
}

fn header_of(format: &Format) -> String {
    format.fields().collect::<Vec<_>>().join(" ")
}

#[test]
fn file_has_all_82_cases() {
    let cases = cases();
    assert_eq!(cases.len(), 82);
    assert_eq!(cases.iter().filter(|c| c.ok).count(), 79);
    assert_eq!(cases.iter().filter(|c| !c.ok).count(), 3);
}

#[test]
fn every_case_with_the_configured_format() {
    let mut checked = 0;
    for case in cases() {
        let mut p = LineParser::for_file(case.format.clone());
        match (case.ok, p.parse_line(case.line.as_bytes())) {
            (true, Line::Record(r)) => check_fields(&case, "configured format", &r),
            (false, Line::Invalid(e)) => {
                // The rejected lines of this file all have a wrong field count.
                assert_eq!(e, ParseError::FieldCount, "case {}", case.n)
            }
            (ok, got) => panic!("case {} ({}): expected ok={ok}, got {got:?} for {:?}", case.n, case.source, case.line),
        }
        checked += 1;
    }
    assert_eq!(checked, 82);
}

#[test]
fn every_case_after_an_s3_header_line() {
    let unrelated = Format::parse("${srcaddr} ${dstaddr}").unwrap();
    for case in cases() {
        let mut p = LineParser::for_file(unrelated.clone());
        let header = header_of(&case.format);
        assert!(matches!(p.parse_line(header.as_bytes()), Line::Header), "case {}: {header}", case.n);
        assert_eq!(p.format(), &case.format, "case {}", case.n);
        match (case.ok, p.parse_line(format!("{}\r\n", case.line).as_bytes())) {
            (true, Line::Record(r)) => check_fields(&case, "after header", &r),
            (false, Line::Invalid(_)) => {}
            (ok, got) => panic!("case {}: expected ok={ok}, got {got:?}", case.n),
        }
        p.reset();
        assert_eq!(p.format(), &unrelated);
    }
}

#[test]
fn every_valid_case_as_json() {
    for case in cases().into_iter().filter(|c| c.ok) {
        // Build the JSON object from the line's own columns: numbers where the
        // text is all digits, strings otherwise, null for "-".
        let mut object = serde_json::Map::new();
        for (name, text) in case.format.fields().zip(case.line.split_ascii_whitespace()) {
            let value = if text == "-" {
                Json::Null
            } else if text.len() < 19 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0') {
                Json::Number(text.parse::<u64>().unwrap().into())
            } else {
                Json::String(text.to_string())
            };
            object.insert(name.to_string(), value);
        }
        let json = Json::Object(object).to_string();
        let mut p = LineParser::for_file(Format::default_v2());
        match p.parse_line(json.as_bytes()) {
            Line::Record(r) => {
                // Only fields AWS defines are read from JSON; unknown keys are ignored.
                for (name, want) in &case.expect {
                    let got = r.get(name);
                    if !vpc_flow_exporter::parse::is_known_field(name) {
                        assert_eq!(got, None, "case {}: unknown key {name} must be ignored", case.n);
                        continue;
                    }
                    match (expected_text(want), got) {
                        (None, None) => {}
                        (Some(w), Some(g)) => assert!(matches(g, &w), "case {} (json): {name} = {g}, want {w}", case.n),
                        (w, g) => panic!("case {} (json): {name} = {g:?}, want {w:?}", case.n),
                    }
                }
            }
            other => panic!("case {} as JSON {json}: {other:?}", case.n),
        }
    }
}
