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
//! `u32` counters from a slab (reused through a free list, so there is no
//! allocation per record once the slab has grown). At most `capacity`
//! addresses are held: the table (32 bytes a bucket, about 4 MiB for 50,000
//! under churn) plus at most 240 bytes of ring per address.
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
//! records that are still in the window, each deferral one. With `capacity >= 4 × K` (the configuration enforces it) the
//! addresses reported in the top K are above the eviction threshold and are not
//! the ones evicted by the next compaction.

use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::addr::{addr_of, addr_order, key_of};
use super::admit::{Admission, LossLog};

/// The most slots a window is cut into.
pub const SLOTS: usize = 60;

const NO_RING: u32 = u32::MAX;

/// How flow time maps to slots for one window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotClock {
    window: u64,
    width: u64,
    slots: u64,
    /// `floor(2^64 / width) + 1`: `t / width == (t * recip) >> 64` for every
    /// `t < 2^32` (the error `t / 2^64` stays below `1 / width`).
    recip: u128,
}

impl SlotClock {
    pub fn new(window: Duration) -> SlotClock {
        let window = window.as_secs().max(1);
        let width = window.div_ceil(SLOTS as u64);
        SlotClock { window, width, slots: window.div_ceil(width), recip: (1u128 << 64) / u128::from(width) + 1 }
    }
    /// The slot width in seconds: the window boundary precision.
    pub fn width(&self) -> u64 {
        self.width
    }
    /// Slots in a window (at most [`SLOTS`]).
    pub fn slots(&self) -> u64 {
        self.slots
    }
    #[inline]
    pub(crate) fn epoch(&self, t: u64) -> u64 {
        // A multiplication instead of a division on the per-record path.
        if t <= u64::from(u32::MAX) {
            ((u128::from(t) * self.recip) >> 64) as u64
        } else {
            t / self.width
        }
    }
    /// The first slot still live when the newest record time is `newest`.
    #[inline]
    pub(crate) fn first_live(&self, newest: u64) -> u64 {
        if newest >= self.window {
            (newest - self.window) / self.width + 1
        } else {
            0
        }
    }
}

/// Per address: its count in the slots `(head - slots, head]`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Sum of the slot counts (inline: the count of slot `head`).
    total: u64,
    /// The newest slot written (an epoch number, `time / width`).
    head: u32,
    /// Index of this address's ring in the slab, or `NO_RING` when all its
    /// records are in slot `head`.
    ring: u32,
}

/// Counts per address over a sliding window of flow time, holding at most
/// `capacity` addresses.
#[derive(Debug)]
pub struct WindowedTopK {
    clock: SlotClock,
    capacity: usize,
    map: FxHashMap<u128, Entry>,
    rings: Vec<[u32; SLOTS]>,
    free_rings: Vec<u32>,
    newest: u64,
    /// `clock.first_live(newest)`, kept to spare a division per record.
    first_live: u64,
    evictions: u64,
    stale: u64,
    losses: LossLog,
    scratch: Vec<u64>,
    /// While evictions are recent, new addresses enter on their second record.
    admission: Admission,
}

impl WindowedTopK {
    /// `capacity` is the most addresses held (at least 1).
    pub fn new(window: Duration, capacity: usize) -> WindowedTopK {
        let capacity = capacity.max(1);
        WindowedTopK {
            clock: SlotClock::new(window),
            capacity,
            map: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            rings: Vec::new(),
            free_rings: Vec::new(),
            newest: 0,
            first_live: u64::MAX,
            evictions: 0,
            stale: 0,
            losses: LossLog::default(),
            scratch: Vec::new(),
            admission: Admission::default(),
        }
    }

    /// One record for `key` at flow time `time` (unix seconds); `newest` is the
    /// newest record time seen by the caller (>= time is not required).
    #[inline]
    pub fn add(&mut self, key: IpAddr, time: u64, newest: u64) {
        let newest = self.newest.max(newest).max(time);
        if newest != self.newest || self.first_live == u64::MAX {
            self.newest = newest;
            self.first_live = self.clock.first_live(newest);
        }
        let first_live = self.first_live;
        let epoch = self.clock.epoch(time);
        if epoch < first_live {
            self.stale += 1;
            return;
        }
        let epoch = epoch.min(u64::from(u32::MAX - 1)) as u32;
        let k = key_of(key);
        // One probe for a held address, the common case.
        if let Some(e) = self.map.get_mut(&k) {
            bump(e, epoch, first_live, self.clock.slots as u32, &mut self.rings, &mut self.free_rings);
            return;
        }
        if self.map.len() >= self.capacity {
            self.compact(newest);
        }
        if !self.admission.admit(k, newest) {
            // One record lost for this address while in the window.
            self.losses.record(&self.clock, newest, 1);
            return;
        }
        self.map.insert(k, Entry { total: 1, head: epoch, ring: NO_RING });
    }

    /// The `k` addresses with the most records in the window ending at `newest`,
    /// most first (ties: by address), appended to `out`.
    pub fn top(&self, k: usize, newest: u64, out: &mut Vec<(IpAddr, u64)>) {
        if k == 0 {
            return;
        }
        let first_live = self.clock.first_live(newest.max(self.newest));
        let mut all: Vec<(u64, u128)> = self
            .map
            .iter()
            .filter_map(|(&key, e)| {
                let c = count_at(e, first_live, self.clock.slots as u32, &self.rings);
                (c > 0).then_some((c, key))
            })
            .collect();
        let order = |a: &(u64, u128), b: &(u64, u128)| b.0.cmp(&a.0).then(addr_order(a.1).cmp(&addr_order(b.1)));
        if all.len() > k {
            all.select_nth_unstable_by(k - 1, order);
            all.truncate(k);
        }
        all.sort_unstable_by(order);
        out.extend(all.into_iter().map(|(c, key)| (addr_of(key), c)));
    }

    /// The window count of one address at `newest` (0 when not held).
    pub fn count(&self, key: IpAddr, newest: u64) -> u64 {
        let first_live = self.clock.first_live(newest.max(self.newest));
        self.map.get(&key_of(key)).map_or(0, |e| count_at(e, first_live, self.clock.slots as u32, &self.rings))
    }

    /// Addresses dropped to stay within capacity, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The largest window count an evicted address held, since start.
    pub fn max_evicted(&self) -> u64 {
        self.losses.max()
    }

    /// The largest window count evicted (1 for a deferred record) at times
    /// whose records may still be in the window ending at `newest`: each
    /// eviction or deferral of an address lost at most this many of its
    /// records in that window (0: every count is exact).
    pub fn error_bound(&self, newest: u64) -> u64 {
        self.losses.bound(&self.clock, newest.max(self.newest))
    }

    /// Records of new addresses not counted by the admission filter (while
    /// evictions are recent, a new address is admitted on its second record).
    pub fn deferred(&self) -> u64 {
        self.admission.deferred()
    }

    /// Records ignored because they were older than the window when added.
    pub fn stale(&self) -> u64 {
        self.stale
    }

    /// Addresses held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most addresses held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The slot width in seconds (the window boundary precision).
    pub fn slot_width(&self) -> u64 {
        self.clock.width()
    }

    /// An estimate of the heap bytes held: the map's buckets and the ring slab.
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket, buckets a power of two.
        let buckets = (self.map.capacity() * 8 / 7).next_power_of_two();
        buckets * (std::mem::size_of::<(u128, Entry)>() + 1)
            + self.rings.capacity() * std::mem::size_of::<[u32; SLOTS]>()
            + self.free_rings.capacity() * 4
            + self.scratch.capacity() * std::mem::size_of::<u64>()
            + self.admission.heap_bytes()
    }

    /// Drops the addresses with nothing left in the window, then evicts the
    /// smallest counts down to half the capacity.
    fn compact(&mut self, newest: u64) {
        let first_live = self.clock.first_live(newest);
        let slots = self.clock.slots as u32;
        let (rings, free_rings, scratch) = (&mut self.rings, &mut self.free_rings, &mut self.scratch);
        scratch.clear();
        self.map.retain(|_, e| {
            let c = count_at(e, first_live, slots, rings);
            if c == 0 {
                release(e, free_rings);
                false
            } else {
                scratch.push(priority(c, e.head));
                true
            }
        });
        let target = self.capacity / 2;
        if self.map.len() <= target {
            return;
        }
        // Evict the `need` lowest priorities: all below the pivot, then as
        // many equal to it as needed, in one sequential pass over the table.
        let need = self.map.len() - target;
        let (below, &mut pivot, _) = scratch.select_nth_unstable(need - 1);
        let mut ties = need - below.iter().filter(|&&p| p < pivot).count();
        let mut evicted = 0u64;
        self.map.retain(|_, e| {
            let p = priority(count_at(e, first_live, slots, rings), e.head);
            let evict = p < pivot
                || (p == pivot && ties > 0 && {
                    ties -= 1;
                    true
                });
            if evict {
                release(e, free_rings);
                evicted += 1;
            }
            !evict
        });
        self.evictions += evicted;
        // Evictions make the table lossy: until the window has passed, new
        // addresses must show twice before they take a place.
        self.admission.arm(newest, self.clock.window);
        let largest = pivot >> 32;
        self.losses.record(&self.clock, newest, largest);
    }
}

/// Eviction order: window count, then the newest slot written (the least
/// recently seen go first among equal counts).
#[inline]
fn priority(count: u64, head: u32) -> u64 {
    count.min(u64::from(u32::MAX)) << 32 | u64::from(head)
}

/// Counts one record of slot `epoch` (live) into `e`.
#[inline]
fn bump(e: &mut Entry, epoch: u32, first_live: u64, slots: u32, rings: &mut Vec<[u32; SLOTS]>, free: &mut Vec<u32>) {
    if e.ring == NO_RING {
        if epoch == e.head {
            if e.total < u64::from(u32::MAX) {
                e.total += 1;
            }
            return;
        }
        if u64::from(e.head) < first_live {
            // Everything it held has left the window: start again inline.
            e.head = epoch;
            e.total = 1;
            return;
        }
        // Two live slots: move to a ring.
        let r = match free.pop() {
            Some(r) => {
                rings[r as usize] = [0; SLOTS];
                r
            }
            None => {
                rings.push([0; SLOTS]);
                (rings.len() - 1) as u32
            }
        };
        rings[r as usize][(e.head % slots) as usize] = e.total as u32;
        e.ring = r;
    }
    let ring = &mut rings[e.ring as usize];
    if epoch > e.head {
        let steps = epoch - e.head;
        if steps >= slots {
            // The whole ring is older than the new slot's window.
            free.push(e.ring);
            *e = Entry { total: 1, head: epoch, ring: NO_RING };
            return;
        }
        // Clear the slots of epochs head+1..=epoch (reused by the new ones).
        let first = ((e.head + 1) % slots) as usize;
        for part in ring_span(first, steps as usize, slots as usize) {
            let span = &mut ring[part];
            e.total -= span.iter().map(|&c| u64::from(c)).sum::<u64>();
            span.fill(0);
        }
        e.head = epoch;
    } else if epoch + slots <= e.head {
        return; // older than the ring covers (never live)
    }
    let slot = &mut ring[(epoch % slots) as usize];
    if *slot < u32::MAX {
        *slot += 1;
        e.total += 1;
    }
}

/// The count of `e` in the live slots `[first_live, ..]`.
#[inline]
fn count_at(e: &Entry, first_live: u64, slots: u32, rings: &[[u32; SLOTS]]) -> u64 {
    let head = u64::from(e.head);
    if head < first_live {
        return 0;
    }
    if e.ring == NO_RING {
        return e.total;
    }
    // Subtract the ring's epochs that are older than the window.
    let ring = &rings[e.ring as usize];
    let oldest = (head + 1).saturating_sub(u64::from(slots));
    if oldest >= first_live {
        return e.total;
    }
    let first = (oldest % u64::from(slots)) as usize;
    let stale: u64 = ring_span(first, (first_live - oldest) as usize, slots as usize)
        .map(|part| ring[part].iter().map(|&c| u64::from(c)).sum::<u64>())
        .sum();
    e.total - stale
}

/// The index ranges of `len` consecutive ring slots from `first`, wrapping
/// at `slots`: one or two ranges (the second may be empty).
#[inline]
fn ring_span(first: usize, len: usize, slots: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let len = len.min(slots);
    let end = first + len;
    if end <= slots {
        [first..end, 0..0].into_iter()
    } else {
        [first..slots, 0..end - slots].into_iter()
    }
}

fn release(e: &mut Entry, free: &mut Vec<u32>) {
    if e.ring != NO_RING {
        free.push(e.ring);
        e.ring = NO_RING;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(i))
    }
    fn top(t: &WindowedTopK, k: usize, newest: u64) -> Vec<(IpAddr, u64)> {
        let mut out = Vec::new();
        t.top(k, newest, &mut out);
        out
    }

    #[test]
    fn slot_clock_widths() {
        let c = SlotClock::new(Duration::from_secs(900));
        assert_eq!((c.width(), c.slots()), (15, 60));
        let c = SlotClock::new(Duration::from_secs(600));
        assert_eq!((c.width(), c.slots()), (10, 60));
        let c = SlotClock::new(Duration::from_secs(30));
        assert_eq!((c.width(), c.slots()), (1, 30));
        let c = SlotClock::new(Duration::from_secs(90));
        assert_eq!((c.width(), c.slots()), (2, 45));
        let c = SlotClock::new(Duration::from_secs(0));
        assert_eq!((c.width(), c.slots()), (1, 1));
    }

    #[test]
    fn epoch_by_reciprocal_is_exact() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for w in (1..=3600u64).chain([86_400, 604_800, 1 << 20]) {
            let c = SlotClock::new(Duration::from_secs(w * SLOTS as u64));
            assert_eq!(c.width(), w);
            for t in [0, 1, w - 1, w, w + 1, u64::from(u32::MAX), u64::from(u32::MAX) + 1, u64::from(u32::MAX) - 1] {
                assert_eq!(c.epoch(t), t / w, "t {t} w {w}");
            }
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = x >> 32;
                assert_eq!(c.epoch(t), t / w, "t {t} w {w}");
                assert_eq!(c.epoch(t - t % w + w - 1), t / w, "t {t} w {w}");
            }
        }
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
        assert!(t.rings.len() <= 9, "slab grew to {}", t.rings.len());
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
    }
}
