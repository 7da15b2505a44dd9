//! What a tracker lost, for its error bound: the largest loss (a window count
//! or a number of ports evicted with one address, or 1 for a deferred record)
//! per slot of the window, and since start. A loss recorded at flow time `t`
//! can only concern records in the window while `t`'s slot is live, so the
//! bound at `newest` is the largest loss of the live slots. Merging two logs
//! (per-worker shards folded into one tracker) keeps, at every later time, at
//! least the sum of both bounds: an address may have lost records in each.

use super::tracker::{SlotClock, SLOTS};

/// Largest loss per slot of the window, and since start.
#[derive(Debug, Clone)]
pub(crate) struct LossLog {
    /// (epoch, largest loss recorded in that epoch), at `epoch % slots`.
    by_slot: [(u64, u64); SLOTS],
    max: u64,
}

impl Default for LossLog {
    fn default() -> LossLog {
        LossLog { by_slot: [(0, 0); SLOTS], max: 0 }
    }
}

impl LossLog {
    /// One address lost `lost` at the time `newest`.
    pub(crate) fn record(&mut self, clock: &SlotClock, newest: u64, lost: u64) {
        self.max = self.max.max(lost);
        let epoch = clock.epoch(newest);
        let slot = &mut self.by_slot[(epoch % clock.slots()) as usize];
        if slot.0 != epoch {
            *slot = (epoch, 0);
        }
        slot.1 = slot.1.max(lost);
    }

    /// The largest loss at times whose records may still be in the window
    /// ending at `newest` (0: every value is exact).
    pub(crate) fn bound(&self, clock: &SlotClock, newest: u64) -> u64 {
        let first_live = clock.first_live(newest);
        self.by_slot
            .iter()
            .filter(|(epoch, max)| *max > 0 && *epoch >= first_live)
            .map(|&(_, max)| max)
            .max()
            .unwrap_or(0)
    }

    /// The largest loss since start.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The loss recorded for `epoch` (0 when its slot holds another epoch).
    fn at(&self, clock: &SlotClock, epoch: u64) -> u64 {
        let (e, lost) = self.by_slot[(epoch % clock.slots()) as usize];
        if e == epoch {
            lost
        } else {
            0
        }
    }

    /// Folds `other` (same clock) in: from now on, until `newest` has moved
    /// on, `bound(t) >= self.bound(t) + other.bound(t)` for every `t >=
    /// newest` (each live slot gets the sum of both logs' largest losses at
    /// that slot or later, which is what the bound at a time that first
    /// leaves that slot live reads).
    pub(crate) fn merge(&mut self, other: &LossLog, clock: &SlotClock, newest: u64) {
        self.max = self.max.max(other.max);
        if other.max == 0 {
            return;
        }
        let last = clock.epoch(newest);
        let first = clock.first_live(newest).max((last + 1).saturating_sub(clock.slots()));
        let (mut mine, mut theirs) = (0u64, 0u64);
        for epoch in (first..=last).rev() {
            mine = mine.max(self.at(clock, epoch));
            theirs = theirs.max(other.at(clock, epoch));
            let sum = mine.saturating_add(theirs);
            if sum > 0 {
                self.by_slot[(epoch % clock.slots()) as usize] = (epoch, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn bound_forgets_losses_that_left_the_window() {
        let clock = SlotClock::new(Duration::from_secs(60));
        let mut log = LossLog::default();
        log.record(&clock, 1000, 3);
        log.record(&clock, 1030, 1);
        assert_eq!((log.bound(&clock, 1030), log.max()), (3, 3));
        assert_eq!(log.bound(&clock, 1060), 1);
        assert_eq!(log.bound(&clock, 1090), 0);
        assert_eq!(log.max(), 3);
    }

    #[test]
    fn merged_bound_is_the_sum_of_both() {
        let clock = SlotClock::new(Duration::from_secs(60));
        let (mut a, mut b) = (LossLog::default(), LossLog::default());
        a.record(&clock, 1000, 5);
        a.record(&clock, 1020, 2);
        b.record(&clock, 1010, 4);
        a.merge(&b, &clock, 1030);
        assert_eq!(a.bound(&clock, 1030), 9);
        // 1000 has left: a's largest live loss is 2, b's 4.
        assert_eq!(a.bound(&clock, 1060), 6);
        // 1010 has left too: only a's 2.
        assert_eq!(a.bound(&clock, 1070), 2);
        assert_eq!(a.bound(&clock, 1080), 0);
        assert_eq!(a.max(), 5);
    }

    proptest! {
        #[test]
        fn merged_bound_covers_the_sum_at_every_later_time(
            window in 1u64..200,
            a in proptest::collection::vec((0u64..400, 1u64..50), 0..20),
            b in proptest::collection::vec((0u64..400, 1u64..50), 0..20),
        ) {
            let clock = SlotClock::new(Duration::from_secs(window));
            let (mut la, mut lb) = (LossLog::default(), LossLog::default());
            // Losses are recorded in time order, as trackers do.
            let (mut a, mut b) = (a, b);
            a.sort_unstable();
            b.sort_unstable();
            for &(t, lost) in &a { la.record(&clock, 10_000 + t, lost); }
            for &(t, lost) in &b { lb.record(&clock, 10_000 + t, lost); }
            let newest = 10_400;
            let mut merged = la.clone();
            merged.merge(&lb, &clock, newest);
            for t in newest..newest + window + clock.width() + 2 {
                let sum = la.bound(&clock, t) + lb.bound(&clock, t);
                prop_assert_eq!(merged.bound(&clock, t), sum, "t {}", t);
            }
            prop_assert_eq!(merged.max(), la.max().max(lb.max()));
        }
    }
}
