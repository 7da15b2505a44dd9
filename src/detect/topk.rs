//! Windowed top-K of addresses by REJECT record count, in bounded memory.
//!
//! **Window.** Flow time is cut into slots of `width = ceil(W / 60)` seconds
//! (at least 1 s), so a window holds at most 60 slots. At `newest`, the live
//! slots are the ones that start after `newest - W`: a record at time `t` is
//! counted when `t / width > (newest - W) / width`. Nothing older than the
//! window is ever counted; the oldest `width - 1` seconds of the window may be
//! left out (boundary precision: one slot, i.e. 15 s for the 15 m default; the
//! boundary is exact for windows up to 60 s). Records may arrive out of order:
//! any record whose slot is still live is counted; older ones are ignored
//! (counted by [`WindowedTopK::stale`]).
//!
//! **Memory.** One hash-map entry per address: a `u128` key (IPv4 as
//! IPv4-mapped IPv6) and 16 bytes of state. An address seen in a single slot
//! keeps its count inline; one seen in two or more live slots gets a ring of 60
//! `u32` counters and a `u64` window total from a slab (`rings.rs`: laid out
//! by slot, so a slot leaving the window — at most once per slot width of
//! flow time — is one sequential pass over the rings that keeps every total
//! current; reused through a free list, so there is no
//! allocation per record once the slab has grown). At most `capacity`
//! addresses are held: the table (32 bytes a bucket, about 4 MiB for 50,000
//! under churn) plus at most 248 bytes of ring per address (and up to 63
//! spare rings: the slab grows 64 at a time).
//!
//! **Snapshots and merges.** [`WindowedTopK::snapshot`] lists every live
//! (address, count) in one pass over the table, reading one total per
//! address, for the collector to sort outside the writers' lock
//! ([`select_top`](super::tracker::select_top), the order of
//! [`WindowedTopK::top`]). [`WindowedTopK::merge_from`] folds in a tracker of
//! the same window (a per-worker shard) slot by slot: exact while the union
//! of the addresses fits, bounds added (see `losslog.rs`).
//!
//! **Eviction.** When a new address arrives and `capacity` are held, a
//! compaction first drops the addresses with nothing left in the window (not
//! evictions), then, if more than `capacity / 2` remain, evicts the ones with
//! the smallest window counts (ties: the least recently seen slot first, then
//! table order) down to `capacity / 2`. Each compaction costs O(capacity) and
//! happens at most once per `capacity / 2` new addresses: amortized O(1) per
//! record. For one window after an evicting compaction, new addresses are
//! admitted on their second record (see `admit.rs`): the first one is
//! deferred ([`WindowedTopK::deferred`]), so floods of one-off addresses stay
//! out of the table.
//!
//! **Error bound.** Counts are exact while the distinct addresses of the window
//! fit the capacity. Beyond, a count is never above the truth, and it is exact
//! for an address that was neither evicted nor deferred during the window;
//! each eviction of an address dropped at most [`WindowedTopK::error_bound`]
//! records that are still in the window, each deferral one. With
//! `capacity >= 4 × K` (the configuration enforces it) the
//! addresses reported in the top K are above the eviction threshold and are not
//! the ones evicted by the next compaction.

use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::addr::{addr_of, key_of};
use super::rings::{LiveFrom, Rings, NO_RING};
use super::tracker::{evict_lowest, priority, select_top, tracker_stats, Stats};
pub use super::tracker::{SlotClock, SLOTS};

/// Per address: its count in the live slots.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Inline: the count of slot `head` (with a ring: unused, 0).
    total: u64,
    /// The newest slot written (an epoch number, `time / width`).
    head: u32,
    /// Index of this address's ring in the slab (which keeps its window
    /// total), or `NO_RING` when all its records are in slot `head`.
    ring: u32,
}

/// Counts per address over a sliding window of flow time, holding at most
/// `capacity` addresses.
#[derive(Debug)]
pub struct WindowedTopK {
    clock: SlotClock,
    capacity: usize,
    map: FxHashMap<u128, Entry>,
    rings: Rings,
    newest: u64,
    /// `clock.first_live(newest)`, kept to spare a division per record
    /// (`u64::MAX` until the first record).
    first_live: u64,
    /// Evictions, stale records, losses and the admission filter.
    stats: Stats,
    scratch: Vec<u64>,
    /// For a merge: the ring here of each ring of the tracker merged in.
    merge_rings: Vec<u32>,
}

impl WindowedTopK {
    /// `capacity` is the most addresses held (at least 1).
    pub fn new(window: Duration, capacity: usize) -> WindowedTopK {
        let capacity = capacity.max(1);
        WindowedTopK {
            clock: SlotClock::new(window),
            capacity,
            map: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            rings: Rings::new(SlotClock::new(window).slots()),
            newest: 0,
            first_live: u64::MAX,
            stats: Stats::default(),
            scratch: Vec::new(),
            merge_rings: Vec::new(),
        }
    }

    /// One record for `key` at flow time `time` (unix seconds); `newest` is the
    /// newest record time seen by the caller (>= time is not required).
    #[inline]
    pub fn add(&mut self, key: IpAddr, time: u64, newest: u64) {
        self.advance(newest.max(time));
        let epoch = self.clock.epoch(time);
        if epoch < self.first_live {
            self.stats.stale += 1;
            return;
        }
        let epoch = epoch.min(u64::from(u32::MAX - 1)) as u32;
        let k = key_of(key);
        // One probe for a held address, the common case.
        if let Some(e) = self.map.get_mut(&k) {
            bump(e, epoch, 1, self.first_live, &mut self.rings);
            return;
        }
        if self.map.len() >= self.capacity {
            self.compact(self.newest);
        }
        if self.stats.admit(&self.clock, k, self.newest) {
            self.map.insert(k, Entry { total: 1, head: epoch, ring: NO_RING });
        }
    }

    /// Moves the newest time seen forward to `newest` (never back), as a
    /// record at that time would, without counting anything: the slots that
    /// left the window are swept out of the address totals, so that a later
    /// [`snapshot`](Self::snapshot) at `newest` reads one number per address.
    #[inline]
    pub fn advance(&mut self, newest: u64) {
        let newest = self.newest.max(newest);
        if newest != self.newest || self.first_live == u64::MAX {
            self.newest = newest;
            self.first_live = self.clock.first_live(newest);
            // Slots that left the window leave the ring totals.
            self.rings.expire(self.first_live);
        }
    }

    /// Appends every address with records in the window ending at `newest`
    /// (or the newest time seen, if later) to `out` as (address, window
    /// count), in no particular order. O(addresses held), one load per
    /// address (rings keep their window totals), allocating nothing but
    /// `out`'s growth: meant to run under the writers' lock, with the sorting
    /// ([`select_top`](super::tracker::select_top)) done outside it. A
    /// `newest` in a later slot than the newest time seen also reads, per
    /// address with a ring, the slots that left the window since
    /// ([`advance`](Self::advance) first spares that).
    pub fn snapshot(&self, newest: u64, out: &mut Vec<(IpAddr, u64)>) {
        let view = self.view(newest);
        out.reserve(self.map.len());
        for (&key, e) in &self.map {
            let c = count_at(e, &view, &self.rings);
            if c > 0 {
                out.push((addr_of(key), c));
            }
        }
    }

    /// The `k` addresses with the most records in the window ending at `newest`,
    /// most first (ties: by address), appended to `out`: [`snapshot`](Self::snapshot)
    /// then [`select_top`](super::tracker::select_top).
    pub fn top(&self, k: usize, newest: u64, out: &mut Vec<(IpAddr, u64)>) {
        if k == 0 {
            return;
        }
        let mut all = Vec::new();
        self.snapshot(newest, &mut all);
        select_top(&mut all, k);
        out.append(&mut all);
    }

    /// The window count of one address at `newest` (0 when not held).
    pub fn count(&self, key: IpAddr, newest: u64) -> u64 {
        let view = self.view(newest);
        self.map.get(&key_of(key)).map_or(0, |e| count_at(e, &view, &self.rings))
    }

    /// The window ending at `newest` (or the newest time seen, if later).
    fn view(&self, newest: u64) -> LiveFrom {
        self.rings.live_from(self.clock.first_live(newest.max(self.newest)))
    }

    /// Whether a [`snapshot`](Self::snapshot) at `newest` takes the fast
    /// path: one load per address, no slot that left the window to subtract.
    #[cfg(test)]
    pub(crate) fn is_swept_at(&self, newest: u64) -> bool {
        self.view(newest).is_swept()
    }

    /// Folds `other` (a tracker of the same window, e.g. a per-worker shard)
    /// into this one: the newest time becomes the later of both, and every
    /// address's per-slot counts that are live then are added, as if this
    /// tracker had been fed both trackers' records (exact while the union of
    /// the addresses fits the capacity; beyond, new addresses go through the
    /// usual compaction, but not through the admission filter, which `other`
    /// already applied). Statistics add; the error bound becomes at least the
    /// sum of both bounds, plus what this merge evicts. O(1) when `other`
    /// is empty and dropped nothing; while the union fits, O(addresses of
    /// `other` + its rings × live slots), in sequential passes; beyond,
    /// O(addresses × live slots of `other`).
    pub fn merge_from(&mut self, other: &WindowedTopK) {
        debug_assert_eq!(self.clock, other.clock, "merged trackers must share the window");
        self.advance(other.newest);
        if other.map.is_empty() && other.stats.is_clear() {
            return;
        }
        self.stats.merge(&other.stats, &self.clock, self.newest);
        if self.map.len() + other.map.len() <= self.capacity {
            self.merge_fitting(other);
            return;
        }
        let first_live = self.first_live;
        for (&k, e) in &other.map {
            self.fold(k, live_slots(e, first_live, self.clock.slots(), &other.rings));
        }
    }

    /// [`merge_from`](Self::merge_from) when the union of the addresses fits
    /// (no compaction can run): inline counts are folded in per address,
    /// rings column by column — one sequential pass per live slot of `other`
    /// rather than a cache miss per address and slot.
    fn merge_fitting(&mut self, other: &WindowedTopK) {
        let first_live = self.first_live;
        let mut into = std::mem::take(&mut self.merge_rings);
        into.clear();
        into.resize(other.rings.len(), NO_RING);
        for (&k, o) in &other.map {
            if u64::from(o.head) < first_live {
                continue;
            }
            if o.ring == NO_RING {
                self.fold(k, std::iter::once((u64::from(o.head), o.total.min(u64::from(u32::MAX)) as u32)));
                continue;
            }
            let e = self.map.entry(k).or_insert(Entry { total: 0, head: o.head, ring: NO_RING });
            if e.ring == NO_RING {
                // Inline here: to a ring, with its count if still live.
                let r = self.rings.alloc();
                if e.total > 0 && u64::from(e.head) >= first_live {
                    self.rings.add(r, u64::from(e.head), e.total as u32);
                }
                *e = Entry { total: 0, head: e.head, ring: r };
            }
            e.head = e.head.max(o.head);
            into[o.ring as usize] = e.ring;
        }
        self.rings.add_columns(&other.rings, &into);
        self.merge_rings = into;
    }

    /// Counts the live `(epoch, count)` slots of one address, oldest first,
    /// without the admission filter.
    fn fold(&mut self, k: u128, live: impl Iterator<Item = (u64, u32)>) {
        let mut live = live.filter(|&(_, c)| c > 0).peekable();
        let Some(&(epoch, c)) = live.peek() else {
            return;
        };
        if !self.map.contains_key(&k) {
            if self.map.len() >= self.capacity {
                self.compact(self.newest);
            }
            self.map.insert(k, Entry { total: u64::from(c), head: epoch as u32, ring: NO_RING });
            live.next();
        }
        let first_live = self.first_live;
        if let Some(e) = self.map.get_mut(&k) {
            for (epoch, c) in live {
                bump(e, epoch as u32, c, first_live, &mut self.rings);
            }
        }
    }

    /// Back to a new tracker's state (no addresses, no statistics, newest 0),
    /// keeping the allocations: for a scratch tracker reused after a merge.
    pub fn clear(&mut self) {
        self.map.clear();
        self.rings.clear();
        self.newest = 0;
        self.first_live = u64::MAX;
        self.stats.clear();
    }

    tracker_stats!();

    /// The slot width in seconds (the window boundary precision).
    pub fn slot_width(&self) -> u64 {
        self.clock.width()
    }

    /// An estimate of the heap bytes held: the map's buckets and the ring slab.
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket, buckets a power of two.
        let buckets = (self.map.capacity() * 8 / 7).next_power_of_two();
        buckets * (std::mem::size_of::<(u128, Entry)>() + 1)
            + self.rings.heap_bytes()
            + self.merge_rings.capacity() * 4
            + self.scratch.capacity() * std::mem::size_of::<u64>()
            + self.stats.admission.heap_bytes()
    }

    /// Drops the addresses with nothing left in the window, then evicts the
    /// smallest counts down to half the capacity.
    fn compact(&mut self, newest: u64) {
        let view = self.rings.live_from(self.clock.first_live(newest));
        let (rings, scratch) = (&mut self.rings, &mut self.scratch);
        scratch.clear();
        self.map.retain(|_, e| {
            let c = count_at(e, &view, rings);
            if c == 0 {
                release(rings, e);
                false
            } else {
                scratch.push(priority(c, e.head));
                true
            }
        });
        let evicted = evict_lowest(
            &mut self.map,
            scratch,
            self.capacity / 2,
            rings,
            |rings, e| priority(count_at(e, &view, rings), e.head),
            release,
        );
        self.stats.evicted(&self.clock, newest, evicted);
    }
}

/// Counts `n` records of slot `epoch` (live) into `e`.
#[inline]
fn bump(e: &mut Entry, epoch: u32, n: u32, first_live: u64, rings: &mut Rings) {
    if e.ring == NO_RING {
        if epoch == e.head {
            e.total = (e.total + u64::from(n)).min(u64::from(u32::MAX));
            return;
        }
        if u64::from(e.head) < first_live {
            // Everything it held has left the window: start again inline.
            *e = Entry { total: u64::from(n), head: epoch, ring: NO_RING };
            return;
        }
        // Two live slots: move to a ring.
        let r = rings.alloc();
        rings.add(r, u64::from(e.head), e.total as u32);
        *e = Entry { total: 0, head: e.head, ring: r };
    } else if rings.total(e.ring) == 0 {
        // Everything it held has left the window: back inline.
        rings.release(e.ring, u64::from(e.head));
        *e = Entry { total: u64::from(n), head: epoch, ring: NO_RING };
        return;
    }
    rings.add(e.ring, u64::from(epoch), n);
    e.head = e.head.max(epoch);
}

/// The count of `e` in the window `view`.
#[inline]
fn count_at(e: &Entry, view: &LiveFrom, rings: &Rings) -> u64 {
    let head = u64::from(e.head);
    if head < view.first_live {
        0
    } else if e.ring == NO_RING {
        e.total
    } else {
        rings.total_in(e.ring, head, view)
    }
}

/// The `(epoch, count)` slots of `e` from `first_live` on, oldest first
/// (some counts may be 0).
fn live_slots<'a>(e: &Entry, first_live: u64, slots: u64, rings: &'a Rings) -> impl Iterator<Item = (u64, u32)> + 'a {
    let (head, total, ring) = (u64::from(e.head), e.total.min(u64::from(u32::MAX)) as u32, e.ring);
    let oldest = match ring {
        NO_RING => first_live.max(head),
        _ => first_live.max(rings.swept()).max((head + 1).saturating_sub(slots)),
    };
    (oldest..=head).map(move |epoch| match ring {
        NO_RING => (head, total),
        r => (epoch, rings.get(r, epoch)),
    })
}

fn release(rings: &mut Rings, e: &mut Entry) {
    if e.ring != NO_RING {
        rings.release(e.ring, u64::from(e.head));
        e.ring = NO_RING;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tracker::test_addrs::{ip, v4};
    use super::*;
    use proptest::prelude::*;

    fn top(t: &WindowedTopK, k: usize, newest: u64) -> Vec<(IpAddr, u64)> {
        let mut out = Vec::new();
        t.top(k, newest, &mut out);
        out
    }

    #[test]
    fn counts_exactly_and_orders_ties_by_address() {
        let mut t = WindowedTopK::new(Duration::from_secs(900), 100);
        let base = 1_700_000_000;
        for (addr, n) in [("10.0.0.3", 5), ("10.0.0.1", 7), ("10.0.0.2", 5), ("2001:db8::1", 5), ("9.9.9.9", 1)] {
            for i in 0..n {
                t.add(ip(addr), base + i * 40, base + 400);
            }
        }
        assert_eq!(
            top(&t, 4, base + 400),
            vec![(ip("10.0.0.1"), 7), (ip("10.0.0.2"), 5), (ip("10.0.0.3"), 5), (ip("2001:db8::1"), 5)]
        );
        assert_eq!(top(&t, 0, base + 400), vec![]);
        assert_eq!(top(&t, 100, base + 400).len(), 5);
        assert_eq!(t.len(), 5);
        assert_eq!(t.evictions(), 0);
        assert_eq!(t.error_bound(base + 400), 0);
    }

    #[test]
    fn top_appends_to_out() {
        let mut t = WindowedTopK::new(Duration::from_secs(60), 10);
        t.add(ip("1.1.1.1"), 100, 100);
        let mut out = vec![(ip("9.9.9.9"), 42)];
        t.top(5, 100, &mut out);
        assert_eq!(out, vec![(ip("9.9.9.9"), 42), (ip("1.1.1.1"), 1)]);
    }

    #[test]
    fn window_boundary_is_exact_for_short_windows() {
        // W = 60 s: 1-second slots, so the boundary is exact.
        let mut t = WindowedTopK::new(Duration::from_secs(60), 10);
        let a = ip("192.0.2.1");
        t.add(a, 1000, 1000);
        assert_eq!(t.count(a, 1059), 1); // 1000 > 1059 - 60
        assert_eq!(t.count(a, 1060), 0); // 1000 is not > 1000
        assert_eq!(top(&t, 5, 1060), vec![]);
        // A record exactly at newest - W is too old to count.
        t.add(a, 1000, 1060);
        assert_eq!(t.stale(), 1);
        t.add(a, 1001, 1060);
        assert_eq!(t.count(a, 1060), 1);
    }

    #[test]
    fn window_boundary_precision_is_one_slot() {
        // W = 900 s: 15-second slots. Slot [990, 1005) starts at 990.
        let mut t = WindowedTopK::new(Duration::from_secs(900), 10);
        let a = ip("192.0.2.1");
        for time in [990, 1004] {
            t.add(a, time, time);
        }
        // Live while the slot starts after newest - W.
        assert_eq!(t.count(a, 1889), 2);
        // At newest = 1890 the slot [990, 1005) is left out as a whole: 1004 is
        // still within W but dropped (at most width - 1 = 14 s early).
        assert_eq!(t.count(a, 1890), 0);
        // Never counts a record older than the window.
        for newest in 1890..1910 {
            assert_eq!(t.count(a, newest), 0);
        }
    }

    #[test]
    fn out_of_order_records_count_while_live() {
        let mut t = WindowedTopK::new(Duration::from_secs(600), 10);
        let a = ip("198.51.100.7");
        t.add(a, 10_000, 10_000);
        t.add(a, 9_500, 10_000); // older but live
        t.add(a, 9_300, 10_000); // older than the window: ignored
        t.add(a, 9_990, 10_000);
        assert_eq!(t.count(a, 10_000), 3);
        assert_eq!(t.stale(), 1);
        // 9_500 leaves the window at 10_100 (slot [9_500, 9_510) starts at 9_500).
        assert_eq!(t.count(a, 10_099), 3);
        assert_eq!(t.count(a, 10_100), 2);
        // A record far later resets the ring.
        t.add(a, 20_000, 20_000);
        assert_eq!(t.count(a, 20_000), 1);
        assert_eq!(t.count(ip("1.2.3.4"), 20_000), 0);
    }

    #[test]
    fn newest_moves_with_time_when_caller_lags() {
        let mut t = WindowedTopK::new(Duration::from_secs(60), 10);
        let a = ip("192.0.2.9");
        t.add(a, 100, 0);
        t.add(a, 500, 0); // newest becomes 500: the record at 100 is gone
        assert_eq!(t.count(a, 0), 1);
    }

    #[test]
    fn capacity_is_respected_and_evictions_counted() {
        let cap = 64;
        let mut t = WindowedTopK::new(Duration::from_secs(900), cap);
        let now = 1_000_000;
        // A heavy address, then many one-record addresses.
        for _ in 0..50 {
            t.add(ip("203.0.113.66"), now, now);
        }
        for i in 0..1000u32 {
            t.add(v4(0x0a00_0000 + i), now, now);
            assert!(t.len() <= cap);
        }
        assert!(t.evictions() > 0);
        // Every address is accounted: held, evicted, or (once evictions
        // began) deferred by the admission filter on its first record.
        assert!(t.deferred() > 0);
        assert_eq!(t.len() as u64 + t.evictions() + t.deferred(), 1001);
        assert_eq!(top(&t, 1, now)[0], (ip("203.0.113.66"), 50));
        assert_eq!(t.max_evicted(), 1);
        assert_eq!(t.error_bound(now), 1);
        // The evictions leave the window with their records.
        assert_eq!(t.error_bound(now + 900), 0);
    }

    #[test]
    fn expired_addresses_are_dropped_not_evicted() {
        let cap = 64;
        let mut t = WindowedTopK::new(Duration::from_secs(60), cap);
        for i in 0..64u32 {
            t.add(v4(i + 1), 100, 100);
        }
        for i in 0..64u32 {
            t.add(v4(1000 + i), 1000, 1000);
        }
        assert_eq!(t.evictions(), 0);
        assert_eq!(t.len(), 64);
    }

    #[test]
    fn eviction_prefers_least_recent_on_ties() {
        let mut t = WindowedTopK::new(Duration::from_secs(900), 4);
        t.add(ip("10.0.0.1"), 1000, 1000);
        t.add(ip("10.0.0.2"), 1000, 1000);
        t.add(ip("10.0.0.3"), 1100, 1100);
        t.add(ip("10.0.0.4"), 1100, 1100);
        t.add(ip("10.0.0.5"), 1100, 1100); // compaction: keep 2 of 4
        assert_eq!(t.evictions(), 2);
        let kept: Vec<IpAddr> = top(&t, 10, 1100).into_iter().map(|(a, _)| a).collect();
        assert_eq!(kept, vec![ip("10.0.0.3"), ip("10.0.0.4")]);
        // After evictions a new address is admitted on its second record.
        assert_eq!(t.deferred(), 1);
        t.add(ip("10.0.0.5"), 1101, 1101);
        assert_eq!(t.count(ip("10.0.0.5"), 1101), 1);
        assert_eq!(t.error_bound(1101), 1);
        // Once the window has passed since the last eviction, the filter is off.
        t.add(ip("10.0.0.6"), 2100, 2100);
        assert_eq!((t.count(ip("10.0.0.6"), 2100), t.deferred()), (1, 1));
        assert_eq!(t.error_bound(2100), 0);
    }

    #[test]
    fn rings_are_reused() {
        let mut t = WindowedTopK::new(Duration::from_secs(60), 8);
        for round in 0..100u64 {
            for i in 0..8u32 {
                let time = 1000 + round * 200;
                t.add(v4(i + 100 * round as u32), time, time);
                t.add(v4(i + 100 * round as u32), time + 1, time + 1);
            }
        }
        // 800 addresses with rings over time, one block of rings.
        assert!(t.rings.len() <= 64, "slab grew to {}", t.rings.len());
    }

    #[test]
    fn snapshot_lists_every_live_count_once() {
        let mut t = WindowedTopK::new(Duration::from_secs(60), 10);
        t.add(ip("10.0.0.1"), 1000, 1000);
        t.add(ip("10.0.0.1"), 1001, 1001);
        t.add(ip("10.0.0.2"), 1001, 1001);
        t.add(ip("2001:db8::1"), 1020, 1020);
        let mut out = vec![(ip("9.9.9.9"), 42)];
        t.snapshot(1020, &mut out);
        out[1..].sort();
        assert_eq!(out, vec![(ip("9.9.9.9"), 42), (ip("10.0.0.1"), 2), (ip("10.0.0.2"), 1), (ip("2001:db8::1"), 1)]);
        // 1000 and 1001 have left the window at 1061: only the IPv6 address is live.
        out.clear();
        t.snapshot(1061, &mut out);
        assert_eq!(out, vec![(ip("2001:db8::1"), 1)]);
        let mut top = Vec::new();
        t.top(5, 1020, &mut top);
        let mut all = Vec::new();
        t.snapshot(1020, &mut all);
        crate::detect::tracker::select_top(&mut all, 5);
        assert_eq!(all, top);
    }

    #[test]
    fn advancing_before_a_snapshot_takes_the_fast_path_and_changes_nothing() {
        // W = 900 s, 15 s slots. Every address in two slots: a ring each.
        let mut t = WindowedTopK::new(Duration::from_secs(900), 100);
        for i in 0..10u32 {
            for time in [1000, 1300 + u64::from(i)] {
                t.add(v4(i), time, time);
            }
        }
        // Later records that were not REJECTs moved the caller's newest time
        // on: 1000's slot has left the window, 1300's has not.
        let newest = 2000;
        assert!(!t.is_swept_at(newest), "a lagging tracker subtracts the slots swept since");
        let (mut before, mut after) = (Vec::new(), Vec::new());
        t.snapshot(newest, &mut before);
        let held = t.len();
        t.advance(newest);
        assert!(t.is_swept_at(newest), "advanced: one load per address");
        t.snapshot(newest, &mut after);
        before.sort();
        after.sort();
        assert_eq!(before, after);
        assert_eq!(after, (0..10u32).map(|i| (v4(i), 1)).collect::<Vec<_>>());
        assert_eq!((t.len(), t.error_bound(newest)), (held, 0), "nothing dropped");
        // A query at the newest time seen, or before it, is swept too.
        assert!(t.is_swept_at(newest) && t.is_swept_at(1500));
    }

    #[test]
    fn merging_an_empty_tracker_changes_nothing_but_newest() {
        let mut t = WindowedTopK::new(Duration::from_secs(60), 10);
        t.add(ip("10.0.0.1"), 1000, 1000);
        let mut scratch = WindowedTopK::new(Duration::from_secs(60), 10);
        t.merge_from(&scratch);
        assert_eq!((top(&t, 5, 1000), t.len(), t.stale()), (vec![(ip("10.0.0.1"), 1)], 1, 0));
        // A scratch tracker, used then cleared, is empty again; its newest
        // time is gone with the rest.
        scratch.add(ip("10.0.0.9"), 1010, 1010);
        scratch.add(ip("10.0.0.9"), 1011, 1011);
        scratch.add(ip("10.0.0.9"), 1, 1011);
        scratch.clear();
        assert_eq!((scratch.len(), scratch.stale(), scratch.newest), (0, 0, 0));
        t.merge_from(&scratch);
        assert_eq!((top(&t, 5, 1000), t.len()), (vec![(ip("10.0.0.1"), 1)], 1));
        // The merged newest time is the later one.
        let mut later = WindowedTopK::new(Duration::from_secs(60), 10);
        later.add(ip("10.0.0.2"), 1070, 1070);
        t.merge_from(&later);
        assert_eq!(top(&t, 5, 0), vec![(ip("10.0.0.2"), 1)]);
    }

    #[test]
    fn merge_adds_counts_per_slot_and_statistics() {
        let w = Duration::from_secs(900);
        let (mut a, mut b) = (WindowedTopK::new(w, 100), WindowedTopK::new(w, 100));
        a.add(ip("10.0.0.1"), 1000, 1000);
        a.add(ip("10.0.0.1"), 1100, 1100);
        b.add(ip("10.0.0.1"), 1100, 1200);
        b.add(ip("10.0.0.2"), 1800, 1800);
        b.add(ip("10.0.0.2"), 800, 1800); // stale in b
        a.merge_from(&b);
        assert_eq!(top(&a, 5, 1800), vec![(ip("10.0.0.1"), 3), (ip("10.0.0.2"), 1)]);
        // The slot of 1000 has left the window at 1910; both records at 1100 count.
        assert_eq!(top(&a, 5, 1910), vec![(ip("10.0.0.1"), 2), (ip("10.0.0.2"), 1)]);
        assert_eq!((a.stale(), a.evictions(), a.error_bound(1900)), (1, 0, 0));
    }

    #[test]
    fn merged_bound_covers_both_shards_and_the_merge() {
        let w = Duration::from_secs(900);
        let (mut a, mut b) = (WindowedTopK::new(w, 4), WindowedTopK::new(w, 4));
        for i in 0..5u32 {
            for _ in 0..=i {
                a.add(v4(i + 1), 1000, 1000);
                b.add(v4(i + 100), 1000, 1000);
            }
        }
        assert_eq!((a.error_bound(1000), b.error_bound(1000)), (2, 2));
        let mut merged = WindowedTopK::new(w, 4);
        merged.merge_from(&a);
        merged.merge_from(&b);
        assert!(merged.len() <= 4);
        assert_eq!(merged.evictions(), a.evictions() + b.evictions() + 2);
        assert!(merged.error_bound(1000) >= 4, "{}", merged.error_bound(1000));
        assert_eq!(merged.deferred(), a.deferred() + b.deferred());
        // Never above the truth.
        for (addr, c) in top(&merged, 4, 1000) {
            let n = match addr {
                IpAddr::V4(v) => u32::from(v),
                IpAddr::V6(_) => unreachable!(),
            };
            let truth = u64::from(if n < 100 { n } else { n - 99 });
            assert!(c <= truth, "{addr} {c}");
        }
    }

    /// A naive exact model: every record kept, counted at query time.
    fn model_count(records: &[(u32, u64)], key: u32, newest: u64, clock: SlotClock) -> u64 {
        let first_live = clock.first_live(newest);
        records.iter().filter(|&&(k, t)| k == key && clock.epoch(t) >= first_live).count() as u64
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn matches_exact_model_while_keys_fit(
            window in 1u64..400,
            steps in proptest::collection::vec((0u32..20, 0u64..50, 0u64..120), 1..300),
        ) {
            let clock = SlotClock::new(Duration::from_secs(window));
            let mut t = WindowedTopK::new(Duration::from_secs(window), 32);
            let mut newest = 0u64;
            let mut kept: Vec<(u32, u64)> = Vec::new();
            for &(key, back, forward) in &steps {
                // Time moves forward by `forward` now and then; records may be late.
                if forward > 100 { newest += forward - 100; }
                let time = (newest + 1000).saturating_sub(back) ;
                let newest_now = (newest + 1000).max(time);
                t.add(v4(key), time, newest_now);
                if clock.epoch(time) >= clock.first_live(newest_now) {
                    kept.push((key, time));
                }
                let q = newest_now;
                for k in 0..20u32 {
                    prop_assert_eq!(t.count(v4(k), q), model_count(&kept, k, q, clock));
                }
            }
            let q = newest + 1000;
            let mut expect: Vec<(IpAddr, u64)> = (0..20u32)
                .map(|k| (v4(k), model_count(&kept, k, q, clock)))
                .filter(|&(_, c)| c > 0)
                .collect();
            expect.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            expect.truncate(5);
            prop_assert_eq!(top(&t, 5, q), expect);
            prop_assert_eq!(t.evictions(), 0);
            // A query past the newest time reads the same as after advancing to it.
            let later = q + window / 2;
            let before: Vec<u64> = (0..20u32).map(|k| t.count(v4(k), later)).collect();
            t.advance(later);
            for k in 0..20u32 {
                prop_assert_eq!(t.count(v4(k), later), model_count(&kept, k, later, clock));
                prop_assert_eq!(before[k as usize], model_count(&kept, k, later, clock));
            }
        }

        #[test]
        fn advancing_to_the_callers_newest_time_is_invisible(
            window in 1u64..400,
            capacity in 4usize..24,
            steps in proptest::collection::vec((0u32..40, 0u64..60, 0u64..130, 0u8..4), 1..400),
        ) {
            // Twin trackers fed the same records with the caller's newest
            // time; one is also advanced to it now and then, as a scrape does
            // (the caller's time moves on with records that feed no tracker).
            let w = Duration::from_secs(window);
            let (mut plain, mut advanced) = (WindowedTopK::new(w, capacity), WindowedTopK::new(w, capacity));
            let mut newest = 10_000u64;
            let snap = |t: &WindowedTopK, q: u64| { let mut v = Vec::new(); t.snapshot(q, &mut v); v.sort(); v };
            let stats = |t: &WindowedTopK, q: u64| (t.len(), t.evictions(), t.stale(), t.deferred(), t.error_bound(q));
            for &(key, back, forward, op) in &steps {
                if forward > 100 { newest += forward - 100; }
                match op {
                    0 => {
                        prop_assert_eq!(snap(&plain, newest), snap(&advanced, newest));
                        advanced.advance(newest);
                        prop_assert!(advanced.is_swept_at(newest));
                    }
                    1 => {} // a record that feeds no tracker: only the time moved
                    _ => {
                        let time = newest.saturating_sub(back);
                        plain.add(v4(key), time, newest);
                        advanced.add(v4(key), time, newest);
                    }
                }
                prop_assert_eq!(snap(&plain, newest), snap(&advanced, newest));
                prop_assert_eq!(stats(&plain, newest), stats(&advanced, newest));
            }
            for later in [newest + window / 2, newest + window] {
                prop_assert_eq!(snap(&plain, later), snap(&advanced, later));
            }
        }

        #[test]
        fn never_overcounts_and_stays_bounded(
            steps in proptest::collection::vec((0u32..200, 0u64..30), 1..2000),
        ) {
            let clock = SlotClock::new(Duration::from_secs(120));
            let mut t = WindowedTopK::new(Duration::from_secs(120), 16);
            let mut kept: Vec<(u32, u64)> = Vec::new();
            let mut newest = 10_000u64;
            for (i, &(key, back)) in steps.iter().enumerate() {
                newest += (i % 3) as u64;
                let time = newest - back;
                t.add(v4(key), time, newest);
                if clock.epoch(time) >= clock.first_live(newest) {
                    kept.push((key, time));
                }
                prop_assert!(t.len() <= 16);
            }
            let mut out = Vec::new();
            t.top(16, newest, &mut out);
            for (a, c) in out {
                let key = match a { IpAddr::V4(v) => u32::from(v), IpAddr::V6(_) => unreachable!() };
                prop_assert!(c <= model_count(&kept, key, newest, clock));
            }
        }

        #[test]
        fn merged_shards_equal_one_tracker_while_keys_fit(
            window in 1u64..400,
            shards in 2usize..=4,
            local_newest in any::<bool>(),
            steps in proptest::collection::vec((0u32..30, 0u64..50, 0u64..120, 0usize..4), 1..300),
        ) {
            let w = Duration::from_secs(window);
            let mut one = WindowedTopK::new(w, 32);
            let mut parts: Vec<WindowedTopK> = (0..shards).map(|_| WindowedTopK::new(w, 32)).collect();
            let mut newest = 0u64;
            for &(key, back, forward, shard) in &steps {
                if forward > 100 { newest += forward - 100; }
                let time = (newest + 1000).saturating_sub(back);
                let newest_now = (newest + 1000).max(time);
                one.add(v4(key), time, newest_now);
                // Shards see the caller's newest time, or only their own records'.
                let shard_newest = if local_newest { time } else { newest_now };
                parts[shard % shards].add(v4(key), time, shard_newest);
            }
            // Into a fresh tracker, and into the first shard itself.
            let mut merged = WindowedTopK::new(w, 32);
            for p in &parts { merged.merge_from(p); }
            let (first, rest) = parts.split_at_mut(1);
            for p in rest.iter() { first[0].merge_from(p); }
            let q = newest + 1000;
            let snap = |t: &WindowedTopK, q: u64| { let mut v = Vec::new(); t.snapshot(q, &mut v); v.sort(); v };
            for m in [&merged, &first[0]] {
                for later in [q, q + window / 2, q + window] {
                    prop_assert_eq!(snap(m, later), snap(&one, later));
                }
                prop_assert_eq!(top(m, 5, q), top(&one, 5, q));
                prop_assert_eq!((m.evictions(), m.error_bound(q)), (0, 0));
                if !local_newest {
                    prop_assert_eq!(m.stale(), one.stale());
                }
            }
        }

        #[test]
        fn merged_shards_never_overcount_beyond_capacity(
            steps in proptest::collection::vec((0u32..200, 0u64..30, 0usize..3), 1..1500),
        ) {
            let w = Duration::from_secs(120);
            let clock = SlotClock::new(w);
            let mut parts: Vec<WindowedTopK> = (0..3).map(|_| WindowedTopK::new(w, 16)).collect();
            let mut kept: Vec<(u32, u64)> = Vec::new();
            let mut newest = 10_000u64;
            for (i, &(key, back, shard)) in steps.iter().enumerate() {
                newest += (i % 3) as u64;
                let time = newest - back;
                parts[shard].add(v4(key), time, newest);
                if clock.epoch(time) >= clock.first_live(newest) {
                    kept.push((key, time));
                }
            }
            let mut merged = WindowedTopK::new(w, 16);
            for p in &parts { merged.merge_from(p); }
            prop_assert!(merged.len() <= 16);
            let bounds: u64 = parts.iter().map(|p| p.error_bound(newest)).sum();
            prop_assert!(merged.error_bound(newest) >= bounds);
            let evictions: u64 = parts.iter().map(|p| p.evictions()).sum();
            prop_assert!(merged.evictions() >= evictions);
            let mut out = Vec::new();
            merged.snapshot(newest, &mut out);
            for (a, c) in out {
                let key = match a { IpAddr::V4(v) => u32::from(v), IpAddr::V6(_) => unreachable!() };
                prop_assert!(c <= model_count(&kept, key, newest, clock));
            }
        }
    }
}
