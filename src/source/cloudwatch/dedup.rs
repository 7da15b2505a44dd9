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
//! The keys are capped ([`MAX_DEDUP_KEYS`], shared out among the log groups)
//! so that a scan that never ends (endless pagination, a huge catch-up)
//! cannot grow them without bound. At the cap a new event is either counted
//! without a key, when no later scan will look it up (ingested before the
//! next horizon minus the margin), or *deferred*: neither counted nor
//! remembered, and the next horizon is held back to its ingestion time so
//! that the next scan reads it as new ([`Verdict::NewWithoutKey`],
//! [`Verdict::Deferred`]).
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

/// The most event keys the exporter remembers, all log groups together; each
/// group gets an equal share ([`key_cap`]). About 40 MB of memory and 32 MB of
/// state file at most; a steady 7,000 new events a second with the default
/// poll interval and margin stay below it.
pub const MAX_DEDUP_KEYS: usize = 1_000_000;

/// The key cap of each of `groups` log groups: an equal share of
/// [`MAX_DEDUP_KEYS`] (so that a flood in one group cannot take another's).
pub fn key_cap(groups: usize) -> usize {
    (MAX_DEDUP_KEYS / groups.max(1)).max(1)
}

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
    /// New, counted without remembering its key because the window is at its
    /// cap: no later scan looks it up (it lies below the next horizon minus
    /// the margin). Only a scan read again from its first page (an expired
    /// token) would count it twice.
    NewWithoutKey,
    /// New, but the window is at its cap and a later scan would look it up:
    /// not counted now; the next horizon is held back so that the next scan
    /// counts it.
    Deferred,
}

impl Verdict {
    /// Whether the event is to be counted now.
    pub fn is_new(self) -> bool {
        matches!(self, Verdict::New | Verdict::NewWithoutKey)
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
    /// Oldest ingestion time of an event the scan in progress deferred (at
    /// the cap): the next horizon is at most this plus the margin.
    pub scan_deferred_ms: Option<i64>,
}

/// The horizon and the recent keys of one log group.
#[derive(Debug, Clone)]
pub struct SeenWindow {
    margin_ms: i64,
    t: WindowTimes,
    /// Bucket start (ingestion time, ms) -> keys.
    buckets: BTreeMap<i64, FxHashSet<u128>>,
    len: usize,
    /// The most keys held; beyond, new events are keyless or deferred.
    cap: usize,
    /// Events the scan in progress counted without a key.
    keyless: u64,
}

/// The bucket of an ingestion time. Times within a bucket of `i64::MIN`
/// (from an odd endpoint or state file) share the lowest bucket instead of
/// overflowing.
fn bucket_of(ingestion_ms: i64) -> i64 {
    ingestion_ms.div_euclid(BUCKET_MS).saturating_mul(BUCKET_MS)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SeenWindow {
    /// A window holding at most [`MAX_DEDUP_KEYS`] keys.
    pub fn new(margin: Duration) -> SeenWindow {
        SeenWindow::with_cap(margin, MAX_DEDUP_KEYS)
    }

    /// A window holding at most `cap` keys.
    pub fn with_cap(margin: Duration, cap: usize) -> SeenWindow {
        SeenWindow {
            margin_ms: millis(margin),
            t: WindowTimes::default(),
            buckets: BTreeMap::new(),
            len: 0,
            cap,
            keyless: 0,
        }
    }

    /// Rebuilds a window from a checkpoint: its times and the remembered keys
    /// with (a time in the bucket of) their ingestion time. A checkpoint
    /// holding more than `cap` keys keeps them all (at most what the state
    /// file's size limit lets through); no key is added until pruning brings
    /// the window below its cap.
    pub fn restore(
        margin: Duration,
        cap: usize,
        times: WindowTimes,
        keys: impl IntoIterator<Item = (i64, u128)>,
    ) -> SeenWindow {
        let mut w = SeenWindow::with_cap(margin, cap);
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

    /// The most keys the window holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Whether the window holds as many keys as its cap.
    pub fn is_full(&self) -> bool {
        self.len >= self.cap
    }

    /// Events the scan in progress counted without remembering a key.
    pub fn keyless_in_scan(&self) -> u64 {
        self.keyless
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
    /// counted by the interrupted one stay remembered). Its bound on
    /// CloudWatch's clock starts at the newest ingestion time read so far:
    /// that event was visible before the scan began.
    pub fn begin_scan(&mut self, now_ms: i64) {
        self.t.scan_start_ms = Some(now_ms);
        self.t.scan_bound_ms = self.t.newest_ingestion_ms;
        // A restarted scan reads its deferred events again.
        self.t.scan_deferred_ms = None;
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
            let c = self.t.scan_start_ms?;
            Some(self.held_back(c.min(self.t.scan_bound_ms.unwrap_or(c))).saturating_sub(self.margin_ms))
        })
    }

    /// A horizon candidate held back to the oldest deferred event plus the
    /// margin.
    fn held_back(&self, candidate: i64) -> i64 {
        match self.t.scan_deferred_ms {
            Some(d) => candidate.min(d.saturating_add(self.margin_ms)),
            None => candidate,
        }
    }

    /// Whether an event ingested at `ingestion_ms` is known to be counted by
    /// time alone: callers check this first and skip hashing the key.
    pub fn is_before_horizon(&self, ingestion_ms: i64) -> bool {
        self.skip_below().is_some_and(|skip| ingestion_ms < skip)
    }

    /// At the cap, the ingestion time below which a new event is counted
    /// without a key: `min(scan start, scan bound, oldest deferred + margin) -
    /// margin`, which never decreases during a scan and is at most the
    /// horizon the scan will set minus the margin, so no later scan looks
    /// such an event up. `None` before the scan has seen a page.
    fn keyless_below(&self) -> Option<i64> {
        let c = self.t.scan_start_ms?;
        let b = self.t.scan_bound_ms?;
        Some(self.held_back(c.min(b)).saturating_sub(self.margin_ms))
    }

    /// Classifies one event and, if it is new, remembers it (or, at the cap,
    /// counts it without a key or defers it: see [`Verdict`]).
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
        if self.remember_from().is_some_and(|from| ingestion_ms < from) {
            // Below what any later scan looks up: no key needed.
            return Verdict::New;
        }
        if self.len < self.cap {
            self.buckets.entry(bucket).or_default().insert(key);
            self.len += 1;
            return Verdict::New;
        }
        if self.keyless_below().is_some_and(|below| ingestion_ms < below) {
            self.keyless += 1;
            return Verdict::NewWithoutKey;
        }
        self.t.scan_deferred_ms = Some(self.t.scan_deferred_ms.map_or(ingestion_ms, |d| d.min(ingestion_ms)));
        Verdict::Deferred
    }

    /// The scan in progress read everything to the end. The horizon becomes
    /// its start `C` — or, if earlier, its bound on CloudWatch's clock at `C`
    /// (see [`SeenWindow::note_page`]), so that a host clock running ahead of
    /// CloudWatch's cannot push the horizon past what the scan could see. A
    /// scan that read no event does not move the horizon; one that deferred
    /// events (at the cap) moves it at most to the oldest of them plus the
    /// margin, so that the next scan reads them as new. Keys ingested before
    /// `horizon - margin` are dropped.
    pub fn finish_scan(&mut self) {
        self.keyless = 0;
        if let Some(c) = self.t.scan_start_ms.take() {
            if let Some(b) = self.t.scan_bound_ms.take() {
                let candidate = self.held_back(b.min(c));
                let h = self.t.horizon_ms.map_or(candidate, |h| h.max(candidate));
                self.t.horizon_ms = Some(h);
                self.prune_below(h.saturating_sub(self.margin_ms));
            }
            // The next scan's range reaches back `lookback` from here: from
            // the oldest deferred event, if any, so that it reads them.
            let c = self.t.scan_deferred_ms.map_or(c, |d| c.min(d));
            self.t.last_scan_start_ms = Some(self.t.last_scan_start_ms.map_or(c, |l| l.max(c)));
        }
        self.t.scan_deferred_ms = None;
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
    fn times_at_the_ends_of_i64_do_not_overflow() {
        // Found by tests/fuzz.rs: a state file bucket or an event ingested at
        // i64::MIN + 1 overflowed the bucket computation (a panic in debug
        // builds, a bucket wrapped into the future in release builds).
        let keys = [(i64::MIN + 1, 1u128), (i64::MIN, 2), (i64::MAX, 3)];
        let times = WindowTimes::default();
        let mut w = SeenWindow::restore(Duration::from_secs(60), 10, times, keys);
        assert_eq!(w.len(), 3);
        w.begin_scan(1_000_000);
        assert_eq!(w.observe(1, i64::MIN + 1), Verdict::Remembered);
        assert_ne!(w.observe(4, i64::MIN + 2), Verdict::Remembered);
        assert_eq!(w.observe(3, i64::MAX), Verdict::Remembered);
        assert!(w.keys().all(|(b, _)| b == i64::MIN || b > 0), "no bucket wrapped around");
    }

    #[test]
    fn restore_round_trips() {
        let mut w = SeenWindow::new(Duration::from_secs(60));
        w.begin_scan(1_000_000);
        w.observe(event_key("s", "1"), 999_000);
        w.observe(event_key("s", "2"), 1_000_500);
        w.finish_scan();
        let r = SeenWindow::restore(Duration::from_secs(60), 10, w.times(), w.keys().collect::<Vec<_>>());
        assert_eq!(r.len(), 2);
        let mut r = r;
        r.begin_scan(1_010_000);
        assert_eq!(r.observe(event_key("s", "1"), 999_000), Verdict::Remembered);
        assert_eq!(r.observe(event_key("s", "2"), 1_000_500), Verdict::Remembered);
    }

    /// A simulated log group polled through a window capped at `cap` keys:
    /// events ingested at a steady rate (`per_poll` a poll, up to `lookback/2`
    /// late), scans every minute that read their range in pages of random
    /// order, some scans left unfinished for `stall` polls (a scan that does
    /// not end); then a trickle of one event a poll (deferred events wait for
    /// CloudWatch to show a newer one: see `Verdict::Deferred`). Returns
    /// (times each event was counted, most keys held, events of the main phase).
    fn capped_run(cap: usize, per_poll: usize, stall: usize, seed: u64) -> (Vec<u32>, usize, usize) {
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(seed);
        let (lookback, margin) = (20 * MIN, 60_000);
        let mut w = SeenWindow::with_cap(Duration::from_millis(margin as u64), cap);
        let mut events: Vec<(i64, i64)> = Vec::new(); // (timestamp, ingestion)
        let mut counted: Vec<u32> = Vec::new();
        let mut most = 0;
        let mut now = 1_800_000_000_000i64;
        let polls = 40;
        let mut main_phase = 0;
        for poll in 0..polls + 10 {
            if poll == polls {
                main_phase = events.len();
            }
            let start = w.last_scan_start_ms().map_or(now - lookback, |c| c - lookback);
            w.begin_scan(now);
            // Each event is read at most once a scan.
            let mut read = vec![false; events.len()];
            // A stalled scan: pages keep coming for `stall` polls while new
            // events are ingested, then it ends.
            let rounds = if poll % 10 == 3 { stall + 1 } else { 1 };
            for r in 0..rounds {
                if r > 0 {
                    now += MIN;
                }
                let at = now;
                if poll < polls + 8 {
                    for _ in 0..if poll < polls { per_poll } else { 1 } {
                        let ing = at - rng.random_range(0..MIN);
                        events.push((ing - rng.random_range(0..lookback / 2), ing));
                        counted.push(0);
                        read.push(false);
                    }
                }
                let mut visible: Vec<usize> =
                    (0..events.len()).filter(|&i| !read[i] && events[i].0 >= start && events[i].1 <= at).collect();
                // Pages in any order, each bounded by its newest event.
                for i in (1..visible.len()).rev() {
                    visible.swap(i, rng.random_range(0..=i));
                }
                for page in visible.chunks(50) {
                    if let Some(n) = page.iter().map(|&i| events[i].1).max() {
                        w.note_page(n, at);
                    }
                    for &i in page {
                        read[i] = true;
                        if w.observe(event_key("s", &i.to_string()), events[i].1).is_new() {
                            counted[i] += 1;
                        }
                        most = most.max(w.len());
                    }
                }
            }
            w.finish_scan();
            now += MIN;
        }
        (counted, most, main_phase)
    }

    #[test]
    fn capped_keys_count_every_event_once_through_stalled_scans() {
        for (cap, per_poll, stall, seed) in [(50, 200, 3, 1), (10, 100, 5, 2), (1000, 200, 3, 3), (1, 30, 2, 4)] {
            let (counted, most, main_phase) = capped_run(cap, per_poll, stall, seed);
            assert!(most <= cap, "cap {cap}: held {most}");
            assert!(counted.iter().all(|&c| c <= 1), "cap {cap}: an event counted twice");
            let wrong: Vec<_> = counted[..main_phase].iter().enumerate().filter(|(_, &c)| c != 1).collect();
            assert!(
                wrong.is_empty(),
                "cap {cap}: {} of {} counted other than once: {:?}",
                wrong.len(),
                counted.len(),
                &wrong[..wrong.len().min(10)]
            );
        }
    }

    #[test]
    fn at_the_cap_events_are_counted_without_a_key_or_deferred() {
        let m = 60_000;
        let mut w = SeenWindow::with_cap(Duration::from_millis(m as u64), 2);
        let now = 10_000_000;
        // A first scan sets the horizon at `now`.
        w.begin_scan(now);
        w.note_page(now, now);
        w.finish_scan();
        assert_eq!(w.horizon_ms(), Some(now));
        // A catch-up: the next scan begins 10 minutes later.
        let c = now + 600_000;
        w.begin_scan(c);
        w.note_page(c, c);
        assert_eq!(w.observe(1, now), Verdict::New);
        assert_eq!(w.observe(2, now + 1), Verdict::New);
        assert!(w.is_full());
        // Ingested well before this scan began: keyless.
        assert_eq!(w.observe(3, now + 2), Verdict::NewWithoutKey);
        assert_eq!(w.keyless_in_scan(), 1);
        // Ingested near or after its start: left to the next scan.
        assert_eq!(w.observe(4, c - 1000), Verdict::Deferred);
        assert_eq!(w.observe(5, c + 5000), Verdict::Deferred);
        assert_eq!(w.len(), 2);
        assert_eq!(w.times().scan_deferred_ms, Some(c - 1000));
        w.finish_scan();
        // The horizon keeps the deferred ones looked up (they lie above it
        // minus the margin), the next range reaches back from the oldest.
        assert_eq!(w.horizon_ms(), Some(c));
        assert_eq!(w.last_scan_start_ms(), Some(c - 1000));
        assert_eq!(w.keyless_in_scan(), 0);
        // The next scan counts the deferred ones (and skips the keyless one).
        w.begin_scan(c + 60_000);
        w.note_page(c + 5000, c + 60_000);
        assert_eq!(w.observe(3, now + 2), Verdict::BeforeHorizon);
        assert!(w.observe(4, c - 1000).is_new());
        assert!(w.observe(5, c + 5000).is_new());
    }

    #[test]
    fn key_caps_share_the_budget() {
        assert_eq!(key_cap(1), MAX_DEDUP_KEYS);
        assert_eq!(key_cap(0), MAX_DEDUP_KEYS);
        assert_eq!(key_cap(4), MAX_DEDUP_KEYS / 4);
        assert_eq!(key_cap(usize::MAX), 1);
    }
}
