//! Writes a synthetic country database (.mmdb) of realistic size and shape, for
//! the GeoIP benchmark (`GEOIP=synthetic scripts/bench.sh`):
//! `cargo run --release --example gen_mmdb -- PATH [IPV4_NETWORKS] [IPV6_NETWORKS] [SEED]`.
//!
//! Defaults: 400,000 IPv4 networks and about 100,000 IPv6 ones, seed 42; the same
//! arguments always give the same bytes. **Not real geography**: the networks
//! are made up, only the shape is realistic — IPv4 networks from /8 to /24
//! cutting up the unicast space (1.0.0.0–223.255.255.255 without 10/8 and
//! 127/8) unevenly, as allocations do, a few percent of it left out; IPv6
//! allocations from /16 to /32 under the RIR blocks of 2000::/3, half of them
//! whole, half as a few sparse /48s (so the IPv6 tree is sparse); about 250
//! records shared by all the networks, in the GeoIP2 / GeoLite2 Country shape
//! (`continent`, `country`, `registered_country`, each with `geoname_id`,
//! `iso_code` or `code`, and `names` in eight languages), a few with a
//! registered country different from the country, one with a registered
//! country only. Countries follow a skewed (Zipf-like) share, and neighbouring
//! networks often share a country. The file is checked with the maxminddb
//! crate (`verify()` and lookups of sampled networks) before it is written.

#[path = "../tests/mmdb/mod.rs"]
mod mmdb;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mmdb::Value::{self, Map, Str, U32};

/// The ISO 3166-1 alpha-2 codes in use.
const ISO: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL \
    BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE \
    DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ \
    GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM \
    KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ \
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN \
    PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY \
    SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF \
    WS YE YT ZA ZM ZW";

/// The largest holders first, for the skewed share.
const BIG: &[&str] = &[
    "US", "CN", "JP", "DE", "GB", "KR", "BR", "FR", "CA", "IT", "NL", "AU", "RU", "IN", "TW", "ES", "SE", "MX", "PL",
    "ZA",
];

const CONTINENTS: &[(&str, &str, u32)] = &[
    ("AF", "Africa", 6_255_146),
    ("AN", "Antarctica", 6_255_152),
    ("AS", "Asia", 6_255_147),
    ("EU", "Europe", 6_255_148),
    ("NA", "North America", 6_255_149),
    ("OC", "Oceania", 6_255_151),
    ("SA", "South America", 6_255_150),
];

const LANGUAGES: &[&str] = &["de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"];

/// splitmix64: fixed seed, same output everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// `names` in every language (made-up names: "Country XX", "Land XX", ...).
fn names(word: &str, what: &str) -> Value {
    Map(LANGUAGES.iter().map(|&lang| (lang, Str(leak(format!("{word} {what} ({lang})"))))).collect())
}

fn country(code: &'static str, geoname_id: u32) -> Value {
    Map(vec![("geoname_id", U32(geoname_id)), ("iso_code", Str(code)), ("names", names("Country", code))])
}

fn continent(i: usize) -> Value {
    let (code, name, id) = CONTINENTS[i];
    Map(vec![("code", Str(code)), ("geoname_id", U32(id)), ("names", names(name, ""))])
}

/// Leaves of a random binary partition: start from `roots`, split a random
/// leaf (no longer than `max_len`) in two until there are `target` leaves.
/// Splitting uniformly among leaves makes fragmented regions more fragmented,
/// so the prefix lengths spread out as real allocations do.
fn partition(rng: &mut Rng, roots: &[(u128, u8)], width: u8, max_len: u8, target: usize) -> Vec<(u128, u8)> {
    let mut leaves = roots.to_vec();
    let mut stuck = 0;
    while leaves.len() < target && stuck < 1_000_000 {
        let i = rng.below(leaves.len() as u64) as usize;
        let (base, len) = leaves[i];
        if len >= max_len {
            stuck += 1;
            continue;
        }
        leaves[i] = (base, len + 1);
        leaves.push((base | 1u128 << (width - len - 1), len + 1));
    }
    leaves.sort_unstable();
    leaves
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: gen_mmdb PATH [IPV4_NETWORKS] [IPV6_NETWORKS] [SEED]");
        std::process::exit(2);
    };
    let num = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    let v4_target = num(1, 400_000) as usize;
    let v6_target = num(2, 100_000) as usize;
    let mut rng = Rng(num(3, 42));

    // Records: one per country, then variants with another registered
    // country, then one with a registered country only.
    let codes: Vec<&'static str> = ISO.split_whitespace().collect();
    let mut records: Vec<Value> = Vec::new();
    let mut record_country: Vec<Option<&'static str>> = Vec::new();
    let mut continent_of = BTreeMap::new();
    for (i, &code) in codes.iter().enumerate() {
        let cont = rng.below(CONTINENTS.len() as u64) as usize;
        continent_of.insert(code, cont);
        records.push(Map(vec![
            ("continent", continent(cont)),
            ("country", country(code, 1_000_000 + i as u32)),
            ("registered_country", country(code, 1_000_000 + i as u32)),
        ]));
        record_country.push(Some(code));
    }
    for _ in 0..8 {
        let (a, b) = (rng.below(codes.len() as u64) as usize, rng.below(BIG.len() as u64) as usize);
        let reg = codes.iter().position(|c| *c == BIG[b]).unwrap();
        records.push(Map(vec![
            ("continent", continent(continent_of[codes[a]])),
            ("country", country(codes[a], 1_000_000 + a as u32)),
            ("registered_country", country(codes[reg], 1_000_000 + reg as u32)),
        ]));
        record_country.push(Some(codes[a]));
    }
    records.push(Map(vec![(
        "registered_country",
        country("US", 1_000_000 + codes.iter().position(|c| *c == "US").unwrap() as u32),
    )]));
    record_country.push(None);

    // Skewed share: the big holders by rank (1/rank), everyone else a little.
    let mut weights = vec![0.02f64; records.len()];
    for (rank, big) in BIG.iter().enumerate() {
        weights[codes.iter().position(|c| c == big).unwrap()] = 1.0 / (rank + 1) as f64;
    }
    let total: f64 = weights.iter().sum();
    let draw = |rng: &mut Rng| {
        let mut x = rng.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    };

    // IPv4: the unicast /8s but 0, 10 and 127.
    let roots: Vec<(u128, u8)> = (1u128..224).filter(|o| *o != 10 && *o != 127).map(|o| (o << 24, 8)).collect();
    let v4 = partition(&mut rng, &roots, 32, 24, v4_target * 103 / 100);
    // IPv6: allocations (/16../32) under the RIR blocks, half of them one
    // network each, the other half sparse /48s (customer sites) in one /40.
    let roots: Vec<(u128, u8)> = [0x2001u128, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c00]
        .iter()
        .map(|&p| (p << 112, if p == 0x2001 { 16 } else { 12 }))
        .collect();
    let mut v6 = Vec::new();
    for (base, len) in partition(&mut rng, &roots, 128, 32, v6_target / 4) {
        if rng.chance(0.5) {
            v6.push((base, len));
            continue;
        }
        let site40 = base | u128::from(rng.below(1 << (40 - len))) << 88;
        let mut sites: Vec<u128> = (0..1 + rng.below(12)).map(|_| u128::from(rng.below(256))).collect();
        sites.sort_unstable();
        sites.dedup();
        v6.extend(sites.into_iter().map(|s| (site40 | s << 80, 48)));
    }
    v6.sort_unstable();
    let v6_target = v6.len();

    let mut networks: Vec<(IpAddr, u8, usize)> = Vec::new();
    let mut v4_hist = [0usize; 33];
    let mut v4_count = 0;
    let mut v6_count = 0;
    for (list, is_v4, target) in [(&v4, true, v4_target), (&v6, false, v6_target)] {
        // Leave out about 3% (unallocated or unknown), keep the target count.
        let keep = target as f64 / list.len() as f64;
        let mut prev = 0;
        for &(base, len) in list {
            if !rng.chance(keep) {
                continue;
            }
            let record = if rng.chance(0.3) { prev } else { draw(&mut rng) };
            prev = record;
            let addr = if is_v4 {
                v4_hist[usize::from(len)] += 1;
                v4_count += 1;
                IpAddr::V4(Ipv4Addr::from(base as u32))
            } else {
                v6_count += 1;
                IpAddr::V6(Ipv6Addr::from(base))
            };
            networks.push((addr, len, record));
        }
    }

    let refs: Vec<&Value> = records.iter().collect();
    let bytes = mmdb::write_shared(
        "Synthetic-Country",
        "vpc-flow-exporter synthetic benchmark database (not real geography)",
        &refs,
        &networks,
    );

    // Check with the official reader before writing.
    let reader = maxminddb::Reader::from_source(bytes.as_slice()).expect("readable");
    reader.verify().expect("verify");
    for _ in 0..10_000 {
        let (addr, len, record) = networks[rng.below(networks.len() as u64) as usize];
        // A random address inside the network.
        let addr = match addr {
            IpAddr::V4(a) => {
                let host = (rng.next() as u32) >> len; // len <= 24
                IpAddr::V4(Ipv4Addr::from(u32::from(a) | host))
            }
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) | u128::from(rng.next() as u16))),
        };
        let found = reader.lookup(addr).expect("lookup");
        let code: Option<&str> = found.decode_path(&maxminddb::path!["country", "iso_code"]).expect("decode");
        assert_eq!(code, record_country[record], "{addr}");
    }
    let node_count = reader.metadata().node_count;
    drop(reader);

    let tmp = format!("{path}.tmp{}", std::process::id());
    std::fs::write(&tmp, &bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
    let hist: Vec<String> =
        (8..=24).map(|l| format!("/{l}:{:.1}%", 100.0 * v4_hist[l] as f64 / v4_count as f64)).collect();
    eprintln!(
        "gen_mmdb: {path}: {:.1} MB, {v4_count} IPv4 + {v6_count} IPv6 networks, {} records, {node_count} nodes; IPv4 {}",
        bytes.len() as f64 / 1e6,
        records.len(),
        hist.join(" "),
    );
}
