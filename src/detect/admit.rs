//! The trackers' admission filter. While evictions are recent (within one
//! window of the last), a new address takes a place in a tracker only on its
//! second record: the first one sets a bit in a 128 KiB bitmap and is not
//! counted (a *deferred* record). One-off addresses — the bulk of a flood of
//! distinct sources — then never enter the table, which spares the insert and
//! the compactions they would cause. The bitmap is cleared at each evicting
//! compaction; a bit shared by two addresses only admits one of them early.
//! Off while no eviction happened in the window, so counts stay exact while
//! the addresses fit.

use super::topk::{SlotClock, SLOTS};

/// Words of the bitmap: 2^20 bits, 128 KiB.
const WORDS: usize = 1 << 14;

#[derive(Debug, Default)]
pub(crate) struct Admission {
    bits: Vec<u64>,
    /// Active while `newest` is below this.
    until: u64,
    deferred: u64,
}

impl Admission {
    /// Whether a new address `key` takes a place now (else its record is
    /// deferred and counted).
    #[inline]
    pub(crate) fn admit(&mut self, key: u128, newest: u64) -> bool {
        if newest >= self.until {
            return true;
        }
        let h = ((key as u64) ^ ((key >> 64) as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let bit = (h >> 44) as usize;
        let (word, mask) = (&mut self.bits[bit >> 6], 1u64 << (bit & 63));
        if *word & mask != 0 {
            return true;
        }
        *word |= mask;
        self.deferred += 1;
        false
    }

    /// After a compaction that evicted: on (again) for one window, bitmap
    /// cleared.
    pub(crate) fn arm(&mut self, newest: u64, window: u64) {
        self.until = newest + window;
        if self.bits.is_empty() {
            self.bits = vec![0; WORDS];
        } else {
            self.bits.fill(0);
        }
    }

    pub(crate) fn deferred(&self) -> u64 {
        self.deferred
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8
    }
}

/// What the trackers lost: the largest loss (a window count or a number of
/// ports evicted with one address, or 1 for a deferred record) per slot of the
/// window, and since start. `bound` is the tracker's error bound.
#[derive(Debug)]
pub(crate) struct LossLog {
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
}
