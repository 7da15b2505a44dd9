//! Property tests of the line parser: arbitrary bytes never panic and never
//! disturb the next line; a record with random values, in a random subset and
//! order of fields, written with random runs of spaces and tabs and an
//! optional CRLF (as text, after an S3 header line, or as JSON), parses back
//! to the same values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{Map, Value as Json};
use vpc_flow_exporter::parse::{
    is_known_field, Format, Line, LineParser, ParseError, Record, Value, KNOWN_FIELDS, MAX_LINE_LEN,
};

const V2_OK: &str =
    "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";

/// Fields that AWS does not define, kept as ignored columns.
const UNKNOWN: [&str; 3] = ["resource-id", "encryption-status", "x-future-field-2"];

/// A generated value, as AWS would write it.
#[derive(Debug, Clone)]
enum V {
    U(u64),
    A(IpAddr),
    S(String),
}

impl V {
    fn text(&self) -> String {
        match self {
            V::U(u) => u.to_string(),
            V::A(a) => a.to_string(),
            V::S(s) => s.clone(),
        }
    }
}

fn addr() -> impl Strategy<Value = V> {
    prop_oneof![
        any::<u32>().prop_map(|a| V::A(IpAddr::V4(Ipv4Addr::from(a)))),
        any::<u128>().prop_map(|a| V::A(IpAddr::V6(Ipv6Addr::from(a)))),
    ]
}

fn words(options: &'static [&'static str]) -> impl Strategy<Value = V> {
    prop::sample::select(options).prop_map(|s| V::S(s.to_string()))
}

fn value_of(name: &str) -> BoxedStrategy<V> {
    match name {
        "version" | "protocol" | "tcp-flags" => (0u64..=255).prop_map(V::U).boxed(),
        "srcport" | "dstport" => (0u64..=65535).prop_map(V::U).boxed(),
        "packets" | "bytes" | "start" | "end" => {
            prop_oneof![any::<u64>(), 0u64..2_000_000_000, 1_000_000_000_000u64..2_000_000_000_000,]
                .prop_map(V::U)
                .boxed()
        }
        "srcaddr" | "dstaddr" | "pkt-srcaddr" | "pkt-dstaddr" => addr().boxed(),
        "action" => words(&["ACCEPT", "REJECT"]).boxed(),
        "log-status" => words(&["OK", "NODATA", "SKIPDATA"]).boxed(),
        "account-id" => "([0-9]{12}|unknown)".prop_map(V::S).boxed(),
        "interface-id" => "eni-[0-9a-f]{8,17}".prop_map(V::S).boxed(),
        // Other text: starts with an uppercase letter, so that a line made only
        // of such values is never taken for a header line.
        _ => "[A-Z][A-Za-z0-9:/._-]{0,24}".prop_map(V::S).boxed(),
    }
}

/// A random subset of the known and unknown fields in random order, each with
/// a value or none (`-`).
fn columns() -> impl Strategy<Value = Vec<(String, Option<V>)>> {
    let mut names: Vec<&'static str> = KNOWN_FIELDS.iter().map(|f| f.name).collect();
    names.extend(UNKNOWN);
    let n = names.len();
    subsequence(names, 1..=n).prop_shuffle().prop_flat_map(|names| {
        names
            .into_iter()
            .map(|n| prop::option::weighted(0.8, value_of(n)).prop_map(move |v| (n.to_string(), v)))
            .collect::<Vec<_>>()
    })
}

fn separator() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(" ".to_string()),
        1 => "[ \t]{1,4}",
    ]
}

/// Checks every generated column against the parsed record.
fn check(record: &Record<'_>, cols: &[(String, Option<V>)], json: bool) -> Result<(), TestCaseError> {
    for (name, want) in cols {
        let known = is_known_field(name);
        // Unknown keys of JSON lines are ignored.
        let want = if json && !known { None } else { want.as_ref() };
        let got = record.get(name);
        match (want, got) {
            (None, None) => {}
            (Some(V::U(u)), Some(Value::Number(n))) => {
                let u = if (name == "start" || name == "end") && *u >= 1_000_000_000_000 { u / 1000 } else { *u };
                prop_assert_eq!(n, u, "{}", name);
            }
            (Some(V::A(a)), Some(Value::Addr(b))) => prop_assert_eq!(*a, b, "{}", name),
            (Some(V::S(s)), Some(Value::Action(a))) => prop_assert_eq!(s.as_str(), a.as_str()),
            (Some(V::S(s)), Some(Value::LogStatus(l))) => prop_assert_eq!(s.as_str(), l.as_str()),
            (Some(V::S(s)), Some(Value::Text(t))) => prop_assert_eq!(s.as_bytes(), t, "{}", name),
            (w, g) => prop_assert!(false, "{}: generated {:?}, parsed {:?}", name, w, g),
        }
        // The raw text is the generated text (text lines keep it verbatim).
        if !json {
            prop_assert_eq!(record.field(name).map(<[u8]>::to_vec), want.map(|v| v.text().into_bytes()));
        }
    }
    Ok(())
}

fn render_text(cols: &[(String, Option<V>)], seps: &[String], lead: &str, trail: &str, end: &str) -> String {
    let mut line = lead.to_string();
    for (i, (_, v)) in cols.iter().enumerate() {
        if i > 0 {
            line.push_str(&seps[i % seps.len()]);
        }
        line.push_str(&v.as_ref().map_or("-".to_string(), V::text));
    }
    line.push_str(trail);
    line.push_str(end);
    line
}

fn spec(cols: &[(String, Option<V>)]) -> String {
    cols.iter().map(|(n, _)| format!("${{{n}}}")).collect::<Vec<_>>().join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn text_record_round_trips(
        cols in columns(),
        seps in prop::collection::vec(separator(), 1..8),
        lead in "[ \t]{0,3}",
        trail in "[ \t]{0,3}",
        end in prop::sample::select(vec!["", "\r", "\r\n", "\n"]),
    ) {
        let line = render_text(&cols, &seps, &lead, &trail, end);
        let format = Format::parse(&spec(&cols)).unwrap();
        let mut p = LineParser::for_file(format);
        match p.parse_line(line.as_bytes()) {
            Line::Record(r) => check(&r, &cols, false)?,
            other => prop_assert!(false, "{:?} -> {:?}", line, other),
        }
    }

    #[test]
    fn text_record_after_header_round_trips(
        cols in columns(),
        seps in prop::collection::vec(separator(), 1..8),
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "" };
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        prop_assume!(names.iter().any(|n| is_known_field(n)));
        let header = format!("{}{end}", names.join(" "));
        let line = render_text(&cols, &seps, "", "", end);
        let mut s = LineParser::for_stream(Format::default_v2());
        prop_assert!(matches!(s.parse_line(header.as_bytes()), Line::Invalid(ParseError::HeaderInStream)), "{}", header);
        prop_assert_eq!(s.format(), &Format::default_v2());
        let mut p = LineParser::for_file(Format::default_v2());
        prop_assert!(matches!(p.parse_line(header.as_bytes()), Line::Header), "{}", header);
        match p.parse_line(line.as_bytes()) {
            Line::Record(r) => check(&r, &cols, false)?,
            other => prop_assert!(false, "{:?} -> {:?}", line, other),
        }
        p.reset();
        prop_assert_eq!(p.format(), &Format::default_v2());
    }

    #[test]
    fn json_record_round_trips(
        cols in columns(),
        styles in prop::collection::vec((any::<bool>(), 0u8..3, any::<bool>()), 43),
    ) {
        let mut object = Map::new();
        let mut known_keys = 0;
        for ((name, v), (as_string, none_style, underscore)) in cols.iter().zip(&styles) {
            let key = if *underscore { name.replace('-', "_") } else { name.clone() };
            let value = match v {
                Some(V::U(u)) if !as_string => Json::from(*u),
                Some(v) => Json::String(v.text()),
                None => match none_style {
                    0 => Json::Null,
                    1 => Json::String("-".into()),
                    _ => continue, // a missing key
                },
            };
            known_keys += usize::from(is_known_field(name));
            object.insert(key, value);
        }
        let line = Json::Object(object).to_string();
        let mut p = LineParser::for_file(Format::default_v2());
        match p.parse_line(line.as_bytes()) {
            Line::Record(r) => {
                prop_assert!(known_keys > 0);
                check(&r, &cols, true)?
            }
            Line::Invalid(ParseError::FieldCount) => prop_assert_eq!(known_keys, 0, "{}", line),
            other => prop_assert!(false, "{} -> {:?}", line, other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), brace in any::<bool>()) {
        let mut line = bytes;
        if brace {
            line.insert(0, b'{');
        }
        for spec in [Format::DEFAULT, "${version} ${resource-id} ${srcaddr} ${pkt-dstaddr} ${tcp-flags} ${start}"] {
            let mut p = LineParser::for_file(Format::parse(spec).unwrap());
            let _ = p.parse_line(&line);
        }
    }

    #[test]
    fn mutated_records_never_panic_and_never_disturb_the_next_line(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        junk in prop::collection::vec(any::<u8>(), 0..40),
        json in any::<bool>(),
    ) {
        let base = if json {
            r#"{"version": 2, "srcaddr": "10.0.0.1", "dstport": 443, "action": "ACCEPT", "log-status": "OK"}"#.as_bytes().to_vec()
        } else {
            V2_OK.as_bytes().to_vec()
        };
        let mut line = base;
        for (at, byte, op) in edits {
            let i = at.index(line.len() + 1);
            match op {
                0 if i < line.len() => line[i] = byte,
                1 => line.insert(i, byte),
                _ if i < line.len() => { line.remove(i); }
                _ => line.push(byte),
            }
        }
        line.extend_from_slice(&junk);
        // In a stream, whatever the line was, the next record reads the same.
        let mut s = LineParser::for_stream(Format::default_v2());
        prop_assert!(!matches!(s.parse_line(&line), Line::Header));
        match s.parse_line(V2_OK.as_bytes()) {
            Line::Record(r) => prop_assert_eq!(r.dstport, Some(22)),
            other => prop_assert!(false, "{:?}", other),
        }
        let mut p = LineParser::for_file(Format::default_v2());
        let was_header = matches!(p.parse_line(&line), Line::Header);
        prop_assume!(!was_header);
        match p.parse_line(V2_OK.as_bytes()) {
            Line::Record(r) => {
                prop_assert_eq!(r.dstport, Some(22));
                prop_assert_eq!(r.bytes, Some(4249));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn numbers_beyond_their_range_are_errors_never_wrapped(
        field in 0usize..14,
        big in prop_oneof![
            (256u64..).prop_map(|v| v.to_string()),
            "[1-9][0-9]{20,30}",
        ],
    ) {
        let mut f: Vec<String> = V2_OK.split(' ').map(str::to_string).collect();
        let numeric = [0, 5, 6, 7, 8, 9, 10, 11];
        prop_assume!(numeric.contains(&field));
        f[field] = big.clone();
        let limit: u128 = match field { 0 | 7 => 255, 5 | 6 => 65535, _ => u64::MAX as u128 };
        let value: Option<u128> = big.parse().ok();
        let mut p = LineParser::for_file(Format::default_v2());
        let line = f.join(" ");
        let got = p.parse_line(line.as_bytes());
        match value {
            Some(v) if v <= limit => prop_assert!(matches!(got, Line::Record(_)), "{:?}", got),
            _ => prop_assert!(matches!(got, Line::Invalid(ParseError::OutOfRange)), "{} at {}: {:?}", big, field, got),
        }
    }
}

#[test]
fn very_long_lines_are_too_long_not_slow() {
    let mut p = LineParser::for_file(Format::default_v2());
    let line = vec![b'1'; MAX_LINE_LEN * 8];
    assert!(matches!(p.parse_line(&line), Line::Invalid(ParseError::TooLong)));
    let mut braces = vec![b'['; MAX_LINE_LEN];
    braces.insert(0, b'{');
    assert!(matches!(p.parse_line(&braces[..MAX_LINE_LEN]), Line::Invalid(ParseError::BadJson)));
}
