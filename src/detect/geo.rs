//! Source countries: an ISO country code per address, from a MaxMind-format
//! database (`country.iso_code`, else `registered_country.iso_code`, else a
//! top-level `country_code`), or from the demo's built-in table.

use std::net::IpAddr;

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
}

/// Where countries come from.
pub trait CountryLookup: Send + Sync + std::fmt::Debug {
    /// The country of a global address (`private` ones are decided before).
    fn lookup(&self, addr: IpAddr) -> Country;
}
