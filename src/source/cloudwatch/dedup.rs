//! The memory of what was counted, for one log group: a *horizon* and a short
//! margin of event keys.
//!
//! Every poll re-reads `lookback` of event time, so most events it returns were
//! counted by an earlier poll. Remembering every eventId of the lookback window
//! would cost memory in proportion to its volume (millions of events for a busy
//! group). Instead the window uses each event's `ingestionTime`:
//!
//! * the *horizon* `H` is a time, on CloudWatch's clock, at which the last
//!   **complete** scan had begun: the scan's local start, or earlier, the
//!   newest ingestion time of a page minus the time elapsed since the scan
//!   began ([`SeenWindow::note_page`]), so a host clock ahead of CloudWatch's
//!   cannot push it too far. An event ingested before `H - margin` was visible
//!   to that scan, and its event time lies inside that scan's range (each scan
//!   starts its range at or after the previous one), so it was counted then:
//!   it is skipped without looking anything up;
//! * an event ingested at or after `H - margin` is looked up by key
//!   (`log stream` + `eventId`, hashed to 128 bits) and remembered when new.
//!
//! After a complete scan the horizon moves up and keys ingested before
//! `H - margin` are dropped. The keys kept are those of events
//! ingested since about one poll interval plus the margin ago: the memory follows
//! the ingestion *rate*, not the lookback volume. The margin covers the delay
//! before a newly ingested event becomes visible to FilterLogEvents. Keys are grouped in buckets by
//! ingestion time (an event's `ingestionTime` never changes, so a lookup only
//! looks in its own bucket) and pruning drops whole buckets.
//!
//! docs/cloudwatch.md has the full argument and its edge cases.

use std::collections::BTreeMap;
use std::time::Duration;

use rustc_hash::FxHashSet;

/// The default margin around the horizon: above the delay before a new event
/// is visible to FilterLogEvents (seconds in practice), with room to spare.
pub const DEFAULT_MARGIN: Duration = crate::config::defaults::DEDUP_MARGIN;

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

/// The times a window keeps besides its keys (saved in the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowTimes {
    /// The skip horizon: events ingested before it minus the margin were
    /// counted. `None` before the first complete scan.
    pub horizon_ms: Option<i64>,
    /// Local start of the last complete scan: where the next scan's event-time
    /// range is anchored (`last_scan_start - lookback`).
    pub last_scan_start_ms: Option<i64>,
    /// Newest ingestion time of any event read so far (CloudWatch's clock).
    pub newest_ingestion_ms: Option<i64>,
    /// Local start of the scan in progress.
    pub scan_start_ms: Option<i64>,
    /// The scan's bound on CloudWatch's clock at its start: the largest
    /// `newest ingestion time of a page - time elapsed since the scan began`.
    pub scan_bound_ms: Option<i64>,
}

/// The horizon and the recent keys of one log group.
#[derive(Debug, Clone)]
pub struct SeenWindow {
    margin_ms: i64,
    t: WindowTimes,
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
        SeenWindow { margin_ms: millis(margin), t: WindowTimes::default(), buckets: BTreeMap::new(), len: 0 }
    }

    /// Rebuilds a window from a checkpoint: its times and the remembered keys
    /// with (a time in the bucket of) their ingestion time.
    pub fn restore(margin: Duration, times: WindowTimes, keys: impl IntoIterator<Item = (i64, u128)>) -> SeenWindow {
        let mut w = SeenWindow::new(margin);
        w.t = times;
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

    /// The window's times, for the checkpoint.
    pub fn times(&self) -> WindowTimes {
        self.t
    }

    /// The skip horizon.
    pub fn horizon_ms(&self) -> Option<i64> {
        self.t.horizon_ms
    }

    /// Local start of the last complete scan.
    pub fn last_scan_start_ms(&self) -> Option<i64> {
        self.t.last_scan_start_ms
    }

    /// Start of the scan in progress.
    pub fn scan_start_ms(&self) -> Option<i64> {
        self.t.scan_start_ms
    }

    /// Newest ingestion time of any event read.
    pub fn newest_ingestion_ms(&self) -> Option<i64> {
        self.t.newest_ingestion_ms
    }

    /// Starts a scan at `now_ms` (a restarted scan takes the new time; the keys
    /// counted by the interrupted one stay remembered).
    pub fn begin_scan(&mut self, now_ms: i64) {
        self.t.scan_start_ms = Some(now_ms);
        self.t.scan_bound_ms = None;
    }

    /// Records a page received at local `now_ms` whose newest event was
    /// ingested at `newest_ingestion_ms` (CloudWatch's clock; every event of
    /// the page counts, skipped ones too). Call it before observing the page's
    /// events. That event existed when the page was served, so
    /// `newest_ingestion - (now - scan start)` is no later than CloudWatch's
    /// clock when the scan began, whatever this host's clock says.
    pub fn note_page(&mut self, newest_ingestion_ms: i64, now_ms: i64) {
        if self.t.newest_ingestion_ms.is_none_or(|n| newest_ingestion_ms > n) {
            self.t.newest_ingestion_ms = Some(newest_ingestion_ms);
        }
        if let Some(c) = self.t.scan_start_ms {
            let b = newest_ingestion_ms.saturating_sub(now_ms.saturating_sub(c).max(0));
            self.t.scan_bound_ms = Some(self.t.scan_bound_ms.map_or(b, |x| x.max(b)));
        }
    }

    /// Ingestion time below which events are known to be counted.
    fn skip_below(&self) -> Option<i64> {
        self.t.horizon_ms.map(|h| h.saturating_sub(self.margin_ms))
    }

    /// Ingestion time from which new keys must be remembered: the horizon minus
    /// the margin; in the first scan (no horizon yet), the horizon it will set
    /// minus the margin — at most what it will be, as the bound only grows.
    fn remember_from(&self) -> Option<i64> {
        self.skip_below().or_else(|| {
            self.t.scan_start_ms.map(|c| c.min(self.t.scan_bound_ms.unwrap_or(c)).saturating_sub(self.margin_ms))
        })
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

    /// The scan in progress read everything to the end. The horizon becomes
    /// its start `C` — or, if earlier, its bound on CloudWatch's clock at `C`
    /// (see [`SeenWindow::note_page`]), so that a host clock running ahead of
    /// CloudWatch's cannot push the horizon past what the scan could see. A
    /// scan that read no event does not move the horizon. Keys ingested before
    /// `horizon - margin` are dropped.
    pub fn finish_scan(&mut self) {
        if let Some(c) = self.t.scan_start_ms.take() {
            if let Some(b) = self.t.scan_bound_ms.take() {
                let candidate = b.min(c);
                let h = self.t.horizon_ms.map_or(candidate, |h| h.max(candidate));
                self.t.horizon_ms = Some(h);
                self.prune_below(h.saturating_sub(self.margin_ms));
            }
            self.t.last_scan_start_ms = Some(self.t.last_scan_start_ms.map_or(c, |l| l.max(c)));
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
            let visible: Vec<_> = self.events.iter().filter(|(_, ts, ing)| *ts >= start && *ing <= now).collect();
            if let Some(newest) = visible.iter().map(|e| e.2).max() {
                w.note_page(newest, now);
            }
            let mut new = 0;
            for (id, _, ing) in visible {
                if w.observe(event_key("eni-1", id), *ing).is_new() {
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
        w.note_page(now - 1000, now);
        assert!(w.observe(event_key("a", "1"), now - 1000).is_new());
        // Ingested after the scan began, returned by it anyway (a page 5 s later).
        tokio::time::advance(Duration::from_secs(5)).await;
        w.note_page(clock.now_ms(), clock.now_ms());
        assert!(w.observe(event_key("a", "2"), clock.now_ms()).is_new());
        w.finish_scan();
        assert_eq!(w.horizon_ms(), Some(now), "bounded by the scan's start");
        tokio::time::advance(Duration::from_secs(30)).await;
        w.begin_scan(clock.now_ms());
        assert_eq!(w.observe(event_key("a", "1"), now - 1000), Verdict::Remembered);
        assert_eq!(w.observe(event_key("a", "2"), now + 5000), Verdict::Remembered);
        // An event ingested right at the previous scan's start but missed by it
        // (not yet visible) is new now.
        assert!(w.observe(event_key("a", "3"), now).is_new());
        w.finish_scan();
        // Much later (a fresh event read), all of these are behind the horizon.
        tokio::time::advance(Duration::from_secs(600)).await;
        w.begin_scan(clock.now_ms());
        w.note_page(clock.now_ms() - 1000, clock.now_ms());
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
        w.note_page(now - 5_000, clock.now_ms());
        assert!(w.observe(event_key("s", "c"), now - 5_000).is_new());
        w.finish_scan();
        assert_eq!(w.horizon_ms(), Some(now - 5_000), "CloudWatch's newest ingestion, not the local clock");
        assert_eq!(w.last_scan_start_ms(), Some(clock.now_ms()));
        assert_eq!(w.len(), 3);
    }

    /// A host clock 10 minutes ahead of CloudWatch's, and events visible only
    /// 30 s after their ingestion: scans run at local time, events carry
    /// CloudWatch's. Returns (events put, events counted, counted twice).
    async fn skewed_run(bounded: bool) -> (usize, usize, usize) {
        let clock = TokioClock::new(1_700_000_000_000);
        let (skew, vis, lookback) = (600_000, 30_000, 20 * MIN);
        let mut w = SeenWindow::new(Duration::from_secs(60));
        let mut events: Vec<(String, i64, i64)> = Vec::new(); // (id, ts, ingestion)
        let mut counts = std::collections::HashMap::<String, usize>::new();
        for round in 0..40 {
            let local = clock.now_ms();
            let aws = local - skew;
            if round < 30 {
                for j in 0..20 {
                    let ing = aws - j * 1000;
                    events.push((format!("{round}-{j}"), ing - 120_000, ing));
                }
            }
            let start = w.last_scan_start_ms().map_or(local - lookback, |c| c - lookback);
            w.begin_scan(local);
            let visible: Vec<_> = events.iter().filter(|(_, ts, ing)| *ts >= start && ing + vis <= aws).collect();
            let newest = visible.iter().map(|e| e.2).max();
            match newest {
                Some(n) if bounded => w.note_page(n, local),
                // The local clock alone: as if the newest event were "now".
                Some(_) => w.note_page(local, local),
                None => {}
            }
            for (id, _, ing) in visible {
                if w.observe(event_key("s", id), *ing).is_new() {
                    *counts.entry(id.clone()).or_default() += 1;
                }
            }
            w.finish_scan();
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        (events.len(), counts.len(), counts.values().filter(|&&c| c > 1).count())
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_clock_ahead_of_cloudwatch_loses_nothing() {
        // The horizon bounded by CloudWatch's own ingestion times: exact.
        assert_eq!(skewed_run(true).await, (600, 600, 0));
        // Bounded by the local clock alone, a 10-minute skew (beyond the
        // 1-minute margin) skips the events not yet visible at each scan.
        let (put, counted, twice) = skewed_run(false).await;
        assert_eq!(twice, 0);
        assert!(counted < put, "{counted} of {put}");
    }

    #[test]
    fn first_scan_remembers_only_the_margin() {
        let mut w = SeenWindow::new(Duration::from_secs(60));
        let now = 10_000_000;
        w.begin_scan(now);
        w.note_page(now, now);
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
        let r = SeenWindow::restore(Duration::from_secs(60), w.times(), w.keys().collect::<Vec<_>>());
        assert_eq!(r.len(), 2);
        let mut r = r;
        r.begin_scan(1_010_000);
        assert_eq!(r.observe(event_key("s", "1"), 999_000), Verdict::Remembered);
        assert_eq!(r.observe(event_key("s", "2"), 1_000_500), Verdict::Remembered);
    }
}
