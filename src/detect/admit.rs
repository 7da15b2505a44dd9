//! The trackers' admission filter. While evictions are recent (within one
//! window of the last), a new address takes a place in a tracker only on its
//! second record: the first one sets a bit in a 128 KiB bitmap and is not
//! counted (a *deferred* record). One-off addresses — the bulk of a flood of
//! distinct sources — then never enter the table, which spares the insert and
//! the compactions they would cause. The bitmap is cleared at each evicting
//! compaction; a bit shared by two addresses only admits one of them early.
//! Off while no eviction happened in the window, so counts stay exact while
//! the addresses fit. Merging two trackers (shards) unites their filters: on
//! while either would be, with both bitmaps. (The error bound's log of losses
//! is in `losslog.rs`.)

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

    /// Folds another filter in (shards merged): deferrals add; on while
    /// either is, with the union of both bitmaps.
    pub(crate) fn merge(&mut self, other: &Admission) {
        self.deferred += other.deferred;
        if other.until == 0 || other.bits.is_empty() {
            return; // never armed since new or cleared
        }
        if self.bits.is_empty() {
            self.bits = vec![0; WORDS];
        } else if self.until == 0 {
            self.bits.fill(0);
        }
        self.until = self.until.max(other.until);
        for (mine, theirs) in self.bits.iter_mut().zip(&other.bits) {
            *mine |= theirs;
        }
    }

    /// Off, nothing deferred (the bitmap is kept for reuse).
    pub(crate) fn clear(&mut self) {
        self.until = 0;
        self.deferred = 0;
    }

    pub(crate) fn deferred(&self) -> u64 {
        self.deferred
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8
    }
}
