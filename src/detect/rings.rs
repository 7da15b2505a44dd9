//! The top-K tracker's per-slot counters for addresses seen in two or more
//! live slots: a slab of rings, laid out by column (one `Vec<u32>` per slot
//! of the window, indexed by ring), with each ring's window total kept
//! current. When flow time moves on and a slot leaves the window, its column
//! is subtracted from the totals and zeroed in one sequential pass (skipped
//! when the column holds nothing), so reading an address's window count is
//! one load: a snapshot of 50,000 addresses never walks their rings. Rings
//! are reused through a free list; a freed ring is all zeros.

use super::tracker::SLOTS;

/// Rings the slab grows by (at most this many unused).
const GROW: usize = 64;

/// A ring index meaning "no ring".
pub(crate) const NO_RING: u32 = u32::MAX;

/// The window from some epoch on, as [`Rings::live_from`] gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveFrom {
    pub(crate) first_live: u64,
    /// Columns of the epochs between the swept first live one and this one.
    cols: [u8; SLOTS],
    n: usize,
}

impl LiveFrom {
    /// Whether the window starts at the swept epoch: a ring's count in it is
    /// its kept total (one load), with no column to subtract.
    #[cfg(test)]
    pub(crate) fn is_swept(&self) -> bool {
        self.n == 0
    }
}

#[derive(Debug)]
pub(crate) struct Rings {
    slots: u64,
    /// Column `epoch % slots`: each ring's count of that epoch while it is
    /// live, 0 otherwise.
    cols: Vec<Vec<u32>>,
    /// Each ring's sum over the live epochs (from `swept` on).
    totals: Vec<u64>,
    /// Bit `c`: column `c` may hold a nonzero cell (`slots <= 64`).
    used: u64,
    free: Vec<u32>,
    /// The first live epoch: the cells of every older epoch are zero.
    swept: u64,
    /// `swept % slots`: the column of epoch `e` (live) is `swept_col + (e -
    /// swept)`, less `slots` when past it — no division per record.
    swept_col: u64,
}

impl Rings {
    /// Rings of `slots` (1 to 60) epochs.
    pub(crate) fn new(slots: u64) -> Rings {
        let slots = slots.clamp(1, SLOTS as u64);
        Rings {
            slots,
            cols: (0..slots).map(|_| Vec::new()).collect(),
            totals: Vec::new(),
            used: 0,
            free: Vec::new(),
            swept: 0,
            swept_col: 0,
        }
    }

    /// The column of a live epoch.
    #[inline]
    fn col(&self, epoch: u64) -> usize {
        let c = self.swept_col + (epoch - self.swept);
        (if c >= self.slots { c - self.slots } else { c }) as usize
    }

    /// Rings in the slab, free ones included.
    pub(crate) fn len(&self) -> usize {
        self.totals.len()
    }

    /// An all-zero ring. The slab grows by [`GROW`] rings at a time: one
    /// resize per column, rather than a push per column per ring.
    pub(crate) fn alloc(&mut self) -> u32 {
        if let Some(r) = self.free.pop() {
            return r;
        }
        let n = self.totals.len();
        let grown = n + GROW;
        for col in &mut self.cols {
            col.resize(grown, 0);
        }
        self.totals.resize(grown, 0);
        self.free.extend((n as u32 + 1..grown as u32).rev());
        n as u32
    }

    /// Frees ring `r`, whose newest epoch written is `head`: its cells of the
    /// live epochs up to `head` are zeroed (the older ones already are).
    pub(crate) fn release(&mut self, r: u32, head: u64) {
        let ri = r as usize;
        if self.totals[ri] != 0 {
            for epoch in self.swept.max((head + 1).saturating_sub(self.slots))..=head {
                let c = self.col(epoch);
                self.cols[c][ri] = 0;
            }
            self.totals[ri] = 0;
        }
        self.free.push(r);
    }

    /// Counts `n` records of the live `epoch` in ring `r` (a cell saturates
    /// at `u32::MAX`).
    #[inline]
    pub(crate) fn add(&mut self, r: u32, epoch: u64, n: u32) {
        let c = self.col(epoch);
        self.used |= 1 << c;
        let cell = &mut self.cols[c][r as usize];
        let n = n.min(u32::MAX - *cell);
        *cell += n;
        self.totals[r as usize] += u64::from(n);
    }

    /// The count of ring `r` in `epoch` (0 when not live).
    pub(crate) fn get(&self, r: u32, epoch: u64) -> u32 {
        if epoch < self.swept || epoch - self.swept >= self.slots {
            return 0;
        }
        self.cols[self.col(epoch)][r as usize]
    }

    /// Adds the live counts of `other` (rings of as many slots, whose first
    /// live epoch is at or before this one's) into this slab: ring `r` there
    /// into ring `into[r]` here (`NO_RING`: left out). One sequential pass
    /// over each of `other`'s columns that still hold a live epoch here.
    pub(crate) fn add_columns(&mut self, other: &Rings, into: &[u32]) {
        debug_assert_eq!(self.slots, other.slots);
        for epoch in self.swept.max(other.swept)..other.swept + other.slots {
            if epoch >= self.swept + self.slots {
                break;
            }
            let (from, to) = (other.col(epoch), self.col(epoch));
            if other.used & (1 << from) == 0 {
                continue;
            }
            let col = &mut self.cols[to];
            for (&v, &r) in other.cols[from].iter().zip(into) {
                if v != 0 && r != NO_RING {
                    let cell = &mut col[r as usize];
                    let n = v.min(u32::MAX - *cell);
                    *cell += n;
                    self.totals[r as usize] += u64::from(n);
                }
            }
            self.used |= 1 << to;
        }
    }

    /// The window total of ring `r`: its counts from the first live epoch on.
    #[inline]
    pub(crate) fn total(&self, r: u32) -> u64 {
        self.totals[r as usize]
    }

    /// The first live epoch the totals are kept for.
    pub(crate) fn swept(&self) -> u64 {
        self.swept
    }

    /// A view of the window from epoch `first_live` on, at or after the
    /// swept one (a query at a later time than the newest seen): the columns
    /// of the epochs in between, to subtract from the totals.
    pub(crate) fn live_from(&self, first_live: u64) -> LiveFrom {
        let mut view = LiveFrom { first_live, cols: [0; SLOTS], n: 0 };
        if first_live > self.swept {
            for epoch in self.swept.max(first_live.saturating_sub(self.slots))..first_live {
                view.cols[view.n] = (epoch % self.slots) as u8;
                view.n += 1;
            }
        }
        view
    }

    /// The counts of ring `r` (newest epoch `head`) in the window `view`:
    /// its total, less the columns of `view` (none in the common case).
    #[inline]
    pub(crate) fn total_in(&self, r: u32, head: u64, view: &LiveFrom) -> u64 {
        let total = self.totals[r as usize];
        if view.n == 0 {
            return total;
        }
        if view.first_live > head {
            return 0;
        }
        let older: u64 = view.cols[..view.n].iter().map(|&c| u64::from(self.cols[c as usize][r as usize])).sum();
        total - older
    }

    /// The window now starts at epoch `first_live` (never moves back): the
    /// columns of the epochs that left it are subtracted and zeroed.
    pub(crate) fn expire(&mut self, first_live: u64) {
        if first_live <= self.swept {
            return;
        }
        // Only the last `slots` epochs can share a column with a written one.
        for epoch in self.swept.max(first_live.saturating_sub(self.slots))..first_live {
            let c = (epoch % self.slots) as usize;
            if self.used & (1 << c) == 0 {
                continue;
            }
            for (total, cell) in self.totals.iter_mut().zip(self.cols[c].iter_mut()) {
                *total -= u64::from(*cell);
                *cell = 0;
            }
            self.used &= !(1 << c);
        }
        self.swept = first_live;
        self.swept_col = first_live % self.slots;
    }

    /// Back to empty, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        for col in &mut self.cols {
            col.clear();
        }
        self.totals.clear();
        self.used = 0;
        self.free.clear();
        self.swept = 0;
        self.swept_col = 0;
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.cols.iter().map(|c| c.capacity() * 4).sum::<usize>()
            + self.totals.capacity() * 8
            + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_follow_the_window() {
        let mut rings = Rings::new(4);
        let (a, b) = (rings.alloc(), rings.alloc());
        // Epochs 10 to 13 live.
        rings.expire(10);
        rings.add(a, 10, 1);
        rings.add(a, 11, 2);
        rings.add(b, 13, 5);
        assert_eq!((rings.total(a), rings.total(b)), (3, 5));
        assert_eq!(rings.total_in(a, 11, &rings.live_from(10)), 3);
        assert_eq!(rings.total_in(a, 11, &rings.live_from(11)), 2);
        assert_eq!(rings.total_in(a, 11, &rings.live_from(12)), 0);
        assert_eq!(rings.total_in(b, 13, &rings.live_from(13)), 5);
        assert_eq!(rings.total_in(b, 13, &rings.live_from(14)), 0);
        rings.expire(11);
        assert_eq!((rings.total(a), rings.get(a, 11), rings.get(a, 10)), (2, 2, 0));
        // Epoch 14 reuses epoch 10's column, which was zeroed.
        rings.add(a, 14, 1);
        assert_eq!(rings.total(a), 3);
        // A jump past the whole window clears everything.
        rings.expire(100);
        assert_eq!((rings.total(a), rings.total(b)), (0, 0));
        assert_eq!(rings.used, 0);
        assert!(rings.cols.iter().flatten().all(|&c| c == 0));
    }

    #[test]
    fn released_rings_come_back_zeroed() {
        let mut rings = Rings::new(60);
        rings.expire(100);
        let a = rings.alloc();
        rings.add(a, 100, 3);
        rings.add(a, 130, u32::MAX);
        rings.add(a, 130, 7);
        assert_eq!(rings.total(a), 3 + u64::from(u32::MAX));
        rings.release(a, 130);
        assert_eq!(rings.alloc(), a);
        assert_eq!((rings.total(a), rings.get(a, 100), rings.get(a, 130), rings.len()), (0, 0, 0, GROW));
        assert!(rings.cols.iter().flatten().all(|&c| c == 0));
        rings.clear();
        assert_eq!(rings.len(), 0);
    }
}
