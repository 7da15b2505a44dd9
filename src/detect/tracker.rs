//! The core both windowed trackers (top-K in `topk.rs`, port scans in
//! `portscan.rs`) share: how flow time maps to window slots ([`SlotClock`]),
//! the selection of the top entries from a snapshot ([`select_top`]: most
//! first, ties by address), the eviction of the lowest-priority entries down
//! to a target (priority: the window value, then the most recent time seen,
//! so the least recently seen go first among equals), and the statistics a
//! tracker reports about what it dropped (evictions, stale and deferred
//! records, the error bound through `LossLog`), merged when shards are.

use std::cmp::Ordering;
use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::admit::Admission;
use super::losslog::LossLog;

/// The most slots a window is cut into.
pub const SLOTS: usize = 60;

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
    /// The window length in seconds (at least 1).
    pub fn window(&self) -> u64 {
        self.window
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

/// Keeps the `k` entries of a tracker snapshot with the largest values, most
/// first, ties by address (every IPv4 address before every IPv6 one): the
/// order of `WindowedTopK::top` and `PortScanTracker::scanners`. O(n + k log
/// k): a partial selection, then a sort of the `k` kept. Meant for the
/// collector, outside the writers' lock, on a vector filled by `snapshot`.
pub fn select_top(entries: &mut Vec<(IpAddr, u64)>, k: usize) {
    let order = |a: &(IpAddr, u64), b: &(IpAddr, u64)| b.1.cmp(&a.1).then_with(|| addr_cmp(&a.0, &b.0));
    if k == 0 {
        entries.clear();
        return;
    }
    if entries.len() > k {
        entries.select_nth_unstable_by(k - 1, order);
        entries.truncate(k);
    }
    entries.sort_unstable_by(order);
}

/// `IpAddr`'s order (every IPv4 address before every IPv6 one, each family
/// by value), comparing integers rather than octet arrays.
#[inline]
fn addr_cmp(a: &IpAddr, b: &IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(*a).cmp(&u32::from(*b)),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(*a).cmp(&u128::from(*b)),
        (IpAddr::V4(_), IpAddr::V6(_)) => Ordering::Less,
        (IpAddr::V6(_), IpAddr::V4(_)) => Ordering::Greater,
    }
}

/// Eviction order: a window value (count, distinct ports), then a recency
/// stamp (a slot or a time: the least recently seen go first among equal
/// values). The value is the upper 32 bits.
#[inline]
pub(crate) fn priority(value: u64, stamp: u32) -> u64 {
    value.min(u64::from(u32::MAX)) << 32 | u64::from(stamp)
}

/// What an eviction pass dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Evicted {
    /// Entries evicted.
    pub(crate) entries: u64,
    /// The largest window value among them (0 when none).
    pub(crate) largest: u64,
}

/// Evicts from `map` the entries of lowest [`priority`] until `target` remain.
/// `priorities` holds the priority of every entry of `map` (any order; it is
/// reordered); `priority_of` gives an entry's, and `release` is called on
/// each entry evicted, both with `ctx` (what they read or free). The `need`
/// lowest go: all below the pivot, then as many equal to it as needed in
/// table order, in one sequential pass.
pub(crate) fn evict_lowest<V, C>(
    map: &mut FxHashMap<u128, V>,
    priorities: &mut [u64],
    target: usize,
    ctx: &mut C,
    priority_of: impl Fn(&C, &V) -> u64,
    mut release: impl FnMut(&mut C, &mut V),
) -> Evicted {
    debug_assert_eq!(priorities.len(), map.len());
    if map.len() <= target || priorities.len() != map.len() {
        return Evicted::default();
    }
    let need = map.len() - target;
    let (below, &mut pivot, _) = priorities.select_nth_unstable(need - 1);
    let mut ties = need - below.iter().filter(|&&p| p < pivot).count();
    let mut entries = 0u64;
    map.retain(|_, v| {
        let p = priority_of(ctx, v);
        let evict = p < pivot
            || (p == pivot && ties > 0 && {
                ties -= 1;
                true
            });
        if evict {
            release(ctx, v);
            entries += 1;
        }
        !evict
    });
    Evicted { entries, largest: pivot >> 32 }
}

/// The statistics and size getters both trackers share, written once: used
/// inside `impl WindowedTopK` and `impl PortScanTracker`, whose `stats`,
/// `clock`, `newest`, `map` and `capacity` fields they read. The value of an
/// address is its window count (top-K) or its distinct ports (port scans).
macro_rules! tracker_stats {
    () => {
        /// Addresses dropped to stay within capacity, since start.
        pub fn evictions(&self) -> u64 {
            self.stats.evictions
        }

        /// The largest value (window count, distinct ports) an evicted
        /// address held, since start.
        pub fn max_evicted(&self) -> u64 {
            self.stats.losses.max()
        }

        /// The largest value evicted with one address (1 for a deferred
        /// record) at times whose records may still be in the window ending at
        /// `newest`: each eviction or deferral of an address lost at most this
        /// much of its value in that window (0: every value is exact). After a
        /// merge, at least the sum of the merged trackers' bounds.
        pub fn error_bound(&self, newest: u64) -> u64 {
            self.stats.error_bound(&self.clock, newest.max(self.newest))
        }

        /// Records of new addresses not counted by the admission filter (while
        /// evictions are recent, a new address is admitted on its second
        /// record).
        pub fn deferred(&self) -> u64 {
            self.stats.admission.deferred()
        }

        /// Records ignored because they were older than the window when added.
        pub fn stale(&self) -> u64 {
            self.stats.stale
        }

        /// Addresses held now.
        pub fn len(&self) -> usize {
            self.map.len()
        }

        /// Whether no address is held.
        pub fn is_empty(&self) -> bool {
            self.map.is_empty()
        }

        /// The most addresses held.
        pub fn capacity(&self) -> usize {
            self.capacity
        }
    };
}
pub(crate) use tracker_stats;

/// A tracker's statistics of what it did not count, and the admission filter
/// that evictions arm.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) evictions: u64,
    pub(crate) stale: u64,
    pub(crate) losses: LossLog,
    /// While evictions are recent, new addresses enter on their second record.
    pub(crate) admission: Admission,
}

impl Stats {
    /// Whether a new address `key` takes a place now; if not, its record is
    /// deferred and one value is lost for it while in the window.
    #[inline]
    pub(crate) fn admit(&mut self, clock: &SlotClock, key: u128, newest: u64) -> bool {
        if self.admission.admit(key, newest) {
            return true;
        }
        self.losses.record(clock, newest, 1);
        false
    }

    /// After an eviction pass at `newest`: counts it, logs its largest loss
    /// and arms the admission filter for one window.
    pub(crate) fn evicted(&mut self, clock: &SlotClock, newest: u64, e: Evicted) {
        if e.entries == 0 {
            return;
        }
        self.evictions += e.entries;
        // Evictions make the table lossy: until the window has passed, new
        // addresses must show twice before they take a place.
        self.admission.arm(newest, clock.window());
        self.losses.record(clock, newest, e.largest);
    }

    /// The error bound at `newest` (see [`LossLog::bound`]).
    pub(crate) fn error_bound(&self, clock: &SlotClock, newest: u64) -> u64 {
        self.losses.bound(clock, newest)
    }

    /// Folds another tracker's statistics in (counters add, bounds add, the
    /// admission filters unite); `newest` is the merged newest time.
    pub(crate) fn merge(&mut self, other: &Stats, clock: &SlotClock, newest: u64) {
        self.evictions += other.evictions;
        self.stale += other.stale;
        self.losses.merge(&other.losses, clock, newest);
        self.admission.merge(&other.admission);
    }

    /// Whether nothing was dropped or deferred.
    pub(crate) fn is_clear(&self) -> bool {
        self.evictions == 0 && self.stale == 0 && self.losses.max() == 0 && self.admission.deferred() == 0
    }

    /// Back to the state of a new tracker, keeping allocations.
    pub(crate) fn clear(&mut self) {
        self.evictions = 0;
        self.stale = 0;
        self.losses = LossLog::default();
        self.admission.clear();
    }
}

/// Addresses for the trackers' tests.
#[cfg(test)]
pub(crate) mod test_addrs {
    use std::net::IpAddr;

    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    pub(crate) fn v4(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(i))
    }
}

#[cfg(test)]
mod tests {
    use super::test_addrs::v4;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slot_clock_widths() {
        let c = SlotClock::new(Duration::from_secs(900));
        assert_eq!((c.width(), c.slots(), c.window()), (15, 60, 900));
        let c = SlotClock::new(Duration::from_secs(600));
        assert_eq!((c.width(), c.slots()), (10, 60));
        let c = SlotClock::new(Duration::from_secs(30));
        assert_eq!((c.width(), c.slots()), (1, 30));
        let c = SlotClock::new(Duration::from_secs(90));
        assert_eq!((c.width(), c.slots()), (2, 45));
        let c = SlotClock::new(Duration::from_secs(0));
        assert_eq!((c.width(), c.slots(), c.window()), (1, 1, 1));
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
    fn addr_cmp_is_ipaddr_order() {
        let addrs: Vec<IpAddr> =
            ["0.0.0.0", "10.0.0.1", "10.0.1.0", "255.255.255.255", "::", "::1", "2001:db8::1", "ffff::1"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        for a in &addrs {
            for b in &addrs {
                assert_eq!(addr_cmp(a, b), a.cmp(b), "{a} {b}");
            }
        }
    }

    #[test]
    fn select_top_orders_by_value_then_address() {
        let six: IpAddr = "2001:db8::1".parse().unwrap();
        let mut v = vec![(v4(3), 5), (six, 5), (v4(1), 7), (v4(2), 5), (v4(9), 1)];
        select_top(&mut v, 4);
        assert_eq!(v, vec![(v4(1), 7), (v4(2), 5), (v4(3), 5), (six, 5)]);
        select_top(&mut v, 0);
        assert!(v.is_empty());
    }

    #[test]
    fn evicts_lowest_then_least_recent_in_table_order() {
        let mut map: FxHashMap<u128, (u64, u32)> = FxHashMap::default();
        for (k, v) in [(1, (5, 10)), (2, (1, 20)), (3, (1, 10)), (4, (9, 1)), (5, (1, 10))] {
            map.insert(k, v);
        }
        let mut p: Vec<u64> = map.values().map(|&(c, s)| priority(c, s)).collect();
        let mut released = 0;
        let e = evict_lowest(&mut map, &mut p, 3, &mut released, |_, &(c, s)| priority(c, s), |n, _| *n += 1);
        assert_eq!(e, Evicted { entries: 2, largest: 1 });
        assert_eq!(released, 2);
        // Both (1, 10) go before (1, 20).
        let mut kept: Vec<u128> = map.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![1, 2, 4]);
        let mut p: Vec<u64> = map.values().map(|&(c, s)| priority(c, s)).collect();
        assert_eq!(
            evict_lowest(&mut map, &mut p, 3, &mut (), |_, &(c, s)| priority(c, s), |_, _| ()),
            Evicted::default()
        );
    }

    proptest! {
        #[test]
        fn select_top_is_a_prefix_of_the_full_sort(
            values in proptest::collection::vec((0u32..50, 0u64..6), 0..80),
            k in 0usize..20,
        ) {
            let all: Vec<(IpAddr, u64)> = values.iter().map(|&(a, c)| (v4(a), c)).collect();
            let mut expect = all.clone();
            expect.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            expect.truncate(k);
            let mut got = all;
            select_top(&mut got, k);
            prop_assert_eq!(got, expect);
        }
    }
}
