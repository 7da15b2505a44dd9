//! GeoIP: the three record shapes the exporter reads (`country.iso_code`,
//! `registered_country.iso_code`, top-level `country_code`) and misses, against
//! small .mmdb files under tests/data/geoip/. The files are written by the tiny
//! MaxMind DB writer in tests/mmdb/mod.rs (binary search tree + data section +
//! metadata, per the public MaxMind DB format spec 2.0); `fixtures_match_the_generator`
//! checks that the committed files are what it writes, and rewrites them when
//! `GEOIP_FIXTURES=write` is set (or a file is missing).

use std::net::IpAddr;
use std::path::PathBuf;

use vpc_flow_exporter::detect::geo::{Country, CountryLookup, MaxMindCountries};

/// The minimal MaxMind DB writer, shared with examples/gen_mmdb.rs.
mod mmdb;

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
                            ("continent", Map(vec![("code", Str("AS")), ("names", names("Asia"))])),
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
                                Map(vec![("iso_code", Str("US")), ("names", names("United States"))]),
                            ),
                        ]),
                    ),
                    ("2001:db8:1::/48", Map(vec![("country", Map(vec![("iso_code", Str("de"))]))])),
                    // A record with no country at all.
                    ("192.0.2.128/25", Map(vec![("continent", Map(vec![("code", Str("EU"))]))])),
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
                        ("registered_country", Map(vec![("iso_code", Str("NL")), ("names", names("Netherlands"))])),
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
        assert!(on_disk == bytes, "{name} differs from the generator: rerun with GEOIP_FIXTURES=write");
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
    for name in ["country-iso.mmdb", "registered-country.mmdb", "country-code.mmdb"] {
        let db = open(name);
        for a in ["8.8.8.8", "0.0.0.0", "255.255.255.255", "2001:db8:3::1", "::1", "ffff::1"] {
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
            let expect = if n >> 8 == 0x00cb_0071 { Country::Code(*b"JP") } else { Country::Unknown };
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
                    let a = IpAddr::V4(std::net::Ipv4Addr::new(45, 155, 205 + (i % 2) as u8, i as u8));
                    let want = if i % 2 == 0 { Country::Code(*b"BR") } else { Country::Unknown };
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
