//! GeoIP: the three record shapes the exporter reads (`country.iso_code`,
//! `registered_country.iso_code`, top-level `country_code`) and misses, against
//! small .mmdb files under tests/data/geoip/. The files are written by the tiny
//! MaxMind DB writer below (binary search tree + data section + metadata, per
//! the public MaxMind DB format spec 2.0); `fixtures_match_the_generator`
//! checks that the committed files are what it writes, and rewrites them when
//! `GEOIP_FIXTURES=write` is set (or a file is missing).

use std::net::IpAddr;
use std::path::PathBuf;

use vpc_flow_exporter::detect::geo::{Country, CountryLookup, MaxMindCountries};

/// A minimal MaxMind DB (.mmdb) writer: IPv6 tree (IPv4 under ::/96), 24-bit
/// records, no data deduplication.
mod mmdb {
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

    /// Networks → records; returns the file bytes.
    pub fn write(database_type: &'static str, networks: &[(&str, Value)]) -> Vec<u8> {
        let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
        let mut data = Vec::new();
        for (cidr, value) in networks {
            let (addr, len) = cidr.split_once('/').expect("cidr");
            let addr: IpAddr = addr.parse().expect("address");
            let len: usize = len.parse().expect("prefix");
            let (bits, len) = match addr {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), len + 96),
                IpAddr::V6(v6) => (u128::from(v6), len),
            };
            let offset = data.len();
            encode(value, &mut data);
            let mut node = 0;
            for depth in 0..len {
                let bit = ((bits >> (127 - depth)) & 1) as usize;
                if depth + 1 == len {
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
                    Rec::Data(_) => panic!("overlapping networks in fixture"),
                };
            }
        }
        let count = nodes.len();
        let mut out = Vec::new();
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
            (
                "description",
                Value::Map(vec![("en", Value::Str("vpc-flow-exporter test fixture"))]),
            ),
            ("ip_version", Value::U16(6)),
            ("languages", Value::Array(vec![Value::Str("en")])),
            ("node_count", Value::U32(count as u32)),
            ("record_size", Value::U16(24)),
        ]);
        encode(&meta, &mut out);
        out
    }
}

use mmdb::Value::{Map, Str, U32};

fn names(en: &'static str) -> mmdb::Value {
    Map(vec![("de", Str(en)), ("en", Str(en)), ("ja", Str(en))])
}

/// The fixtures: (file name, database type, networks).
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            // GeoIP2 / GeoLite2 Country and City shape.
            "country-iso.mmdb",
            mmdb::write(
                "Test-Country",
                &[
                    (
                        "203.0.113.0/24",
                        Map(vec![
                            (
                                "continent",
                                Map(vec![("code", Str("AS")), ("names", names("Asia"))]),
                            ),
                            (
                                "country",
                                Map(vec![
                                    ("geoname_id", U32(1_861_060)),
                                    ("iso_code", Str("JP")),
                                    ("names", names("Japan")),
                                ]),
                            ),
                            (
                                "registered_country",
                                Map(vec![
                                    ("iso_code", Str("US")),
                                    ("names", names("United States")),
                                ]),
                            ),
                        ]),
                    ),
                    (
                        "2001:db8:1::/48",
                        Map(vec![("country", Map(vec![("iso_code", Str("de"))]))]),
                    ),
                    // A record with no country at all.
                    (
                        "192.0.2.128/25",
                        Map(vec![("continent", Map(vec![("code", Str("EU"))]))]),
                    ),
                ],
            ),
        ),
        (
            // Anonymous / satellite networks: only the registered country.
            "registered-country.mmdb",
            mmdb::write(
                "Test-Country",
                &[(
                    "198.51.100.0/24",
                    Map(vec![
                        ("continent", Map(vec![("code", Str("EU"))])),
                        (
                            "registered_country",
                            Map(vec![
                                ("iso_code", Str("NL")),
                                ("names", names("Netherlands")),
                            ]),
                        ),
                        ("traits", Map(vec![("is_anycast", mmdb::Value::U16(1))])),
                    ]),
                )],
            ),
        ),
        (
            // ip-location-db (country_code only) and IPinfo Lite (country as a
            // plain string beside country_code) shapes.
            "country-code.mmdb",
            mmdb::write(
                "ipinfo-lite",
                &[
                    (
                        "45.155.205.0/24",
                        Map(vec![
                            ("continent", Str("South America")),
                            ("country", Str("Brazil")),
                            ("country_code", Str("BR")),
                        ]),
                    ),
                    ("2001:db8:2::/48", Map(vec![("country_code", Str("SG"))])),
                    ("192.0.2.0/25", Map(vec![("country_code", Str("ZZZ"))])),
                ],
            ),
        ),
    ]
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/geoip")
}

fn ensure_fixtures() {
    let dir = fixture_dir();
    let write = std::env::var("GEOIP_FIXTURES").is_ok_and(|v| v == "write");
    for (name, bytes) in fixtures() {
        let path = dir.join(name);
        if write || !path.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            // Atomic: tests run in parallel and may read while another writes.
            let tmp = dir.join(format!(".{name}.{:?}", std::thread::current().id()));
            std::fs::write(&tmp, &bytes).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }
}

fn open(name: &str) -> MaxMindCountries {
    ensure_fixtures();
    MaxMindCountries::open(fixture_dir().join(name)).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn fixtures_match_the_generator() {
    ensure_fixtures();
    for (name, bytes) in fixtures() {
        let on_disk = std::fs::read(fixture_dir().join(name)).unwrap();
        assert!(
            on_disk == bytes,
            "{name} differs from the generator: rerun with GEOIP_FIXTURES=write"
        );
        // The official reader accepts every fixture as a whole.
        let reader = maxminddb::Reader::from_source(on_disk).unwrap();
        reader.verify().unwrap();
    }
}

#[test]
fn country_iso_code_shape() {
    let db = open("country-iso.mmdb");
    assert_eq!(db.database_type(), "Test-Country");
    // country.iso_code wins over registered_country.
    assert_eq!(db.lookup(ip("203.0.113.9")), Country::Code(*b"JP"));
    assert_eq!(db.lookup(ip("203.0.113.255")), Country::Code(*b"JP"));
    // IPv6, and a lower-case code.
    assert_eq!(db.lookup(ip("2001:db8:1::42")), Country::Code(*b"DE"));
    // IPv4-mapped IPv6 is looked up as IPv4.
    assert_eq!(db.lookup(ip("::ffff:203.0.113.9")), Country::Code(*b"JP"));
    // Found, but no country in the record.
    assert_eq!(db.lookup(ip("192.0.2.200")), Country::Unknown);
}

#[test]
fn registered_country_shape() {
    let db = open("registered-country.mmdb");
    assert_eq!(db.lookup(ip("198.51.100.1")), Country::Code(*b"NL"));
    assert_eq!(db.lookup(ip("198.51.101.1")), Country::Unknown);
}

#[test]
fn top_level_country_code_shape() {
    let db = open("country-code.mmdb");
    // `country` is a plain string here: skipped, country_code read.
    assert_eq!(db.lookup(ip("45.155.205.77")), Country::Code(*b"BR"));
    assert_eq!(db.lookup(ip("2001:db8:2:ffff::1")), Country::Code(*b"SG"));
    // Not a two-letter code.
    assert_eq!(db.lookup(ip("192.0.2.1")), Country::Unknown);
}

#[test]
fn misses_are_unknown() {
    for name in [
        "country-iso.mmdb",
        "registered-country.mmdb",
        "country-code.mmdb",
    ] {
        let db = open(name);
        for a in [
            "8.8.8.8",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8:3::1",
            "::1",
            "ffff::1",
        ] {
            assert_eq!(db.lookup(ip(a)), Country::Unknown, "{name} {a}");
        }
    }
}

#[test]
fn cached_answers_match_uncached_ones() {
    let db = open("country-iso.mmdb");
    let fresh = open("country-iso.mmdb");
    // Many addresses hitting and colliding in the caches, twice over.
    for round in 0..2 {
        for i in 0..70_000u32 {
            let n = 0xcb00_7100u32.wrapping_add(i.wrapping_mul(37));
            let a = IpAddr::V4(n.into());
            let expect = if n >> 8 == 0x00cb_0071 {
                Country::Code(*b"JP")
            } else {
                Country::Unknown
            };
            assert_eq!(db.lookup(a), expect, "round {round} {a}");
        }
    }
    assert_eq!(fresh.lookup(ip("203.0.113.1")), Country::Code(*b"JP"));
}

#[test]
fn lookups_from_many_threads_agree() {
    let db = std::sync::Arc::new(open("country-code.mmdb"));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let a = IpAddr::V4(std::net::Ipv4Addr::new(
                        45,
                        155,
                        205 + (i % 2) as u8,
                        i as u8,
                    ));
                    let want = if i % 2 == 0 {
                        Country::Code(*b"BR")
                    } else {
                        Country::Unknown
                    };
                    assert_eq!(db.lookup(a), want);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn open_errors_name_the_file() {
    let missing = fixture_dir().join("no-such.mmdb");
    let err = MaxMindCountries::open(&missing).unwrap_err().to_string();
    assert!(err.contains("no-such.mmdb"), "{err}");
}
