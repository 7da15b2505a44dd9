//! Byte-level scanning for the text path: a bitmap of the separators of a line
//! (spaces and tabs, found eight bytes at a time), then per-field parsers for
//! numbers (digits only, range checked, never wrapped) and addresses (a
//! hand-written IPv4 parser, the standard library for IPv6). Nothing here
//! allocates except the reusable bitmap buffer, and nothing panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ParseError;

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// 0x80 in every byte of `v` that is zero, 0 elsewhere (exact, no false hits).
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    !(((v & LOW7).wrapping_add(LOW7)) | v | LOW7)
}

/// Bit `i` set where byte `i` of the little-endian word is a space or a tab.
#[inline(always)]
fn separators8(w: u64) -> u64 {
    let m = zero_bytes(w ^ (ONES * b' ' as u64)) | zero_bytes(w ^ (ONES * b'\t' as u64));
    // Gather the 0x80 flags into the low 8 bits: byte k -> bit k.
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    u64::from_le_bytes(chunk.try_into().unwrap_or([b' '; 8]))
}

/// Fills `out` with one bit per byte of `line`, set for spaces and tabs. Bits
/// past the end of the line are set, and there is always at least one such
/// bit, so every token ends inside the bitmap.
pub(crate) fn separator_bitmap(line: &[u8], out: &mut Vec<u64>) {
    out.clear();
    let mut blocks = line.chunks_exact(64);
    for block in &mut blocks {
        let mut m = 0u64;
        for (i, c) in block.chunks_exact(8).enumerate() {
            m |= separators8(word(c)) << (i * 8);
        }
        out.push(m);
    }
    let mut last = [b' '; 64];
    let rest = blocks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    let mut m = 0u64;
    for (i, c) in last.chunks_exact(8).enumerate() {
        m |= separators8(word(c)) << (i * 8);
    }
    out.push(m);
}

/// The first position at or after `from` that is not a separator, or
/// `usize::MAX` when only separators remain.
#[inline(always)]
pub(crate) fn token_start(bits: &[u64], from: usize) -> usize {
    let mut w = from / 64;
    let Some(&first) = bits.get(w) else {
        return usize::MAX;
    };
    let mut m = !first & (u64::MAX << (from % 64));
    loop {
        if m != 0 {
            return w * 64 + m.trailing_zeros() as usize;
        }
        w += 1;
        match bits.get(w) {
            Some(&b) => m = !b,
            None => return usize::MAX,
        }
    }
}

/// The first separator at or after `from` (the end of a token).
#[inline(always)]
pub(crate) fn token_end(bits: &[u64], from: usize) -> usize {
    let mut w = from / 64;
    let Some(&first) = bits.get(w) else {
        return usize::MAX;
    };
    let mut m = first & (u64::MAX << (from % 64));
    loop {
        if m != 0 {
            return w * 64 + m.trailing_zeros() as usize;
        }
        w += 1;
        match bits.get(w) {
            Some(&b) => m = b,
            None => return usize::MAX,
        }
    }
}

/// A decimal number of digits only (no sign, no spaces). More digits than
/// fit a u64 are [`ParseError::OutOfRange`], anything else [`ParseError::BadNumber`].
#[inline(always)]
pub(crate) fn u64_field(t: &[u8]) -> Result<u64, ParseError> {
    if t.is_empty() {
        return Err(ParseError::BadNumber);
    }
    if t.len() <= 19 {
        // 19 digits always fit in a u64: no overflow check needed.
        let mut v: u64 = 0;
        for &b in t {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return Err(ParseError::BadNumber);
            }
            v = v * 10 + d as u64;
        }
        return Ok(v);
    }
    long_u64(t)
}

#[cold]
fn long_u64(t: &[u8]) -> Result<u64, ParseError> {
    if !t.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadNumber);
    }
    let mut v: u64 = 0;
    for &b in t {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as u64))
            .ok_or(ParseError::OutOfRange)?;
    }
    Ok(v)
}

/// A number that must be at most `max`.
#[inline(always)]
pub(crate) fn bounded(t: &[u8], max: u64) -> Result<u64, ParseError> {
    let v = u64_field(t)?;
    if v > max {
        return Err(ParseError::OutOfRange);
    }
    Ok(v)
}

/// Values from this one on are taken as milliseconds: 10^12 seconds is the
/// year 33658, 10^12 milliseconds is September 2001.
pub(crate) const MILLIS_FROM: u64 = 1_000_000_000_000;

/// A Unix time in seconds; millisecond values (13 digits and more, which
/// some producers write) are brought back to seconds.
#[inline(always)]
pub(crate) fn timestamp(t: &[u8]) -> Result<u64, ParseError> {
    let v = u64_field(t)?;
    Ok(if v >= MILLIS_FROM { v / 1000 } else { v })
}

/// Dotted-quad IPv4, four decimal octets without leading zeros (as the
/// standard library reads them).
#[inline(always)]
pub(crate) fn ipv4(t: &[u8]) -> Option<Ipv4Addr> {
    if t.len() < 7 || t.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut idx = 0usize;
    let mut val: u32 = 0;
    let mut digits = 0u32;
    for &b in t {
        if b == b'.' {
            if digits == 0 || idx >= 3 {
                return None;
            }
            octets[idx] = val as u8;
            idx += 1;
            val = 0;
            digits = 0;
        } else {
            let d = b.wrapping_sub(b'0');
            if d > 9 || (digits > 0 && val == 0) {
                return None;
            }
            val = val * 10 + d as u32;
            digits += 1;
            if val > 255 {
                return None;
            }
        }
    }
    if idx != 3 || digits == 0 {
        return None;
    }
    octets[3] = val as u8;
    Some(Ipv4Addr::from(octets))
}

/// An IPv4 or IPv6 address.
#[inline(always)]
pub(crate) fn addr(t: &[u8]) -> Result<IpAddr, ParseError> {
    if let Some(a) = ipv4(t) {
        return Ok(IpAddr::V4(a));
    }
    ipv6(t)
}

#[cold]
fn ipv6(t: &[u8]) -> Result<IpAddr, ParseError> {
    // The longest IPv6 text is 45 bytes (IPv4-embedded form).
    if t.len() > 45 || !t.contains(&b':') {
        return Err(ParseError::BadAddress);
    }
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
        .ok_or(ParseError::BadAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(line: &[u8]) -> Vec<&[u8]> {
        let mut bits = Vec::new();
        separator_bitmap(line, &mut bits);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let s = token_start(&bits, pos);
            if s >= line.len() {
                break;
            }
            let e = token_end(&bits, s).min(line.len());
            out.push(&line[s..e]);
            pos = e;
        }
        out
    }

    #[test]
    fn splits_on_runs_of_spaces_and_tabs() {
        assert_eq!(tokens(b"a b"), vec![&b"a"[..], b"b"]);
        assert_eq!(tokens(b"  a \t\t b\t"), vec![&b"a"[..], b"b"]);
        assert_eq!(tokens(b""), Vec::<&[u8]>::new());
        assert_eq!(tokens(b" \t "), Vec::<&[u8]>::new());
        // Other control bytes are not separators.
        assert_eq!(tokens(b"a\x0bb c\rd"), vec![&b"a\x0bb"[..], b"c\rd"]);
    }

    #[test]
    fn splits_across_word_and_block_boundaries() {
        for len in 0..200 {
            for gap in 1..3 {
                let mut line = Vec::new();
                let mut want = Vec::new();
                let mut i = 0;
                while line.len() < len {
                    let tok = format!("t{i}");
                    want.push(tok.clone().into_bytes());
                    line.extend_from_slice(tok.as_bytes());
                    for g in 0..gap {
                        line.push(if (i + g) % 2 == 0 { b' ' } else { b'\t' });
                    }
                    i += 1;
                }
                let got: Vec<Vec<u8>> = tokens(&line).into_iter().map(<[u8]>::to_vec).collect();
                assert_eq!(got, want, "len {len} gap {gap}");
            }
        }
        // A token that ends exactly at a 64-byte block boundary.
        let line = vec![b'x'; 64];
        assert_eq!(tokens(&line), vec![&line[..]]);
        let line = vec![b'y'; 128];
        assert_eq!(tokens(&line), vec![&line[..]]);
    }

    #[test]
    fn numbers() {
        assert_eq!(u64_field(b"0"), Ok(0));
        assert_eq!(u64_field(b"007"), Ok(7));
        assert_eq!(u64_field(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(u64_field(b"9999999999999999999"), Ok(9_999_999_999_999_999_999));
        assert_eq!(u64_field(b"18446744073709551616"), Err(ParseError::OutOfRange));
        assert_eq!(u64_field(b"99999999999999999999999999"), Err(ParseError::OutOfRange));
        assert_eq!(u64_field(b"000000000000000000000000001"), Ok(1));
        assert_eq!(u64_field(b"1844674407370955161x"), Err(ParseError::BadNumber));
        for bad in [&b""[..], b"-1", b"+1", b"1.5", b"1e3", b"0x10", b" 1", b"\xff"] {
            assert_eq!(u64_field(bad), Err(ParseError::BadNumber), "{bad:?}");
        }
        assert_eq!(bounded(b"65535", 65535), Ok(65535));
        assert_eq!(bounded(b"65536", 65535), Err(ParseError::OutOfRange));
        assert_eq!(bounded(b"x", 65535), Err(ParseError::BadNumber));
    }

    #[test]
    fn timestamps_in_milliseconds_become_seconds() {
        assert_eq!(timestamp(b"1418530010"), Ok(1418530010));
        assert_eq!(timestamp(b"999999999999"), Ok(999_999_999_999));
        assert_eq!(timestamp(b"1512564058000"), Ok(1512564058));
        assert_eq!(timestamp(b"1512564058999"), Ok(1512564058));
    }

    #[test]
    fn ipv4_agrees_with_std() {
        let cases: &[&str] = &[
            "0.0.0.0", "255.255.255.255", "10.0.0.1", "172.31.16.139", "1.2.3", "1.2.3.4.5",
            "256.1.1.1", "01.2.3.4", "1.2.3.04", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ",
            "a.b.c.d", "1.2.3.-4", "1000.1.1.1", "1.2.3.0", "0.0.0.00",
        ];
        for c in cases {
            assert_eq!(ipv4(c.as_bytes()), c.parse::<Ipv4Addr>().ok(), "{c}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(addr(b"10.0.0.1"), Ok("10.0.0.1".parse().unwrap()));
        assert_eq!(
            addr(b"2001:db8:1234:a100:8d6e:3477:df66:f105"),
            Ok("2001:db8:1234:a100:8d6e:3477:df66:f105".parse().unwrap())
        );
        assert_eq!(addr(b"::1"), Ok("::1".parse().unwrap()));
        assert_eq!(addr(b"::ffff:10.0.0.1"), Ok("::ffff:10.0.0.1".parse().unwrap()));
        for bad in [&b"10.0.0"[..], b"10.0.0.256", b"eni-1", b"fe80::1%eth0", b":::", b"\xff:\xff", b"-"] {
            assert_eq!(addr(bad), Err(ParseError::BadAddress), "{bad:?}");
        }
    }
}
