//! Every record of the AWS VPC User Guide page "Flow log record examples"
//! (CC BY-SA 4.0), with the values the page explains, read in the format the
//! page gives for it. The formats are also fed as S3 header lines, as an S3
//! file would carry them.

use std::net::IpAddr;

use vpc_flow_exporter::parse::{Action, Format, Line, LineParser, LogStatus, ParseError, Record};

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn parse_all<'a>(p: &'a mut LineParser, line: &'a str) -> Record<'a> {
    match p.parse_line(line.as_bytes()) {
        Line::Record(r) => r,
        other => panic!("{line:?}: {other:?}"),
    }
}

// ---- Accepted and rejected traffic (default format) ----

#[test]
fn accepted_ssh_and_rejected_rdp() {
    let mut p = LineParser::for_file(Format::default_v2());
    let r = parse_all(&mut p, "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK");
    assert_eq!(r.version, Some(2));
    assert_eq!(r.account_id, Some(&b"123456789010"[..]));
    assert_eq!(r.interface_id, Some(&b"eni-1235b8ca123456789"[..]));
    assert_eq!((r.srcaddr, r.dstaddr), (ip("172.31.16.139"), ip("172.31.16.21")));
    assert_eq!((r.srcport, r.dstport, r.protocol), (Some(20641), Some(22), Some(6)));
    assert_eq!((r.packets, r.bytes), (Some(20), Some(4249)));
    assert_eq!((r.start, r.end), (Some(1418530010), Some(1418530070)));
    assert_eq!((r.action, r.log_status), (Some(Action::Accept), Some(LogStatus::Ok)));
    assert!(r.is_traffic());

    let r = parse_all(&mut p, "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK");
    assert_eq!((r.srcaddr, r.dstaddr), (ip("172.31.9.69"), ip("172.31.9.12")));
    assert_eq!((r.srcport, r.dstport, r.protocol), (Some(49761), Some(3389), Some(6)));
    assert_eq!(r.action, Some(Action::Reject));
    assert!(r.is_traffic());
}

// ---- No data and skipped records ----

#[test]
fn nodata_and_skipdata() {
    let mut p = LineParser::for_file(Format::default_v2());
    for (line, eni, status) in [
        (
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA",
            "eni-1235b8ca123456789",
            LogStatus::NoData,
        ),
        (
            "2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA",
            "eni-11111111aaaaaaaaa",
            LogStatus::SkipData,
        ),
    ] {
        let r = parse_all(&mut p, line);
        assert_eq!(r.interface_id, Some(eni.as_bytes()));
        assert_eq!(r.log_status, Some(status));
        assert!(!r.is_traffic());
        assert_eq!((r.srcaddr, r.dstaddr, r.srcport, r.dstport, r.protocol), (None, None, None, None, None));
        assert_eq!((r.packets, r.bytes, r.action), (None, None, None));
        assert_eq!((r.start, r.end), (Some(1431280876), Some(1431280934)));
        assert_eq!(r.time(), Some(1431280934));
    }
}

// ---- Security group and network ACL rules ----

#[test]
fn icmp_ping_accepted_then_response_rejected_by_nacl() {
    let mut p = LineParser::for_file(Format::default_v2());
    let r = parse_all(
        &mut p,
        "2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 ACCEPT OK",
    );
    assert_eq!((r.srcaddr, r.dstaddr), (ip("203.0.113.12"), ip("172.31.16.139")));
    assert_eq!((r.srcport, r.dstport, r.protocol), (Some(0), Some(0), Some(1)));
    assert_eq!((r.packets, r.bytes), (Some(4), Some(336)));
    assert_eq!(r.action, Some(Action::Accept));

    let r = parse_all(
        &mut p,
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 203.0.113.12 0 0 1 4 336 1432917094 1432917142 REJECT OK",
    );
    assert_eq!((r.srcaddr, r.dstaddr), (ip("172.31.16.139"), ip("203.0.113.12")));
    assert_eq!(r.protocol, Some(1));
    assert_eq!((r.start, r.end), (Some(1432917094), Some(1432917142)));
    assert_eq!(r.action, Some(Action::Reject));
}

// ---- IPv6 traffic ----

#[test]
fn ipv6_ssh_accepted() {
    let mut p = LineParser::for_file(Format::default_v2());
    let r = parse_all(&mut p, "2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK");
    assert_eq!(r.srcaddr, ip("2001:db8:1234:a100:8d6e:3477:df66:f105"));
    assert_eq!(r.dstaddr, ip("2001:db8:1234:a102:3304:8879:34cf:4071"));
    assert!(r.srcaddr.unwrap().is_ipv6());
    assert_eq!((r.srcport, r.dstport, r.protocol), (Some(34892), Some(22), Some(6)));
    assert_eq!((r.packets, r.bytes), (Some(54), Some(8855)));
    assert_eq!(r.action, Some(Action::Accept));
}

// ---- TCP flag sequence ----

const TCP_FLAGS_FORMAT: &str = "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status";

/// (line, srcport, dstport, bytes, packets, start, end, tcp-flags)
type TcpFlagRecord = (&'static str, u16, u16, u64, u64, u64, u64, u16);

const TCP_FLAG_RECORDS: &[TcpFlagRecord] = &[
    // Two connections opened: SYN (2) from the client, SYN-ACK (18) back.
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK", 43416, 5001, 568, 8, 1566848875, 1566848933, 2),
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43416 10.0.0.62 52.213.180.42 6 376 7 1566848875 1566848933 ACCEPT 18 OK", 5001, 43416, 376, 7, 1566848875, 1566848933, 18),
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43418 5001 52.213.180.42 10.0.0.62 6 100701 70 1566848875 1566848933 ACCEPT 2 OK", 43418, 5001, 100701, 70, 1566848875, 1566848933, 2),
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43418 10.0.0.62 52.213.180.42 6 632 12 1566848875 1566848933 ACCEPT 18 OK", 5001, 43418, 632, 12, 1566848875, 1566848933, 18),
    // Second interval: FIN (1) both ways for the connection on port 43418.
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43418 10.0.0.62 52.213.180.42 6 63388 1219 1566848933 1566849113 ACCEPT 1 OK", 5001, 43418, 63388, 1219, 1566848933, 1566849113, 1),
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43418 5001 52.213.180.42 10.0.0.62 6 23294588 15774 1566848933 1566849113 ACCEPT 1 OK", 43418, 5001, 23294588, 15774, 1566848933, 1566849113, 1),
    // A short connection within one interval: SYN+FIN (3), SYN-ACK+FIN (19).
    // The second line has two spaces after 43638 on the AWS page.
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43638 5001 52.213.180.42 10.0.0.62 6 1260 17 1566933133 1566933193 ACCEPT 3 OK", 43638, 5001, 1260, 17, 1566933133, 1566933193, 3),
    ("3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43638  10.0.0.62 52.213.180.42 6 967 14 1566933133 1566933193 ACCEPT 19 OK", 5001, 43638, 967, 14, 1566933133, 1566933193, 19),
];

#[test]
fn tcp_flag_sequence() {
    let mut p = LineParser::for_file(Format::parse(TCP_FLAGS_FORMAT).unwrap());
    for &(line, sport, dport, bytes, packets, start, end, flags) in TCP_FLAG_RECORDS {
        let r = parse_all(&mut p, line);
        assert_eq!(r.version, Some(3));
        assert_eq!(r.field("vpc-id"), Some(&b"vpc-abcdefab012345678"[..]));
        assert_eq!(r.field("subnet-id"), Some(&b"subnet-aaaaaaaa012345678"[..]));
        assert_eq!(r.field("instance-id"), Some(&b"i-01234567890123456"[..]));
        assert_eq!(r.field("type"), Some(&b"IPv4"[..]));
        assert_eq!(r.interface_id, Some(&b"eni-1235b8ca123456789"[..]));
        assert_eq!(r.account_id, Some(&b"123456789010"[..]));
        assert_eq!((r.srcport, r.dstport), (Some(sport), Some(dport)), "{line}");
        assert_eq!((r.bytes, r.packets), (Some(bytes), Some(packets)));
        assert_eq!((r.start, r.end), (Some(start), Some(end)));
        assert_eq!(r.tcp_flags, Some(flags));
        // pkt-* equal the addresses here (no intermediate interface).
        assert_eq!((r.pkt_srcaddr, r.pkt_dstaddr), (r.srcaddr, r.dstaddr));
        assert_eq!(r.protocol, Some(6));
        assert_eq!((r.action, r.log_status), (Some(Action::Accept), Some(LogStatus::Ok)));
    }
    // SYN and FIN both set only on the short connection's two records.
    let short: Vec<u16> = TCP_FLAG_RECORDS.iter().map(|t| t.7).filter(|f| f & 0b11 == 0b11).collect();
    assert_eq!(short, [3, 19]);
}

// ---- Traffic through a NAT gateway ----

const NAT_FORMAT: &str = "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr";

#[test]
fn nat_gateway() {
    let mut p = LineParser::for_file(Format::parse(NAT_FORMAT).unwrap());
    // (line, instance-id, interface-id, srcaddr, dstaddr, pkt-srcaddr, pkt-dstaddr)
    #[allow(clippy::type_complexity)]
    let records: &[(&str, Option<&str>, &str, &str, &str, &str, &str)] = &[
        // Instance -> NAT interface: dstaddr is the NAT's private address,
        // pkt-dstaddr the host on the internet.
        (
            "- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5",
            None,
            "eni-1235b8ca123456789",
            "10.0.1.5",
            "10.0.0.220",
            "10.0.1.5",
            "203.0.113.5",
        ),
        (
            "- eni-1235b8ca123456789 10.0.0.220 203.0.113.5 10.0.0.220 203.0.113.5",
            None,
            "eni-1235b8ca123456789",
            "10.0.0.220",
            "203.0.113.5",
            "10.0.0.220",
            "203.0.113.5",
        ),
        (
            "- eni-1235b8ca123456789 203.0.113.5 10.0.0.220 203.0.113.5 10.0.0.220",
            None,
            "eni-1235b8ca123456789",
            "203.0.113.5",
            "10.0.0.220",
            "203.0.113.5",
            "10.0.0.220",
        ),
        // Response NAT -> instance: pkt-srcaddr is the internet host.
        (
            "- eni-1235b8ca123456789 10.0.0.220 10.0.1.5 203.0.113.5 10.0.1.5",
            None,
            "eni-1235b8ca123456789",
            "10.0.0.220",
            "10.0.1.5",
            "203.0.113.5",
            "10.0.1.5",
        ),
        // The instance's own interface: no difference between the pairs.
        (
            "i-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5",
            Some("i-01234567890123456"),
            "eni-1111aaaa2222bbbb3",
            "10.0.1.5",
            "203.0.113.5",
            "10.0.1.5",
            "203.0.113.5",
        ),
        (
            "i-01234567890123456 eni-1111aaaa2222bbbb3 203.0.113.5 10.0.1.5 203.0.113.5 10.0.1.5",
            Some("i-01234567890123456"),
            "eni-1111aaaa2222bbbb3",
            "203.0.113.5",
            "10.0.1.5",
            "203.0.113.5",
            "10.0.1.5",
        ),
    ];
    for &(line, instance, eni, src, dst, psrc, pdst) in records {
        let r = parse_all(&mut p, line);
        assert_eq!(r.field("instance-id"), instance.map(str::as_bytes), "{line}");
        assert_eq!(r.interface_id, Some(eni.as_bytes()));
        assert_eq!((r.srcaddr, r.dstaddr), (ip(src), ip(dst)));
        assert_eq!((r.pkt_srcaddr, r.pkt_dstaddr), (ip(psrc), ip(pdst)));
        // The format has neither action nor log-status: a traffic record.
        assert_eq!((r.action, r.log_status, r.version), (None, None, None));
        assert!(r.is_traffic());
    }
    // On the page, the instance lines carry a trailing "#..." comment: as
    // written there they have more fields than the format.
    let commented = "i-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5 #Traffic from the source instance to host on the internet";
    assert!(matches!(p.parse_line(commented.as_bytes()), Line::Invalid(ParseError::FieldCount)));
}

// ---- Traffic through a transit gateway ----

const TGW_FORMAT: &str = "version interface-id account-id vpc-id subnet-id instance-id srcaddr dstaddr srcport dstport protocol tcp-flags type pkt-srcaddr pkt-dstaddr action log-status";

#[test]
fn transit_gateway() {
    let mut p = LineParser::for_file(Format::parse(TGW_FORMAT).unwrap());
    // (line, interface, subnet, instance, src, dst, sport, dport, flags, pkt-src, pkt-dst)
    #[allow(clippy::type_complexity)]
    let records: &[(&str, &str, &str, Option<&str>, &str, &str, u16, u16, u16, &str, &str)] = &[
        ("3 eni-33333333333333333 123456789010 vpc-abcdefab012345678 subnet-22222222bbbbbbbbb i-01234567890123456 10.20.33.164 10.40.2.236 39812 80 6 3 IPv4 10.20.33.164 10.40.2.236 ACCEPT OK",
         "eni-33333333333333333", "subnet-22222222bbbbbbbbb", Some("i-01234567890123456"), "10.20.33.164", "10.40.2.236", 39812, 80, 3, "10.20.33.164", "10.40.2.236"),
        ("3 eni-33333333333333333 123456789010 vpc-abcdefab012345678 subnet-22222222bbbbbbbbb i-01234567890123456 10.40.2.236 10.20.33.164 80 39812 6 19 IPv4 10.40.2.236 10.20.33.164 ACCEPT OK",
         "eni-33333333333333333", "subnet-22222222bbbbbbbbb", Some("i-01234567890123456"), "10.40.2.236", "10.20.33.164", 80, 39812, 19, "10.40.2.236", "10.20.33.164"),
        // Requester-managed transit gateway interfaces: no instance, and the
        // pkt-* address is the client in the other VPC.
        ("3 eni-11111111111111111 123456789010 vpc-abcdefab012345678 subnet-11111111aaaaaaaaa - 10.40.1.175 10.40.2.236 39812 80 6 3 IPv4 10.20.33.164 10.40.2.236 ACCEPT OK",
         "eni-11111111111111111", "subnet-11111111aaaaaaaaa", None, "10.40.1.175", "10.40.2.236", 39812, 80, 3, "10.20.33.164", "10.40.2.236"),
        ("3 eni-22222222222222222 123456789010 vpc-abcdefab012345678 subnet-22222222bbbbbbbbb - 10.40.2.236 10.40.2.31 80 39812 6 19 IPv4 10.40.2.236 10.20.33.164 ACCEPT OK",
         "eni-22222222222222222", "subnet-22222222bbbbbbbbb", None, "10.40.2.236", "10.40.2.31", 80, 39812, 19, "10.40.2.236", "10.20.33.164"),
    ];
    for &(line, eni, subnet, instance, src, dst, sport, dport, flags, psrc, pdst) in records {
        let r = parse_all(&mut p, line);
        assert_eq!(r.version, Some(3));
        assert_eq!(r.interface_id, Some(eni.as_bytes()));
        assert_eq!(r.account_id, Some(&b"123456789010"[..]));
        assert_eq!(r.field("vpc-id"), Some(&b"vpc-abcdefab012345678"[..]));
        assert_eq!(r.field("subnet-id"), Some(subnet.as_bytes()));
        assert_eq!(r.field("instance-id"), instance.map(str::as_bytes));
        assert_eq!((r.srcaddr, r.dstaddr), (ip(src), ip(dst)));
        assert_eq!((r.srcport, r.dstport, r.protocol), (Some(sport), Some(dport), Some(6)));
        assert_eq!(r.tcp_flags, Some(flags));
        assert_eq!(r.field("type"), Some(&b"IPv4"[..]));
        assert_eq!((r.pkt_srcaddr, r.pkt_dstaddr), (ip(psrc), ip(pdst)));
        assert_eq!((r.action, r.log_status), (Some(Action::Accept), Some(LogStatus::Ok)));
        assert_eq!((r.packets, r.bytes, r.start), (None, None, None));
    }
}

// ---- Service name, traffic path, and flow direction (version 5) ----

const V5_FORMAT: &str = "version srcaddr dstaddr srcport dstport protocol start end type packets bytes account-id vpc-id subnet-id instance-id interface-id region az-id sublocation-type sublocation-id action tcp-flags pkt-srcaddr pkt-dstaddr pkt-src-aws-service pkt-dst-aws-service traffic-path flow-direction log-status";

#[test]
fn service_name_traffic_path_flow_direction() {
    let mut p = LineParser::for_file(Format::parse(V5_FORMAT).unwrap());
    let ingress = "5 52.95.128.179 10.0.0.71 80 34210 6 1616729292 1616729349 IPv4 14 15044 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 19 52.95.128.179 10.0.0.71 S3 - - ingress OK";
    let r = parse_all(&mut p, ingress);
    assert_eq!(r.version, Some(5));
    assert_eq!((r.srcaddr, r.dstaddr), (ip("52.95.128.179"), ip("10.0.0.71")));
    assert_eq!((r.srcport, r.dstport, r.protocol), (Some(80), Some(34210), Some(6)));
    assert_eq!((r.packets, r.bytes), (Some(14), Some(15044)));
    assert_eq!(r.account_id, Some(&b"123456789012"[..]));
    assert_eq!(r.field("region"), Some(&b"ap-southeast-2"[..]));
    assert_eq!(r.field("az-id"), Some(&b"apse2-az3"[..]));
    assert_eq!((r.field("sublocation-type"), r.field("sublocation-id")), (None, None));
    assert_eq!(r.tcp_flags, Some(19));
    assert_eq!(r.field("pkt-src-aws-service"), Some(&b"S3"[..]));
    assert_eq!(r.field("pkt-dst-aws-service"), None);
    // traffic-path is not reported for ingress traffic.
    assert_eq!(r.field("traffic-path"), None);
    assert_eq!(r.field("flow-direction"), Some(&b"ingress"[..]));
    assert_eq!(r.log_status, Some(LogStatus::Ok));

    let egress = "5 10.0.0.71 52.95.128.179 34210 80 6 1616729292 1616729349 IPv4 7 471 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 3 10.0.0.71 52.95.128.179 - S3 8 egress OK";
    let r = parse_all(&mut p, egress);
    assert_eq!((r.packets, r.bytes, r.tcp_flags), (Some(7), Some(471), Some(3)));
    assert_eq!(r.field("pkt-src-aws-service"), None);
    assert_eq!(r.field("pkt-dst-aws-service"), Some(&b"S3"[..]));
    // 8: through an internet gateway.
    assert_eq!(r.field("traffic-path"), Some(&b"8"[..]));
    assert_eq!(r.field("flow-direction"), Some(&b"egress"[..]));
    assert_eq!(r.pkt_dstaddr, ip("52.95.128.179"));
}

// ---- The same examples as S3 files: header line, then records ----

#[test]
fn examples_as_s3_files_with_header_lines() {
    let files: &[(&str, &[&str])] = &[
        (TCP_FLAGS_FORMAT, &[TCP_FLAG_RECORDS[0].0, TCP_FLAG_RECORDS[7].0]),
        (NAT_FORMAT, &["- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5"]),
        (TGW_FORMAT, &["3 eni-11111111111111111 123456789010 vpc-abcdefab012345678 subnet-11111111aaaaaaaaa - 10.40.1.175 10.40.2.236 39812 80 6 3 IPv4 10.20.33.164 10.40.2.236 ACCEPT OK"]),
    ];
    let mut p = LineParser::for_file(Format::default_v2());
    for (header, records) in files {
        p.reset();
        assert!(matches!(p.parse_line(header.as_bytes()), Line::Header), "{header}");
        assert_eq!(p.format(), &Format::parse(header).unwrap());
        for line in *records {
            let mut direct = LineParser::for_file(Format::parse(header).unwrap());
            let want = parse_all(&mut direct, line);
            let got = parse_all(&mut p, line);
            assert_eq!(got, want);
            assert!(got.pkt_srcaddr.is_some() || got.srcaddr.is_some());
        }
    }
    // A new file starts again with the configured format.
    p.reset();
    let r = parse_all(&mut p, "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA");
    assert_eq!(r.log_status, Some(LogStatus::NoData));
}
