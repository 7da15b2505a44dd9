//! Stateless rules: CIDR membership and port sets, precomputed for a lookup
//! per record without allocation.

use std::net::IpAddr;

use ipnet::IpNet;

/// A set of networks; `contains` is a linear scan, fine for the short lists
/// that configurations hold.
#[derive(Debug, Clone, Default)]
pub struct CidrSet {
    nets: Vec<IpNet>,
}

impl CidrSet {
    pub fn new(nets: &[IpNet]) -> CidrSet {
        CidrSet { nets: nets.to_vec() }
    }
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
    pub fn contains(&self, addr: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address matches IPv4 networks too.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&addr))
    }
}

/// A port → small index table (one byte per port, 64 KiB): `NONE` for ports
/// not in the set, else the port's position in the list given to `new`.
#[derive(Clone)]
pub struct PortTable {
    slots: Box<[u8; 65536]>,
    ports: Vec<u16>,
}

impl std::fmt::Debug for PortTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortTable").field("ports", &self.ports).finish()
    }
}

impl PortTable {
    pub const NONE: u8 = u8::MAX;

    /// At most 254 ports (the config keeps lists short); extra ones are ignored.
    pub fn new(ports: &[u16]) -> PortTable {
        let mut slots = Box::new([Self::NONE; 65536]);
        let mut kept = Vec::new();
        for &p in ports {
            if kept.len() >= 254 {
                break;
            }
            if slots[p as usize] == Self::NONE {
                slots[p as usize] = kept.len() as u8;
                kept.push(p);
            }
        }
        PortTable { slots, ports: kept }
    }
    #[inline]
    pub fn index(&self, port: u16) -> Option<usize> {
        match self.slots[port as usize] {
            Self::NONE => None,
            i => Some(i as usize),
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
    fn port_table_indexes_in_given_order() {
        let t = PortTable::new(&[443, 22, 443]);
        assert_eq!(t.index(443), Some(0));
        assert_eq!(t.index(22), Some(1));
        assert_eq!(t.index(23), None);
        assert_eq!(t.len(), 2);
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
