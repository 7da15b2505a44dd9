//! The configured detection rules and their evaluation: [`Rules`] holds the
//! allowed sources, approved destinations, forbidden and watched ports, the
//! exposition thresholds and the GeoIP lookup, and [`Rules::classify`] turns
//! one record into a [`Classification`] (a few flags and indices, no
//! allocation) that the aggregator only counts. Below it, the stateless
//! building blocks: CIDR sets and port tables, precomputed for a lookup per
//! record.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::geo::{Country, CountryLookup, GeoIpError, MaxMindCountries};
use crate::config::{Config, Detections};
use crate::parse::{Action, LogStatus, Record};

/// What the rules say about one record. For a record whose log-status is not
/// OK only `action` and `status` are set: such records count by status only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The record's action (`unknown` when the format has none).
    pub action: Action,
    /// The record's log-status (`OK` when the format has none).
    pub status: LogStatus,
    /// An ACCEPT whose srcaddr is in none of the allowed source CIDRs.
    pub illegal_source_accept: bool,
    /// A pkt-dstaddr in none of the approved destination CIDRs.
    pub unapproved_destination: bool,
    /// TCP with both SYN and FIN set.
    pub short_connection: bool,
    /// The dstport, when it is a forbidden port.
    pub forbidden_port: Option<u16>,
    /// The row of the watched-port table: the port's position, or the number
    /// of watched ports (`other`); `None` without a dstport.
    pub watch_row: Option<u32>,
    /// The source's country, when a GeoIP lookup is configured and the record
    /// has a srcaddr.
    pub country: Option<Country>,
}

impl Classification {
    /// Whether the record is traffic (log-status OK) and so counted beyond its status.
    #[inline]
    pub fn is_traffic(&self) -> bool {
        self.status == LogStatus::Ok
    }
}

/// The detection rules of one configuration, shared (behind an `Arc`) by
/// every aggregator shard built from it.
#[derive(Debug, Clone)]
pub struct Rules {
    allowed_sources: CidrSet,
    approved_destinations: CidrSet,
    forbidden_ports: PortTable,
    watch_ports: PortTable,
    geo: Option<Arc<dyn CountryLookup>>,
    top_k_size: usize,
    port_scan_min_ports: u32,
    port_scan_export_min_ports: u32,
}

impl Rules {
    /// The rules of `detections`, without a GeoIP lookup.
    pub fn new(d: &Detections) -> Rules {
        Rules {
            allowed_sources: CidrSet::new(&d.allowed_source_cidrs),
            approved_destinations: CidrSet::new(&d.approved_destination_cidrs),
            forbidden_ports: PortTable::new(&d.forbidden_ports),
            watch_ports: PortTable::new(&d.watch_ports),
            geo: None,
            top_k_size: d.top_k.size,
            port_scan_min_ports: d.port_scan.min_distinct_ports,
            port_scan_export_min_ports: d.port_scan.shard_min_ports,
        }
    }

    /// The rules of a configuration, with its GeoIP database opened when it
    /// names one.
    pub fn load(config: &Config) -> Result<Rules, GeoIpError> {
        let rules = Rules::new(&config.detections);
        Ok(match &config.geoip {
            Some(g) => rules.with_countries(Arc::new(MaxMindCountries::open(&g.database)?)),
            None => rules,
        })
    }

    /// Sets where source countries come from.
    pub fn with_countries(mut self, geo: Arc<dyn CountryLookup>) -> Rules {
        self.geo = Some(geo);
        self
    }

    /// The country lookup, if any.
    pub fn countries(&self) -> Option<&Arc<dyn CountryLookup>> {
        self.geo.as_ref()
    }

    pub fn has_countries(&self) -> bool {
        self.geo.is_some()
    }
    pub fn forbidden_ports(&self) -> &PortTable {
        &self.forbidden_ports
    }
    pub fn watch_ports(&self) -> &PortTable {
        &self.watch_ports
    }
    /// `detections.top_k.size`: the K of the top-K gauges and of the port scanners listed.
    pub fn top_k_size(&self) -> usize {
        self.top_k_size
    }
    /// `detections.port_scan.min_distinct_ports`.
    pub fn port_scan_min_ports(&self) -> u32 {
        self.port_scan_min_ports
    }
    /// `detections.port_scan.shard_min_ports`: sources with this many ports are listed.
    pub fn port_scan_export_min_ports(&self) -> u32 {
        self.port_scan_export_min_ports
    }

    /// Evaluates every rule on one record.
    #[inline]
    pub fn classify(&self, r: &Record<'_>) -> Classification {
        let action = r.action.unwrap_or(Action::Unknown);
        let status = r.log_status.unwrap_or(LogStatus::Ok);
        let mut c = Classification {
            action,
            status,
            illegal_source_accept: false,
            unapproved_destination: false,
            short_connection: false,
            forbidden_port: None,
            watch_row: None,
            country: None,
        };
        if status != LogStatus::Ok {
            return c;
        }
        c.illegal_source_accept = action == Action::Accept
            && !self.allowed_sources.is_empty()
            && r.srcaddr.is_some_and(|s| !self.allowed_sources.contains(s));
        c.unapproved_destination = !self.approved_destinations.is_empty()
            && r.pkt_dstaddr.is_some_and(|d| !self.approved_destinations.contains(d));
        c.short_connection = r.protocol == Some(6) && r.tcp_flags.is_some_and(|f| f & 3 == 3);
        if let Some(port) = r.dstport {
            c.forbidden_port = self.forbidden_ports.contains(port).then_some(port);
            let row = self.watch_ports.index(port).unwrap_or(self.watch_ports.len());
            c.watch_row = Some(row as u32);
        }
        if let (Some(geo), Some(src)) = (&self.geo, r.srcaddr) {
            c.country = Some(if is_private(src) { Country::Private } else { geo.lookup(src) });
        }
        c
    }
}

/// A set of networks, kept as sorted, merged address intervals (IPv4 and IPv6
/// apart): `contains` is a binary search. A long IPv4 list also gets an index
/// by the address's first 16 bits, so that a lookup searches only the few
/// intervals of its /16 block: 100,000 CIDRs cost a record about what a
/// handful does, instead of a walk through 800 KB of intervals.
#[derive(Debug, Clone, Default)]
pub struct CidrSet {
    v4: Vec<(u32, u32)>,
    /// With more than [`CidrSet::INDEXED`] IPv4 intervals: for each /16 block
    /// `b`, the first interval that ends in or after it (`b = 65536`: the length).
    v4_blocks: Option<Box<[u32]>>,
    v6: Vec<(u128, u128)>,
}

/// Sorts and merges inclusive intervals that overlap or touch (`next(hi)` is
/// the address after `hi`, `None` at the top of the space).
fn merge<T: Copy + Ord>(mut v: Vec<(T, T)>, next: fn(T) -> Option<T>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if last.1 >= lo || next(last.1) == Some(lo) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out.shrink_to_fit();
    out
}

/// Whether `x` lies in one of the sorted, disjoint intervals.
#[inline]
fn in_intervals<T: Copy + Ord>(iv: &[(T, T)], x: T) -> bool {
    // The first interval starting after x; the one before it may hold x.
    let i = iv.partition_point(|&(lo, _)| lo <= x);
    i > 0 && iv[i - 1].1 >= x
}

impl CidrSet {
    pub fn new(nets: &[IpNet]) -> CidrSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in nets {
            match n {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        let v4 = merge(v4, |x| x.checked_add(1));
        let v4_blocks = (v4.len() > Self::INDEXED).then(|| {
            (0..=1u32 << 16)
                .map(|b| {
                    let first = v4.partition_point(|&(_, hi)| u64::from(hi) < u64::from(b) << 16);
                    u32::try_from(first).unwrap_or(u32::MAX)
                })
                .collect()
        });
        CidrSet { v4, v4_blocks, v6: merge(v6, |x| x.checked_add(1)) }
    }

    /// IPv4 intervals beyond which the /16 index is built (256 KiB).
    const INDEXED: usize = 64;

    #[inline]
    fn contains_v4(&self, x: u32) -> bool {
        match &self.v4_blocks {
            None => in_intervals(&self.v4, x),
            Some(blocks) => {
                let b = (x >> 16) as usize;
                // Intervals that reach into block b: from the first that ends in
                // or after it, to the first that ends after it (inclusive).
                let lo = blocks[b] as usize;
                let hi = (blocks[b + 1] as usize + 1).min(self.v4.len());
                lo < hi && in_intervals(&self.v4[lo..hi], x)
            }
        }
    }
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
    #[inline]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => self.contains_v4(u32::from(v4)),
            // An IPv4-mapped IPv6 address matches IPv4 networks too.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.contains_v4(u32::from(v4)),
                None => in_intervals(&self.v6, u128::from(v6)),
            },
        }
    }
}

/// A set of ports with a position each (their rank in sorted order): a
/// 128 KiB table answers both "in the set?" and "at which position?" with
/// one load. Any number of ports, up to all 65,536.
#[derive(Clone)]
pub struct PortTable {
    /// 0: not in the set; `v`: position `v - 1`; [`PortTable::SEARCH`]: a
    /// position too large for the table (only in lists of 65,534+ ports).
    slots: Box<[u16; 65536]>,
    ports: Vec<u16>,
}

impl std::fmt::Debug for PortTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortTable").field("ports", &self.ports).finish()
    }
}

impl PortTable {
    const SEARCH: u16 = u16::MAX;

    /// The ports, sorted and without duplicates; positions follow that order.
    pub fn new(ports: &[u16]) -> PortTable {
        let mut sorted = ports.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut slots = Box::new([0u16; 65536]);
        for (i, &p) in sorted.iter().enumerate() {
            slots[usize::from(p)] = u16::try_from(i + 1).ok().filter(|&v| v < Self::SEARCH).unwrap_or(Self::SEARCH);
        }
        PortTable { slots, ports: sorted }
    }
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.slots[usize::from(port)] != 0
    }
    /// The port's position in [`PortTable::ports`].
    #[inline]
    pub fn index(&self, port: u16) -> Option<usize> {
        match self.slots[usize::from(port)] {
            0 => None,
            Self::SEARCH => self.ports.binary_search(&port).ok(),
            v => Some(usize::from(v) - 1),
        }
    }
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
    pub fn len(&self) -> usize {
        self.ports.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// Whether an address is not globally routable, for the `private` country:
/// 10/8, 172.16/12, 192.168/16, 100.64/10, 127/8, 169.254/16, fc00::/7,
/// fe80::/10, ::1 (and 0.0.0.0, ::, which no real flow has).
pub fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 10
                || (o[0] == 172 && (o[1] & 0xf0) == 16)
                || (o[0] == 192 && o[1] == 168)
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 127
                || (o[0] == 169 && o[1] == 254)
                || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80 || v6.is_loopback() || v6.is_unspecified()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_set_matches_v4_and_mapped_v6() {
        let set = CidrSet::new(&["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()]);
        assert!(set.contains("10.1.2.3".parse().unwrap()));
        assert!(set.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(set.contains("2001:db8::1".parse().unwrap()));
        assert!(!set.contains("11.0.0.1".parse().unwrap()));
        assert!(!set.contains("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn port_table_indexes_in_sorted_order() {
        let t = PortTable::new(&[443, 22, 443]);
        assert_eq!(t.index(22), Some(0));
        assert_eq!(t.index(443), Some(1));
        assert_eq!(t.index(23), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn port_table_holds_every_port() {
        let all: Vec<u16> = (0..=u16::MAX).rev().collect();
        let t = PortTable::new(&all);
        assert_eq!(t.len(), 65536);
        for p in [0u16, 254, 255, 256, 23, 65535] {
            assert_eq!(t.index(p), Some(usize::from(p)), "{p}");
        }
        let some = PortTable::new(&[65535, 0, 300]);
        assert_eq!(some.index(300), Some(1));
        assert_eq!(some.index(301), None);
        assert!(!PortTable::new(&[]).contains(0));
    }

    #[test]
    fn cidr_set_merges_and_finds_edges() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/24",
            "10.0.1.0/24",
            "10.0.0.128/25",
            "192.168.0.0/16",
            "0.0.0.0/32",
            "255.255.255.255/32",
            "::/128",
            "ffff::/16",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let set = CidrSet::new(&nets);
        assert_eq!(set.v4.len(), 4, "{:?}", set.v4);
        for a in ["10.0.0.0", "10.0.1.255", "192.168.255.255", "0.0.0.0", "255.255.255.255", "::", "ffff:ffff::1"] {
            assert!(set.contains(a.parse().unwrap()), "{a}");
        }
        for a in ["10.0.2.0", "9.255.255.255", "192.169.0.0", "0.0.0.1", "255.255.255.254", "::1", "fffe::1"] {
            assert!(!set.contains(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn the_block_index_of_long_lists_agrees_with_a_linear_scan() {
        // 5,000 scattered networks of mixed sizes, some spanning /16 blocks.
        let nets: Vec<IpNet> = (0..5_000u32)
            .map(|i| {
                let len = [8u8, 15, 16, 20, 24, 31, 32][(i % 7) as usize];
                IpNet::V4(ipnet::Ipv4Net::new((i.wrapping_mul(2_654_435_761)).into(), len).unwrap().trunc())
            })
            .collect();
        let set = CidrSet::new(&nets);
        assert!(set.v4_blocks.is_some());
        for n in &nets {
            let IpNet::V4(n) = n else { continue };
            let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
            for a in [lo.wrapping_sub(1), lo, lo.wrapping_add(1), hi.wrapping_sub(1), hi, hi.wrapping_add(1)] {
                let addr = IpAddr::V4(a.into());
                assert_eq!(set.contains(addr), nets.iter().any(|n| n.contains(&addr)), "{addr}");
            }
        }
    }

    proptest::proptest! {
        /// The interval table answers as a linear scan over the networks would.
        #[test]
        fn cidr_set_agrees_with_a_linear_scan(
            nets in proptest::collection::vec((proptest::prelude::any::<u32>(), 0u8..=32), 0..200),
            probes in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..64),
        ) {
            let nets: Vec<IpNet> = nets
                .into_iter()
                .map(|(a, len)| IpNet::V4(ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc()))
                .collect();
            let set = CidrSet::new(&nets);
            let near: Vec<u32> = nets.iter().flat_map(|n| match n {
                IpNet::V4(n) => {
                    let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                    [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)]
                }
                IpNet::V6(_) => [0; 4],
            }).collect();
            for a in probes.into_iter().chain(near) {
                let addr = IpAddr::V4(a.into());
                proptest::prop_assert_eq!(set.contains(addr), nets.iter().any(|n| n.contains(&addr)), "{}", addr);
            }
        }
    }

    #[test]
    fn private_ranges() {
        for a in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::1",
        ] {
            assert!(is_private(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "192.169.0.1"] {
            assert!(!is_private(a.parse().unwrap()), "{a}");
        }
    }
}
