//! A fixed-bucket histogram of integer observations: one array increment per
//! observation, cumulated only when encoded.

/// Upper bounds of `vpc_flow_record_bytes`.
pub const BYTES_BUCKETS: &[u64] =
    &[64, 128, 256, 512, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 10_485_760, 104_857_600];
/// Upper bounds of `vpc_flow_record_packets`.
pub const PACKETS_BUCKETS: &[u64] = &[1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 10_000, 100_000];
/// Upper bounds of `vpc_flow_record_duration_seconds` (flows are aggregated over
/// at most 60 s or 600 s, but capture windows can stretch).
pub const DURATION_BUCKETS: &[u64] = &[0, 1, 5, 10, 30, 60, 120, 300, 600, 900, 1800];

#[derive(Debug, Clone)]
pub struct IntHistogram {
    bounds: &'static [u64],
    /// Non-cumulative; one more than `bounds` for +Inf.
    counts: Vec<u64>,
    sum: u128,
    count: u64,
}

impl IntHistogram {
    pub fn new(bounds: &'static [u64]) -> IntHistogram {
        IntHistogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0, count: 0 }
    }

    #[inline]
    pub fn observe(&mut self, v: u64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i] += 1;
        self.sum += v as u128;
        self.count += 1;
    }

    /// Adds the observations of `other`, a histogram with the same buckets.
    pub fn merge_from(&mut self, other: &IntHistogram) {
        debug_assert_eq!(self.bounds, other.bounds);
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum as f64
    }

    /// (upper bound, cumulative count) for each finite bucket.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut acc = 0;
        self.bounds.iter().zip(&self.counts).map(move |(&b, &c)| {
            acc += c;
            (b as f64, acc)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let mut h = IntHistogram::new(&[1, 10]);
        for v in [0, 1, 2, 10, 11] {
            h.observe(v);
        }
        let c: Vec<_> = h.cumulative().collect();
        assert_eq!(c, vec![(1.0, 2), (10.0, 4)]);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 24.0);
    }
}
