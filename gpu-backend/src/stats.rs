//! Small statistics helpers: medians, and a fixed-memory latency histogram for the per-op
//! overhead samples of long runs.

use serde::Serialize;

/// Median of samples (mean of the two middle ones for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    orion_policies::report::median(values).unwrap_or(0.0)
}

/// Nearest-rank percentile of samples; 0 when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Sub-buckets per power of two: values are kept to within 1/64 (1.6%).
const SUB: u64 = 64;
/// Powers of two covered (up to 2^40 ns, about 18 minutes).
const OCTAVES: u64 = 40;

/// A log-linear histogram of nanosecond values in fixed memory: exact below 64 ns, within
/// 1.6% above. Percentiles are nearest-rank over the bucketed values.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    sum: f64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; (SUB * (OCTAVES + 1)) as usize], n: 0, sum: 0.0, max: 0 }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros() as u64; // >= 6
    let shift = octave - 6;
    let sub = (v >> shift) - SUB; // 0..63
    let o = (octave - 5).min(OCTAVES);
    (o * SUB + sub) as usize
}

fn value_of(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < SUB {
        return b;
    }
    let o = b / SUB;
    let sub = b % SUB;
    let shift = o - 1;
    // The bucket's midpoint.
    ((SUB + sub) << shift) + ((1u64 << shift) >> 1)
}

/// Summary of a histogram, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub n: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Histogram {
    /// Adds a value.
    pub fn add(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.n += 1;
        self.sum += v as f64;
        self.max = self.max.max(v);
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Nearest-rank percentile (bucket midpoint); 0 when empty.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (value_of(i) as f64).min(self.max as f64);
            }
        }
        self.max as f64
    }

    /// Count, mean, median, p90, p99 and maximum.
    pub fn summary(&self) -> Summary {
        let r = |x: f64| (x * 10.0).round() / 10.0;
        Summary {
            n: self.n,
            mean: if self.n == 0 { 0.0 } else { r(self.sum / self.n as f64) },
            p50: self.percentile(50.0),
            p90: self.percentile(90.0),
            p99: self.percentile(99.0),
            max: self.max as f64,
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentile() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), 99.0);
    }

    #[test]
    fn histogram_is_exact_for_small_values_and_close_for_large() {
        let mut h = Histogram::default();
        for v in 0..64 {
            h.add(v);
        }
        assert_eq!(h.percentile(50.0), 31.0);
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.add(v * 100);
        }
        let p50 = h.percentile(50.0);
        let p99 = h.percentile(99.0);
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.02, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(h.summary().max, 1_000_000.0);
        assert_eq!(h.len(), 10_000);
    }

    #[test]
    fn buckets_round_trip_within_their_width() {
        for v in [64u64, 65, 100, 1000, 1023, 1024, 123_456, 9_999_999_999] {
            let back = value_of(bucket_of(v));
            assert!((back as f64 / v as f64 - 1.0).abs() < 1.0 / 64.0, "{v} -> {back}");
        }
    }
}
