//! A log-linear latency histogram: values in microseconds, 64 linear sub-buckets per power of
//! two, so every recorded value is kept to within 1/64 (about 1.6 %) of itself. Fixed memory,
//! mergeable, no allocation per sample.

use std::time::Duration;

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two up to 2^40 µs (about 12 days) are more than any request takes.
const GROUPS: usize = 41;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self { counts: vec![0; GROUPS * SUB], total: 0, sum_us: 0, max_us: 0 }
    }

    fn index(us: u64) -> usize {
        if us < SUB as u64 {
            return us as usize;
        }
        let group = 63 - us.leading_zeros() - SUB_BITS + 1;
        let sub = (us >> (group - 1)) as usize - SUB;
        (group as usize * SUB + sub).min(GROUPS * SUB - 1)
    }

    /// The smallest value of bucket `index`'s range: what percentiles report.
    fn lower_bound(index: usize) -> u64 {
        let (group, sub) = (index / SUB, index % SUB);
        if group == 0 { sub as u64 } else { ((SUB + sub) as u64) << (group - 1) }
    }

    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower_bound(i).min(self.max_us);
            }
        }
        self.max_us
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, want) in [(0.5, 5_000.0), (0.99, 9_900.0), (1.0, 10_000.0)] {
            let got = h.quantile_us(q) as f64;
            assert!((got - want).abs() / want < 1.0 / 64.0 + 1e-9, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max_us(), 10_000);
        assert_eq!(h.sum_us, 50_005_000);
    }

    #[test]
    fn small_values_are_exact_and_merging_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(Duration::from_micros(3));
        b.record(Duration::from_micros(40));
        a.merge(&b);
        assert_eq!((a.count(), a.quantile_us(0.5), a.quantile_us(1.0)), (2, 3, 40));
    }
}
