//! How replay shares its inputs among workers: the inputs, in the order given,
//! are laid end to end by weight (bytes) and cut into one contiguous stretch
//! per worker; a plain file that straddles a cut is split there into byte
//! ranges. Contiguous stretches keep the input order: worker 0 reads the
//! beginning, the last worker the end, so merging the workers' shards in
//! worker order is merging them in input order. The plan is a pure function
//! of the weights, so the same inputs always give the same plan.

/// What the planner knows of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Weight {
    /// Estimated bytes of text (a gzip file's size times [`GZIP_WEIGHT`]).
    pub bytes: u64,
    /// A plain regular file, which can be read by byte ranges.
    pub splittable: bool,
}

/// Text bytes per compressed byte assumed for a `.gz` input (flow logs
/// compress about 6 to 10 times).
pub(crate) const GZIP_WEIGHT: u64 = 8;
/// Weight given to an input whose size is unknown (standard input, a pipe).
pub(crate) const UNKNOWN_WEIGHT: u64 = 64 << 20;

/// Which part of an input a unit of work is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The whole input, from its first byte to its end.
    Whole,
    /// The lines that start at a byte offset in `start..end` (`end` is `None`
    /// for the last range: to the end of the file, however long it is then).
    Range { index: usize, start: u64, end: Option<u64> },
}

/// One unit of work: a part of one input (its position in the inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unit {
    pub input: usize,
    pub part: Part,
}

/// The units of each worker, in input order; worker `w`'s units all come
/// before worker `w + 1`'s. Ranges are at least `min_range` bytes long; a
/// file shorter than twice that is never split. Some workers may get nothing.
pub(crate) fn plan(weights: &[Weight], workers: usize, min_range: u64) -> Vec<Vec<Unit>> {
    let workers = workers.max(1);
    let mut out = vec![Vec::new(); workers];
    let total: u64 = weights.iter().map(|w| w.bytes).sum::<u64>().max(1);
    // The worker whose stretch holds position `x` of the whole.
    let owner = |x: u64| ((u128::from(x) * workers as u128 / u128::from(total)) as usize).min(workers - 1);
    let mut pos = 0u64;
    for (input, w) in weights.iter().enumerate() {
        let cuts = if w.splittable { cuts(pos, w.bytes, total, workers, min_range.max(1)) } else { Vec::new() };
        if cuts.is_empty() {
            out[owner(pos + w.bytes / 2)].push(Unit { input, part: Part::Whole });
        } else {
            let mut start = 0;
            for (index, &end) in cuts.iter().chain(std::iter::once(&w.bytes)).enumerate() {
                let last = index == cuts.len();
                let part = Part::Range { index, start, end: if last { None } else { Some(end) } };
                out[owner(pos + start + (end - start) / 2)].push(Unit { input, part });
                start = end;
            }
        }
        pos += w.bytes;
    }
    out
}

/// Offsets inside an input at `pos..pos + len` of the whole where a worker's
/// stretch ends, dropping those that would leave a range under `min_range`.
fn cuts(pos: u64, len: u64, total: u64, workers: usize, min_range: u64) -> Vec<u64> {
    let mut cuts = Vec::new();
    let mut last = 0;
    for k in 1..workers as u128 {
        let b = (u128::from(total) * k / workers as u128) as u64;
        if b <= pos || b >= pos + len {
            continue;
        }
        let c = b - pos;
        if c >= last + min_range && len - c >= min_range {
            cuts.push(c);
            last = c;
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(bytes: u64) -> Weight {
        Weight { bytes, splittable: true }
    }

    fn whole(input: usize) -> Unit {
        Unit { input, part: Part::Whole }
    }

    #[test]
    fn two_equal_files_go_one_to_each_worker() {
        let p = plan(&[plain(1000), plain(1000)], 2, 100);
        assert_eq!(p, vec![vec![whole(0)], vec![whole(1)]]);
    }

    #[test]
    fn one_large_file_is_split_into_one_range_per_worker() {
        let p = plan(&[plain(1000)], 4, 100);
        let ranges: Vec<Part> = p.iter().map(|units| units[0].part).collect();
        assert_eq!(
            ranges,
            vec![
                Part::Range { index: 0, start: 0, end: Some(250) },
                Part::Range { index: 1, start: 250, end: Some(500) },
                Part::Range { index: 2, start: 500, end: Some(750) },
                Part::Range { index: 3, start: 750, end: None },
            ]
        );
    }

    #[test]
    fn a_file_under_twice_the_minimum_range_stays_whole() {
        assert_eq!(plan(&[plain(199)], 2, 100), vec![vec![whole(0)], vec![]]);
        let gz = Weight { bytes: 10_000, splittable: false };
        assert_eq!(plan(&[gz], 3, 100), vec![vec![], vec![whole(0)], vec![]]);
    }

    #[test]
    fn units_stay_in_input_order_across_workers() {
        let weights = [plain(10), Weight { bytes: 5000, splittable: false }, plain(3000), plain(7), plain(2000)];
        for workers in 1..=6 {
            let p = plan(&weights, workers, 100);
            let flat: Vec<Unit> = p.into_iter().flatten().collect();
            let mut seen = Vec::new();
            for u in &flat {
                let key = match u.part {
                    Part::Whole => (u.input, 0),
                    Part::Range { index, .. } => (u.input, index),
                };
                seen.push(key);
            }
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(seen, sorted, "{workers} workers: {flat:?}");
            for (input, weight) in weights.iter().enumerate() {
                let parts: Vec<Part> = flat.iter().filter(|u| u.input == input).map(|u| u.part).collect();
                assert!(!parts.is_empty(), "input {input} planned");
                if parts.len() > 1 {
                    // Ranges tile the file: each starts where the last ended.
                    let mut next = 0;
                    for (i, part) in parts.iter().enumerate() {
                        let Part::Range { index, start, end } = *part else { panic!("{parts:?}") };
                        assert_eq!((index, start), (i, next));
                        next = end.unwrap_or(weight.bytes);
                        assert!(next - start >= 100, "{parts:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_load_is_balanced_when_files_can_be_split() {
        let weights = [plain(100_000), plain(30_000), plain(70_000)];
        let p = plan(&weights, 2, 1000);
        let load = |units: &Vec<Unit>| -> u64 {
            units
                .iter()
                .map(|u| match u.part {
                    Part::Whole => weights[u.input].bytes,
                    Part::Range { start, end, .. } => end.unwrap_or(weights[u.input].bytes) - start,
                })
                .sum()
        };
        assert_eq!((load(&p[0]), load(&p[1])), (100_000, 100_000));
    }

    #[test]
    fn empty_inputs_and_no_inputs_are_planned() {
        assert_eq!(plan(&[], 3, 100), vec![vec![], vec![], vec![]]);
        assert_eq!(plan(&[plain(0), plain(0)], 2, 100), vec![vec![whole(0), whole(1)], vec![]]);
    }
}
