//! Unit tests of the line parser: each error reason, header switching and
//! reset in files, headers refused in streams, JSON edge cases, and the
//! raw-field view.

use super::*;

const V2_OK: &str =
    "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";

fn default_parser() -> LineParser {
    LineParser::for_file(Format::default_v2())
}

fn parser(spec: &str) -> LineParser {
    LineParser::for_file(Format::parse(spec).unwrap())
}

/// The reason of an invalid line, or a panic naming what the line was.
fn reason(p: &mut LineParser, line: &str) -> ParseError {
    match p.parse_line(line.as_bytes()) {
        Line::Invalid(e) => e,
        other => panic!("{line:?} should be invalid, got {other:?}"),
    }
}

fn record<'a>(p: &'a mut LineParser, line: &'a [u8]) -> Record<'a> {
    match p.parse_line(line) {
        Line::Record(r) => r,
        other => panic!("{:?} should be a record, got {other:?}", String::from_utf8_lossy(line)),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn default_record_all_typed_fields() {
    let mut p = default_parser();
    let r = record(&mut p, V2_OK.as_bytes());
    assert_eq!(r.version, Some(2));
    assert_eq!(r.account_id, Some(&b"123456789010"[..]));
    assert_eq!(r.interface_id, Some(&b"eni-1235b8ca123456789"[..]));
    assert_eq!(r.srcaddr, Some(ip("172.31.16.139")));
    assert_eq!(r.dstaddr, Some(ip("172.31.16.21")));
    assert_eq!(r.srcport, Some(20641));
    assert_eq!(r.dstport, Some(22));
    assert_eq!(r.protocol, Some(6));
    assert_eq!(r.packets, Some(20));
    assert_eq!(r.bytes, Some(4249));
    assert_eq!(r.start, Some(1418530010));
    assert_eq!(r.end, Some(1418530070));
    assert_eq!(r.action, Some(Action::Accept));
    assert_eq!(r.log_status, Some(LogStatus::Ok));
    assert_eq!(r.tcp_flags, None);
    assert_eq!(r.pkt_srcaddr, None);
    assert!(r.is_traffic());
    assert_eq!(r.time(), Some(1418530070));
}

#[test]
fn nodata_and_skipdata_have_no_traffic_fields() {
    let mut p = default_parser();
    for (status, want) in [("NODATA", LogStatus::NoData), ("SKIPDATA", LogStatus::SkipData)] {
        let line = format!("2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - {status}");
        let r = record(&mut p, line.as_bytes());
        assert_eq!(r.log_status, Some(want));
        assert!(!r.is_traffic());
        assert_eq!((r.srcaddr, r.dstaddr, r.srcport, r.dstport), (None, None, None, None));
        assert_eq!((r.protocol, r.packets, r.bytes, r.action), (None, None, None, None));
        assert_eq!((r.start, r.end), (Some(1431280876), Some(1431280934)));
        assert_eq!(r.field("srcaddr"), None);
        assert_eq!(r.field("log-status"), Some(status.as_bytes()));
    }
}

#[test]
fn blanks_tabs_and_line_ends() {
    let mut p = default_parser();
    let mut q = default_parser();
    let want = record(&mut q, V2_OK.as_bytes());
    let variants = [
        V2_OK.replace(' ', "\t"),
        V2_OK.replace(' ', " \t  "),
        format!("  {V2_OK}  "),
        format!("\t{V2_OK}\r"),
        format!("{V2_OK}\r\n"),
        format!("{V2_OK}\n"),
        format!("{V2_OK} \t\r\n"),
    ];
    for v in &variants {
        let r = record(&mut p, v.as_bytes());
        assert_eq!(r, want, "{v:?}");
        assert_eq!(r.field("action"), Some(&b"ACCEPT"[..]));
        assert_eq!(r.field("log-status"), Some(&b"OK"[..]), "{v:?}");
    }
}

#[test]
fn empty_lines() {
    let mut p = default_parser();
    for l in ["", " ", "\t \t", "\r", "\r\n", "   \r\n", "\n"] {
        assert!(matches!(p.parse_line(l.as_bytes()), Line::Empty), "{l:?}");
    }
}

#[test]
fn field_count() {
    let mut p = default_parser();
    assert_eq!(reason(&mut p, "2 123456789010 eni-1 - - - - - - - 1 2 -"), ParseError::FieldCount);
    assert_eq!(reason(&mut p, &format!("{V2_OK} extra")), ParseError::FieldCount);
    assert_eq!(reason(&mut p, "I am not am AWS VPC Flow log"), ParseError::FieldCount);
    assert_eq!(reason(&mut p, "2"), ParseError::FieldCount);
    // The AWS docs' example with a trailing comment does not fit its format.
    let mut nat = parser("instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr");
    let commented = "i-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5 #Traffic from the source instance to host on the internet";
    assert_eq!(reason(&mut nat, commented), ParseError::FieldCount);
    // A wrong field count wins over a bad value in some field.
    assert_eq!(reason(&mut p, "x 123456789010 eni-1 - - - - - - - 1 2 -"), ParseError::FieldCount);
}

#[test]
fn bad_number() {
    let mut p = default_parser();
    for (i, bad) in [(0, "v2"), (5, "-1"), (6, "22a"), (7, "six"), (8, "1.5"), (9, "+10"), (10, "1e9"), (11, "0x10")] {
        let mut f: Vec<&str> = V2_OK.split(' ').collect();
        f[i] = bad;
        assert_eq!(reason(&mut p, &f.join(" ")), ParseError::BadNumber, "{bad} at {i}");
    }
    let mut t = parser("${tcp-flags}");
    assert_eq!(reason(&mut t, "SYN"), ParseError::BadNumber);
}

#[test]
fn out_of_range() {
    let mut p = default_parser();
    for (i, big) in [
        (0, "256"),
        (5, "65536"),
        (6, "70000"),
        (7, "256"),
        (8, "18446744073709551616"),
        (9, "99999999999999999999999"),
        (10, "18446744073709551616"),
        (11, "100000000000000000000"),
    ] {
        let mut f: Vec<&str> = V2_OK.split(' ').collect();
        f[i] = big;
        assert_eq!(reason(&mut p, &f.join(" ")), ParseError::OutOfRange, "{big} at {i}");
    }
    // Limits themselves are fine.
    let line = "255 a eni-1 1.1.1.1 2.2.2.2 65535 65535 255 18446744073709551615 18446744073709551615 999999999999 1 REJECT OK";
    let r = record(&mut p, line.as_bytes());
    assert_eq!((r.version, r.srcport, r.protocol), (Some(255), Some(65535), Some(255)));
    assert_eq!((r.packets, r.bytes), (Some(u64::MAX), Some(u64::MAX)));
    let mut t = parser("${tcp-flags}");
    assert_eq!(record(&mut t, b"255").tcp_flags, Some(255));
    assert_eq!(reason(&mut t, "256"), ParseError::OutOfRange);
}

#[test]
fn millisecond_timestamps_become_seconds() {
    let mut p = default_parser();
    let r = record(&mut p, b"2 1 eni-4b118871 - - - - - - - 1512564058000 1512564059000 - SKIPDATA");
    assert_eq!((r.start, r.end), (Some(1512564058), Some(1512564059)));
    assert_eq!(r.field("start"), Some(&b"1512564058000"[..]));
    assert_eq!(r.get("start"), Some(Value::Number(1512564058)));
}

#[test]
fn bad_address() {
    let mut p = default_parser();
    for (i, bad) in
        [(3, "172.31.16"), (3, "300.1.1.1"), (4, "eni-1"), (4, "2001:db8::g"), (3, "1.2.3.4/32"), (4, "fe80::1%eth0")]
    {
        let mut f: Vec<&str> = V2_OK.split(' ').collect();
        f[i] = bad;
        assert_eq!(reason(&mut p, &f.join(" ")), ParseError::BadAddress, "{bad}");
    }
    let mut n = parser("${pkt-srcaddr} ${pkt-dstaddr}");
    assert_eq!(reason(&mut n, "10.0.0.1 x"), ParseError::BadAddress);
    assert_eq!(reason(&mut n, "x 10.0.0.1"), ParseError::BadAddress);
}

#[test]
fn bad_value() {
    let mut p = default_parser();
    for (i, bad) in [(12, "ALLOW"), (12, "accept"), (13, "FINE"), (13, "ok"), (12, "--")] {
        let mut f: Vec<&str> = V2_OK.split(' ').collect();
        f[i] = bad;
        assert_eq!(reason(&mut p, &f.join(" ")), ParseError::BadValue, "{bad}");
    }
}

#[test]
fn too_long() {
    let mut p = default_parser();
    let long = format!("{V2_OK}{}", " ".repeat(MAX_LINE_LEN));
    assert_eq!(reason(&mut p, &long), ParseError::TooLong);
    let json = format!("{{\"version\": 2, \"x\": \"{}\"}}", "a".repeat(MAX_LINE_LEN));
    assert_eq!(reason(&mut p, &json), ParseError::TooLong);
    // Just at the cap is read.
    let at_cap = format!("{V2_OK}{}", " ".repeat(MAX_LINE_LEN - V2_OK.len()));
    assert!(matches!(p.parse_line(at_cap.as_bytes()), Line::Record(_)));
}

#[test]
fn every_reason_is_reachable_and_labels_are_distinct() {
    let mut p = default_parser();
    let lines: [(&str, ParseError); 7] = [
        ("2 1", ParseError::FieldCount),
        ("x 1 eni-1 1.1.1.1 2.2.2.2 1 2 6 1 1 1 1 ACCEPT OK", ParseError::BadNumber),
        ("2 1 eni-1 1.1.1.1 2.2.2.2 1 99999 6 1 1 1 1 ACCEPT OK", ParseError::OutOfRange),
        ("2 1 eni-1 1.1.1 2.2.2.2 1 2 6 1 1 1 1 ACCEPT OK", ParseError::BadAddress),
        ("2 1 eni-1 1.1.1.1 2.2.2.2 1 2 6 1 1 1 1 DENY OK", ParseError::BadValue),
        ("{\"version\": 2,", ParseError::BadJson),
        (&*Box::leak("9 ".repeat(MAX_LINE_LEN).into_boxed_str()), ParseError::TooLong),
    ];
    for (line, want) in lines {
        assert_eq!(reason(&mut p, line), want);
    }
    for (i, e) in ParseError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert!(e.reason().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
    let mut labels: Vec<_> = ParseError::ALL.iter().map(|e| e.reason()).collect();
    labels.dedup();
    assert_eq!(labels.len(), ParseError::ALL.len());
}

#[test]
fn invalid_lines_do_not_disturb_neighbours() {
    let mut p = default_parser();
    let mut q = default_parser();
    let want = record(&mut q, V2_OK.as_bytes());
    for bad in ["garbage", "{", "2 x", "\u{0}\u{1}\u{2}", "2 1 eni-1 1.1.1.1 2.2.2.2 1 2 6 1 1 1 1 DENY OK"] {
        assert!(matches!(p.parse_line(bad.as_bytes()), Line::Invalid(_)), "{bad}");
        assert_eq!(record(&mut p, V2_OK.as_bytes()), want);
    }
}

#[test]
fn arbitrary_bytes_in_text_fields_are_kept() {
    let mut p = parser("${interface-id} ${vpc-id} ${srcport}");
    let r = record(&mut p, b"eni-\xff\xfe vpc-\x01 80");
    assert_eq!(r.interface_id, Some(&b"eni-\xff\xfe"[..]));
    assert_eq!(r.field("vpc-id"), Some(&b"vpc-\x01"[..]));
    assert_eq!(r.srcport, Some(80));
}

#[test]
fn header_switches_format_until_reset() {
    let mut p = default_parser();
    assert!(matches!(p.parse_line(b"version srcaddr dstaddr tcp-flags log-status"), Line::Header));
    assert_eq!(p.format().len(), 5);
    assert_eq!(p.configured_format(), &Format::default_v2());
    {
        let r = record(&mut p, b"3 10.0.0.1 10.0.0.2 19 OK");
        assert_eq!(r.version, Some(3));
        assert_eq!(r.tcp_flags, Some(19));
        assert_eq!(r.dstaddr, Some(ip("10.0.0.2")));
        assert_eq!(r.account_id, None);
    }
    // The default format no longer fits until reset.
    assert_eq!(reason(&mut p, V2_OK), ParseError::FieldCount);
    p.reset();
    assert_eq!(p.format(), &Format::default_v2());
    assert_eq!(record(&mut p, V2_OK.as_bytes()).dstport, Some(22));
    // A second header replaces the first.
    assert!(matches!(p.parse_line(b"srcaddr dstaddr\r\n"), Line::Header));
    assert!(matches!(p.parse_line(b"\tinterface-id  srcport "), Line::Header));
    assert_eq!(record(&mut p, b"eni-9 443").srcport, Some(443));
}

#[test]
fn a_stream_never_changes_its_format() {
    let mut p = LineParser::for_stream(Format::default_v2());
    assert_eq!(p.kind(), InputKind::Stream);
    for header in [
        "version srcaddr dstaddr tcp-flags log-status",
        "\tinterface-id  srcport \r",
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
        "version resource-id",
    ] {
        assert_eq!(reason(&mut p, header), ParseError::HeaderInStream, "{header:?}");
        assert_eq!(p.format(), &Format::default_v2());
        // The next record is read in the configured format.
        assert_eq!(record(&mut p, V2_OK.as_bytes()).dstport, Some(22));
    }
    // What is not a header stays what it was.
    assert_eq!(reason(&mut p, "hello world again"), ParseError::FieldCount);
    assert!(matches!(p.parse_line(b"  "), Line::Empty));
    let mut q = LineParser::for_stream(Format::parse("${instance-id} ${interface-id}").unwrap());
    assert_eq!(record(&mut q, b"i-0abc eni-1234").interface_id, Some(&b"eni-1234"[..]));
    // A file parser built from the same format honours the header.
    let mut f = LineParser::for_file(Format::default_v2());
    assert_eq!(f.kind(), InputKind::File);
    assert!(matches!(f.parse_line(b"version srcaddr"), Line::Header));
}

#[test]
fn header_with_unknown_fields_keeps_them_as_columns() {
    let mut p = default_parser();
    assert!(matches!(p.parse_line(b"version resource-id srcport encryption-status"), Line::Header));
    assert_eq!(p.format().unknown_fields(), ["resource-id", "encryption-status"]);
    let r = record(&mut p, b"11 nat-0c50d5961bcb2d47b 443 1");
    assert_eq!(r.srcport, Some(443));
    assert_eq!(r.field("resource-id"), Some(&b"nat-0c50d5961bcb2d47b"[..]));
    assert_eq!(r.field("encryption_status"), Some(&b"1"[..]));
}

#[test]
fn header_needs_a_known_field() {
    let mut p = parser("${instance-id} ${interface-id}");
    // Lowercase words, but none is an AWS field: a record, not a header.
    let r = record(&mut p, b"i-0abc eni-1234");
    assert_eq!(r.interface_id, Some(&b"eni-1234"[..]));
    assert_eq!(p.format().len(), 2);
    assert_eq!(reason(&mut p, "hello world again"), ParseError::FieldCount);
}

#[test]
fn custom_format_any_order_with_unknown_columns() {
    let mut p = parser("${log-status} ${resource-id} ${dstport} ${pkt-dstaddr} ${srcaddr} ${action} ${end}");
    let r = record(&mut p, b"NODATA x 443 2001:db8::1 10.1.2.3 REJECT 1700000000");
    assert_eq!(r.log_status, Some(LogStatus::NoData));
    assert_eq!(r.dstport, Some(443));
    assert_eq!(r.pkt_dstaddr, Some(ip("2001:db8::1")));
    assert_eq!(r.srcaddr, Some(ip("10.1.2.3")));
    assert_eq!(r.action, Some(Action::Reject));
    assert_eq!(r.end, Some(1_700_000_000));
    assert_eq!(r.time(), Some(1_700_000_000));
    assert_eq!(r.field("resource-id"), Some(&b"x"[..]));
    assert_eq!(r.field("version"), None);
    assert_eq!(r.get("pkt-dstaddr"), Some(Value::Addr(ip("2001:db8::1"))));
    // An unknown column holds anything, even text that would be a bad number.
    assert!(matches!(p.parse_line(b"OK not-a-number 1 1.1.1.1 1.1.1.1 ACCEPT 1"), Line::Record(_)));
}

#[test]
fn repeated_column_last_wins() {
    let mut p = parser("${srcport} ${srcport}");
    let r = record(&mut p, b"1 2");
    assert_eq!(r.srcport, Some(2));
    assert_eq!(r.field("srcport"), Some(&b"2"[..]));
}

#[test]
fn raw_fields_iterate_in_column_order() {
    let mut p = parser("${version} ${vpc-id} ${flow-direction} ${x-new}");
    let r = record(&mut p, b"5 vpc-1 - hello");
    let cols: Vec<(&str, Option<&[u8]>)> = r.raw.iter().collect();
    assert_eq!(
        cols,
        [
            ("version", Some(&b"5"[..])),
            ("vpc-id", Some(&b"vpc-1"[..])),
            ("flow-direction", None),
            ("x-new", Some(&b"hello"[..]))
        ]
    );
    assert_eq!(r.get("vpc_id").map(|v| v.to_string()), Some("vpc-1".to_string()));
    assert_eq!(
        format!("{:?}", r.raw),
        r#"{"version": Some("5"), "vpc-id": Some("vpc-1"), "flow-direction": None, "x-new": Some("hello")}"#
    );
}

#[test]
fn values_display_as_aws_writes_them() {
    let mut p = default_parser();
    let r = record(&mut p, V2_OK.as_bytes());
    let shown: Vec<String> =
        Format::default_v2().fields().map(|n| r.get(n).map_or("-".to_string(), |v| v.to_string())).collect();
    assert_eq!(shown.join(" "), V2_OK);
    assert_eq!(Record::default().get("srcaddr"), None);
    assert_eq!(Record::default().field("srcaddr"), None);
}

#[test]
fn records_compare_by_typed_fields() {
    let (mut p, mut q) = (default_parser(), default_parser());
    let a = record(&mut p, V2_OK.as_bytes());
    let spaced = V2_OK.replace(' ', "   ");
    let b = record(&mut q, spaced.as_bytes());
    assert_eq!(a, b);
    let built = Record {
        version: Some(2),
        account_id: Some(b"123456789010"),
        interface_id: Some(b"eni-1235b8ca123456789"),
        srcaddr: Some(ip("172.31.16.139")),
        dstaddr: Some(ip("172.31.16.21")),
        srcport: Some(20641),
        dstport: Some(22),
        protocol: Some(6),
        packets: Some(20),
        bytes: Some(4249),
        start: Some(1418530010),
        end: Some(1418530070),
        action: Some(Action::Accept),
        log_status: Some(LogStatus::Ok),
        ..Default::default()
    };
    assert_eq!(a, built);
}

// ---- JSON lines ----

#[test]
fn json_numbers_and_strings() {
    let mut p = default_parser();
    let line = br#"{"version": 2, "account-id": "123456789010", "interface-id": "eni-1", "srcaddr": "10.0.0.1",
        "dstaddr": "2001:db8::2", "srcport": "443", "dstport": 51000, "protocol": 6, "packets": "10", "bytes": 8400,
        "start": 1418530010, "end": "1418530070", "action": "REJECT", "log-status": "OK"}"#;
    let line: Vec<u8> = line.iter().copied().filter(|&b| b != b'\n').collect();
    let r = record(&mut p, &line);
    assert_eq!(r.version, Some(2));
    assert_eq!(r.account_id, Some(&b"123456789010"[..]));
    assert_eq!(r.srcaddr, Some(ip("10.0.0.1")));
    assert_eq!(r.dstaddr, Some(ip("2001:db8::2")));
    assert_eq!((r.srcport, r.dstport, r.protocol), (Some(443), Some(51000), Some(6)));
    assert_eq!((r.packets, r.bytes), (Some(10), Some(8400)));
    assert_eq!((r.start, r.end), (Some(1418530010), Some(1418530070)));
    assert_eq!(r.action, Some(Action::Reject));
    assert_eq!(r.log_status, Some(LogStatus::Ok));
    assert_eq!(r.field("dstport"), Some(&b"51000"[..]));
}

#[test]
fn json_number_account_id_is_text() {
    let mut p = default_parser();
    let r = record(&mut p, br#"{"account-id": 123456789010, "version": 2}"#);
    assert_eq!(r.account_id, Some(&b"123456789010"[..]));
}

#[test]
fn json_no_value_forms() {
    let mut p = default_parser();
    let r = record(
        &mut p,
        br#"{"version": 2, "srcaddr": null, "dstaddr": "-", "srcport": "", "action": null, "log-status": "NODATA"}"#,
    );
    assert_eq!(r.version, Some(2));
    assert_eq!((r.srcaddr, r.dstaddr, r.srcport, r.action), (None, None, None, None));
    assert_eq!(r.interface_id, None);
    assert_eq!(r.log_status, Some(LogStatus::NoData));
    assert_eq!(r.field("srcaddr"), None);
    assert_eq!(r.field("log-status"), Some(&b"NODATA"[..]));
}

#[test]
fn json_duplicate_keys_last_wins() {
    let mut p = default_parser();
    let r = record(
        &mut p,
        br#"{"srcport": 1, "srcport": "2", "dstport": 3, "dstport": null, "action": "ACCEPT", "action": "REJECT"}"#,
    );
    assert_eq!(r.srcport, Some(2));
    assert_eq!(r.dstport, None);
    assert_eq!(r.action, Some(Action::Reject));
    // A bad value that is later overwritten no longer counts.
    let r = record(&mut p, br#"{"srcport": "x", "srcport": 5}"#);
    assert_eq!(r.srcport, Some(5));
}

#[test]
fn json_unknown_keys_ignored_whatever_they_hold() {
    let mut p = default_parser();
    let r = record(&mut p, br#"{"srcport": 80, "tags": {"a": [1, 2, {"b": true}]}, "note": false, "x": null}"#);
    assert_eq!(r.srcport, Some(80));
    assert_eq!(r.field("tags"), None);
    assert_eq!(r.raw.iter().count(), 1);
}

#[test]
fn json_underscore_keys_and_escapes() {
    let mut p = default_parser();
    let r = record(
        &mut p,
        br#"{"log_status": "SKIPDATA", "interface_id": "eni-\u0031\"x", "tcp_flags": 3, "vpc_id": "vpc-\u00e9"}"#,
    );
    assert_eq!(r.log_status, Some(LogStatus::SkipData));
    assert_eq!(r.interface_id, Some(&b"eni-1\"x"[..]));
    assert_eq!(r.tcp_flags, Some(3));
    assert_eq!(r.field("vpc-id"), Some("vpc-\u{e9}".as_bytes()));
}

#[test]
fn json_errors() {
    let mut p = default_parser();
    let cases: &[(&str, ParseError)] = &[
        ("{", ParseError::BadJson),
        ("{\"srcport\": 1,}", ParseError::BadJson),
        ("{\"srcport\": 1} trailing", ParseError::BadJson),
        ("{'srcport': 1}", ParseError::BadJson),
        ("{\"srcport\": 1}{\"srcport\": 2}", ParseError::BadJson),
        ("{\"srcport\": true}", ParseError::BadValue),
        ("{\"srcport\": [1]}", ParseError::BadValue),
        ("{\"srcaddr\": {\"v4\": \"1.1.1.1\"}}", ParseError::BadValue),
        ("{\"action\": \"DENY\"}", ParseError::BadValue),
        ("{\"srcport\": 65536}", ParseError::OutOfRange),
        ("{\"bytes\": 18446744073709551616}", ParseError::OutOfRange),
        ("{\"bytes\": 1e30}", ParseError::OutOfRange),
        ("{\"srcport\": -1}", ParseError::BadNumber),
        ("{\"srcport\": 1.5}", ParseError::BadNumber),
        ("{\"srcport\": \" 80\"}", ParseError::BadNumber),
        ("{\"srcaddr\": \"10.0.0\"}", ParseError::BadAddress),
        ("{\"srcaddr\": 167772161}", ParseError::BadAddress),
        ("{}", ParseError::FieldCount),
        ("{\"hello\": \"world\"}", ParseError::FieldCount),
    ];
    for (line, want) in cases {
        assert_eq!(reason(&mut p, line), *want, "{line}");
    }
}

#[test]
fn json_values_that_grow_when_written_are_bounded() {
    let mut p = default_parser();
    // 1e308 is written as 309 digits: repeated within one 32 KiB line it
    // would decode to 700 KB.
    let mut line = String::from("{");
    while line.len() < MAX_LINE_LEN - 20 {
        line.push_str("\"bytes\":1e308,");
    }
    line.push_str("\"srcport\":1}");
    assert_eq!(reason(&mut p, &line), ParseError::TooLong);
    assert!(p.json.buf.capacity() <= 2 * json::MAX_SCRATCH, "{}", p.json.buf.capacity());
    // A few of them are fine, and the parser goes on.
    assert_eq!(reason(&mut p, "{\"bytes\":1e308,\"bytes\":1e308}"), ParseError::OutOfRange);
    assert_eq!(record(&mut p, V2_OK.as_bytes()).dstport, Some(22));
}

#[test]
fn json_integral_float_is_a_number() {
    let mut p = default_parser();
    let r = record(&mut p, br#"{"bytes": 1000.0, "start": 1512564058000}"#);
    assert_eq!(r.bytes, Some(1000));
    assert_eq!(r.start, Some(1512564058));
}

#[test]
fn json_line_does_not_change_the_format() {
    let mut p = default_parser();
    assert!(matches!(p.parse_line(br#"{"srcport": 1}"#), Line::Record(_)));
    assert_eq!(p.format(), &Format::default_v2());
    assert_eq!(record(&mut p, V2_OK.as_bytes()).srcport, Some(20641));
    // And JSON lines are read the same way whatever the format.
    assert!(matches!(p.parse_line(b"srcaddr dstaddr"), Line::Header));
    assert_eq!(record(&mut p, br#"{"srcport": 7}"#).srcport, Some(7));
}
