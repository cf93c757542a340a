//! Messages per span of time, kept by the writer in `time_counts` (SQLite migration 16,
//! PostgreSQL migration 12), so that the total of a list filtered on a time range alone is a
//! few rows rather than a walk over every index entry in the range (10 000 entries, ~80
//! pages, for a hundredth of a 1M store).
//!
//! A message counts once on each of `LEVELS` levels: level `k` groups times by whole
//! seconds, `2^(6k)` seconds to a bucket (1 s, ~1 min, ~68 min, ~3 days, ~194 days). A range
//! of whole seconds is covered by the coarsest buckets that fit in it, and by at most 63
//! buckets of each finer level on either side: a handful of rows however long the range.
//! The fractions of a second at its ends are counted on an index.

/// How many levels of buckets.
pub(crate) const LEVELS: u32 = 5;
/// Each level's buckets hold `2^BITS` buckets of the level below.
const BITS: u32 = 6;
/// Times at or past this (about the year 36 800), and negative ones, are not bucketed: a
/// range reaching them counts that part on the index.
pub(crate) const END: i64 = 1 << 40;

/// The whole second a time falls in, if it is bucketed.
fn second(time: f64) -> Option<i64> {
    (time >= 0.0 && time < END as f64).then_some(time as i64)
}

/// The `(level, bucket)` a message of this time counts in, one per level; none when the
/// time is not bucketed.
pub(crate) fn buckets(time: f64) -> impl Iterator<Item = (i64, i64)> {
    let second = second(time);
    (0..LEVELS).filter_map(move |level| second.map(|s| (i64::from(level), s >> (BITS * level))))
}

/// How a time range `[start, end)` is counted: `buckets` for its whole seconds, as `(level,
/// first bucket, end bucket)` runs, and the index for the rest (`before` is `[start,
/// first whole second)`, `after` is `[end of whole seconds, end)`, each as a `(start, end)`
/// pair for the index's range, `None` for an open side). `None` when the range holds no
/// bucketed whole second: the index counts it all.
#[derive(Debug, PartialEq)]
pub(crate) struct Cover {
    pub runs: Vec<(i64, i64, i64)>,
    pub before: Option<(Option<f64>, f64)>,
    pub after: Option<(f64, Option<f64>)>,
}

pub(crate) fn cover(start: Option<f64>, end: Option<f64>) -> Option<Cover> {
    // The whole seconds inside the range, within the bucketed span.
    let first = match start {
        None => 0,
        Some(s) if s.is_nan() => return None,
        Some(s) => s.ceil().clamp(0.0, END as f64) as i64,
    };
    let last = match end {
        None => END,
        Some(e) if e.is_nan() => return None,
        Some(e) => e.floor().clamp(0.0, END as f64) as i64,
    };
    if first >= last {
        return None;
    }
    let mut runs = Vec::new();
    cover_seconds(first, last, LEVELS - 1, &mut runs);
    let (first, last) = (first as f64, last as f64);
    Some(Cover {
        runs,
        before: start.is_none_or(|s| s < first).then_some((start, first)),
        after: end.is_none_or(|e| e > last).then_some((last, end)),
    })
}

/// The buckets covering the seconds `[first, last)`, coarsest first.
fn cover_seconds(first: i64, last: i64, top: u32, runs: &mut Vec<(i64, i64, i64)>) {
    for level in (0..=top).rev() {
        let shift = BITS * level;
        // The level's buckets wholly inside the range.
        let lo = (first + (1 << shift) - 1) >> shift;
        let hi = last >> shift;
        if lo < hi {
            runs.push((i64::from(level), lo, hi));
            if level > 0 {
                if first < lo << shift {
                    cover_seconds(first, lo << shift, level - 1, runs);
                }
                if hi << shift < last {
                    cover_seconds(hi << shift, last, level - 1, runs);
                }
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seconds the runs cover, as a sorted list of `[first, last)` spans.
    fn seconds(runs: &[(i64, i64, i64)]) -> Vec<(i64, i64)> {
        let mut spans: Vec<(i64, i64)> = runs
            .iter()
            .map(|&(level, lo, hi)| {
                let shift = BITS * level as u32;
                (lo << shift, hi << shift)
            })
            .collect();
        spans.sort();
        spans
    }

    #[test]
    fn runs_tile_the_whole_seconds_exactly() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = (x % 20_000_000) as f64 + if x.is_multiple_of(3) { 0.25 } else { 0.0 };
            let b =
                a + ((x >> 20) % 5_000_000) as f64 + if x.is_multiple_of(5) { 0.5 } else { 0.0 };
            let Some(c) = cover(Some(a), Some(b)) else {
                assert!(b.floor() <= a.ceil(), "{a}..{b} has whole seconds");
                continue;
            };
            let spans = seconds(&c.runs);
            assert_eq!(spans.first().unwrap().0, a.ceil() as i64);
            assert_eq!(spans.last().unwrap().1, b.floor() as i64);
            for pair in spans.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "gap or overlap in {a}..{b}");
            }
            // A handful of rows: at most 63 per side per level below the top.
            assert!(c.runs.len() <= 1 + 2 * (LEVELS as usize - 1));
            assert_eq!(c.before.is_some(), a.fract() != 0.0);
            assert_eq!(c.after.is_some(), b.fract() != 0.0);
        }
    }

    #[test]
    fn open_and_out_of_span_ends_are_left_to_the_index() {
        let c = cover(None, None).unwrap();
        assert_eq!(seconds(&c.runs), vec![(0, END)]);
        assert_eq!(c.before, Some((None, 0.0)));
        assert_eq!(c.after, Some((END as f64, None)));
        let c = cover(Some(-5.5), Some(1e300)).unwrap();
        assert_eq!(c.before, Some((Some(-5.5), 0.0)));
        assert_eq!(c.after, Some((END as f64, Some(1e300))));
        assert_eq!(cover(Some(3.2), Some(3.9)), None);
        assert_eq!(cover(Some(4.0), Some(4.0)), None);
        assert_eq!(cover(Some(9.0), Some(4.0)), None);
        assert_eq!(cover(Some(f64::NAN), Some(4.0)), None);
        assert_eq!(cover(Some(-9.0), Some(-4.0)), None);
        assert_eq!(cover(Some(1e300), None), None);
    }

    #[test]
    fn a_time_counts_once_per_level_and_only_when_bucketed() {
        let b: Vec<_> = buckets(4097.5).collect();
        assert_eq!(b, vec![(0, 4097), (1, 64), (2, 1), (3, 0), (4, 0)]);
        assert_eq!(buckets(-0.5).count(), 0);
        assert_eq!(buckets(END as f64).count(), 0);
        assert_eq!(buckets(f64::NAN).count(), 0);
    }
}
