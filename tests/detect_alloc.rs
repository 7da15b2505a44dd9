//! The trackers' hot path does not allocate: once warm, a stream of REJECT
//! records for known sources (1–3 ports each, spread over many slots) makes no
//! allocation at all, and a stream of ever-new addresses (constant
//! compaction) makes almost none. Counted with a counting allocator; one test
//! in this binary so that the count sees nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vpc_flow_exporter::detect::portscan::PortScanTracker;
use vpc_flow_exporter::detect::topk::WindowedTopK;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn v4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(i))
}

/// Feeds `n` records starting at record `from`: (source, port, time).
fn feed(
    top: &mut WindowedTopK,
    scans: &mut PortScanTracker,
    from: u64,
    n: u64,
    sources: u64,
    ports: impl Fn(u64) -> u16,
) {
    for i in from..from + n {
        let time = 1_700_000_000 + i / 1_000; // 1,000 records a second
        let src = v4(0x0b00_0000 + (i % sources) as u32);
        top.add(src, time, time);
        scans.add(src, ports(i), time, time);
    }
}

#[test]
fn the_hot_path_does_not_allocate() {
    let window = Duration::from_secs(600);

    // Known sources, 1 to 3 ports each.
    let mut top = WindowedTopK::new(window, 50_000);
    let mut scans = PortScanTracker::new(window, 20_000);
    let hot_ports = |i: u64| 22 + ((i / 1_000) % 3) as u16;
    // Warm up over two windows: rings allocated, slots wrapped.
    feed(&mut top, &mut scans, 0, 1_200_000, 1_000, hot_ports);
    let before = ALLOCS.load(Ordering::Relaxed);
    feed(&mut top, &mut scans, 1_200_000, 1_000_000, 1_000, hot_ports);
    let hot = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(hot, 0, "allocations on the hot path");

    // Ever-new addresses: the trackers run at capacity and compact.
    let mut top = WindowedTopK::new(window, 50_000);
    let mut scans = PortScanTracker::new(window, 20_000);
    let random_ports = |i: u64| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as u16;
    feed(&mut top, &mut scans, 0, 300_000, 2_000_000, random_ports);
    let before = ALLOCS.load(Ordering::Relaxed);
    feed(&mut top, &mut scans, 300_000, 1_000_000, 2_000_000, random_ports);
    let churn = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(top.evictions() > 0 && scans.evictions() > 0);
    println!("allocations per million records under churn: {churn}");
    assert!(churn < 100, "{churn} allocations per million records under churn");
}
