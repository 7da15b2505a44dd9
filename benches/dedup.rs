//! The CloudWatch dedup window's per-event cost, the work each poll does for
//! every event it re-reads or reads for the first time:
//!
//! - `key`: hashing a log-stream name and a 56-digit AWS eventId to the 128-bit key;
//! - `before_horizon`: a re-read event ingested before the horizon (most of a
//!   lookback re-read): a comparison, no lookup;
//! - `remembered`: a re-read event within the margin: one bucket lookup;
//! - `new`: a first-seen event: a lookup and an insert (the window is reset
//!   every 100,000 events so it stays near a realistic size);
//! - `at_cap`: first-seen events while the window is full (its cap reached):
//!   a lookup and the keyless-or-deferred decision, no insert.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vpc_flow_exporter::source::cloudwatch::dedup::{event_key, SeenWindow};

const N: usize = 100_000;
const MARGIN: Duration = Duration::from_secs(300);

fn ids() -> Vec<String> {
    (0..N).map(|i| format!("{:056}", 37_000_000_000_000_000u64 + i as u64 * 7919)).collect()
}

fn bench(c: &mut Criterion) {
    let ids = ids();
    let keys: Vec<u128> = ids.iter().map(|id| event_key("eni-0123456789abcdef0", id)).collect();
    let t0: i64 = 1_800_000_000_000;
    let ingestion = |i: usize| t0 + i as i64 * 3; // 100,000 events over 300 s
    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Elements(N as u64));

    g.bench_function("key", |b| {
        b.iter(|| {
            let mut acc = 0u128;
            for id in &ids {
                acc ^= event_key(black_box("eni-0123456789abcdef0"), id);
            }
            acc
        })
    });

    // Horizon well after every event's ingestion: all skipped by time.
    let mut past = SeenWindow::new(MARGIN);
    past.begin_scan(t0 + 3_600_000);
    past.note_page(t0 + 3_600_000, t0 + 3_600_000);
    past.finish_scan();
    assert!(past.is_before_horizon(ingestion(N - 1)));
    past.begin_scan(t0 + 3_660_000);
    g.bench_function("before_horizon", |b| {
        b.iter(|| keys.iter().enumerate().filter(|(i, k)| past.observe(**k, ingestion(*i)).is_new()).count())
    });

    // All remembered.
    let mut recent = SeenWindow::new(MARGIN);
    recent.begin_scan(t0);
    for (i, k) in keys.iter().enumerate() {
        recent.observe(*k, ingestion(i));
    }
    g.bench_function("remembered", |b| {
        b.iter(|| keys.iter().enumerate().filter(|(i, k)| recent.observe(**k, ingestion(*i)).is_new()).count())
    });

    // A full window (cap 1,000 keys, the first thousand events): the others
    // are counted without a key (ingested before the scan began) or deferred.
    let mut full = SeenWindow::with_cap(MARGIN, 1000);
    full.begin_scan(ingestion(N / 2));
    full.note_page(ingestion(N / 2), ingestion(N / 2));
    for (i, k) in keys.iter().enumerate().take(1000) {
        full.observe(*k, ingestion(i));
    }
    assert!(full.is_full());
    g.bench_function("at_cap", |b| {
        b.iter(|| {
            let mut w = full.clone();
            keys.iter().enumerate().skip(1000).filter(|(i, k)| w.observe(**k, ingestion(*i)).is_new()).count()
        })
    });

    g.bench_function("new", |b| {
        b.iter(|| {
            let mut w = SeenWindow::new(MARGIN);
            w.begin_scan(t0);
            keys.iter().enumerate().filter(|(i, k)| w.observe(**k, ingestion(*i)).is_new()).count()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
