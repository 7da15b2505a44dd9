//! The memory of what was counted, for one log group: a *horizon* and a short
//! margin of event keys.
//!
//! Every poll re-reads `lookback` of event time, so most events it returns were
//! counted by an earlier poll. Remembering every eventId of the lookback window
//! would cost memory in proportion to its volume (millions of events for a busy
//! group). Instead the window uses each event's `ingestionTime`:
//!
//! * the *horizon* `H` is the (local) time at which the last **complete** scan
//!   began. An event ingested before `H - margin` was visible to that scan, and
//!   its event time lies inside that scan's range (each scan starts its range at
//!   or before the previous one), so it was counted then: it is skipped without
//!   looking anything up;
//! * an event ingested at or after `H - margin` is looked up by key
//!   (`log stream` + `eventId`, hashed to 128 bits) and remembered when new.
//!
//! After a complete scan the horizon moves to that scan's start `C` and keys
//! ingested before `C - margin` are dropped. The keys kept are those of events
//! ingested since about one poll interval plus the margin ago: the memory follows
//! the ingestion *rate*, not the lookback volume. The margin covers the delay
//! before a newly ingested event becomes visible to FilterLogEvents and the skew
//! between this host's clock and CloudWatch's. Keys are grouped in buckets by
//! ingestion time (an event's `ingestionTime` never changes, so a lookup only
//! looks in its own bucket) and pruning drops whole buckets.
//!
//! docs/cloudwatch.md has the full argument and its edge cases.

use std::collections::BTreeMap;
use std::time::Duration;

use rustc_hash::FxHashSet;

/// The default margin around the horizon: visibility delay of new events plus
/// clock skew. Five minutes is far above either in practice.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Width of the ingestion-time buckets that keys are grouped in.
pub const BUCKET_MS: i64 = 10_000;

/// The 128-bit key of an event: FNV-1a over the stream name, a separator and
/// the eventId. A stable function (the keys are saved in the checkpoint and
/// must mean the same to the next version of the program); eventIds are opaque
/// strings, unique within a log group, and not chosen by an adversary.
pub fn event_key(log_stream: &str, event_id: &str) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for &b in log_stream.as_bytes().iter().chain(&[0xff]).chain(event_id.as_bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// What the window says about an event read from FilterLogEvents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not counted before: count it.
    New,
    /// Ingested before the horizon minus the margin: a complete scan saw it.
    BeforeHorizon,
    /// Its key is remembered: counted earlier in this scan or a recent one.
    Remembered,
}

impl Verdict {
    pub fn is_new(self) -> bool {
        self == Verdict::New
    }
}

/// The horizon and the recent keys of one log group.
#[derive(Debug, Clone)]
pub struct SeenWindow {
    margin_ms: i64,
    /// Start of the last complete scan (local epoch ms); `None` before the first.
    horizon_ms: Option<i64>,
    /// Start of the scan in progress, if any.
    scan_start_ms: Option<i64>,
    /// Bucket start (ingestion time, ms) -> keys.
    buckets: BTreeMap<i64, FxHashSet<u128>>,
    len: usize,
}

fn bucket_of(ingestion_ms: i64) -> i64 {
    ingestion_ms.div_euclid(BUCKET_MS) * BUCKET_MS
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SeenWindow {
    pub fn new(margin: Duration) -> SeenWindow {
        SeenWindow { margin_ms: millis(margin), horizon_ms: None, scan_start_ms: None, buckets: BTreeMap::new(), len: 0 }
    }

    /// Rebuilds a window from a checkpoint: horizon, scan in progress, and the
    /// remembered keys with (a time in the bucket of) their ingestion time.
    pub fn restore(
        margin: Duration,
        horizon_ms: Option<i64>,
        scan_start_ms: Option<i64>,
        keys: impl IntoIterator<Item = (i64, u128)>,
    ) -> SeenWindow {
        let mut w = SeenWindow::new(margin);
        w.horizon_ms = horizon_ms;
        w.scan_start_ms = scan_start_ms;
        for (ingestion_ms, key) in keys {
            if w.buckets.entry(bucket_of(ingestion_ms)).or_default().insert(key) {
                w.len += 1;
            }
        }
        w
    }

    pub fn margin_ms(&self) -> i64 {
        self.margin_ms
    }

    /// Start of the last complete scan.
    pub fn horizon_ms(&self) -> Option<i64> {
        self.horizon_ms
    }

    /// Start of the scan in progress.
    pub fn scan_start_ms(&self) -> Option<i64> {
        self.scan_start_ms
    }

    /// Starts a scan at `now_ms` (a restarted scan takes the new time; the keys
    /// counted by the interrupted one stay remembered).
    pub fn begin_scan(&mut self, now_ms: i64) {
        self.scan_start_ms = Some(now_ms);
    }

    /// Ingestion time below which events are known to be counted.
    fn skip_below(&self) -> Option<i64> {
        self.horizon_ms.map(|h| h.saturating_sub(self.margin_ms))
    }

    /// Ingestion time from which new keys must be remembered: the horizon minus
    /// the margin; in the first scan (no horizon yet), the scan's start minus
    /// the margin, which becomes the skip bound once that scan completes.
    fn remember_from(&self) -> Option<i64> {
        self.skip_below().or_else(|| self.scan_start_ms.map(|c| c.saturating_sub(self.margin_ms)))
    }

    /// Whether an event ingested at `ingestion_ms` is known to be counted by
    /// time alone: callers check this first and skip hashing the key.
    pub fn is_before_horizon(&self, ingestion_ms: i64) -> bool {
        self.skip_below().is_some_and(|skip| ingestion_ms < skip)
    }

    /// Classifies one event and, if it is new, remembers it.
    pub fn observe(&mut self, key: u128, ingestion_ms: i64) -> Verdict {
        if let Some(skip) = self.skip_below() {
            if ingestion_ms < skip {
                return Verdict::BeforeHorizon;
            }
        }
        let bucket = bucket_of(ingestion_ms);
        if self.buckets.get(&bucket).is_some_and(|s| s.contains(&key)) {
            return Verdict::Remembered;
        }
        if self.remember_from().is_none_or(|from| ingestion_ms >= from) {
            self.buckets.entry(bucket).or_default().insert(key);
            self.len += 1;
        }
        Verdict::New
    }

    /// The scan in progress read everything to the end: its start becomes the
    /// horizon and keys ingested before `horizon - margin` are dropped.
    pub fn finish_scan(&mut self) {
        if let Some(c) = self.scan_start_ms.take() {
            let h = self.horizon_ms.map_or(c, |h| h.max(c));
            self.horizon_ms = Some(h);
            self.prune_below(h.saturating_sub(self.margin_ms));
        }
    }

    fn prune_below(&mut self, ingestion_ms: i64) {
        // A bucket [b, b + BUCKET_MS) is dropped once all of it lies below.
        let keep = self.buckets.split_off(&(bucket_of(ingestion_ms)));
        let dropped: usize = self.buckets.values().map(FxHashSet::len).sum();
        self.buckets = keep;
        self.len -= dropped;
    }

    /// Number of remembered keys.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes held by the keys (table slots of 16-byte keys plus
    /// a control byte each, plus the bucket map).
    pub fn approx_bytes(&self) -> usize {
        self.buckets.values().map(|s| s.capacity() * 17 + 64).sum()
    }

    /// The remembered keys as (bucket start, key), for the checkpoint.
    pub fn keys(&self) -> impl Iterator<Item = (i64, u128)> + '_ {
        self.buckets.iter().flat_map(|(&b, set)| set.iter().map(move |&k| (b, k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::cloudwatch::clock::{Clock, TokioClock};

    const MIN: i64 = 60_000;

    /// A fake log group: events with event time and ingestion time, read back
    /// in whole by each simulated scan (event time >= start).
    #[derive(Default)]
    struct FakeGroup {
        events: Vec<(String, i64, i64)>, // (id, timestamp, ingestion)
    }

    impl FakeGroup {
        fn put(&mut self, id: usize, timestamp: i64, ingestion: i64) {
            self.events.push((id.to_string(), timestamp, ingestion));
        }
        /// One scan from `start`; returns the number of new events.
        fn scan(&self, w: &mut SeenWindow, now: i64, start: i64) -> usize {
            w.begin_scan(now);
            let mut new = 0;
            for (id, ts, ing) in &self.events {
                if *ts >= start && *ing <= now && w.observe(event_key("eni-1", id), *ing).is_new() {
                    new += 1;
                }
            }
            w.finish_scan();
            new
        }
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(event_key("s", "1"), event_key("s", "1"));
        assert_ne!(event_key("s", "1"), event_key("s", "2"));
        assert_ne!(event_key("s1", "2"), event_key("s", "12"));
        // A fixed value: the key function must never change (checkpoints).
        assert_eq!(event_key("eni-1", "42"), 0x50fe_d96f_7865_9b38_759d_28b3_80d9_d4fa);
    }

    #[tokio::test(start_paused = true)]
    async fn late_events_counted_once_and_rereads_skipped() {
        let clock = TokioClock::new(1_700_000_000_000);
        let lookback = 20 * MIN;
        let mut g = FakeGroup::default();
        let mut w = SeenWindow::new(Duration::from_secs(60));
        let t0 = clock.now_ms();
        for i in 0..100 {
            g.put(i, t0 - 10 * MIN + i as i64, t0 - 5 * MIN);
        }
        // First poll counts everything.
        assert_eq!(g.scan(&mut w, clock.now_ms(), clock.now_ms() - lookback), 100);
        let mut total = 100;
        for poll in 0..30 {
            tokio::time::advance(Duration::from_secs(60)).await;
            let now = clock.now_ms();
            // Late events: event time 15 minutes ago, ingested now.
            if poll % 3 == 0 {
                for j in 0..10 {
                    g.put(1000 + poll * 10 + j, now - 15 * MIN, now);
                }
                total += 10;
            }
            let new = g.scan(&mut w, now, now - lookback);
            assert_eq!(new, if poll % 3 == 0 { 10 } else { 0 }, "poll {poll}");
        }
        assert_eq!(total, 200);
        // Only keys of the last minutes are kept.
        assert!(w.len() <= 20, "kept {} keys", w.len());
    }

    #[tokio::test(start_paused = true)]
    async fn event_ingested_during_a_scan_is_counted_by_the_next_one_only_once() {
        let clock = TokioClock::new(1_700_000_000_000);
        let mut w = SeenWindow::new(Duration::from_secs(60));
        let now = clock.now_ms();
        w.begin_scan(now);
        assert!(w.observe(event_key("a", "1"), now - 1000).is_new());
        // Ingested after the scan began, returned by it anyway.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(w.observe(event_key("a", "2"), clock.now_ms()).is_new());
        w.finish_scan();
        assert_eq!(w.horizon_ms(), Some(now));
        tokio::time::advance(Duration::from_secs(30)).await;
        w.begin_scan(clock.now_ms());
        assert_eq!(w.observe(event_key("a", "1"), now - 1000), Verdict::Remembered);
        assert_eq!(w.observe(event_key("a", "2"), now + 5000), Verdict::Remembered);
        // An event ingested right at the previous scan's start but missed by it
        // (not yet visible) is new now.
        assert!(w.observe(event_key("a", "3"), now).is_new());
        w.finish_scan();
        // Much later, all of these are behind the horizon.
        tokio::time::advance(Duration::from_secs(600)).await;
        w.begin_scan(clock.now_ms());
        w.finish_scan();
        w.begin_scan(clock.now_ms());
        assert_eq!(w.observe(event_key("a", "3"), now), Verdict::BeforeHorizon);
        assert!(w.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn interrupted_scan_keeps_what_it_counted() {
        let clock = TokioClock::new(1_700_000_000_000);
        let mut w = SeenWindow::new(Duration::from_secs(60));
        // A complete first scan.
        w.begin_scan(clock.now_ms());
        w.finish_scan();
        let h = w.horizon_ms();
        tokio::time::advance(Duration::from_secs(120)).await;
        let now = clock.now_ms();
        // A scan counts two events and fails halfway: no finish_scan.
        w.begin_scan(now);
        assert!(w.observe(event_key("s", "a"), now - 30_000).is_new());
        assert!(w.observe(event_key("s", "b"), now - 10_000).is_new());
        assert_eq!(w.horizon_ms(), h, "a failed scan does not move the horizon");
        // The scan is started again later and reads both again.
        tokio::time::advance(Duration::from_secs(60)).await;
        w.begin_scan(clock.now_ms());
        assert_eq!(w.observe(event_key("s", "a"), now - 30_000), Verdict::Remembered);
        assert_eq!(w.observe(event_key("s", "b"), now - 10_000), Verdict::Remembered);
        assert!(w.observe(event_key("s", "c"), now - 5_000).is_new());
        w.finish_scan();
        assert_eq!(w.horizon_ms(), Some(clock.now_ms()));
    }

    #[test]
    fn first_scan_remembers_only_the_margin() {
        let mut w = SeenWindow::new(Duration::from_secs(60));
        let now = 10_000_000;
        w.begin_scan(now);
        for i in 0..1000 {
            // Ingested from 1000 s ago to now.
            assert!(w.observe(event_key("s", &i.to_string()), now - (1000 - i) * 1000).is_new());
        }
        // Only those ingested in the last 60 s (plus the rest of a bucket).
        assert!(w.len() <= 60 + BUCKET_MS as usize / 1000, "{}", w.len());
        w.finish_scan();
        // A second scan at the same time re-reads all of them: none is new.
        w.begin_scan(now + 1000);
        for i in 0..1000 {
            assert!(!w.observe(event_key("s", &i.to_string()), now - (1000 - i) * 1000).is_new());
        }
    }

    #[test]
    fn restore_round_trips() {
        let mut w = SeenWindow::new(Duration::from_secs(60));
        w.begin_scan(1_000_000);
        w.observe(event_key("s", "1"), 999_000);
        w.observe(event_key("s", "2"), 1_000_500);
        w.finish_scan();
        let r = SeenWindow::restore(Duration::from_secs(60), w.horizon_ms(), None, w.keys().collect::<Vec<_>>());
        assert_eq!(r.len(), 2);
        let mut r = r;
        r.begin_scan(1_010_000);
        assert_eq!(r.observe(event_key("s", "1"), 999_000), Verdict::Remembered);
        assert_eq!(r.observe(event_key("s", "2"), 1_000_500), Verdict::Remembered);
    }
}
