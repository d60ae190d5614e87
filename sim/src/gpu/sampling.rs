//! Utilisation sampling: per-stream SM occupancy and DRAM bandwidth over time, averaged in equal
//! time buckets, for utilisation timelines.
//!
//! Off by default ([`GpuModel::record_utilization`](super::GpuModel::record_utilization) turns it
//! on). Between two GPU events the model's state is constant, so the sampler integrates that
//! state over each interval into the buckets it overlaps; it reads the model and never changes
//! it, so a run gives the same results with or without it.
//!
//! * **SMs busy** of a stream: the SMs its resident blocks cover (`min(resident blocks, SMs)`,
//!   as the model's busy-SM counter counts them). When the streams together cover more SMs than
//!   the device has (blocks of several kernels sharing SMs), each stream's share is scaled so
//!   that the streams add up to the SMs busy: the stacked total is the GPU's SM occupancy.
//! * **DRAM bandwidth** of a stream: for each of its kernels, its standalone DRAM utilisation
//!   times its fraction of resident blocks, divided by its current slowdown (a kernel slowed
//!   2x moves its bytes over twice the time); plus its device-side copies and memsets at their
//!   current rate. A fraction of the device's peak bandwidth.

use super::{ActiveKernel, Transfer};

/// Which part of a run to sample, and how finely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtilizationWindow {
    /// Start of the sampled window, ns.
    pub from_ns: u64,
    /// End of the sampled window, ns; `None`: until the run ends (bucket widths then double as
    /// needed to keep at most `2 * buckets` buckets).
    pub to_ns: Option<u64>,
    /// Number of buckets over the window.
    pub buckets: usize,
}

impl Default for UtilizationWindow {
    /// The whole run in 1000 buckets.
    fn default() -> Self {
        UtilizationWindow { from_ns: 0, to_ns: None, buckets: 1000 }
    }
}

/// Per-stream SM occupancy and DRAM bandwidth over time, averaged per bucket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Utilization {
    /// Start of the first bucket, ns.
    pub origin_ns: u64,
    /// Width of a bucket, ns (the last bucket may be cut short by the end of the run).
    pub bucket_ns: u64,
    /// End of the sampled time, ns.
    pub end_ns: u64,
    /// SMs on the device.
    pub sm_count: f64,
    /// Per stream, per bucket: mean SMs busy attributed to the stream.
    pub sms: Vec<Vec<f64>>,
    /// Per stream, per bucket: mean DRAM bandwidth drawn, fraction of peak.
    pub dram: Vec<Vec<f64>>,
}

impl Utilization {
    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.sms.first().map_or(0, Vec::len)
    }

    /// Whether no time was sampled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start time of bucket `i`, ns.
    pub fn bucket_start(&self, i: usize) -> u64 {
        self.origin_ns + i as u64 * self.bucket_ns
    }

    /// The samples of several runs side by side (streams of `other` after those of `self`), for
    /// runs of one client each; buckets of the same index are merged, so the runs must have been
    /// sampled over the same window. The bucket width is the larger of the two.
    pub fn merge(mut self, other: Utilization) -> Utilization {
        if self.sms.is_empty() {
            return other;
        }
        if other.sms.is_empty() {
            return self;
        }
        // Re-bucket the finer one to the coarser width (widths are window / buckets times a
        // power of two, so one divides the other).
        let (mut a, mut b) = (self, other);
        while a.bucket_ns < b.bucket_ns {
            a = a.coarsen();
        }
        while b.bucket_ns < a.bucket_ns {
            b = b.coarsen();
        }
        let n = a.len().max(b.len());
        for v in a.sms.iter_mut().chain(a.dram.iter_mut()).chain(b.sms.iter_mut()).chain(b.dram.iter_mut()) {
            v.resize(n, 0.0);
        }
        a.sms.extend(b.sms);
        a.dram.extend(b.dram);
        a.end_ns = a.end_ns.max(b.end_ns);
        self = a;
        self
    }

    /// Halves the resolution (pairs of buckets averaged).
    fn coarsen(mut self) -> Utilization {
        for v in self.sms.iter_mut().chain(self.dram.iter_mut()) {
            *v = v.chunks(2).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();
        }
        self.bucket_ns *= 2;
        self
    }
}

/// The running integrals.
#[derive(Debug, Clone)]
pub(super) struct Sampler {
    origin: u64,
    limit: u64,
    width: u64,
    max_buckets: usize,
    sm_count: f64,
    /// Per stream, per bucket: integral of SMs busy, SM-ns.
    sms: Vec<Vec<f64>>,
    /// Per stream, per bucket: integral of DRAM fraction, ns.
    dram: Vec<Vec<f64>>,
    scratch_sms: Vec<f64>,
    scratch_dram: Vec<f64>,
}

impl Sampler {
    pub(super) fn new(window: UtilizationWindow, streams: usize, sm_count: f64) -> Self {
        let buckets = window.buckets.max(1);
        let (limit, width, max_buckets) = match window.to_ns {
            Some(to) if to > window.from_ns => (to, (to - window.from_ns).div_ceil(buckets as u64).max(1), buckets),
            Some(_) => (window.from_ns, 1, buckets),
            // Unknown end: start at 1 ms buckets and double as the run goes on.
            None => (u64::MAX, 1_000_000, 2 * buckets),
        };
        Sampler {
            origin: window.from_ns,
            limit,
            width,
            max_buckets,
            sm_count,
            sms: vec![Vec::new(); streams],
            dram: vec![Vec::new(); streams],
            scratch_sms: vec![0.0; streams],
            scratch_dram: vec![0.0; streams],
        }
    }

    /// Adds the state of `kernels` and `dma` (constant over `[t0, t1)`) to the buckets.
    pub(super) fn integrate(&mut self, t0: u64, t1: u64, kernels: &[ActiveKernel], dma: &[Transfer]) {
        let t0 = t0.max(self.origin);
        let t1 = t1.min(self.limit);
        if t1 <= t0 {
            return;
        }
        self.scratch_sms.iter_mut().for_each(|x| *x = 0.0);
        self.scratch_dram.iter_mut().for_each(|x| *x = 0.0);
        let s = self.sm_count;
        for k in kernels {
            self.scratch_sms[k.stream] += (k.resident as f64).min(s);
            let alpha = k.resident as f64 / k.shape.resident_alone.max(1) as f64;
            if k.resident > 0 && k.sigma > 0.0 {
                self.scratch_dram[k.stream] += k.shape.dram_util * alpha / k.sigma;
            }
        }
        for t in dma {
            self.scratch_dram[t.stream] += t.dram * t.rate;
        }
        let total: f64 = self.scratch_sms.iter().sum();
        if total > s {
            let scale = s / total;
            self.scratch_sms.iter_mut().for_each(|x| *x *= scale);
        }
        // Make room for t1, doubling the bucket width while the window is open-ended.
        while (t1 - self.origin).div_ceil(self.width) as usize > self.max_buckets && self.limit == u64::MAX {
            self.double();
        }
        let needed = (t1 - self.origin).div_ceil(self.width) as usize;
        let any = self.scratch_sms.iter().chain(&self.scratch_dram).any(|&x| x != 0.0);
        for v in self.sms.iter_mut().chain(self.dram.iter_mut()) {
            if v.len() < needed {
                v.resize(needed, 0.0);
            }
        }
        if !any {
            return;
        }
        let mut a = t0;
        while a < t1 {
            let b = ((a - self.origin) / self.width + 1) * self.width + self.origin;
            let seg_end = b.min(t1);
            let dt = (seg_end - a) as f64;
            let i = ((a - self.origin) / self.width) as usize;
            for st in 0..self.sms.len() {
                self.sms[st][i] += self.scratch_sms[st] * dt;
                self.dram[st][i] += self.scratch_dram[st] * dt;
            }
            a = seg_end;
        }
    }

    fn double(&mut self) {
        for v in self.sms.iter_mut().chain(self.dram.iter_mut()) {
            *v = v.chunks(2).map(|c| c.iter().sum()).collect();
        }
        self.width *= 2;
    }

    /// The averages per bucket, the run having ended at `end`.
    pub(super) fn finish(mut self, end: u64) -> Utilization {
        let end = end.min(self.limit).max(self.origin);
        let needed = (end - self.origin).div_ceil(self.width) as usize;
        for v in self.sms.iter_mut().chain(self.dram.iter_mut()) {
            v.resize(needed, 0.0);
            for (i, x) in v.iter_mut().enumerate() {
                let start = self.origin + i as u64 * self.width;
                let covered = (start + self.width).min(end).saturating_sub(start).max(1);
                *x /= covered as f64;
            }
        }
        Utilization {
            origin_ns: self.origin,
            bucket_ns: self.width,
            end_ns: end,
            sm_count: self.sm_count,
            sms: self.sms,
            dram: self.dram,
        }
    }
}
