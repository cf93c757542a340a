//! Latency samples and their percentiles.

use std::time::Duration;

/// Latencies in microseconds. Every sample is kept (4 bytes each), so percentiles are exact.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
    sorted: bool,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies {
            micros: Vec::with_capacity(n),
            sorted: true,
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        self.sorted = false;
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
    }

    /// The `p`-th percentile (0–100) by the nearest-rank method, in milliseconds.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        self.sort();
        percentile(&self.micros, p).map_or(0.0, |us| f64::from(us) / 1000.0)
    }

    pub fn max_ms(&mut self) -> f64 {
        self.percentile_ms(100.0)
    }

    pub fn mean_ms(&self) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        let total: u64 = self.micros.iter().map(|&u| u64::from(u)).sum();
        total as f64 / self.micros.len() as f64 / 1000.0
    }

    /// `p50 / p99 / max` in milliseconds.
    pub fn summary(&mut self) -> Summary {
        Summary {
            count: self.len(),
            p50: self.percentile_ms(50.0),
            p99: self.percentile_ms(99.0),
            max: self.max_ms(),
            mean: self.mean_ms(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Nearest-rank percentile of sorted samples: the smallest value such that at least `p` % of
/// the samples are less than or equal to it. `None` for no samples.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A number with thousands separators (`12 345`), for tables.
pub fn thousands(n: f64) -> String {
    let rounded = n.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if rounded < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.5), Some(100));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // Classic textbook example: 15, 20, 35, 40, 50.
        let w = [15, 20, 35, 40, 50];
        assert_eq!(percentile(&w, 5.0), Some(15));
        assert_eq!(percentile(&w, 30.0), Some(20));
        assert_eq!(percentile(&w, 40.0), Some(20));
        assert_eq!(percentile(&w, 50.0), Some(35));
        assert_eq!(percentile(&w, 100.0), Some(50));
    }

    #[test]
    fn latencies_summary_in_milliseconds() {
        let mut l = Latencies::default();
        for us in [3000u64, 1000, 2000, 4000] {
            l.record(Duration::from_micros(us));
        }
        let mut other = Latencies::default();
        other.record(Duration::from_micros(100_000));
        l.merge(other);
        let s = l.summary();
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p99, 100.0);
        assert_eq!(s.max, 100.0);
        assert!((s.mean - 22.0).abs() < 1e-9);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1 000");
        assert_eq!(thousands(1234567.0), "1 234 567");
        assert_eq!(thousands(-12345.0), "-12 345");
    }
}
