//! The worst case the trackers must survive: 10 million records whose sources
//! cycle through 2 million distinct addresses, half of them REJECT with random
//! destination ports, with a scanner and a heavy rejected source planted in the
//! noise. Feeds the three trackers as the aggregator does (default capacities
//! and windows) and measures their heap with a counting allocator: the peak of
//! live bytes, not an estimate. One test only in this binary, so that the
//! allocator sees nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vpc_flow_exporter::detect::portscan::PortScanTracker;
use vpc_flow_exporter::detect::topk::WindowedTopK;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn two_million_sources_stay_within_bounds() {
    // Debug builds run a fifth of the records over a fifth of the addresses
    // (same ratio of distinct addresses to capacity); release runs it all.
    let scale = if cfg!(debug_assertions) { 5 } else { 1 };
    let records: u64 = 10_000_000 / scale;
    let distinct: u64 = 2_000_000 / scale;
    let (top_cap, scan_cap) = (50_000, 20_000);

    let base_live = LIVE.load(Ordering::Relaxed);
    PEAK.store(base_live, Ordering::Relaxed);
    let mut sources = WindowedTopK::new(Duration::from_secs(15 * 60), top_cap);
    let mut destinations = WindowedTopK::new(Duration::from_secs(15 * 60), top_cap);
    let mut scans = PortScanTracker::new(Duration::from_secs(10 * 60), scan_cap);

    let scanner = IpAddr::V4(Ipv4Addr::new(45, 155, 205, 9));
    let heavy = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));
    let mut rng = SmallRng::seed_from_u64(42);
    let start_time = 1_700_000_000u64;
    let mut newest = 0u64;
    let mut rejects = 0u64;
    let (mut scanner_ports, mut heavy_records) = (0u64, 0u64);
    let started = Instant::now();
    for i in 0..records {
        let r = rng.random::<u64>();
        // Flow time runs at 10,000 records a second with records up to a
        // minute late: 1,000 s over the full run, more than either window.
        let on_time = start_time + i * scale / 10_000;
        newest = newest.max(on_time);
        // The planted attackers, in the last 500 s (inside both windows):
        // 1,000 records each, the scanner to 1,000 distinct ports.
        if i >= records / 2 && i % (records / 2_000) == 1 {
            sources.add(heavy, on_time, newest);
            heavy_records += 1;
            scans.add(scanner, 10_000 + scanner_ports as u16, on_time, newest);
            scanner_ports += 1;
        }
        if r & 1 == 0 {
            continue; // ACCEPT: not fed to the trackers
        }
        rejects += 1;
        let time = on_time - (r >> 8) % 60;
        newest = newest.max(time);
        let src = IpAddr::V4(Ipv4Addr::from(0x0b00_0000u32 + (i % distinct) as u32));
        let dst = IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + ((r >> 16) % 1_000_000) as u32));
        let port = (r >> 40) as u16;
        sources.add(src, time, newest);
        destinations.add(dst, time, newest);
        scans.add(src, port, time, newest);
    }
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - base_live;
    let live = LIVE.load(Ordering::Relaxed) - base_live;

    assert!(sources.len() <= top_cap && destinations.len() <= top_cap && scans.len() <= scan_cap);
    assert!(sources.evictions() > 0 && scans.evictions() > 0);

    let mut top = Vec::new();
    sources.top(5, newest, &mut top);
    assert_eq!(top[0].0, heavy, "{top:?}");
    // Never above the truth, and within the documented bound of it.
    assert!(top[0].1 <= heavy_records && top[0].1 + sources.error_bound(newest) >= heavy_records);

    let mut scanners = Vec::new();
    let n = scans.scanners(20, 5, newest, &mut scanners);
    assert_eq!(n, 1, "{scanners:?}");
    assert_eq!(scanners[0].0, scanner);
    assert!(scanners[0].1 <= scanner_ports && scanners[0].1 + scans.error_bound(newest) >= scanner_ports);

    let estimate = sources.heap_bytes() + destinations.heap_bytes() + scans.heap_bytes();
    println!(
        "{records} records ({rejects} REJECT, {distinct} distinct sources) in {elapsed:?}: \
         peak heap {:.1} MiB, live {:.1} MiB, estimate {:.1} MiB; \
         sources len {} evictions {} deferred {} error bound {}; destinations len {} evictions {} deferred {}; \
         scans len {} evictions {} deferred {} spilled {} capped {}; heavy {}/{heavy_records}, scanner {}/{scanner_ports}",
        peak as f64 / MIB,
        live as f64 / MIB,
        estimate as f64 / MIB,
        sources.len(),
        sources.evictions(),
        sources.deferred(),
        sources.error_bound(newest),
        destinations.len(),
        destinations.evictions(),
        destinations.deferred(),
        scans.len(),
        scans.evictions(),
        scans.deferred(),
        scans.spilled_ports(),
        scans.capped(),
        top[0].1,
        scanners[0].1,
    );
    // The three trackers at default capacity: well under the exporter's
    // 150 MiB budget whatever the traffic.
    assert!(peak < 48 * 1024 * 1024, "peak heap {:.1} MiB", peak as f64 / MIB);
}
