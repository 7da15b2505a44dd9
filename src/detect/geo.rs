//! Source countries: an ISO country code per address, from a MaxMind-format
//! database (`country.iso_code`, else `registered_country.iso_code`, else a
//! top-level `country_code`), or from the demo's built-in table.
//!
//! **Speed.** [`MaxMindCountries`] keeps two small direct-mapped caches in
//! front of the database, both lock-free arrays of `AtomicU64` so that the
//! lookup takes `&self` and the trait stays `Send + Sync`: an address cache
//! (IPv4 addresses; each entry is one word holding the address and its
//! country, so a reader sees a whole old or a whole new entry, never a torn
//! one) and a record cache keyed by the record's data-section offset (every
//! address of a network shares one record, so a miss in the address cache
//! still skips decoding). Races between threads only cost a repeated lookup.
//! Relaxed ordering is enough: an entry carries its own key.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use maxminddb::{path, Reader};

/// A two-letter country code (upper-case ASCII), or one of the two special
/// values the metric uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Country {
    Code([u8; 2]),
    Private,
    Unknown,
}

impl Country {
    pub fn label(&self) -> &str {
        match self {
            Country::Code(c) => std::str::from_utf8(c).unwrap_or("unknown"),
            Country::Private => "private",
            Country::Unknown => "unknown",
        }
    }

    /// A country from a two-letter ISO code in either case; `None` for
    /// anything else.
    pub fn from_iso(code: &str) -> Option<Country> {
        match code.as_bytes() {
            &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country::Code([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// 16 bits: the two letters, or 0 for `Unknown` (`Private` is never
    /// cached: it is decided before any lookup).
    fn pack(self) -> u16 {
        match self {
            Country::Code([a, b]) => u16::from(a) << 8 | u16::from(b),
            _ => 0,
        }
    }

    fn unpack(bits: u16) -> Country {
        match bits {
            0 => Country::Unknown,
            b => Country::Code([(b >> 8) as u8, b as u8]),
        }
    }
}

/// Where countries come from.
pub trait CountryLookup: Send + Sync + std::fmt::Debug {
    /// The country of a global address (`private` ones are decided before).
    fn lookup(&self, addr: IpAddr) -> Country;
}

/// Why a GeoIP database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("cannot open GeoIP database {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
}

/// Entries of the IPv4 address cache.
const ADDRESS_CACHE: usize = 16 * 1024;
/// Entries of the record cache.
const RECORD_CACHE: usize = 4 * 1024;
const VALID: u64 = 1 << 16;

/// A MaxMind-format (.mmdb) country or city database, loaded in memory.
pub struct MaxMindCountries {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
    /// IPv4 address cache: `address << 32 | VALID | country`.
    addresses: Box<[AtomicU64]>,
    /// Record cache: `(offset + 1) << 17 | VALID | country`.
    records: Box<[AtomicU64]>,
}

impl fmt::Debug for MaxMindCountries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaxMindCountries")
            .field("path", &self.path)
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl MaxMindCountries {
    /// Reads the database at `path` into memory; the error names the file.
    pub fn open(path: impl AsRef<Path>) -> Result<MaxMindCountries, GeoIpError> {
        let path = path.as_ref();
        let fail = |reason: String| GeoIpError::Open { path: path.to_path_buf(), reason };
        let bytes = crate::config::read_limited(path, crate::config::defaults::MAX_GEOIP_BYTES)
            .map_err(|e| fail(e.to_string()))?;
        let reader = Reader::from_source(bytes).map_err(|e| fail(format!("not a MaxMind DB (.mmdb) file: {e}")))?;
        let cache = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>().into_boxed_slice();
        Ok(MaxMindCountries {
            reader,
            path: path.to_path_buf(),
            addresses: cache(ADDRESS_CACHE),
            records: cache(RECORD_CACHE),
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database's own type name (e.g. `GeoLite2-Country`).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The database lookup behind the address cache.
    fn lookup_uncached(&self, addr: IpAddr) -> Country {
        let Ok(found) = self.reader.lookup(addr) else {
            return Country::Unknown;
        };
        let Some(offset) = found.offset() else {
            return Country::Unknown;
        };
        let offset = offset as u64;
        let slot = &self.records[(mix(offset) as usize) & (RECORD_CACHE - 1)];
        let tag = (offset + 1) << 17 | VALID;
        let seen = slot.load(Ordering::Relaxed);
        if seen & !0xffff == tag {
            return Country::unpack(seen as u16);
        }
        let mut country = Country::Unknown;
        for p in [&path!["country", "iso_code"][..], &path!["registered_country", "iso_code"], &path!["country_code"]] {
            // A path of another shape (e.g. `country` as a plain string in
            // IPinfo databases) is an error here: try the next one.
            if let Ok(Some(code)) = found.decode_path::<&str>(p) {
                if let Some(c) = Country::from_iso(code) {
                    country = c;
                    break;
                }
            }
        }
        slot.store(tag | u64::from(country.pack()), Ordering::Relaxed);
        country
    }
}

impl CountryLookup for MaxMindCountries {
    fn lookup(&self, addr: IpAddr) -> Country {
        let v4 = match addr {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4,
                None => return self.lookup_uncached(addr),
            },
        };
        let a = u32::from(v4);
        let slot = &self.addresses[(mix(u64::from(a)) as usize) & (ADDRESS_CACHE - 1)];
        let tag = u64::from(a) << 32 | VALID;
        let seen = slot.load(Ordering::Relaxed);
        if seen & !0xffff == tag {
            return Country::unpack(seen as u16);
        }
        let country = self.lookup_uncached(IpAddr::V4(v4));
        slot.store(tag | u64::from(country.pack()), Ordering::Relaxed);
        country
    }
}

#[inline]
fn mix(x: u64) -> u64 {
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The demo's networks and their countries. **Demo data, not real
/// geography**: mostly reserved benchmarking (198.18.0.0/15) and documentation
/// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) networks given made-up
/// countries, so that the demo's dashboards show a spread of countries without
/// a GeoIP database. The demo draws ordinary traffic from them and its attack
/// scenarios from the last three.
pub const DEMO_PREFIXES: &[(&str, &str)] = &[
    ("192.0.2.0/24", "US"),
    ("198.18.0.0/24", "US"),
    ("198.18.1.0/24", "DE"),
    ("198.18.2.0/24", "GB"),
    ("198.18.3.0/24", "FR"),
    ("198.18.4.0/24", "NL"),
    ("198.18.5.0/24", "BR"),
    ("198.18.6.0/24", "IN"),
    ("198.18.7.0/24", "JP"),
    ("198.18.8.0/24", "SG"),
    ("198.18.9.0/24", "AU"),
    ("198.18.10.0/24", "DE"),
    // Attack scenarios.
    ("203.0.113.0/24", "CN"),
    ("198.51.100.0/24", "RU"),
    ("45.155.205.0/24", "RU"),
];

/// The demo's built-in table ([`DEMO_PREFIXES`]); other addresses are
/// `unknown`. Not real geography.
#[derive(Debug, Clone)]
pub struct DemoCountries {
    nets: Vec<(IpNet, Country)>,
}

/// The demo's country table.
pub fn demo_countries() -> DemoCountries {
    let nets = DEMO_PREFIXES
        .iter()
        .filter_map(|(cidr, cc)| Some((cidr.parse::<IpNet>().ok()?, Country::from_iso(cc)?)))
        .collect();
    DemoCountries { nets }
}

impl CountryLookup for DemoCountries {
    fn lookup(&self, addr: IpAddr) -> Country {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        self.nets.iter().find(|(n, _)| n.contains(&addr)).map_or(Country::Unknown, |&(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn iso_codes() {
        assert_eq!(Country::from_iso("de"), Some(Country::Code(*b"DE")));
        assert_eq!(Country::from_iso("US").map(|c| c.label().to_string()), Some("US".to_string()));
        for bad in ["", "D", "DEU", "1A", "é"] {
            assert_eq!(Country::from_iso(bad), None, "{bad}");
        }
        for c in [Country::Code(*b"JP"), Country::Unknown] {
            assert_eq!(Country::unpack(c.pack()), c);
        }
        assert_eq!(Country::Private.label(), "private");
    }

    #[test]
    fn demo_table_parses_and_answers() {
        let demo = demo_countries();
        assert_eq!(demo.nets.len(), DEMO_PREFIXES.len());
        let countries: std::collections::BTreeSet<_> = DEMO_PREFIXES.iter().map(|p| p.1).collect();
        assert!(countries.len() >= 10);
        for (cidr, _) in DEMO_PREFIXES {
            let net: IpNet = cidr.parse().unwrap();
            assert!(!crate::detect::rules::is_private(net.network()), "{cidr}");
        }
        assert_eq!(demo.lookup(ip("203.0.113.7")), Country::Code(*b"CN"));
        assert_eq!(demo.lookup(ip("45.155.205.233")), Country::Code(*b"RU"));
        assert_eq!(demo.lookup(ip("198.18.7.1")), Country::Code(*b"JP"));
        assert_eq!(demo.lookup(ip("::ffff:198.18.2.1")), Country::Code(*b"GB"));
        assert_eq!(demo.lookup(ip("8.8.8.8")), Country::Unknown);
        assert_eq!(demo.lookup(ip("2001:db8::1")), Country::Unknown);
    }

    #[test]
    fn open_names_the_file() {
        let err = MaxMindCountries::open("/nonexistent/geo.mmdb").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/geo.mmdb"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"not a database").unwrap();
        let err = MaxMindCountries::open(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.mmdb") && err.contains("not a MaxMind DB"), "{err}");
    }
}
