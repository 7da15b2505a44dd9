//! Compact address keys for the trackers: every address as one `u128`, IPv4
//! as its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), so that one hash map holds
//! both families with a fixed-size, cheaply hashed key. An IPv6 record whose
//! address is itself IPv4-mapped is reported as the IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_MAPPED: u128 = 0xffff_0000_0000;

/// The key of an address.
#[inline]
pub fn key_of(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => V4_MAPPED | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of a key (IPv4-mapped keys give IPv4 addresses).
#[inline]
pub fn addr_of(key: u128) -> IpAddr {
    if key >> 32 == 0xffff {
        IpAddr::V4(Ipv4Addr::from(key as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(key))
    }
}

/// A sort key that orders keys as `IpAddr` orders their addresses: every IPv4
/// address before every IPv6 one, each family by value.
#[inline]
pub fn addr_order(key: u128) -> (bool, u128) {
    (key >> 32 != 0xffff, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_order_like_ipaddr() {
        let addrs: Vec<IpAddr> =
            ["0.0.0.0", "10.0.0.1", "255.255.255.255", "::", "::1", "2001:db8::1", "ffff::1", "::fffe:0:0"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        for &a in &addrs {
            assert_eq!(addr_of(key_of(a)), a);
        }
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(addr_of(key_of(mapped)), "1.2.3.4".parse::<IpAddr>().unwrap());
        for a in &addrs {
            for b in &addrs {
                assert_eq!(addr_order(key_of(*a)).cmp(&addr_order(key_of(*b))), a.cmp(b), "{a} {b}");
            }
        }
    }
}
