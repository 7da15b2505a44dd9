//! Detection hot path: ns per REJECT record for the windowed top-K and the
//! port-scan tracker, at default capacities and windows.
//!
//! - `worst`: sources cycle through 2 million distinct addresses (each seen
//!   every 2 million records), destinations over 1 million, random ports:
//!   nearly every record is a new address, so the trackers run at capacity
//!   and compact all the time.
//! - `hot`: 1,000 sources with 1 to 3 ports each: every record is a hit.
//!
//! Flow time advances 1 s every 10,000 records, with records up to 60 s late;
//! the trackers persist across iterations so the figures are the steady state.
//! Also: scrape-time cost (`top`, `scanners` over full trackers; `snapshot`,
//! what the collector calls under the writers' lock, over 50,000 tracked
//! addresses; `merge_from` of two 25,000-address shards) and GeoIP
//! lookups against a test fixture (cached and uncached addresses), and the
//! allow-list rule (`CidrSet::contains`) with 3 CIDRs and with 100,000, where a
//! linear scan was 120 times slower.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vpc_flow_exporter::detect::geo::{CountryLookup, MaxMindCountries};
use vpc_flow_exporter::detect::portscan::PortScanTracker;
use vpc_flow_exporter::detect::rules::CidrSet;
use vpc_flow_exporter::detect::topk::WindowedTopK;
use vpc_flow_exporter::detect::tracker::select_top;

const BATCH: u64 = 10_000;
const TOP_K_WINDOW: Duration = Duration::from_secs(15 * 60);
const SCAN_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A stream of REJECT records: (src, dst, port, time, newest).
struct Stream {
    rng: SmallRng,
    i: u64,
    sources: u64,
    destinations: u64,
    hot_ports: bool,
    newest: u64,
}

impl Stream {
    fn new(sources: u64, destinations: u64, hot_ports: bool) -> Stream {
        Stream { rng: SmallRng::seed_from_u64(7), i: 0, sources, destinations, hot_ports, newest: 0 }
    }
    #[inline]
    fn next(&mut self) -> (IpAddr, IpAddr, u16, u64, u64) {
        let r = self.rng.random::<u64>();
        let i = self.i;
        self.i += 1;
        let time = 1_700_000_000 + i / 10_000 - (r % 60);
        self.newest = self.newest.max(time);
        let s = (i % self.sources) as u32;
        let src = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + s));
        let dst = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + ((r >> 8) % self.destinations) as u32));
        let port = if self.hot_ports { 22 + (s + (r >> 40) as u32 % 3) as u16 } else { (r >> 40) as u16 };
        (src, dst, port, time, self.newest)
    }
}

fn trackers(c: &mut Criterion) {
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(BATCH));
    for (name, sources, destinations, hot) in [("worst", 2_000_000, 1_000_000, false), ("hot", 1_000, 1_000, true)] {
        let mut stream = Stream::new(sources, destinations, hot);
        let mut top = WindowedTopK::new(TOP_K_WINDOW, 50_000);
        g.bench_function(format!("topk_add/{name}"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let (src, _, _, time, newest) = stream.next();
                    top.add(src, time, newest);
                }
            })
        });
        let mut stream = Stream::new(sources, destinations, hot);
        let mut scans = PortScanTracker::new(SCAN_WINDOW, 20_000);
        g.bench_function(format!("portscan_add/{name}"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let (src, _, port, time, newest) = stream.next();
                    scans.add(src, port, time, newest);
                }
            })
        });
        // What the aggregator does per REJECT record: all three.
        let mut stream = Stream::new(sources, destinations, hot);
        let mut by_src = WindowedTopK::new(TOP_K_WINDOW, 50_000);
        let mut by_dst = WindowedTopK::new(TOP_K_WINDOW, 50_000);
        let mut scans = PortScanTracker::new(SCAN_WINDOW, 20_000);
        g.bench_function(format!("all_three/{name}"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let (src, dst, port, time, newest) = stream.next();
                    by_src.add(src, time, newest);
                    by_dst.add(dst, time, newest);
                    scans.add(src, port, time, newest);
                }
            })
        });
    }
    // The stream alone, to subtract.
    let mut stream = Stream::new(2_000_000, 1_000_000, false);
    g.bench_function("stream_only", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(stream.next());
            }
        })
    });
    g.finish();
}

fn scrape(c: &mut Criterion) {
    let mut g = c.benchmark_group("detect_scrape");
    let mut stream = Stream::new(2_000_000, 1_000_000, false);
    let mut top = WindowedTopK::new(TOP_K_WINDOW, 50_000);
    let mut scans = PortScanTracker::new(SCAN_WINDOW, 20_000);
    for _ in 0..3_000_000 {
        let (src, _, port, time, newest) = stream.next();
        top.add(src, time, newest);
        scans.add(src, port, time, newest);
    }
    let newest = stream.newest;
    g.bench_function("topk_top25_full", |b| {
        let mut out = Vec::with_capacity(25);
        b.iter(|| {
            out.clear();
            top.top(25, newest, &mut out);
            black_box(&out);
        })
    });
    g.bench_function("portscan_scanners_full", |b| {
        let mut out = Vec::with_capacity(25);
        b.iter(|| {
            out.clear();
            black_box(scans.scanners(20, 25, newest, &mut out));
        })
    });
    g.finish();
}

/// 50,000 addresses, each with records in every 45 s of the window (all
/// with rings), split over `shards` trackers by address.
fn filled(shards: u32) -> (Vec<WindowedTopK>, Vec<PortScanTracker>, u64) {
    let mut tops: Vec<WindowedTopK> = (0..shards).map(|_| WindowedTopK::new(TOP_K_WINDOW, 50_000)).collect();
    let mut scans: Vec<PortScanTracker> = (0..shards).map(|_| PortScanTracker::new(SCAN_WINDOW, 50_000)).collect();
    let base = 1_700_000_000u64;
    let mut newest = base;
    for round in 0..20u64 {
        let time = base + round * 45;
        newest = newest.max(time);
        for i in 0..50_000u32 {
            let src = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            let shard = (i % shards) as usize;
            tops[shard].add(src, time - u64::from(i % 40), newest);
            // One address in 8 with 20 ports (spilled), the others with 3.
            let port = if i % 8 == 0 { 1000 + round as u16 } else { 22 + (round % 3) as u16 };
            scans[shard].add(src, port, time - u64::from(i % 40), newest);
        }
    }
    (tops, scans, newest)
}

fn snapshot(c: &mut Criterion) {
    let mut g = c.benchmark_group("detect_snapshot");
    let (tops, scans, newest) = filled(1);
    assert_eq!((tops[0].len(), scans[0].len()), (50_000, 50_000));
    let mut out = Vec::with_capacity(50_000);
    // At the newest time seen; one slot later (what a scrape reads when the
    // aggregator's newest record was not a REJECT: one slot subtracted per
    // ring); 450 s later (half of every ring subtracted).
    let later = [("topk_50k", newest), ("topk_50k_next_slot", newest + 15), ("topk_50k_aged", newest + 450)];
    for (name, at) in later {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                tops[0].snapshot(at, &mut out);
                black_box(&out);
            })
        });
    }
    g.bench_function("portscan_50k", |b| {
        b.iter(|| {
            out.clear();
            scans[0].snapshot(newest, 1, &mut out);
            black_box(&out);
        })
    });
    // The selection the collector then does outside the lock.
    out.clear();
    tops[0].snapshot(newest, &mut out);
    let mut work = Vec::with_capacity(50_000);
    g.bench_function("select_top25_of_50k", |b| {
        b.iter(|| {
            work.clear();
            work.extend_from_slice(&out);
            select_top(&mut work, 25);
            black_box(&work);
        })
    });
    let (shards, scan_shards, _) = filled(2);
    let mut merged = WindowedTopK::new(TOP_K_WINDOW, 50_000);
    g.bench_function("topk_merge_2x25k", |b| {
        b.iter(|| {
            merged.clear();
            merged.merge_from(&shards[0]);
            merged.merge_from(&shards[1]);
            black_box(merged.len());
        })
    });
    let mut merged = PortScanTracker::new(SCAN_WINDOW, 50_000);
    g.bench_function("portscan_merge_2x25k", |b| {
        b.iter(|| {
            merged.clear();
            merged.merge_from(&scan_shards[0]);
            merged.merge_from(&scan_shards[1]);
            black_box(merged.len());
        })
    });
    g.finish();
}

fn geoip(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/geoip/country-iso.mmdb");
    let Ok(db) = MaxMindCountries::open(path) else {
        return;
    };
    let mut g = c.benchmark_group("geoip");
    g.throughput(Throughput::Elements(BATCH));
    // 1,000 addresses: address-cache hits.
    g.bench_function("lookup/cached", |b| {
        let mut rng = SmallRng::seed_from_u64(3);
        b.iter(|| {
            for _ in 0..BATCH {
                let a = IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + (rng.random::<u64>() % 1_000) as u32));
                black_box(db.lookup(a));
            }
        })
    });
    // Random addresses: tree walk (the record cache spares the decoding).
    g.bench_function("lookup/uncached", |b| {
        let mut rng = SmallRng::seed_from_u64(5);
        b.iter(|| {
            for _ in 0..BATCH {
                let x = rng.random::<u64>();
                let a = IpAddr::V4(Ipv4Addr::from(if x & 1 == 0 {
                    0xcb00_7100 | (x >> 32) as u32 & 0xff
                } else {
                    (x >> 32) as u32
                }));
                black_box(db.lookup(a));
            }
        })
    });
    g.finish();
}

fn cidrs(c: &mut Criterion) {
    let few: Vec<ipnet::IpNet> =
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].iter().map(|s| s.parse().unwrap()).collect();
    // 100,000 scattered /24s (every 7th), so they do not merge into a few intervals.
    let many: Vec<ipnet::IpNet> = (0..100_000u32)
        .map(|i| ipnet::IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + i * 7 * 256), 24).unwrap()))
        .collect();
    let mut g = c.benchmark_group("cidr_contains");
    g.throughput(Throughput::Elements(BATCH));
    for (name, nets) in [("3", few), ("100000", many)] {
        let set = CidrSet::new(&nets);
        let mut rng = SmallRng::seed_from_u64(11);
        g.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    black_box(set.contains(IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, trackers, scrape, snapshot, geoip, cidrs);
criterion_main!(benches);
