//! Calibration: turning each op record into a synthetic launch whose standalone duration on
//! this GPU matches the record, and measuring how well it does.
//!
//! # Method
//!
//! For a kernel record, the launch shape is the record's grid and block, and the dynamic
//! shared memory that makes `cuOccupancyMaxActiveBlocksPerMultiprocessor` give the record's
//! `blocks_per_sm` ([`Calibrator::pin_occupancy`]). The work `q` (1/256 iterations per block)
//! is then found by measurement: for a fixed shape the duration is close to affine in `q`, so
//! the calibrator measures two points per shape (cached: traces repeat shapes), solves the line
//! for the record's duration, measures there, and refines with the secant through the nearest
//! measured point while the error exceeds [`REFINE_TOLERANCE`] (at most [`MAX_REFINES`] times).
//! The last measurement at the chosen `q` is the synthetic kernel's measured standalone
//! duration.
//!
//! # Timing
//!
//! A measurement is the median over [`REPS`] launches of the time between CUDA events recorded
//! before and after each launch, all queued behind a gate kernel so that the host's launch
//! calls never starve the GPU: each interval is the kernel's back-to-back time in a stream,
//! the way it runs in a replay. Results are cached by (shape, target duration) for the run and,
//! with a cache file, across runs on the same GPU.

use crate::cuda::{Event, Gpu, Stream, WorkBuffers};
use crate::error::{RealError, Result};
use crate::plan::{CopyKind, KernelLaunch, PreparedOp, Shape, SynthKind, copy_bytes, copy_kind, kernel_geometry};
use crate::stats::median;
use orion_traces::{DeviceSpec, KernelClass, OpKind, OpRecord};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Launches per measurement (the median is taken).
pub const REPS: usize = 5;
/// Relative error above which a calibration is refined.
pub const REFINE_TOLERANCE: f64 = 0.015;
/// Refinement steps at most.
pub const MAX_REFINES: usize = 6;
/// The acceptance bound: standalone duration within this fraction of the record...
pub const FIDELITY_TOLERANCE: f64 = 0.05;
/// ...for kernels longer than this, ns.
pub const FIDELITY_MIN_NS: u64 = 10_000;
/// Largest work value tried (about 4 M iterations per block).
const MAX_Q: u32 = 1 << 30;

/// A straight line `duration = a + b * q` through two measured points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// Duration at `q = 0`, ns.
    pub a: f64,
    /// ns per unit of `q`.
    pub b: f64,
}

impl Fit {
    /// The line through `(q1, d1)` and `(q2, d2)`; `None` when the points do not give an
    /// increasing line.
    pub fn through(p1: (u32, f64), p2: (u32, f64)) -> Option<Fit> {
        let (q1, d1) = (p1.0 as f64, p1.1);
        let (q2, d2) = (p2.0 as f64, p2.1);
        if q1 == q2 {
            return None;
        }
        let b = (d2 - d1) / (q2 - q1);
        if !(b.is_finite() && b > 0.0) {
            return None;
        }
        Some(Fit { a: d1 - b * q1, b })
    }

    /// The `q` whose predicted duration is `target` ns, clamped to `[0, max]`.
    pub fn solve(&self, target: f64, max: u32) -> u32 {
        let q = (target - self.a) / self.b;
        if q.is_nan() || q <= 0.0 {
            0
        } else if q >= max as f64 {
            max
        } else {
            q.round() as u32
        }
    }
}

/// Relative error of a measurement against a target (signed: positive when too slow).
pub fn rel_err(measured: f64, target: f64) -> f64 {
    if target <= 0.0 { 0.0 } else { measured / target - 1.0 }
}

/// The next `q` to try: the secant through the two latest measured points (`points` in
/// measurement order), or the shape's slope through the latest point when they do not give an
/// increasing line; the step is limited to a factor of 4 from the latest `q`.
pub fn next_q(points: &[(u32, f64)], target: f64, fallback: &Fit, max: u32) -> u32 {
    let (q0, d0) = *points.last().expect("at least one point");
    let earlier = points.iter().rev().skip(1).find(|p| p.0 != q0).copied();
    let q = match earlier.and_then(|p| Fit::through(p, (q0, d0))) {
        Some(f) => f.solve(target, max),
        None => Fit { a: d0 - fallback.b * q0 as f64, b: fallback.b }.solve(target, max),
    };
    q.clamp(q0 / 4, q0.saturating_mul(4).saturating_add(256).min(max))
}

/// The next `q` to try after `points` (in measurement order), or `None` when nothing new is
/// left to try: the secant step ([`next_q`]), replaced by the midpoint of the tightest
/// bracket (the largest `q` measured below the target, the smallest measured above it) when
/// it leaves that bracket or repeats a point, so that a response with steps still converges.
pub fn next_guess(points: &[(u32, f64)], target: f64, fallback: &Fit, max: u32) -> Option<u32> {
    let mut cand = next_q(points, target, fallback, max);
    let seen = |q: u32| points.iter().any(|p| p.0 == q);
    let below = points.iter().filter(|p| p.1 < target).map(|p| p.0).max();
    let above = points.iter().filter(|p| p.1 >= target).map(|p| p.0).min();
    match (below, above) {
        (Some(b), Some(a)) if b < a && (cand <= b || cand >= a || seen(cand)) => {
            if a - b <= 1 {
                return None;
            }
            cand = b + (a - b) / 2;
        }
        (Some(b), Some(a)) if b < a => {}
        _ if seen(cand) => return None,
        _ => {}
    }
    Some(cand)
}

/// Searches the work `q` whose duration is `target` ns: starts from `fit`'s prediction, then
/// [`next_guess`] until a measurement is within [`REFINE_TOLERANCE`] or [`MAX_REFINES`]
/// refinements were made. `points` holds what was measured already (reused, not re-measured).
/// Returns the best point measured.
pub fn search(
    fit: &Fit,
    mut points: Vec<(u32, f64)>,
    target: f64,
    mut measure: impl FnMut(u32) -> Result<f64>,
) -> Result<(u32, f64)> {
    let mut q = fit.solve(target, MAX_Q);
    let mut best: Option<(u32, f64)> = None;
    for step in 0..=MAX_REFINES {
        let d = match points.iter().find(|p| p.0 == q) {
            Some(p) => p.1,
            None => measure(q)?,
        };
        points.push((q, d));
        if best.is_none_or(|b| (b.1 - target).abs() > (d - target).abs()) {
            best = Some((q, d));
        }
        if rel_err(d, target).abs() <= REFINE_TOLERANCE || step == MAX_REFINES || (q == 0 && d > target) {
            break;
        }
        match next_guess(&points, target, fit, MAX_Q) {
            Some(n) => q = n,
            None => break,
        }
    }
    Ok(best.expect("at least one measurement"))
}

/// What calibration made of one op record, with its measured standalone duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpCalibration {
    /// The op kind.
    pub kind: OpKind,
    /// The record's name.
    pub name: String,
    /// The record's class (kernels).
    pub class: KernelClass,
    /// The record's standalone duration, ns.
    pub target_ns: u64,
    /// The synthetic op's measured standalone duration, ns (0 for host-only ops).
    pub measured_ns: f64,
    /// `measured / target - 1`.
    pub rel_err: f64,
    /// Kernels: the shape launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// Kernels: the work, 1/256 iterations per block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<u32>,
    /// Kernels: blocks per SM of the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_per_sm_record: Option<u32>,
    /// Kernels: blocks per SM the occupancy API gives for the synthetic launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_per_sm_measured: Option<u32>,
    /// Kernels: the record's duration is below what the shape can do with no work (the launch
    /// floor); the kernel does the least work possible.
    #[serde(default)]
    pub below_floor: bool,
    /// Copies: bytes moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl OpCalibration {
    /// Whether this kernel counts for the fidelity criterion (longer than 10 us).
    pub fn counts_for_fidelity(&self) -> bool {
        self.kind.is_kernel() && self.target_ns > FIDELITY_MIN_NS
    }

    /// Whether its duration is within the 5% bound.
    pub fn within_tolerance(&self) -> bool {
        self.rel_err.abs() <= FIDELITY_TOLERANCE
    }

    /// Whether the occupancy matches the record (`None` when either is unknown).
    pub fn occupancy_matches(&self) -> Option<bool> {
        Some(self.blocks_per_sm_record? == self.blocks_per_sm_measured?)
    }
}

/// Fidelity of a set of calibrated ops (each op of a trace counted once per occurrence).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FidelitySummary {
    /// Kernels.
    pub kernels: usize,
    /// Kernels longer than 10 us.
    pub kernels_over_10us: usize,
    /// Of those, within 5% of the record.
    pub within_5pct_over_10us: usize,
    /// Their fraction (1 when there are none).
    pub fraction_within_5pct_over_10us: f64,
    /// Median |relative error| of kernels longer than 10 us.
    pub median_abs_err_over_10us: f64,
    /// 95th percentile |relative error| of kernels longer than 10 us.
    pub p95_abs_err_over_10us: f64,
    /// Largest |relative error| of kernels longer than 10 us.
    pub max_abs_err_over_10us: f64,
    /// Kernels within 5% among all (any duration).
    pub within_5pct_all: usize,
    /// Kernels whose record's duration is below the launch floor of its shape.
    pub below_floor: usize,
    /// Kernels whose occupancy could be checked.
    pub occupancy_checked: usize,
    /// Of those, measured blocks per SM equal to the record's.
    pub occupancy_match: usize,
    /// Copies and memsets.
    pub copies: usize,
    /// Of those, within 10% of the record.
    pub copies_within_10pct: usize,
}

impl FidelitySummary {
    /// Summarises calibrated ops.
    pub fn of<'a>(ops: impl IntoIterator<Item = &'a OpCalibration>) -> FidelitySummary {
        let mut s = FidelitySummary::default();
        let mut errs = Vec::new();
        for o in ops {
            if o.kind.is_kernel() {
                s.kernels += 1;
                if o.within_tolerance() {
                    s.within_5pct_all += 1;
                }
                if o.below_floor {
                    s.below_floor += 1;
                }
                if let Some(m) = o.occupancy_matches() {
                    s.occupancy_checked += 1;
                    if m {
                        s.occupancy_match += 1;
                    }
                }
                if o.counts_for_fidelity() {
                    s.kernels_over_10us += 1;
                    errs.push(o.rel_err.abs());
                    if o.within_tolerance() {
                        s.within_5pct_over_10us += 1;
                    }
                }
            } else if copy_kind(o.kind).is_some() {
                s.copies += 1;
                if o.rel_err.abs() <= 0.10 {
                    s.copies_within_10pct += 1;
                }
            }
        }
        let r = |x: f64| (x * 1e4).round() / 1e4;
        s.fraction_within_5pct_over_10us =
            if s.kernels_over_10us == 0 { 1.0 } else { r(s.within_5pct_over_10us as f64 / s.kernels_over_10us as f64) };
        s.median_abs_err_over_10us = r(median(&errs));
        s.p95_abs_err_over_10us = r(crate::stats::percentile(&errs, 95.0));
        s.max_abs_err_over_10us = r(errs.iter().copied().fold(0.0, f64::max));
        s
    }
}

/// A calibrated kernel, as cached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CachedKernel {
    /// The shape.
    pub shape: Shape,
    /// The target duration, ns.
    pub target_ns: u64,
    /// The work chosen.
    pub q: u32,
    /// Measured duration at `q`, ns.
    pub measured_ns: f64,
    /// Whether the target is below the shape's floor.
    pub below_floor: bool,
}

/// The calibrations of one GPU, saved between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CalibrationCache {
    /// The GPU they hold for (name and driver version).
    pub gpu: String,
    /// Calibrated kernels.
    pub kernels: Vec<CachedKernel>,
    /// Fitted lines per shape.
    pub fits: Vec<(Shape, Fit)>,
}

/// Finds launches that reproduce records on one GPU, and measures them.
pub struct Calibrator<'g> {
    gpu: &'g Gpu,
    stream: Stream,
    events: Vec<Event>,
    work: WorkBuffers,
    work_copy_bytes: u64,
    occupancy: HashMap<(SynthKind, u32, u32), (u32, u32)>,
    natural: HashMap<(SynthKind, u32), u32>,
    fits: HashMap<Shape, Fit>,
    kernels: HashMap<(Shape, u64), CachedKernel>,
    copies: HashMap<(CopyKind, u64), f64>,
    interrupt: Option<&'g AtomicBool>,
    measurements: u64,
    warmed: bool,
}

impl<'g> Calibrator<'g> {
    /// A calibrator on `gpu`, with its own stream and buffers.
    pub fn new(gpu: &'g Gpu) -> Result<Calibrator<'g>> {
        let (least, _) = gpu.props().stream_priority_range;
        let events = (0..=REPS).map(|_| gpu.event(true)).collect::<Result<Vec<_>>>()?;
        Ok(Calibrator {
            gpu,
            stream: gpu.stream(least)?,
            events,
            work: WorkBuffers::new(gpu, 1 << 20)?,
            work_copy_bytes: 1 << 20,
            occupancy: HashMap::new(),
            natural: HashMap::new(),
            fits: HashMap::new(),
            kernels: HashMap::new(),
            copies: HashMap::new(),
            interrupt: None,
            measurements: 0,
            warmed: false,
        })
    }

    /// Makes calibration stop with [`RealError::Interrupted`] once `flag` is set.
    pub fn set_interrupt(&mut self, flag: &'g AtomicBool) {
        self.interrupt = Some(flag);
    }

    /// The GPU's identity for cache files.
    pub fn gpu_id(&self) -> String {
        let p = self.gpu.props();
        format!("{} (driver {})", p.name, p.driver_version)
    }

    /// Loads a cache file if it exists and holds for this GPU; returns how many kernels it
    /// brought.
    pub fn load_cache(&mut self, path: &Path) -> Result<usize> {
        let Ok(text) = std::fs::read_to_string(path) else { return Ok(0) };
        let Ok(cache) = serde_json::from_str::<CalibrationCache>(&text) else { return Ok(0) };
        if cache.gpu != self.gpu_id() {
            return Ok(0);
        }
        let n = cache.kernels.len();
        for k in cache.kernels {
            self.kernels.insert((k.shape, k.target_ns), k);
        }
        self.fits.extend(cache.fits);
        Ok(n)
    }

    /// Writes the cache file.
    pub fn save_cache(&self, path: &Path) -> std::io::Result<()> {
        let mut kernels: Vec<CachedKernel> = self.kernels.values().copied().collect();
        kernels.sort_by_key(|k| (k.shape.sort_key(), k.target_ns));
        let mut fits: Vec<(Shape, Fit)> = self.fits.iter().map(|(s, f)| (*s, *f)).collect();
        fits.sort_by_key(|f| f.0.sort_key());
        let cache = CalibrationCache { gpu: self.gpu_id(), kernels, fits };
        std::fs::write(path, serde_json::to_string(&cache).expect("cache serialises"))
    }

    /// Timed launches so far.
    pub fn measurements(&self) -> u64 {
        self.measurements
    }

    fn check_interrupt(&self) -> Result<()> {
        if self.interrupt.is_some_and(|f| f.load(Ordering::Relaxed)) {
            return Err(RealError::Interrupted("during calibration"));
        }
        Ok(())
    }

    /// Median back-to-back duration of `op` over `reps` launches, ns.
    pub fn time_op(&mut self, op: &PreparedOp, reps: usize) -> Result<f64> {
        self.check_interrupt()?;
        let reps = reps.clamp(1, REPS);
        // Keep the stream busy while the host queues the timed launches behind the gate.
        self.gpu.spin(&self.stream, 30_000 + 12_000 * reps as u64)?;
        self.events[0].record(&self.stream)?;
        for r in 0..reps {
            match op {
                PreparedOp::Kernel(k) => self.work.launch(self.gpu, &self.stream, k)?,
                PreparedOp::Copy { kind, bytes } => self.gpu.copy(&self.stream, *kind, *bytes, &self.work)?,
                PreparedOp::Marker => {}
            }
            self.events[r + 1].record(&self.stream)?;
        }
        self.events[reps].synchronize()?;
        let mut d = Vec::with_capacity(reps);
        for r in 0..reps {
            d.push(self.events[r].elapsed_ns(&self.events[r + 1])?);
        }
        self.measurements += reps as u64;
        Ok(median(&d))
    }

    fn time_kernel(&mut self, shape: Shape, q: u32, reps: usize) -> Result<f64> {
        self.time_op(&PreparedOp::Kernel(KernelLaunch { shape, q }), reps)
    }

    /// Runs compute-heavy work for about `ms` milliseconds so that the GPU's clocks are up
    /// before anything is measured.
    pub fn warm_up(&mut self, ms: u64) -> Result<()> {
        let sms = self.gpu.props().sm_count;
        let shape = Shape {
            kind: SynthKind::Compute,
            grid: orion_traces::Dim3::linear(sms * 4),
            block: orion_traces::Dim3::linear(256),
            smem: 0,
        };
        let d1 = self.time_kernel(shape, 256 * 64, 1)?;
        let q = ((256.0 * 64.0) * (ms as f64 * 1e6 / 10.0) / d1.max(1.0)).clamp(256.0, MAX_Q as f64) as u32;
        for _ in 0..10 {
            self.time_kernel(shape, q, 1)?;
        }
        self.warmed = true;
        Ok(())
    }

    /// Blocks per SM that `threads`-thread blocks of `kind` get with no shared memory.
    fn natural_occupancy(&mut self, kind: SynthKind, threads: u32) -> Result<u32> {
        if let Some(&n) = self.natural.get(&(kind, threads)) {
            return Ok(n);
        }
        let n = self.gpu.occupancy(kind.index(), threads, 0)?;
        self.natural.insert((kind, threads), n);
        Ok(n)
    }

    /// The dynamic shared memory that pins `threads`-thread blocks of `kind` to `target`
    /// blocks per SM, and the blocks per SM the occupancy API then reports (lower than
    /// `target` when the block size alone allows fewer: the record is not reproducible).
    pub fn pin_occupancy(&mut self, kind: SynthKind, threads: u32, target: u32) -> Result<(u32, u32)> {
        if let Some(&r) = self.occupancy.get(&(kind, threads, target)) {
            return Ok(r);
        }
        let k = kind.index();
        let natural = self.natural_occupancy(kind, threads)?;
        let r = if natural <= target {
            (0, natural)
        } else {
            // The most shared memory with which `target` blocks still fit; then walk down in
            // allocation units until the API agrees (it should at once).
            let mut smem = self.gpu.available_smem(k, target, threads)?.min(self.gpu.props().smem_per_block_optin);
            let mut occ = self.gpu.occupancy(k, threads, smem)?;
            let mut steps = 0;
            while occ < target && smem > 0 && steps < 64 {
                smem = smem.saturating_sub(128);
                occ = self.gpu.occupancy(k, threads, smem)?;
                steps += 1;
            }
            while occ > target && steps < 128 {
                smem = (smem + 128).min(self.gpu.props().smem_per_block_optin);
                occ = self.gpu.occupancy(k, threads, smem)?;
                steps += 1;
            }
            (smem, occ)
        };
        self.occupancy.insert((kind, threads, target), r);
        Ok(r)
    }

    /// The duration line of a shape, measured (and cached).
    fn fit(&mut self, shape: Shape, target: f64) -> Result<(Fit, Vec<(u32, f64)>)> {
        if let Some(f) = self.fits.get(&shape) {
            return Ok((*f, Vec::new()));
        }
        let q1 = 256;
        let d1 = self.time_kernel(shape, q1, 3)?;
        let mut points = vec![(q1, d1)];
        // Second point: far enough that the slope is well resolved, aiming at the target.
        let mut q2 = 256 * 8;
        let mut d2 = self.time_kernel(shape, q2, 3)?;
        points.push((q2, d2));
        let mut grow = 0;
        while (d2 - d1) < (0.5 * d1).max(0.3 * (target - d1)) && q2 < MAX_Q / 8 && grow < 6 {
            q2 *= 8;
            d2 = self.time_kernel(shape, q2, 3)?;
            points.push((q2, d2));
            grow += 1;
        }
        let fit = Fit::through((q1, d1), (q2, d2)).unwrap_or(Fit { a: d1, b: (d1 / q1 as f64).max(1e-3) });
        self.fits.insert(shape, fit);
        Ok((fit, points))
    }

    /// Calibrates a kernel record (`device` gives the SM limits for records that lack
    /// `blocks_per_sm`).
    pub fn kernel(&mut self, rec: &OpRecord, device: &DeviceSpec) -> Result<(PreparedOp, OpCalibration)> {
        if !self.warmed {
            self.warm_up(300)?;
        }
        let kind = SynthKind::of(rec.class);
        let (grid, block, target_bps) = kernel_geometry(rec, &device.sm);
        let threads = block.count() as u32;
        let (smem, bps) = self.pin_occupancy(kind, threads, target_bps)?;
        let shape = Shape { kind, grid, block, smem };
        self.gpu.check_launch(&KernelLaunch { shape, q: 0 })?;
        let target_ns = rec.duration_ns;
        let cached = match self.kernels.get(&(shape, target_ns)) {
            Some(c) => *c,
            None => {
                let c = self.solve(shape, target_ns)?;
                self.kernels.insert((shape, target_ns), c);
                c
            }
        };
        let cal = OpCalibration {
            kind: OpKind::Kernel,
            name: rec.name.clone(),
            class: rec.class,
            target_ns,
            measured_ns: (cached.measured_ns * 10.0).round() / 10.0,
            rel_err: (rel_err(cached.measured_ns, target_ns as f64) * 1e5).round() / 1e5,
            shape: Some(shape),
            q: Some(cached.q),
            blocks_per_sm_record: Some(target_bps),
            blocks_per_sm_measured: Some(bps),
            below_floor: cached.below_floor,
            bytes: None,
        };
        Ok((PreparedOp::Kernel(KernelLaunch { shape, q: cached.q }), cal))
    }

    /// Finds the work of `shape` that lasts `target_ns`.
    fn solve(&mut self, shape: Shape, target_ns: u64) -> Result<CachedKernel> {
        let target = target_ns as f64;
        let (fit, points) = self.fit(shape, target)?;
        let (q, d) = search(&fit, points, target, |q| self.time_kernel(shape, q, REPS))?;
        Ok(CachedKernel {
            shape,
            target_ns,
            q,
            measured_ns: d,
            below_floor: q == 0 && d > target * (1.0 + REFINE_TOLERANCE),
        })
    }

    /// Prepares a copy or memset record and measures it.
    pub fn copy(&mut self, rec: &OpRecord, device: &DeviceSpec) -> Result<(PreparedOp, OpCalibration)> {
        let kind = copy_kind(rec.kind).expect("a copy or memset");
        let bytes = copy_bytes(rec, device).min(1 << 31);
        if bytes > self.work_copy_bytes {
            self.stream.synchronize()?;
            self.work = WorkBuffers::new(self.gpu, bytes)?;
            self.work_copy_bytes = bytes;
        }
        let op = PreparedOp::Copy { kind, bytes };
        let measured = match self.copies.get(&(kind, bytes)) {
            Some(&d) => d,
            None => {
                let d = self.time_op(&op, 3)?;
                self.copies.insert((kind, bytes), d);
                d
            }
        };
        let cal = OpCalibration {
            kind: rec.kind,
            name: rec.name.clone(),
            class: rec.class,
            target_ns: rec.duration_ns,
            measured_ns: (measured * 10.0).round() / 10.0,
            rel_err: (rel_err(measured, rec.duration_ns as f64) * 1e5).round() / 1e5,
            shape: None,
            q: None,
            blocks_per_sm_record: None,
            blocks_per_sm_measured: None,
            below_floor: false,
            bytes: Some(bytes),
        };
        Ok((op, cal))
    }

    /// Prepares any op record: kernels and copies are calibrated, host-only ops become markers.
    pub fn op(&mut self, rec: &OpRecord, device: &DeviceSpec) -> Result<(PreparedOp, OpCalibration)> {
        if rec.kind.is_kernel() {
            self.kernel(rec, device)
        } else if copy_kind(rec.kind).is_some() {
            self.copy(rec, device)
        } else {
            Ok((
                PreparedOp::Marker,
                OpCalibration {
                    kind: rec.kind,
                    name: rec.name.clone(),
                    class: rec.class,
                    target_ns: rec.duration_ns,
                    measured_ns: 0.0,
                    rel_err: 0.0,
                    shape: None,
                    q: None,
                    blocks_per_sm_record: None,
                    blocks_per_sm_measured: None,
                    below_floor: false,
                    bytes: None,
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_through_two_points_solves_for_a_target() {
        let f = Fit::through((256, 3000.0), (2560, 10_000.0)).unwrap();
        assert!((f.b - 7000.0 / 2304.0).abs() < 1e-9);
        let q = f.solve(6500.0, MAX_Q);
        assert!((f.a + f.b * q as f64 - 6500.0).abs() < f.b);
        assert_eq!(f.solve(100.0, MAX_Q), 0);
        assert_eq!(f.solve(1e18, 1000), 1000);
    }

    #[test]
    fn flat_or_decreasing_points_give_no_fit() {
        assert!(Fit::through((256, 3000.0), (2560, 3000.0)).is_none());
        assert!(Fit::through((256, 3000.0), (2560, 2000.0)).is_none());
        assert!(Fit::through((256, 3000.0), (256, 4000.0)).is_none());
    }

    #[test]
    fn secant_refinement_converges_on_a_curved_response() {
        // duration = 2000 + 3 q + 1e-4 q^2: the line from two early points misses; the secant
        // through the nearest points closes in.
        let dur = |q: u32| 2000.0 + 3.0 * q as f64 + 1e-4 * (q as f64).powi(2);
        let mut points = vec![(256, dur(256)), (2048, dur(2048))];
        let fit = Fit::through(points[0], points[1]).unwrap();
        let target = 200_000.0;
        let mut q = fit.solve(target, MAX_Q);
        for _ in 0..4 {
            points.push((q, dur(q)));
            q = next_q(&points, target, &fit, MAX_Q);
        }
        assert!(rel_err(dur(q), target).abs() < 0.005, "{}", rel_err(dur(q), target));
    }

    #[test]
    fn search_finds_targets_across_a_step_in_the_response() {
        // A response with a 20% jump at q = 5000 (e.g. a wave boundary): targets on either side
        // are still found within tolerance, and one inside the jump ends at the nearer side.
        let dur = |q: u32| 2000.0 + q as f64 + if q >= 5000 { 1400.0 } else { 0.0 };
        let fit = Fit::through((256, dur(256)), (2048, dur(2048))).unwrap();
        for target in [4000.0, 6900.0, 9000.0, 20_000.0] {
            let mut n = 0;
            let (q, d) = search(&fit, vec![], target, |q| {
                n += 1;
                Ok(dur(q))
            })
            .unwrap();
            assert!(rel_err(d, target).abs() <= REFINE_TOLERANCE, "{target}: q {q} d {d}");
            assert!(n <= MAX_REFINES + 1);
        }
        // 7700 lies in the jump (6999 .. 8400): the search ends near an edge.
        let fit2 = Fit { a: 2000.0, b: 0.5 }; // a poor line: the search must still get there
        let (q, d) = search(&fit2, vec![], 7700.0, |q| Ok(dur(q))).unwrap();
        assert!((d - 7700.0).abs() <= 800.0, "q {q} d {d}");
    }

    #[test]
    fn search_stops_at_the_floor() {
        let dur = |q: u32| 5000.0 + q as f64;
        let fit = Fit { a: 5000.0, b: 1.0 };
        let (q, d) = search(&fit, vec![], 3000.0, |q| Ok(dur(q))).unwrap();
        assert_eq!((q, d), (0, 5000.0));
    }

    fn cal(kind: OpKind, target: u64, measured: f64, bps: Option<(u32, u32)>) -> OpCalibration {
        OpCalibration {
            kind,
            name: "k".into(),
            class: KernelClass::Compute,
            target_ns: target,
            measured_ns: measured,
            rel_err: rel_err(measured, target as f64),
            shape: None,
            q: None,
            blocks_per_sm_record: bps.map(|b| b.0),
            blocks_per_sm_measured: bps.map(|b| b.1),
            below_floor: false,
            bytes: None,
        }
    }

    #[test]
    fn fidelity_counts_only_kernels_over_10us() {
        let ops = vec![
            cal(OpKind::Kernel, 5_000, 9_000.0, Some((4, 4))), // short: not counted
            cal(OpKind::Kernel, 20_000, 20_500.0, Some((4, 4))),
            cal(OpKind::Kernel, 20_000, 22_000.0, Some((8, 4))),
            cal(OpKind::Kernel, 100_000, 96_000.0, None),
            cal(OpKind::CopyH2D, 10_000, 10_500.0, None),
            cal(OpKind::Sync, 0, 0.0, None),
        ];
        let s = FidelitySummary::of(&ops);
        assert_eq!(s.kernels, 4);
        assert_eq!(s.kernels_over_10us, 3);
        assert_eq!(s.within_5pct_over_10us, 2);
        assert!((s.fraction_within_5pct_over_10us - 0.6667).abs() < 1e-4);
        assert_eq!(s.occupancy_checked, 3);
        assert_eq!(s.occupancy_match, 2);
        assert_eq!(s.copies, 1);
        assert_eq!(s.copies_within_10pct, 1);
        assert!((s.max_abs_err_over_10us - 0.1).abs() < 1e-9);
    }

    #[test]
    fn an_empty_set_is_vacuously_faithful() {
        let s = FidelitySummary::of(&[]);
        assert_eq!(s.fraction_within_5pct_over_10us, 1.0);
    }
}
