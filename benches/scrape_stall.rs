//! How long a scrape makes ingestion wait: one thread ingests a batch of
//! 100 REJECT lines into the shared aggregator every 200 µs (500,000
//! records/s; one lock per batch, as the sources do: often enough that every
//! scrape meets a batch) while another scrapes the registry 10 times a
//! second, with
//! both top-K trackers holding 50,000 addresses (the default
//! `limits.max_tracked_addresses`) and the port-scan tracker 20,000 sources.
//! Prints the p50 / p99 / max of the writer's wait for the lock per batch,
//! of the stall per scrape (the longest wait in each 100 ms, one scrape's
//! period), and of the scrape's duration.
//!
//!   cargo bench --bench scrape_stall [-- SECONDS] [--lag]
//!
//! `--lag`: the trackers' newest time lags the aggregator's by half the
//! top-K window (30 slots of the 15 m default). Every address is loaded in two
//! slots (a ring each): now, and one of the 30 slots that the lag leaves out
//! of the window (7.5 to 14.75 min ago). Then the writer's batches are
//! ACCEPT lines 7.5 min ahead, which move the aggregator's newest time but
//! not the trackers' (only REJECT records feed them), as when a reject flood
//! has stopped and accepted traffic goes on.
//!
//! Also prints how long the lock is held for a scrape's snapshot, timed
//! from inside half a period after each scrape (`Aggregator::snapshot_into`,
//! what the collector does under the lock). Before the snapshot (commit
//! 2d62d41), the whole family building ran under the lock; the writer-side
//! figures of that revision are in docs/architecture.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vpc_flow_exporter::aggregate::{Aggregator, Snapshot};
use vpc_flow_exporter::config::Config;
use vpc_flow_exporter::expose;
use vpc_flow_exporter::parse::{Format, LineParser};

const BATCH: usize = 100;
const ADDRESSES: u32 = 50_000;
/// One batch per period: the writer's pace.
const PERIOD: Duration = Duration::from_micros(200);

/// How far ahead of the trackers' records the writer's ACCEPT lines are with
/// `--lag`: half the default top-K window.
const LAG: u64 = 450;

/// Batches of `action` lines whose sources and destinations cycle through
/// `ADDRESSES` addresses each, address `a` at flow time `at(a)`.
fn batches(at: impl Fn(u32) -> u64, action: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0u32;
    while i < 2 * ADDRESSES {
        let mut b = String::with_capacity(BATCH * 110);
        for _ in 0..BATCH {
            let a = i % ADDRESSES;
            let src = format!("198.{}.{}.{}", 18 + (a >> 16), (a >> 8) & 255, a & 255);
            let dst = format!("10.{}.{}.{}", 1 + (a >> 16), (a >> 8) & 255, a & 255);
            let (port, now) = (1 + (i % 4000), at(a));
            b += &format!("2 1 eni-{} {src} {dst} 40000 {port} 6 1 40 {} {now} {action} OK\n", i % 16, now - 5);
            i += 1;
        }
        out.push(b);
    }
    out
}

fn percentiles(name: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    println!(
        "{name}: n={} p50={:?} p99={:?} p99.9={:?} max={:?}",
        v.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        v[v.len() - 1]
    );
}

fn main() {
    let secs: u64 = std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(10);
    let lag = std::env::args().any(|a| a == "--lag");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let config = Config::default();
    let agg = Aggregator::new(&config).into_shared();
    let mut parser = LineParser::for_stream(Format::default_v2());
    let batches = if lag {
        // A ring per address: one record in one of the 30 slots that the
        // lag sweeps out, and one now; then ACCEPT traffic ahead.
        let swept = |a: u32| now - LAG - 15 * u64::from(a % 30);
        for b in batches(swept, "REJECT").iter().chain(&batches(|_| now, "REJECT")) {
            agg.lock().unwrap().ingest_lines(&mut parser, b.as_bytes());
        }
        batches(|_| now + LAG, "ACCEPT")
    } else {
        batches(|_| now, "REJECT")
    };
    for b in &batches {
        agg.lock().unwrap().ingest_lines(&mut parser, b.as_bytes());
    }
    println!("aggregator newest flow time: now + {} s", agg.lock().unwrap().newest() - now);
    let t = Instant::now();
    agg.lock().unwrap().snapshot_into(&mut Snapshot::default());
    println!("first snapshot (its vectors allocated; with --lag, the lagging slots swept): {:?}", t.elapsed());
    let registry = expose::registry(&agg);
    let expo = expose::encode(&registry);
    let held = |t: &str| {
        let series = format!("vpc_flow_exporter_tracker_entries{{tracker=\"{t}\"}} ");
        expo.lines().find_map(|l| l.strip_prefix(series.as_str()).map(str::to_owned)).unwrap_or_default()
    };
    println!(
        "tracked: rejected_sources {}, rejected_destinations {}, port_scan {}; exposition {} bytes",
        held("rejected_sources"),
        held("rejected_destinations"),
        held("port_scan"),
        expo.len()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (stop, agg) = (stop.clone(), agg.clone());
        std::thread::spawn(move || {
            let (mut took, mut held) = (Vec::new(), Vec::new());
            let mut snap = Snapshot::default();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                std::hint::black_box(expose::encode(&registry));
                took.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(50).saturating_sub(t.elapsed()));
                // Half a period later, the scrape's critical section alone,
                // timed from inside: the lock held for the snapshot.
                let mut g = agg.lock().unwrap();
                let t2 = Instant::now();
                g.snapshot_into(&mut snap);
                drop(g);
                held.push(t2.elapsed());
                std::thread::sleep(Duration::from_millis(100).saturating_sub(t.elapsed()));
            }
            (took, held)
        })
    };
    let mut waits = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0;
    let mut next = Instant::now();
    while Instant::now() < end {
        next += PERIOD;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let b = &batches[n % batches.len()];
        n += 1;
        let t = Instant::now();
        let mut g = agg.lock().unwrap();
        waits.push((t, t.elapsed()));
        g.ingest_lines(&mut parser, b.as_bytes());
        drop(g);
    }
    stop.store(true, Ordering::Relaxed);
    let (scrapes, held) = scraper.join().unwrap();
    println!("{} records in {secs} s ({:.2} M records/s)", n * BATCH, (n * BATCH) as f64 / secs as f64 / 1e6);
    let start = waits[0].0;
    let mut per_scrape = vec![Duration::ZERO; (secs * 10) as usize + 1];
    for (at, w) in &waits {
        let i = ((at.duration_since(start).as_millis() / 100) as usize).min(per_scrape.len() - 1);
        per_scrape[i] = per_scrape[i].max(*w);
    }
    let slow = waits.iter().filter(|(_, w)| *w > Duration::from_micros(100)).count();
    println!("batches that waited over 100 µs: {slow}");
    percentiles("writer lock wait per batch", waits.into_iter().map(|(_, w)| w).collect());
    percentiles("stall per scrape period (longest wait in each 100 ms)", per_scrape);
    percentiles("scrape (lock + encode)", scrapes);
    percentiles("lock held per scrape (snapshot)", held);
}
