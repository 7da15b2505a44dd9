//! A minimal MaxMind DB (.mmdb) writer: IPv6 tree (IPv4 under ::/96), 24-bit
//! records, per the public MaxMind DB format spec 2.0 (binary search tree +
//! data section + metadata). Shared by tests/detect_geo.rs (the fixtures under
//! tests/data/geoip/) and examples/gen_mmdb.rs (the benchmark database), which
//! includes it with `#[path]`.
#![allow(dead_code)]

use std::net::IpAddr;

pub enum Value {
    Str(&'static str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, Value)>),
    Array(Vec<Value>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65536 {
        let s = (size - 285) as u16;
        (30, s.to_be_bytes().to_vec())
    } else {
        let s = (size - 65821) as u32;
        (31, s.to_be_bytes()[1..].to_vec())
    };
    if kind <= 7 {
        out.push(kind << 5 | bits);
    } else {
        out.push(bits);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64, width: usize) {
    let bytes = v.to_be_bytes();
    let skip = bytes[8 - width..].iter().take_while(|&&b| b == 0).count();
    let payload = &bytes[8 - width + skip..];
    control(out, kind, payload.len());
    out.extend_from_slice(payload);
}

pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(out, 5, u64::from(*n), 2),
        Value::U32(n) => uint(out, 6, u64::from(*n), 4),
        Value::U64(n) => uint(out, 9, *n, 8),
        Value::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(&Value::Str(k), out);
                encode(v, out);
            }
        }
        Value::Array(items) => {
            control(out, 11, items.len());
            for v in items {
                encode(v, out);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// Networks → records; returns the file bytes. Each network gets its own
/// copy of its record, in order.
pub fn write(database_type: &'static str, networks: &[(&str, Value)]) -> Vec<u8> {
    let records: Vec<&Value> = networks.iter().map(|(_, v)| v).collect();
    let nets: Vec<(IpAddr, u8, usize)> = networks
        .iter()
        .enumerate()
        .map(|(i, (cidr, _))| {
            let (addr, len) = cidr.split_once('/').expect("cidr");
            (addr.parse().expect("address"), len.parse().expect("prefix"), i)
        })
        .collect();
    write_shared(database_type, "vpc-flow-exporter test fixture", &records, &nets)
}

/// Networks (address, prefix length, index into `records`) → file bytes.
/// Each record is stored once, in order, and shared by all its networks, as
/// real databases do. Networks must not overlap.
pub fn write_shared(
    database_type: &'static str,
    description: &'static str,
    records: &[&Value],
    networks: &[(IpAddr, u8, usize)],
) -> Vec<u8> {
    let mut data = Vec::new();
    let offsets: Vec<usize> = records
        .iter()
        .map(|v| {
            let offset = data.len();
            encode(v, &mut data);
            offset
        })
        .collect();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
    for &(addr, len, record) in networks {
        let len = usize::from(len);
        let (bits, len) = match addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), len + 96),
            IpAddr::V6(v6) => (u128::from(v6), len),
        };
        let offset = offsets[record];
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                assert!(matches!(nodes[node][bit], Rec::Empty), "overlapping networks");
                nodes[node][bit] = Rec::Data(offset);
                break;
            }
            node = match nodes[node][bit] {
                Rec::Node(n) => n,
                Rec::Empty => {
                    nodes.push([Rec::Empty; 2]);
                    let n = nodes.len() - 1;
                    nodes[node][bit] = Rec::Node(n);
                    n
                }
                Rec::Data(_) => panic!("overlapping networks"),
            };
        }
    }
    let count = nodes.len();
    assert!(count + 16 + data.len() < 1 << 24, "too big for 24-bit records");
    let mut out = Vec::with_capacity(count * 6 + 16 + data.len() + 512);
    for n in &nodes {
        for r in n {
            let v = match *r {
                Rec::Empty => count,
                Rec::Node(i) => i,
                Rec::Data(off) => count + 16 + off,
            };
            out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let meta = Value::Map(vec![
        ("binary_format_major_version", Value::U16(2)),
        ("binary_format_minor_version", Value::U16(0)),
        ("build_epoch", Value::U64(1_700_000_000)),
        ("database_type", Value::Str(database_type)),
        ("description", Value::Map(vec![("en", Value::Str(description))])),
        ("ip_version", Value::U16(6)),
        ("languages", Value::Array(vec![Value::Str("en")])),
        ("node_count", Value::U32(count as u32)),
        ("record_size", Value::U16(24)),
    ]);
    encode(&meta, &mut out);
    out
}
