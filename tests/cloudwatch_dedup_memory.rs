//! Dedup memory does not grow with the volume in the lookback window.
//!
//! A busy log group is simulated: 1,000,000 events ingested at a steady rate
//! over 20 minutes (each ingested 2 minutes after its event time), polled
//! every minute, and every poll re-reads the whole lookback window — up to all
//! 1,000,000 events — through the [`SeenWindow`], as the poller does. Every
//! event must be new exactly once, and the keys the window holds must stay
//! near `rate x (poll interval + margin)`, the same whether the lookback holds
//! 1,000,000 events (20 m) or a quarter of that (5 m).

use std::time::Duration;

use vpc_flow_exporter::source::cloudwatch::dedup::{event_key, SeenWindow, BUCKET_MS};

const EVENTS: usize = 1_000_000;
const SPAN_MS: i64 = 20 * 60_000;
const POLL_MS: i64 = 60_000;

struct Run {
    new: usize,
    rereads: u64,
    max_keys: usize,
    max_bytes: usize,
}

/// Simulates polls until everything ingested was read by a complete scan.
fn simulate(keys: &[u128], lookback_ms: i64, margin: Duration) -> Run {
    let t0: i64 = 1_800_000_000_000;
    let ingestion = |i: usize| t0 + (i as i64 * SPAN_MS) / EVENTS as i64;
    let timestamp = |i: usize| ingestion(i) - 120_000;
    let mut w = SeenWindow::new(margin);
    let mut run = Run { new: 0, rereads: 0, max_keys: 0, max_bytes: 0 };
    let mut now = t0 + POLL_MS;
    // Lower bound of the ingested events that are still in any scan's range,
    // so the simulation does not walk the whole history every poll.
    let mut first = 0usize;
    while now <= t0 + SPAN_MS + 3 * POLL_MS {
        let start_time = match w.last_scan_start_ms() {
            Some(c) => c - lookback_ms,
            None => now - lookback_ms,
        };
        w.begin_scan(now);
        while first < EVENTS && timestamp(first) < start_time {
            first += 1;
        }
        // One page here: its newest event bounds the horizon.
        let mut last = first;
        while last < EVENTS && ingestion(last) <= now {
            last += 1;
        }
        if last > first {
            w.note_page(ingestion(last - 1), now);
        }
        // The scan returns every event visible now with event time >= start.
        let mut i = first;
        while i < EVENTS && ingestion(i) <= now {
            if w.observe(keys[i], ingestion(i)).is_new() {
                run.new += 1;
            } else {
                run.rereads += 1;
            }
            i += 1;
        }
        run.max_keys = run.max_keys.max(w.len());
        run.max_bytes = run.max_bytes.max(w.approx_bytes());
        w.finish_scan();
        now += POLL_MS;
    }
    run
}

#[test]
fn one_million_events_through_the_lookback_window_hold_only_the_margin() {
    let keys: Vec<u128> =
        (0..EVENTS).map(|i| event_key("eni-0123456789abcdef0", &format!("{:056}", i * 7919))).collect();
    let rate_per_ms = EVENTS as f64 / SPAN_MS as f64;
    for margin_s in [60u64, 300] {
        let margin = Duration::from_secs(margin_s);
        let big = simulate(&keys, 20 * 60_000, margin);
        let small = simulate(&keys, 5 * 60_000, margin);
        assert_eq!(big.new, EVENTS, "every event counted exactly once");
        assert_eq!(small.new, EVENTS);
        // Keys of one poll interval + margin + a bucket, plus events ingested
        // during the scan — not the 1,000,000 of the lookback.
        let bound = (rate_per_ms * (2 * POLL_MS + margin_s as i64 * 1000 + 2 * BUCKET_MS) as f64) as usize;
        println!(
            "margin {margin_s:>3} s: lookback 20m re-read {:>9} events, max {:>6} keys (~{:.1} MiB); lookback 5m re-read {:>8}, max {:>6} keys",
            big.rereads,
            big.max_keys,
            big.max_bytes as f64 / (1 << 20) as f64,
            small.rereads,
            small.max_keys
        );
        assert!(big.rereads >= 9 * EVENTS as u64, "the lookback was re-read: {}", big.rereads);
        assert!(big.max_keys <= bound, "{} keys > {bound}", big.max_keys);
        assert!(big.max_keys < EVENTS / 3);
        // Independent of the lookback volume: 4 x the events in the window,
        // the same keys.
        assert!(
            big.max_keys.abs_diff(small.max_keys) <= (rate_per_ms * BUCKET_MS as f64) as usize,
            "{} vs {}",
            big.max_keys,
            small.max_keys
        );
    }
}
