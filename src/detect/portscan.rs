//! Port-scan detection: distinct REJECT dstports per source over a sliding
//! window of flow time, in bounded memory.
//!
//! **Window.** Exact to the second: each (source, port) pair keeps the time it
//! was last seen, and a port counts for its source while that time is later
//! than `newest - W`. Records already older than the window when they arrive
//! are ignored ([`PortScanTracker::stale`]); late records inside it count.
//!
//! **Memory.** One hash-map entry per source (a `u128` key and 48 bytes): its
//! first [`INLINE_PORTS`] ports live inline, so sources with a handful of
//! ports — almost all of them — allocate nothing. A source with more ports
//! spills the rest into its own small hash map (port → last seen), up to
//! [`MAX_PORTS_PER_SOURCE`] ports per source; observations of new ports beyond
//! that are counted by [`PortScanTracker::capped`]. At the cap, ports that left
//! the window are purged at most once per slot (`W / 60`) so that a source at
//! the cap costs O(1) amortized per record. Two budgets bound the memory: at
//! most `capacity` sources, and at most `capacity × SPILLED_PORTS_PER_SOURCE`
//! spilled ports over all sources (about 18 bytes each).
//!
//! **Eviction.** When a new source arrives at `capacity` sources, or the
//! spilled ports reach their budget, a compaction first drops the ports and
//! sources that left the window (not evictions), then evicts the sources with
//! the fewest distinct ports in the window (ties: least recently seen, then
//! table order) down to `capacity / 2` sources and half the spilled-port budget.
//! Amortized O(1) per record: a compaction costs O(sources + spilled ports) and
//! follows at least `capacity / 2` new sources or half a budget of new ports.
//! For one window after an evicting compaction, new sources are admitted on
//! their second record (see `admit.rs`; the first is
//! [`PortScanTracker::deferred`]).
//!
//! **Snapshots and merges.** [`PortScanTracker::snapshot`] lists the sources
//! with enough live ports in one pass, for the collector to sort outside the
//! writers' lock; [`PortScanTracker::merge_from`] folds in a tracker of the
//! same window (a per-worker shard), uniting each source's ports: exact while
//! the union fits, bounds added. Selection, eviction and statistics are the
//! shared ones of `tracker.rs`.
//!
//! **Error bound.** Distinct-port counts are exact while the sources fit and
//! no source reaches the per-source cap. Beyond, a count is never above the
//! truth; each eviction of a source dropped at most
//! [`PortScanTracker::error_bound`] of its ports in the window, each deferral
//! one, and a source at the cap reports at most [`MAX_PORTS_PER_SOURCE`].

use std::collections::hash_map::Entry as Slot;
use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::addr::{addr_of, key_of};
use super::tracker::{evict_lowest, priority, select_top, tracker_stats, Evicted, SlotClock, Stats};

/// Ports a source holds without allocating.
pub const INLINE_PORTS: usize = 4;
/// Distinct ports held per source.
pub const MAX_PORTS_PER_SOURCE: usize = 1024;
/// The spilled-port budget, per unit of source capacity.
pub const SPILLED_PORTS_PER_SOURCE: usize = 32;

#[derive(Debug, Default)]
struct Source {
    ports: [u16; INLINE_PORTS],
    /// Last-seen flow time of each inline port (unix seconds).
    seen: [u32; INLINE_PORTS],
    /// Inline ports in use.
    n: u8,
    /// Flow time of the last purge at the per-source cap.
    last_purge: u32,
    /// Ports beyond the inline ones: port → last seen.
    spill: Option<Box<FxHashMap<u16, u32>>>,
}

impl Source {
    fn spilled(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.len())
    }
    /// (distinct ports in the window, newest last-seen time).
    fn window_ports(&self, window: u64, newest: u64) -> (u64, u32) {
        let mut count = 0u64;
        let mut last = 0u32;
        let live = |seen: u32| u64::from(seen) + window > newest;
        for &s in &self.seen[..self.n as usize] {
            if live(s) {
                count += 1;
                last = last.max(s);
            }
        }
        if let Some(spill) = &self.spill {
            for &s in spill.values() {
                if live(s) {
                    count += 1;
                    last = last.max(s);
                }
            }
        }
        (count, last)
    }
    /// Every (port, last seen) held, inline ones first.
    fn ports(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        let n = self.n as usize;
        let inline = self.ports[..n].iter().copied().zip(self.seen[..n].iter().copied());
        inline.chain(self.spill.iter().flat_map(|m| m.iter().map(|(&p, &seen)| (p, seen))))
    }
    /// Drops the ports that left the window (refilling the inline slots from
    /// the spill, shrinking it when mostly empty); then as `window_ports`.
    fn purge(&mut self, window: u64, newest: u64) -> (u64, u32) {
        let live = |seen: u32| u64::from(seen) + window > newest;
        let mut j = 0;
        for i in 0..self.n as usize {
            if live(self.seen[i]) {
                self.ports[j] = self.ports[i];
                self.seen[j] = self.seen[i];
                j += 1;
            }
        }
        self.n = j as u8;
        if let Some(spill) = self.spill.as_deref_mut() {
            spill.retain(|_, seen| live(*seen));
            // Refill the inline slots from the spill.
            while (self.n as usize) < INLINE_PORTS {
                let Some((&p, &seen)) = spill.iter().next() else {
                    break;
                };
                spill.remove(&p);
                self.ports[self.n as usize] = p;
                self.seen[self.n as usize] = seen;
                self.n += 1;
            }
            if spill.capacity() > 2 * spill.len() + 16 {
                spill.shrink_to_fit();
            }
        }
        if self.spill.as_ref().is_some_and(|m| m.is_empty()) {
            self.spill = None;
        }
        self.window_ports(window, newest)
    }
}

/// Distinct REJECT dstports per source over a window, holding at most
/// `capacity` sources.
#[derive(Debug)]
pub struct PortScanTracker {
    window: u64,
    clock: SlotClock,
    capacity: usize,
    port_cap: usize,
    max_spilled: usize,
    map: FxHashMap<u128, Source>,
    /// Spilled ports over all sources.
    spilled: usize,
    newest: u64,
    capped: u64,
    /// Evictions, stale records, losses and the admission filter.
    stats: Stats,
    scratch: Vec<u64>,
}

impl PortScanTracker {
    /// `capacity` is the most sources held (at least 1).
    pub fn new(window: Duration, capacity: usize) -> PortScanTracker {
        Self::with_port_cap(window, capacity, MAX_PORTS_PER_SOURCE)
    }

    /// As [`new`](Self::new) with another per-source port cap (at least
    /// [`INLINE_PORTS`]).
    pub fn with_port_cap(window: Duration, capacity: usize, port_cap: usize) -> PortScanTracker {
        let capacity = capacity.max(1);
        PortScanTracker {
            window: window.as_secs().max(1),
            clock: SlotClock::new(window),
            capacity,
            port_cap: port_cap.max(INLINE_PORTS),
            max_spilled: capacity.saturating_mul(SPILLED_PORTS_PER_SOURCE),
            map: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            spilled: 0,
            newest: 0,
            capped: 0,
            stats: Stats::default(),
            scratch: Vec::new(),
        }
    }

    /// One REJECT record from `src` to `port` at flow time `time`.
    #[inline]
    pub fn add(&mut self, src: IpAddr, port: u16, time: u64, newest: u64) {
        let newest = self.newest.max(newest).max(time);
        self.newest = newest;
        if time + self.window <= newest {
            self.stats.stale += 1;
            return;
        }
        let t = time.min(u64::from(u32::MAX)) as u32;
        self.record(key_of(src), port, t, true);
    }

    /// One observation of `port` for source `key` at `t` (live at
    /// `self.newest`); the admission filter applies to a new source when
    /// `admit`.
    #[inline]
    fn record(&mut self, key: u128, port: u16, t: u32, admit: bool) {
        let newest = self.newest;
        if self.spilled >= self.max_spilled {
            self.compact(newest);
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.compact(newest);
        }
        match self.map.entry(key) {
            Slot::Occupied(o) => {
                let limits = Limits { window: self.window, purge_every: self.clock.width(), port_cap: self.port_cap };
                observe(o.into_mut(), port, t, newest, limits, &mut self.spilled, &mut self.capped);
            }
            Slot::Vacant(v) => {
                if admit && !self.stats.admit(&self.clock, key, newest) {
                    return;
                }
                let mut s = Source { n: 1, ..Source::default() };
                s.ports[0] = port;
                s.seen[0] = t;
                v.insert(s);
            }
        }
    }

    /// Moves the newest time seen forward to `newest` (never back), as a
    /// record at that time would, without counting anything (the top-K
    /// tracker's counterpart sweeps its slots; here it only sets the time).
    pub fn advance(&mut self, newest: u64) {
        self.newest = self.newest.max(newest);
    }

    /// Appends every source with at least `min_ports` (at least 1) distinct
    /// ports in the window ending at `newest` (or the newest time seen, if
    /// later) to `out` as (source, distinct ports), in no particular order.
    /// O(sources + spilled ports), allocating nothing but `out`'s growth:
    /// meant to run under the writers' lock, with the sorting
    /// ([`select_top`](super::tracker::select_top)) done outside it.
    pub fn snapshot(&self, newest: u64, min_ports: u32, out: &mut Vec<(IpAddr, u64)>) {
        let newest = newest.max(self.newest);
        let min_ports = u64::from(min_ports.max(1));
        for (&key, s) in &self.map {
            let (c, _) = s.window_ports(self.window, newest);
            if c >= min_ports {
                out.push((addr_of(key), c));
            }
        }
    }

    /// Sources with at least `min_ports` distinct ports in the window ending at
    /// `newest`: their number, and the `k` with the most ports (most first, ties
    /// by address) appended to `out` as (source, distinct ports):
    /// [`snapshot`](Self::snapshot) then [`select_top`](super::tracker::select_top).
    pub fn scanners(&self, min_ports: u32, k: usize, newest: u64, out: &mut Vec<(IpAddr, u64)>) -> u64 {
        let mut found = Vec::new();
        self.snapshot(newest, min_ports, &mut found);
        let total = found.len() as u64;
        if k > 0 {
            select_top(&mut found, k);
            out.append(&mut found);
        }
        total
    }

    /// Folds `other` (a tracker of the same window, e.g. a per-worker shard)
    /// into this one: the newest time becomes the later of both, and each
    /// source gets the union of both port sets (the later last-seen time of a
    /// port held by both), without the ports that left the window by then —
    /// as if this tracker had been fed both trackers' records (exact while
    /// the union of the sources fits the capacity and no source reaches the
    /// port cap; beyond, the usual compaction and cap apply, but not the
    /// admission filter, which `other` already applied). Statistics add; the
    /// error bound becomes at least the sum of both bounds, plus what this
    /// merge evicts. O(1) when `other` is empty and dropped nothing; else
    /// O(sources + ports of `other`).
    pub fn merge_from(&mut self, other: &PortScanTracker) {
        debug_assert_eq!(self.clock, other.clock, "merged trackers must share the window");
        self.newest = self.newest.max(other.newest);
        if other.map.is_empty() && other.stats.is_clear() && other.capped == 0 {
            return;
        }
        self.stats.merge(&other.stats, &self.clock, self.newest);
        self.capped += other.capped;
        let (window, newest) = (self.window, self.newest);
        for (&key, s) in &other.map {
            for (port, seen) in s.ports() {
                if u64::from(seen) + window > newest {
                    self.record(key, port, seen, false);
                }
            }
        }
    }

    /// Back to a new tracker's state (no sources, no statistics, newest 0),
    /// keeping the table's allocation: for a scratch tracker reused after a
    /// merge.
    pub fn clear(&mut self) {
        self.map.clear();
        self.spilled = 0;
        self.newest = 0;
        self.capped = 0;
        self.stats.clear();
    }

    /// Distinct ports of one source in the window ending at `newest` (0 when
    /// not held).
    pub fn distinct_ports(&self, src: IpAddr, newest: u64) -> u64 {
        let newest = newest.max(self.newest);
        self.map.get(&key_of(src)).map_or(0, |s| s.window_ports(self.window, newest).0)
    }

    tracker_stats!();

    /// Observations not recorded because a source already holds the per-source
    /// port cap.
    pub fn capped(&self) -> u64 {
        self.capped
    }

    /// Ports held beyond the inline ones, over all sources.
    pub fn spilled_ports(&self) -> usize {
        self.spilled
    }

    /// An estimate of the heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let buckets = (self.map.capacity() * 8 / 7).next_power_of_two();
        let spill: usize = self
            .map
            .values()
            .filter_map(|s| s.spill.as_ref())
            .map(|m| {
                let b = (m.capacity() * 8 / 7).next_power_of_two();
                b * (std::mem::size_of::<(u16, u32)>() + 1) + std::mem::size_of::<FxHashMap<u16, u32>>()
            })
            .sum();
        buckets * (std::mem::size_of::<(u128, Source)>() + 1)
            + spill
            + self.scratch.capacity() * std::mem::size_of::<u64>()
            + self.stats.admission.heap_bytes()
    }

    /// Drops ports and sources that left the window, then evicts the sources
    /// with the fewest ports down to half the capacity and half the
    /// spilled-port budget.
    fn compact(&mut self, newest: u64) {
        let window = self.window;
        let scratch = &mut self.scratch;
        scratch.clear();
        let mut spilled = 0usize;
        self.map.retain(|_, s| {
            let (count, last) = s.purge(window, newest);
            if count == 0 {
                return false;
            }
            spilled += s.spilled();
            scratch.push(priority(count, last));
            true
        });
        let mut freed = 0usize;
        let by_sources = evict_lowest(
            &mut self.map,
            scratch,
            self.capacity / 2,
            &mut freed,
            |_, s| {
                let (count, last) = s.window_ports(window, newest);
                priority(count, last)
            },
            |freed, s| *freed += s.spilled(),
        );
        self.spilled = spilled - freed;
        let by_ports = self.evict_to_spill_budget(newest);
        let evicted = Evicted {
            entries: by_sources.entries + by_ports.entries,
            largest: by_sources.largest.max(by_ports.largest),
        };
        self.stats.evicted(&self.clock, newest, evicted);
    }

    /// Few sources with many ports: evicts by fewest ports until the spilled
    /// ports fit half the budget (rare: sorts the survivors).
    fn evict_to_spill_budget(&mut self, newest: u64) -> Evicted {
        let mut evicted = Evicted::default();
        if self.spilled <= self.max_spilled / 2 {
            return evicted;
        }
        let window = self.window;
        let mut rest: Vec<(u64, u128)> = self
            .map
            .iter()
            .map(|(&k, s)| {
                let (count, last) = s.window_ports(window, newest);
                (priority(count, last), k)
            })
            .collect();
        rest.sort_unstable();
        for &(p, key) in &rest {
            if self.spilled <= self.max_spilled / 2 {
                break;
            }
            if let Some(s) = self.map.remove(&key) {
                self.spilled -= s.spilled();
                evicted.entries += 1;
                evicted.largest = evicted.largest.max(p >> 32);
            }
        }
        evicted
    }
}

#[derive(Clone, Copy)]
struct Limits {
    window: u64,
    purge_every: u64,
    port_cap: usize,
}

/// One observation of `port` for a held source.
#[inline]
fn observe(s: &mut Source, port: u16, t: u32, newest: u64, lim: Limits, spilled: &mut usize, capped: &mut u64) {
    let live = |seen: u32| u64::from(seen) + lim.window > newest;
    let n = s.n as usize;
    for i in 0..n {
        if s.ports[i] == port {
            s.seen[i] = s.seen[i].max(t);
            return;
        }
    }
    if let Some(spill) = s.spill.as_deref_mut() {
        if let Some(seen) = spill.get_mut(&port) {
            *seen = (*seen).max(t);
            return;
        }
    }
    // A new port for this source.
    if n < INLINE_PORTS {
        s.ports[n] = port;
        s.seen[n] = t;
        s.n += 1;
        return;
    }
    for i in 0..INLINE_PORTS {
        if !live(s.seen[i]) {
            s.ports[i] = port;
            s.seen[i] = t;
            return;
        }
    }
    if INLINE_PORTS + s.spilled() >= lim.port_cap {
        if u64::from(s.last_purge) + lim.purge_every <= newest {
            s.last_purge = newest.min(u64::from(u32::MAX)) as u32;
            if let Some(spill) = s.spill.as_deref_mut() {
                let before = spill.len();
                spill.retain(|_, seen| live(*seen));
                *spilled -= before - spill.len();
            }
        }
        if INLINE_PORTS + s.spilled() >= lim.port_cap {
            *capped += 1;
            return;
        }
    }
    s.spill.get_or_insert_with(Default::default).insert(port, t);
    *spilled += 1;
}

#[cfg(test)]
mod tests {
    use super::super::tracker::test_addrs::{ip, v4};
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn scanners(t: &PortScanTracker, min: u32, k: usize, newest: u64) -> (u64, Vec<(IpAddr, u64)>) {
        let mut out = Vec::new();
        let n = t.scanners(min, k, newest, &mut out);
        (n, out)
    }

    #[test]
    fn counts_distinct_ports_and_orders_ties_by_address() {
        let mut t = PortScanTracker::new(Duration::from_secs(600), 100);
        let now = 1_700_000_000;
        for p in 0..30u16 {
            t.add(ip("203.0.113.5"), 1000 + p, now, now);
            t.add(ip("203.0.113.5"), 1000 + p, now, now); // repeats count once
            t.add(ip("45.155.205.9"), 2000 + p, now, now);
            t.add(ip("2001:db8::7"), p, now, now);
        }
        for p in 0..25u16 {
            t.add(ip("198.51.100.1"), p, now, now);
        }
        t.add(ip("192.0.2.1"), 22, now, now);
        assert_eq!(
            scanners(&t, 20, 3, now),
            (4, vec![(ip("45.155.205.9"), 30), (ip("203.0.113.5"), 30), (ip("2001:db8::7"), 30)])
        );
        assert_eq!(scanners(&t, 26, 0, now), (3, vec![]));
        assert_eq!(scanners(&t, 1, 10, now).0, 5);
        assert_eq!(t.distinct_ports(ip("192.0.2.1"), now), 1);
        assert_eq!(t.len(), 5);
        assert_eq!((t.evictions(), t.capped()), (0, 0));
    }

    #[test]
    fn window_boundary_is_exact() {
        let mut t = PortScanTracker::new(Duration::from_secs(600), 10);
        let a = ip("192.0.2.1");
        t.add(a, 1, 1000, 1000);
        t.add(a, 2, 1001, 1001);
        assert_eq!(t.distinct_ports(a, 1599), 2);
        assert_eq!(t.distinct_ports(a, 1600), 1); // 1000 is not > 1600 - 600
        assert_eq!(t.distinct_ports(a, 1601), 0);
        t.add(a, 3, 1001, 1601); // exactly newest - W: too old
        assert_eq!(t.stale(), 1);
        assert_eq!(t.distinct_ports(a, 1601), 0);
    }

    #[test]
    fn late_records_refresh_last_seen() {
        let mut t = PortScanTracker::new(Duration::from_secs(60), 10);
        let a = ip("192.0.2.1");
        t.add(a, 80, 1000, 1000);
        t.add(a, 80, 990, 1000); // older: keeps 1000
        assert_eq!(t.distinct_ports(a, 1059), 1);
        assert_eq!(t.distinct_ports(a, 1060), 0);
        t.add(a, 443, 1030, 1050); // late but live
        assert_eq!(t.distinct_ports(a, 1060), 1);
    }

    #[test]
    fn inline_then_spill_then_cap() {
        let mut t = PortScanTracker::with_port_cap(Duration::from_secs(600), 10, 8);
        let a = ip("203.0.113.9");
        for p in 0..INLINE_PORTS as u16 {
            t.add(a, p, 1000, 1000);
        }
        assert_eq!(t.spilled_ports(), 0);
        for p in INLINE_PORTS as u16..20 {
            t.add(a, p, 1000, 1000);
        }
        assert_eq!(t.distinct_ports(a, 1000), 8);
        assert_eq!(t.spilled_ports(), 4);
        assert_eq!(t.capped(), 12);
        // Known ports still refresh at the cap.
        t.add(a, 0, 1100, 1100);
        assert_eq!(t.capped(), 12);
        // Once the old ports leave the window, new ones are taken again.
        t.add(a, 100, 1650, 1650);
        t.add(a, 101, 1650, 1650);
        assert_eq!(t.distinct_ports(a, 1650), 3);
        assert_eq!(t.capped(), 12);
    }

    #[test]
    fn purges_at_the_cap_at_most_once_per_slot() {
        // W = 600 s: slots of 10 s. Cap 8: 4 inline + 4 spilled.
        let mut t = PortScanTracker::with_port_cap(Duration::from_secs(600), 10, 8);
        let a = ip("203.0.113.9");
        for p in 0..8u16 {
            t.add(a, p, 1000 + u64::from(p), 1000 + u64::from(p));
        }
        // The inline ports (0-3) are seen again; the spilled ones (4-7) not.
        for p in 0..4u16 {
            t.add(a, p, 1600, 1600);
        }
        // At 1604 spilled port 4 (seen 1004) has left the window: the purge
        // makes room for one new port.
        t.add(a, 100, 1604, 1604);
        assert_eq!((t.distinct_ports(a, 1604), t.capped()), (8, 0));
        // Port 5 leaves at 1605, but the last purge was less than a slot
        // (10 s) ago: the new port is capped rather than the spill scanned again.
        t.add(a, 101, 1605, 1605);
        assert_eq!(t.capped(), 1);
        // A slot later the purge runs again (ports 5, 6, 7 go).
        t.add(a, 102, 1614, 1614);
        assert_eq!(t.capped(), 1);
        assert_eq!(t.distinct_ports(a, 1614), 6);
        assert_eq!(t.spilled_ports(), 2);
    }

    #[test]
    fn expired_inline_slots_are_reused_without_spilling() {
        let mut t = PortScanTracker::new(Duration::from_secs(60), 10);
        let a = ip("192.0.2.1");
        for i in 0..100u64 {
            t.add(a, i as u16, 1000 + i * 100, 1000 + i * 100);
        }
        assert_eq!(t.spilled_ports(), 0);
        assert_eq!(t.distinct_ports(a, 1000 + 99 * 100), 1);
    }

    #[test]
    fn capacity_respected_and_evictions_counted() {
        let cap = 64;
        let mut t = PortScanTracker::new(Duration::from_secs(600), cap);
        let now = 5000;
        for p in 0..40u16 {
            t.add(ip("45.155.205.1"), p, now, now);
        }
        for i in 0..1000u32 {
            t.add(v4(0x0b00_0000 + i), 22, now, now);
            t.add(v4(0x0b00_0000 + i), 23, now, now);
            assert!(t.len() <= cap);
        }
        // Every source is accounted: each came twice, so the admission
        // filter (on once evictions began) deferred its first record only.
        assert_eq!(t.len() as u64 + t.evictions(), 1001);
        assert!(t.deferred() > 0);
        assert_eq!(scanners(&t, 20, 5, now), (1, vec![(ip("45.155.205.1"), 40)]));
        assert_eq!(t.max_evicted(), 2);
        assert_eq!(t.error_bound(now), 2);
        assert_eq!(t.error_bound(now + 600), 0);
    }

    #[test]
    fn spilled_port_budget_is_respected() {
        // capacity 4 → budget 128 spilled ports; sources of 100 ports each.
        let mut t = PortScanTracker::new(Duration::from_secs(600), 4);
        for s in 0..10u32 {
            for p in 0..100u16 {
                t.add(v4(s + 1), p, 1000 + u64::from(s), 1000 + u64::from(s));
                assert!(t.spilled_ports() <= 4 * SPILLED_PORTS_PER_SOURCE);
            }
        }
        assert!(t.evictions() > 0);
        assert!(t.len() <= 4);
        let (_, top) = scanners(&t, 1, 1, 1009);
        assert!(top[0].1 <= 100);
    }

    #[test]
    fn expired_sources_are_dropped_not_evicted() {
        let mut t = PortScanTracker::new(Duration::from_secs(60), 64);
        for i in 0..64u32 {
            t.add(v4(i + 1), 1, 100, 100);
        }
        for i in 0..64u32 {
            t.add(v4(1000 + i), 1, 1000, 1000);
        }
        assert_eq!(t.evictions(), 0);
        assert_eq!(t.len(), 64);
    }

    #[test]
    fn snapshot_lists_sources_with_enough_ports() {
        let mut t = PortScanTracker::new(Duration::from_secs(60), 10);
        for p in 0..5u16 {
            t.add(ip("203.0.113.5"), p, 1000, 1000);
        }
        t.add(ip("192.0.2.1"), 22, 1000, 1000);
        t.add(ip("2001:db8::7"), 22, 1010, 1010);
        t.add(ip("2001:db8::7"), 23, 1010, 1010);
        let mut out = Vec::new();
        t.snapshot(1010, 2, &mut out);
        out.sort();
        assert_eq!(out, vec![(ip("203.0.113.5"), 5), (ip("2001:db8::7"), 2)]);
        out.clear();
        t.snapshot(1010, 0, &mut out);
        assert_eq!(out.len(), 3, "min_ports 0 counts as 1");
        out.clear();
        t.snapshot(1060, 1, &mut out);
        assert_eq!(out, vec![(ip("2001:db8::7"), 2)]);
    }

    #[test]
    fn merge_unites_ports_keeping_the_latest_seen() {
        let w = Duration::from_secs(60);
        let (mut a, mut b) = (PortScanTracker::new(w, 10), PortScanTracker::new(w, 10));
        let s = ip("203.0.113.5");
        for p in 0..6u16 {
            a.add(s, p, 1000, 1000);
        }
        b.add(s, 5, 1050, 1050);
        b.add(s, 6, 1050, 1050);
        b.add(s, 7, 900, 1050); // stale in b
        a.merge_from(&b);
        assert_eq!(a.distinct_ports(s, 1050), 7);
        assert_eq!(a.distinct_ports(s, 1060), 2, "ports 5 and 6, last seen at 1050");
        assert_eq!((a.stale(), a.evictions(), a.capped(), a.error_bound(1050)), (1, 0, 0, 0));
        assert_eq!(a.spilled_ports(), 3);
    }

    #[test]
    fn merging_an_empty_tracker_changes_nothing_but_newest() {
        let w = Duration::from_secs(60);
        let mut t = PortScanTracker::new(w, 10);
        t.add(ip("192.0.2.1"), 22, 1000, 1000);
        let mut scratch = PortScanTracker::new(w, 10);
        t.merge_from(&scratch);
        assert_eq!((t.len(), t.distinct_ports(ip("192.0.2.1"), 1000)), (1, 1));
        for p in 0..10u16 {
            scratch.add(ip("192.0.2.9"), p, 1010, 1010);
        }
        scratch.clear();
        assert_eq!((scratch.len(), scratch.spilled_ports(), scratch.newest), (0, 0, 0));
        t.merge_from(&scratch);
        assert_eq!((t.len(), t.spilled_ports()), (1, 0));
        let mut later = PortScanTracker::new(w, 10);
        later.add(ip("192.0.2.2"), 22, 1070, 1070);
        t.merge_from(&later);
        assert_eq!(scanners(&t, 1, 5, 0), (1, vec![(ip("192.0.2.2"), 1)]));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn matches_exact_model_while_sources_fit(
            window in 1u64..300,
            steps in proptest::collection::vec((0u32..12, 0u16..40, 0u64..60, 0u64..4), 1..400),
        ) {
            let mut t = PortScanTracker::new(Duration::from_secs(window), 16);
            // Model: (source, port) -> last seen, records kept while live on arrival.
            let mut model: HashMap<(u32, u16), u64> = HashMap::new();
            let mut newest = 10_000u64;
            for &(src, port, back, forward) in &steps {
                newest += forward;
                let time = newest - back;
                t.add(v4(src), port, time, newest);
                if time + window > newest {
                    let e = model.entry((src, port)).or_insert(time);
                    *e = (*e).max(time);
                }
            }
            let count = |src: u32, q: u64| model.iter().filter(|(&(s, _), &seen)| s == src && seen + window > q).count() as u64;
            for q in [newest, newest + window / 2, newest + window] {
                for src in 0..12u32 {
                    prop_assert_eq!(t.distinct_ports(v4(src), q), count(src, q));
                }
                let mut expect: Vec<(IpAddr, u64)> = (0..12u32).map(|s| (v4(s), count(s, q))).filter(|&(_, c)| c >= 3).collect();
                let n = expect.len() as u64;
                expect.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                expect.truncate(4);
                prop_assert_eq!(scanners(&t, 3, 4, q), (n, expect));
            }
            prop_assert_eq!((t.evictions(), t.capped()), (0, 0));
        }

        #[test]
        fn never_overcounts_and_stays_bounded(
            steps in proptest::collection::vec((0u32..100, 0u16..200, 0u64..30), 1..3000),
        ) {
            let mut t = PortScanTracker::with_port_cap(Duration::from_secs(120), 8, 16);
            let mut model: HashMap<(u32, u16), u64> = HashMap::new();
            let mut newest = 10_000u64;
            for (i, &(src, port, back)) in steps.iter().enumerate() {
                newest += (i % 2) as u64;
                let time = newest - back;
                t.add(v4(src), port, time, newest);
                if time + 120 > newest {
                    let e = model.entry((src, port)).or_insert(time);
                    *e = (*e).max(time);
                }
                prop_assert!(t.len() <= 8);
                prop_assert!(t.spilled_ports() <= 8 * SPILLED_PORTS_PER_SOURCE);
            }
            let mut out = Vec::new();
            t.scanners(1, 100, newest, &mut out);
            for (a, c) in out {
                let src = match a { IpAddr::V4(v) => u32::from(v), IpAddr::V6(_) => unreachable!() };
                let truth = model.iter().filter(|(&(s, _), &seen)| s == src && seen + 120 > newest).count() as u64;
                prop_assert!(c <= truth && c <= 16, "{} > {}", c, truth);
            }
        }

        #[test]
        fn merged_shards_equal_one_tracker_while_sources_fit(
            window in 1u64..300,
            shards in 2usize..=4,
            local_newest in any::<bool>(),
            steps in proptest::collection::vec((0u32..12, 0u16..40, 0u64..60, 0u64..4, 0usize..4), 1..400),
        ) {
            let w = Duration::from_secs(window);
            let mut one = PortScanTracker::new(w, 16);
            let mut parts: Vec<PortScanTracker> = (0..shards).map(|_| PortScanTracker::new(w, 16)).collect();
            let mut newest = 10_000u64;
            for &(src, port, back, forward, shard) in &steps {
                newest += forward;
                let time = newest - back;
                one.add(v4(src), port, time, newest);
                let shard_newest = if local_newest { time } else { newest };
                parts[shard % shards].add(v4(src), port, time, shard_newest);
            }
            let mut merged = PortScanTracker::new(w, 16);
            for p in &parts { merged.merge_from(p); }
            let (first, rest) = parts.split_at_mut(1);
            for p in rest.iter() { first[0].merge_from(p); }
            let snap = |t: &PortScanTracker, q: u64| { let mut v = Vec::new(); t.snapshot(q, 1, &mut v); v.sort(); v };
            for m in [&merged, &first[0]] {
                for q in [newest, newest + window / 2, newest + window] {
                    prop_assert_eq!(snap(m, q), snap(&one, q));
                    prop_assert_eq!(scanners(m, 3, 4, q), scanners(&one, 3, 4, q));
                }
                prop_assert_eq!((m.evictions(), m.capped(), m.error_bound(newest)), (0, 0, 0));
                if !local_newest {
                    prop_assert_eq!(m.stale(), one.stale());
                }
            }
        }

        #[test]
        fn merged_shards_never_overcount_beyond_capacity(
            steps in proptest::collection::vec((0u32..100, 0u16..200, 0u64..30, 0usize..3), 1..2000),
        ) {
            let w = Duration::from_secs(120);
            let mut parts: Vec<PortScanTracker> = (0..3).map(|_| PortScanTracker::with_port_cap(w, 8, 16)).collect();
            let mut model: HashMap<(u32, u16), u64> = HashMap::new();
            let mut newest = 10_000u64;
            for (i, &(src, port, back, shard)) in steps.iter().enumerate() {
                newest += (i % 2) as u64;
                let time = newest - back;
                parts[shard].add(v4(src), port, time, newest);
                if time + 120 > newest {
                    let e = model.entry((src, port)).or_insert(time);
                    *e = (*e).max(time);
                }
            }
            let mut merged = PortScanTracker::with_port_cap(w, 8, 16);
            for p in &parts { merged.merge_from(p); }
            prop_assert!(merged.len() <= 8);
            prop_assert!(merged.spilled_ports() <= 8 * SPILLED_PORTS_PER_SOURCE);
            let bounds: u64 = parts.iter().map(|p| p.error_bound(newest)).sum();
            prop_assert!(merged.error_bound(newest) >= bounds);
            let (evictions, capped): (u64, u64) = parts.iter().map(|p| (p.evictions(), p.capped())).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            prop_assert!(merged.evictions() >= evictions && merged.capped() >= capped);
            let mut out = Vec::new();
            merged.snapshot(newest, 1, &mut out);
            for (a, c) in out {
                let src = match a { IpAddr::V4(v) => u32::from(v), IpAddr::V6(_) => unreachable!() };
                let truth = model.iter().filter(|(&(s, _), &seen)| s == src && seen + 120 > newest).count() as u64;
                prop_assert!(c <= truth && c <= 16, "{} > {}", c, truth);
            }
        }
    }
}
