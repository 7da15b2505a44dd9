//! Byte-level scanning. A line's separators (spaces and tabs) are found 16
//! bytes at a time (SSE2 on x86_64, eight-byte SWAR elsewhere) into a bit mask,
//! one bit per byte, and fields are then found with bit scans. Numbers are read
//! eight digits at a time (SWAR) with range checks, never wrapped; IPv4 by a
//! hand-written parser, IPv6 by the standard library. Nothing here allocates
//! (the mask buffer is the parser's), and nothing panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{ParseError, Span};

/// Fills `out` with the separator mask of `line`: bit `i % 64` of word
/// `i / 64` is set where byte `i` is a space or a tab. Bits past the end of
/// the line are set (at least one), so every field ends inside the mask.
#[inline]
pub(crate) fn separator_mask(line: &[u8], out: &mut Vec<u64>) {
    out.clear();
    let mut word = 0u64;
    let mut bit = 0u32;
    let mut chunks = line.chunks_exact(16);
    for chunk in &mut chunks {
        word |= u64::from(separators16(chunk)) << bit;
        bit += 16;
        if bit == 64 {
            out.push(word);
            word = 0;
            bit = 0;
        }
    }
    let rest = chunks.remainder().len();
    // The last partial chunk: the 16 bytes that end the line, shifted so
    // that only its own bytes count (no copy), or a padded copy when the
    // whole line is shorter than 16 bytes. Bytes past the end are separators.
    let tail = match line.len().checked_sub(16).and_then(|i| line.get(i..)) {
        Some(last16) if rest > 0 => (separators16(last16) >> (16 - rest)) | (0xffff << rest),
        _ => {
            let mut padded = [b' '; 16];
            for (d, s) in padded.iter_mut().zip(chunks.remainder()) {
                *d = *s;
            }
            separators16(&padded)
        }
    };
    word |= u64::from(tail) << bit;
    if bit + 16 < 64 {
        word |= u64::MAX << (bit + 16);
    }
    out.push(word);
}

/// Writes the start and end of each field of the line (the runs of bytes
/// between separators) into `out`, as many as fit, and returns how many
/// fields the line has. `seps` is the line's [`separator_mask`].
#[inline(always)]
pub(crate) fn field_spans(seps: &[u64], out: &mut [Span]) -> usize {
    let mut n_starts = 0usize;
    let mut n_ends = 0usize;
    // Before the line counts as a separator.
    let mut carry = 1u64;
    for (w, &s) in seps.iter().enumerate() {
        let before = (s << 1) | carry;
        carry = s >> 63;
        // A field starts where a separator is followed by a byte that is
        // not one, and ends at the first separator after it.
        let mut starts = !s & before;
        let mut ends = s & !before;
        let base = (w * 64) as u32;
        while starts != 0 {
            if let Some(span) = out.get_mut(n_starts) {
                span.start = base + starts.trailing_zeros();
            }
            starts &= starts - 1;
            n_starts += 1;
        }
        while ends != 0 {
            if let Some(span) = out.get_mut(n_ends) {
                span.end = base + ends.trailing_zeros();
            }
            ends &= ends - 1;
            n_ends += 1;
        }
    }
    // Bits past the end are set, so every start has its end.
    n_starts.min(n_ends)
}

/// Bit `i` set where byte `i` of a 16-byte chunk is a space or a tab.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn separators16(chunk: &[u8]) -> u32 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    if chunk.len() < 16 {
        return 0xffff;
    }
    // SAFETY: SSE2 is enabled (cfg above); the unaligned load reads the 16
    // bytes of `chunk`, whose length was just checked.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let s =
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)), _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\t' as i8)));
        _mm_movemask_epi8(s) as u32
    }
}

/// Bit `i` set where byte `i` of a 16-byte chunk is a space or a tab.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn separators16(chunk: &[u8]) -> u32 {
    separators16_swar(chunk)
}

/// The portable form of `separators16`, eight bytes at a time (also built
/// in tests, to check it against the SSE2 one).
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
#[inline(always)]
fn separators16_swar(chunk: &[u8]) -> u32 {
    match (load8(chunk, 0), load8(chunk, 8)) {
        (Some(a), Some(b)) => separators8(a) | (separators8(b) << 8),
        _ => 0xffff,
    }
}

#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
#[inline(always)]
fn separators8(w: u64) -> u32 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // 0x80 in every zero byte of v, exactly (no borrow between bytes).
    let zero = |v: u64| !(((v & LOW7).wrapping_add(LOW7)) | v | LOW7);
    let m = zero(w ^ (ONES * b' ' as u64)) | zero(w ^ (ONES * b'\t' as u64));
    // Gather the 0x80 flags into the low 8 bits: byte k -> bit k.
    (((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56) as u32
}

/// The eight bytes at `i`, little-endian (the byte at `i` lowest).
#[inline(always)]
fn load8(buf: &[u8], i: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// Eight ASCII digits (the first in the lowest byte) as a number, or `None`
/// when a byte is not a digit.
#[inline(always)]
fn swar8(w: u64) -> Option<u64> {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    // Every byte 0x30..=0x39: high nibble 3, and adding 6 does not carry out
    // of the low nibble.
    if w & HIGH != ASCII_ZEROS || (w.wrapping_add(0x0606_0606_0606_0606) & HIGH) != ASCII_ZEROS {
        return None;
    }
    let x = w - ASCII_ZEROS;
    // Pairs, then quads, then all eight (most significant digit first).
    let x = x.wrapping_mul(10).wrapping_add(x >> 8);
    let low = (x & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32));
    let high = ((x >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32));
    Some(low.wrapping_add(high) >> 32)
}

/// The up-to-eight digits `buf[end - n..end]`, read with one load of the
/// eight bytes before `end` (the bytes before the field count as `0`).
#[inline(always)]
fn digits_before(buf: &[u8], end: usize, n: usize) -> Option<u64> {
    let w = load8(buf, end.checked_sub(8)?)?;
    let w = match n {
        8 => w,
        1..=7 => {
            let keep = u64::MAX << (8 * (8 - n));
            (w & keep) | (ASCII_ZEROS & !keep)
        }
        _ => return None,
    };
    swar8(w)
}

/// The number written in `buf[start..end]` (digits only). Fields of 5 to 16
/// digits with 8 bytes before them are read eight digits at a time, shorter
/// ones digit by digit; the others (and every error) go through [`u64_field`].
#[inline(always)]
pub(crate) fn number_in(buf: &[u8], start: usize, end: usize) -> Result<u64, ParseError> {
    let n = end.wrapping_sub(start);
    let fast = match n {
        // A few digits: a plain loop costs less than the eight-digit step.
        1..=4 => {
            let mut v = 0u64;
            for &b in buf.get(start..end).unwrap_or_default() {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    return Err(ParseError::BadNumber);
                }
                v = v * 10 + d as u64;
            }
            Some(v)
        }
        5..=8 => digits_before(buf, end, n),
        // Unix times (10 digits): the last eight at once, the first two apart.
        9..=10 => digits_before(buf, end, 8).and_then(|low| {
            let mut high = 0u64;
            for &b in buf.get(start..end - 8)? {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                high = high * 10 + d as u64;
            }
            Some(high * 100_000_000 + low)
        }),
        11..=16 => digits_before(buf, end, 8)
            .zip(digits_before(buf, end - 8, n - 8))
            .map(|(low, high)| high * 100_000_000 + low),
        _ => None,
    };
    match fast {
        Some(v) => Ok(v),
        None => u64_field(buf.get(start..end).unwrap_or_default()),
    }
}

/// A decimal number of digits only (no sign, no spaces). More digits than
/// fit a u64 are [`ParseError::OutOfRange`], anything else [`ParseError::BadNumber`].
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
        v = v.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as u64)).ok_or(ParseError::OutOfRange)?;
    }
    Ok(v)
}

/// A number in `buf[start..end]` that must be at most `max`.
#[inline(always)]
pub(crate) fn bounded_in(buf: &[u8], start: usize, end: usize, max: u64) -> Result<u64, ParseError> {
    let v = number_in(buf, start, end)?;
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
pub(crate) fn timestamp_in(buf: &[u8], start: usize, end: usize) -> Result<u64, ParseError> {
    let v = number_in(buf, start, end)?;
    Ok(if v >= MILLIS_FROM { v / 1000 } else { v })
}

#[inline(always)]
fn digit(b: &u8) -> Option<u32> {
    let d = b.wrapping_sub(b'0');
    (d <= 9).then_some(d as u32)
}

/// Dotted-quad IPv4, four decimal octets of 1 to 3 digits without leading
/// zeros (as the standard library reads them), octet by octet.
#[inline(always)]
pub(crate) fn ipv4(t: &[u8]) -> Option<Ipv4Addr> {
    if t.len() < 7 || t.len() > 15 {
        return None;
    }
    let mut i = 0usize;
    let mut acc: u32 = 0;
    for k in 0..4 {
        let first = digit(t.get(i)?)?;
        let mut octet = first;
        i += 1;
        if let Some(d) = t.get(i).and_then(digit) {
            if first == 0 {
                return None;
            }
            octet = octet * 10 + d;
            i += 1;
            if let Some(d) = t.get(i).and_then(digit) {
                octet = octet * 10 + d;
                i += 1;
                if octet > 255 {
                    return None;
                }
            }
        }
        acc = (acc << 8) | octet;
        if k < 3 {
            if t.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == t.len()).then(|| Ipv4Addr::from(acc))
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
    std::str::from_utf8(t).ok().and_then(|s| s.parse::<Ipv6Addr>().ok()).map(IpAddr::V6).ok_or(ParseError::BadAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(line: &[u8]) -> Vec<&[u8]> {
        let mut seps = Vec::new();
        separator_mask(line, &mut seps);
        let mut spans = vec![Span::ABSENT; line.len()];
        let n = field_spans(&seps, &mut spans);
        // Only as many spans as fit are written; the count is still exact.
        let mut few = [Span::ABSENT; 1];
        assert_eq!(field_spans(&seps, &mut few), n);
        spans[..n].iter().map(|s| &line[s.start as usize..s.end as usize]).collect()
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

    /// The portable separator finder agrees with the one in use, byte by
    /// byte, for every byte value in every position.
    #[test]
    fn portable_separators_agree() {
        let naive =
            |c: &[u8]| c.iter().enumerate().fold(0u32, |m, (i, &b)| m | (u32::from(b == b' ' || b == b'\t') << i));
        for b in 0..=255u8 {
            for pos in 0..16 {
                let mut chunk = [b'x'; 16];
                chunk[pos] = b;
                chunk[(pos + 7) % 16] = b' ';
                assert_eq!(separators16(&chunk), naive(&chunk), "{b} at {pos}");
                assert_eq!(separators16_swar(&chunk), naive(&chunk), "{b} at {pos}");
            }
        }
        let all: Vec<u8> = (0..=255u8).collect();
        for c in all.chunks(16) {
            assert_eq!(separators16_swar(c), naive(c));
        }
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
    }

    /// `number_in` (eight digits at a time) agrees with the plain reader for
    /// every length and position, with any bytes before the field.
    #[test]
    fn number_in_agrees_with_u64_field() {
        let fields: &[&[u8]] = &[
            b"0",
            b"7",
            b"42",
            b"65535",
            b"1234567",
            b"12345678",
            b"99999999",
            b"123456789",
            b"1418530010",
            b"0000000000001",
            b"9999999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
            b"1:",
            b"12a4",
            b"/",
            b"123456789012345:",
            b"9999999999999999x",
            b"00000000",
            b"-1",
            b"1.5",
            b"\xff\xff",
            b"",
        ];
        for prefix in
            [&b""[..], b"x", b"2 123456789010 ", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"]
        {
            for f in fields {
                let mut buf = prefix.to_vec();
                buf.extend_from_slice(f);
                let (s, e) = (prefix.len(), buf.len());
                assert_eq!(number_in(&buf, s, e), u64_field(f), "{:?} after {:?}", f, prefix);
            }
        }
        for n in [0u64, 1, 9, 10, 99_999_999, 100_000_000, 4_294_967_296, 9_999_999_999_999_999, u64::MAX] {
            let mut buf = b"12345678 ".to_vec();
            buf.extend_from_slice(n.to_string().as_bytes());
            assert_eq!(number_in(&buf, 9, buf.len()), Ok(n));
        }
        assert_eq!(bounded_in(b"65536", 0, 5, 65535), Err(ParseError::OutOfRange));
        assert_eq!(bounded_in(b"x65535", 1, 6, 65535), Ok(65535));
    }

    #[test]
    fn swar_digits() {
        let w = |s: &[u8; 8]| u64::from_le_bytes(*s);
        assert_eq!(swar8(w(b"12345678")), Some(12_345_678));
        assert_eq!(swar8(w(b"00000000")), Some(0));
        assert_eq!(swar8(w(b"99999999")), Some(99_999_999));
        for bad in [b"1234567:", b"/2345678", b"1234 678", b"\x001234567", b"123456\xb97"] {
            assert_eq!(swar8(w(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps_in_milliseconds_become_seconds() {
        assert_eq!(timestamp_in(b"1418530010", 0, 10), Ok(1418530010));
        assert_eq!(timestamp_in(b"999999999999", 0, 12), Ok(999_999_999_999));
        assert_eq!(timestamp_in(b"1512564058000", 0, 13), Ok(1512564058));
        assert_eq!(timestamp_in(b"1512564058999", 0, 13), Ok(1512564058));
    }

    #[test]
    fn ipv4_agrees_with_std() {
        let cases: &[&str] = &[
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "172.31.16.139",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3.04",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "a.b.c.d",
            "1.2.3.-4",
            "1000.1.1.1",
            "1.2.3.0",
            "0.0.0.00",
        ];
        for c in cases {
            assert_eq!(ipv4(c.as_bytes()), c.parse::<Ipv4Addr>().ok(), "{c}");
        }
    }

    /// The hand-written IPv4 reader agrees with the standard library on
    /// many near-miss strings.
    #[test]
    fn ipv4_agrees_with_std_on_generated_strings() {
        let alphabet = b"0123456789..:a 1";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 5 + (state % 12) as usize;
            let mut s = Vec::with_capacity(len);
            let mut x = state;
            for _ in 0..len {
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
                x /= alphabet.len() as u64;
                if x == 0 {
                    x = state.rotate_left(17);
                }
            }
            let text = String::from_utf8(s).unwrap();
            assert_eq!(ipv4(text.as_bytes()), text.parse::<Ipv4Addr>().ok(), "{text:?}");
        }
        for a in [0u32, 1, 255, 256, 0x0a00_0001, 0xffff_ffff, 0xac1f_108b] {
            let ip = Ipv4Addr::from(a);
            assert_eq!(ipv4(ip.to_string().as_bytes()), Some(ip));
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
