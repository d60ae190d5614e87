//! Lowering to kernel records: launch shapes, FLOPs, DRAM bytes, roofline time with wave
//! quantisation, occupancy, class and host gap.
//!
//! # Cost model
//!
//! Every kernel is described by a [`Spec`]: grid, block, registers, shared memory, useful
//! FLOPs, FLOPs executed (with tile padding), compulsory DRAM bytes, the pipe it computes on
//! (FP32 SIMT or TF32 tensor cores) with an efficiency, and a memory access pattern
//! ([`Mem`]). Its standalone duration is
//!
//! ```text
//! t = max(min_kernel_ns, overhead + max(t_compute, t_memory))
//! t_compute = flops_executed / (peak_pipe * eff * u * occ)
//! u         = blocks / (sm_count * ceil(blocks / sm_count))      (wave quantisation)
//! occ       = min(1, resident warps per SM / warps that saturate the pipe (8 FP32, 4 TF32))
//! t_memory  = bytes / (dram_bw * eff_mem * par)
//! par       = min(1, resident_threads * bytes_in_flight_per_thread / (dram_bw * 600 ns))
//! ```
//!
//! `u` is the wave quantisation at SM granularity: a grid of 10 blocks uses 10 SMs at their
//! per-SM peak, not an impossible fraction of the whole GPU, and a grid of `sm_count + 1`
//! blocks takes two rounds on one SM. (With `blocks_per_sm` > 1 co-resident blocks share their
//! SM's pipes, so quantising at SM rather than at block-slot granularity is the right measure
//! of the work per SM; the number of waves `ceil(blocks / (blocks_per_sm * sm_count))` only
//! changes how that work is scheduled.) `par` is Little's law: a small grid cannot keep enough
//! bytes in flight to saturate DRAM, so tiny kernels are latency-bound, not bandwidth-bound.
//!
//! The achieved throughputs are what the kernel would show standalone in Nsight Compute:
//! `dram% = bytes / (t * dram_bw)`, and `sm% = 0.9 * (achieved FLOP/s over the pipe's best
//! achievable) + issue * dram%` (load/store and address arithmetic keep the SM busy in
//! memory-bound kernels too). The class is Orion's rule on these numbers
//! ([`KernelClass::classify`]).

use super::Framework;
use crate::device::DeviceSpec;
use crate::occupancy::{occupancy, sm_needed};
use crate::op::{Dim3, KernelClass, OpKind, OpRecord};

/// DRAM latency used for the bytes-in-flight (Little's law) parallelism limit, seconds.
const DRAM_LATENCY_S: f64 = 600e-9;
/// Host cost of launching a further kernel within the same framework op (a helper kernel of a
/// cuDNN call, the next chunk of a `multi_tensor_apply`), as a fraction of `simple_op_ns`.
const LAUNCH_FRACTION: f64 = 0.3;
/// Fixed cost of a host-device copy (driver, DMA setup), ns.
pub(crate) const COPY_OVERHEAD_NS: f64 = 2500.0;
/// Host cost of a synchronisation call, ns.
const SYNC_HOST_NS: f64 = 1500.0;
/// Best fraction of peak an FP32 SIMT GEMM (cuBLAS sgemm, cuDNN scudnn) reaches.
const SIMT_MAX_EFF: f64 = 0.80;
/// Best fraction of the dense TF32 peak a tensor-core implicit GEMM (cuDNN) reaches.
const TF32_MAX_EFF: f64 = 0.55;
/// Fixed time of a simple kernel (ramp-up, tail), ns.
const MEM_KERNEL_OVERHEAD_NS: f64 = 1500.0;
/// Fixed time of a GEMM or convolution kernel (ramp-up, pipeline prologue, epilogue), ns.
const GEMM_KERNEL_OVERHEAD_NS: f64 = 2500.0;
/// K-loop prologue/epilogue cost in units of K: efficiency `k / (k + K0)`.
const GEMM_K0: f64 = 32.0;

/// GPU generation, for kernel names and tile configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arch {
    /// sm_70 (V100).
    Volta,
    /// sm_80 (A100).
    Ampere,
    /// sm_90 (H100).
    Hopper,
}

impl Arch {
    /// The generation of a device from its compute capability.
    pub fn of(dev: &DeviceSpec) -> Arch {
        let major: u32 = dev.compute_capability.split('.').next().and_then(|s| s.trim().parse().ok()).unwrap_or(8);
        match major {
            0..=7 => Arch::Volta,
            8 => Arch::Ampere,
            _ => Arch::Hopper,
        }
    }

    /// Prefix of cuBLAS/cuDNN SIMT kernel names.
    fn prefix(self) -> &'static str {
        match self {
            Arch::Volta => "volta",
            Arch::Ampere => "ampere",
            Arch::Hopper => "sm90",
        }
    }
}

/// The arithmetic pipe a kernel computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pipe {
    /// FP32 SIMT (`peak_fp32_tflops`).
    Fp32,
    /// TF32 tensor cores (`peak_tf32_tflops`).
    Tf32,
}

impl Pipe {
    /// Resident warps per SM needed to reach the pipe's throughput.
    fn saturating_warps(self) -> f64 {
        match self {
            Pipe::Fp32 => 8.0,
            Pipe::Tf32 => 4.0,
        }
    }

    fn max_eff(self) -> f64 {
        match self {
            Pipe::Fp32 => SIMT_MAX_EFF,
            Pipe::Tf32 => TF32_MAX_EFF,
        }
    }
}

/// Memory access pattern of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mem {
    /// Vectorised streaming (PyTorch's vectorised elementwise kernels, `multi_tensor_apply`).
    Stream,
    /// Strided or gathered accesses (copies of permuted views, index ops, layout transforms).
    Strided,
    /// Reductions (several passes, partial sums).
    Reduce,
    /// Tiled GEMM or convolution operand loads (deep asynchronous copy pipelines).
    Tile,
}

impl Mem {
    /// (achievable fraction of DRAM bandwidth, bytes in flight per thread, SM issue
    /// utilisation per unit of DRAM utilisation).
    fn params(self) -> (f64, f64, f64) {
        match self {
            Mem::Stream => (0.85, 64.0, 0.30),
            Mem::Strided => (0.60, 32.0, 0.45),
            Mem::Reduce => (0.70, 32.0, 0.40),
            Mem::Tile => (0.80, 256.0, 0.10),
        }
    }
}

/// A kernel before costing.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub name: String,
    pub grid: Dim3,
    pub block: Dim3,
    pub regs: u32,
    pub smem: u32,
    /// Useful FLOPs (recorded).
    pub flops: f64,
    /// FLOPs executed including tile padding (timed).
    pub exec_flops: f64,
    /// Compulsory DRAM bytes read and written.
    pub bytes: f64,
    pub pipe: Pipe,
    /// Compute efficiency relative to the pipe's peak when the whole GPU is busy.
    pub eff: f64,
    pub mem: Mem,
    /// Fixed cost: ramp-up, tail, pipeline prologue, ns.
    pub overhead_ns: f64,
}

impl Spec {
    /// A memory-type kernel with a 1-D grid.
    pub fn mem(name: String, blocks: u64, threads: u32, bytes: f64, flops: f64, mem: Mem) -> Spec {
        Spec {
            name,
            grid: Dim3::linear(clamp_u32(blocks)),
            block: Dim3::linear(threads),
            regs: 24,
            smem: 0,
            flops,
            exec_flops: flops,
            bytes,
            pipe: Pipe::Fp32,
            eff: 0.5,
            mem,
            overhead_ns: MEM_KERNEL_OVERHEAD_NS,
        }
    }

    pub fn with_regs(mut self, regs: u32) -> Spec {
        self.regs = regs;
        self
    }

    pub fn with_smem(mut self, smem: u32) -> Spec {
        self.smem = smem;
        self
    }

    pub fn with_grid(mut self, grid: Dim3) -> Spec {
        self.grid = grid;
        self
    }

    pub fn with_block(mut self, block: Dim3) -> Spec {
        self.block = block;
        self
    }

    /// A 2-D grid.
    pub fn with_grid_xy(self, x: u64, y: u64) -> Spec {
        self.with_grid(Dim3::new(clamp_u32(x), clamp_u32(y), 1))
    }

    /// A 2-D block.
    pub fn with_block_xy(self, x: u32, y: u32) -> Spec {
        self.with_block(Dim3::new(x, y, 1))
    }
}

/// A value as a grid extent (at least 1, at most 2^31 - 1).
pub(crate) fn clamp_u32(v: u64) -> u32 {
    v.clamp(1, i32::MAX as u64) as u32
}

fn cdiv(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// Standalone timing of a kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub ns: f64,
    pub blocks_per_sm: u32,
    pub sm_pct: f64,
    pub dram_pct: f64,
}

/// Host cost category of a framework op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Host {
    /// Elementwise, pooling, copies, fills (`host.simple_op_ns`).
    Simple,
    /// A cuDNN convolution (`host.conv_op_ns`).
    Conv,
    /// A cuBLAS matmul (`host.gemm_op_ns`).
    Gemm,
    /// A normalisation (`host.norm_op_ns`).
    Norm,
    /// A further kernel of the same op (`LAUNCH_FRACTION * simple_op_ns`).
    Launch,
    /// An explicit cost, ns (not scaled for the backward pass).
    Ns(f64),
}

/// What a GEMM computes, which picks its kernel family and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GemmOp {
    /// A cuBLAS GEMM with the given transpose code (`tn`, `nn`, `nt`).
    Blas(&'static str),
    /// cuDNN forward convolution (implicit GEMM); the variant names the SIMT kernel flavour.
    Fprop(&'static str),
    /// cuDNN data-gradient convolution; true for 1x1 stride-1 (a plain GEMM).
    Dgrad(bool),
    /// cuDNN weight-gradient convolution.
    Wgrad(&'static str),
}

/// A GEMM problem `[m, k] x [k, n]`, `batch` times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gemm {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub batch: u64,
    pub op: GemmOp,
    pub pipe: Pipe,
    /// Compulsory DRAM bytes (operands and result).
    pub bytes: f64,
}

/// A CTA tile configuration.
#[derive(Debug, Clone, Copy)]
struct Tile {
    tm: u64,
    tn: u64,
    threads: u32,
    regs: u32,
    smem: u32,
    /// Relative efficiency (data reuse) of the tile.
    eff: f64,
}

const fn tile(tm: u64, tn: u64, threads: u32, regs: u32, smem: u32, eff: f64) -> Tile {
    Tile { tm, tn, threads, regs, smem, eff }
}

/// cuBLAS/cuDNN FP32 SIMT tiles (`*_sgemm_128x64_*`, `*_scudnn_128x64_*`).
const SIMT_TILES: [Tile; 5] = [
    tile(128, 128, 256, 128, 16896, 1.0),
    tile(128, 64, 128, 120, 12544, 0.93),
    tile(64, 64, 64, 126, 8448, 0.82),
    tile(64, 32, 64, 80, 6144, 0.68),
    tile(32, 32, 64, 64, 4352, 0.5),
];
/// sm_80 TF32 tiles (tile K 16, 4 stages: smem = 4 * (tm + tn) * 16 * 4 bytes).
const SM80_TILES: [Tile; 6] = [
    tile(256, 128, 256, 230, 98304, 1.0),
    tile(128, 128, 128, 230, 65536, 0.95),
    tile(128, 64, 128, 168, 49152, 0.86),
    tile(64, 64, 128, 128, 32768, 0.72),
    tile(64, 32, 64, 128, 24576, 0.58),
    tile(32, 32, 64, 96, 16384, 0.45),
];
/// sm_90 TF32 tiles (tile K 32, 3 stages: smem = 3 * (tm + tn) * 32 * 4 bytes).
const SM90_TILES: [Tile; 6] = [
    tile(256, 128, 256, 168, 147456, 1.0),
    tile(128, 128, 128, 168, 98304, 0.95),
    tile(128, 64, 128, 154, 73728, 0.86),
    tile(64, 64, 128, 128, 49152, 0.72),
    tile(64, 32, 128, 90, 36864, 0.58),
    tile(32, 32, 64, 96, 24576, 0.45),
];
/// Split-K factors the heuristic tries (weight gradients reduce over batch x pixels and
/// split much further than forward GEMMs).
const SPLITS: [u64; 18] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];

/// Builds a trace's op records: costs kernels, assigns host gaps.
pub(crate) struct Emitter<'d> {
    pub dev: &'d DeviceSpec,
    pub arch: Arch,
    /// Convolutions run on TF32 tensor cores (NHWC kernels with layout transforms).
    pub tensor_convs: bool,
    pub framework: Framework,
    pub ops: Vec<OpRecord>,
    /// Multiplier of framework host costs (1 forward, `host.backward_factor` backward).
    pub host_scale: f64,
    next_host: Option<Host>,
    carry_ns: f64,
}

impl<'d> Emitter<'d> {
    pub fn new(dev: &'d DeviceSpec, framework: Framework) -> Self {
        Emitter {
            dev,
            arch: Arch::of(dev),
            tensor_convs: dev.peak_tf32_tflops > dev.peak_fp32_tflops * 1.5,
            framework,
            ops: Vec::with_capacity(1024),
            host_scale: 1.0,
            next_host: None,
            carry_ns: 0.0,
        }
    }

    /// The pipe convolutions compute on.
    pub fn conv_pipe(&self) -> Pipe {
        if self.tensor_convs { Pipe::Tf32 } else { Pipe::Fp32 }
    }

    /// Starts a framework op: its first kernel gets the op's host cost, later ones a launch.
    pub fn begin(&mut self, host: Host) {
        self.next_host = Some(host);
    }

    /// Adds host time before the next op (Python work that launches nothing).
    pub fn add_host(&mut self, ns: f64) {
        self.carry_ns += ns;
    }

    fn host_ns(&self, h: Host) -> f64 {
        let hp = &self.dev.host;
        let s = self.host_scale;
        match h {
            Host::Simple => hp.simple_op_ns as f64 * s,
            Host::Conv => hp.conv_op_ns as f64 * s,
            Host::Gemm => hp.gemm_op_ns as f64 * s,
            Host::Norm => hp.norm_op_ns as f64 * s,
            Host::Launch => hp.simple_op_ns as f64 * LAUNCH_FRACTION,
            Host::Ns(ns) => ns,
        }
    }

    fn take_gap(&mut self) -> u64 {
        let h = self.next_host.take().unwrap_or(Host::Launch);
        let g = self.host_ns(h) + self.carry_ns;
        self.carry_ns = 0.0;
        g.max(0.0).round() as u64
    }

    /// Clamps a spec's resources to what the device allows, so that at least one block fits.
    fn fit(&self, mut s: Spec) -> Spec {
        let sm = &self.dev.sm;
        s.regs = s.regs.min(sm.max_registers_per_thread);
        let max_threads = sm.max_threads.clamp(32, 1024);
        if s.block.count() > max_threads as u64 {
            s.block = Dim3::linear(max_threads);
        }
        let max_smem =
            sm.max_shared_mem_per_block.min(sm.shared_mem_bytes.saturating_sub(sm.reserved_shared_mem_per_block));
        s.smem = s.smem.min(max_smem);
        while occupancy(sm, s.block.count() as u32, s.regs, s.smem).blocks_per_sm == 0 {
            if s.smem > 0 {
                s.smem /= 2;
            } else if s.regs > 32 {
                s.regs /= 2;
            } else {
                break;
            }
        }
        s
    }

    /// The standalone timing of a (fitted) kernel.
    pub fn time(&self, s: &Spec) -> Timing {
        let dev = self.dev;
        let threads = s.block.count().max(1) as f64;
        let bps = occupancy(&dev.sm, threads as u32, s.regs, s.smem).blocks_per_sm.max(1);
        let blocks = s.grid.count().max(1) as f64;
        let sms = dev.sm_count.max(1) as f64;
        let u = blocks / (sms * (blocks / sms).ceil());
        let peak = match s.pipe {
            Pipe::Fp32 => dev.peak_fp32_tflops,
            Pipe::Tf32 => dev.peak_tf32_tflops,
        } * 1e12;
        // Too few resident warps cannot keep an SM's pipes busy.
        let warps = (threads / 32.0).ceil() * (bps as f64).min((blocks / sms).ceil());
        let occ = (warps / s.pipe.saturating_warps()).min(1.0);
        let t_c = if s.exec_flops > 0.0 { s.exec_flops / (peak * s.eff.clamp(1e-3, 1.0) * u * occ) * 1e9 } else { 0.0 };
        let (eff_m, inflight, issue) = s.mem.params();
        let bw = dev.dram_bandwidth_gbs * 1e9;
        let resident = blocks.min(bps as f64 * sms) * threads;
        let par = (resident * inflight / (bw * DRAM_LATENCY_S)).clamp(1e-3, 1.0);
        let t_m = s.bytes / (bw * eff_m * par) * 1e9;
        let ns = (s.overhead_ns + t_c.max(t_m)).max(dev.min_kernel_ns as f64);
        let secs = ns * 1e-9;
        let c_frac = s.flops / secs / (peak * s.pipe.max_eff());
        let d_frac = (s.bytes / secs / bw).min(1.0);
        Timing {
            ns,
            blocks_per_sm: bps,
            sm_pct: (100.0 * (0.9 * c_frac + issue * d_frac)).clamp(0.0, 100.0),
            dram_pct: 100.0 * d_frac,
        }
    }

    /// Costs a kernel and appends its record.
    pub fn kernel(&mut self, s: Spec) {
        let s = self.fit(s);
        let t = self.time(&s);
        let gap = self.take_gap();
        let blocks = s.grid.count();
        let ai = (s.bytes > 0.0).then(|| s.flops / s.bytes);
        let sm_pct = round2(t.sm_pct);
        let dram_pct = round2(t.dram_pct);
        let class = KernelClass::classify(ai, self.dev.roofline_knee(), Some(sm_pct), Some(dram_pct));
        let mut r = OpRecord::kernel(s.name, t.ns.round() as u64, sm_needed(blocks, t.blocks_per_sm), class);
        r.grid = Some(s.grid);
        r.block = Some(s.block);
        r.registers_per_thread = Some(s.regs);
        r.shared_mem_per_block = Some(s.smem);
        r.blocks_per_sm = Some(t.blocks_per_sm);
        r.sm_throughput_pct = Some(sm_pct);
        r.dram_throughput_pct = Some(dram_pct);
        r.flops = Some(s.flops.round());
        r.bytes = Some(s.bytes.round());
        r.host_gap_ns = Some(gap);
        self.ops.push(r);
    }

    /// A host-device copy of `bytes` (pinned memory).
    pub fn copy(&mut self, kind: OpKind, label: &str, bytes: u64) {
        let (bw, dir) = match kind {
            OpKind::CopyH2D => (self.dev.h2d_bandwidth_gbs, "HtoD (Pinned -> Device)"),
            OpKind::CopyD2H => (self.dev.d2h_bandwidth_gbs, "DtoH (Device -> Pinned)"),
            _ => (self.dev.d2d_bandwidth_gbs / 2.0, "DtoD (Device -> Device)"),
        };
        let gap = self.take_gap();
        let ns = COPY_OVERHEAD_NS + bytes as f64 / (bw * 1e9) * 1e9;
        let mut r =
            OpRecord::new(kind, format!("[CUDA memcpy {dir}] {label}"), ns.round() as u64, 0, KernelClass::Unknown);
        r.bytes = Some(bytes as f64);
        r.copy_bytes = Some(bytes);
        r.host_gap_ns = Some(gap);
        self.ops.push(r);
    }

    /// The host waits for the GPU (`cudaStreamSynchronize`).
    pub fn sync(&mut self) {
        self.begin(Host::Ns(SYNC_HOST_NS));
        let gap = self.take_gap();
        let mut r = OpRecord::new(OpKind::Sync, "cudaStreamSynchronize", 0, 0, KernelClass::Unknown);
        r.host_gap_ns = Some(gap);
        self.ops.push(r);
    }

    // ---------------------------------------------------------------- primitive kernels

    /// A PyTorch vectorised elementwise kernel (`vectorized_elementwise_kernel<4, F, Array<char*,
    /// arity>>`: 128 threads, 512 elements per block) over `elems` outputs that moves `tensors`
    /// full-size fp32 tensors plus `extra` bytes.
    pub fn ew(&mut self, functor: &str, arity: u32, elems: u64, tensors: f64, extra: f64) {
        let name =
            format!("void at::native::vectorized_elementwise_kernel<4, {functor}, at::detail::Array<char*, {arity}> >");
        let bytes = elems as f64 * 4.0 * tensors + extra;
        self.kernel(Spec::mem(name, cdiv(elems, 512), 128, bytes, elems as f64, Mem::Stream).with_regs(20));
    }

    /// A PyTorch non-vectorised elementwise kernel (`elementwise_kernel<128, 4, F>`: broadcasts,
    /// strided inputs, casts).
    pub fn ew_strided(&mut self, functor: &str, elems: u64, tensors: f64, extra: f64) {
        let name = format!("void at::native::elementwise_kernel<128, 4, {functor}>");
        let bytes = elems as f64 * 4.0 * tensors + extra;
        self.kernel(Spec::mem(name, cdiv(elems, 512), 128, bytes, elems as f64, Mem::Strided).with_regs(28));
    }

    /// `zeros` / `ones` / `fill_`.
    pub fn fill(&mut self, elems: u64) {
        self.ew(names::FILL, 1, elems, 1.0, 0.0);
    }

    /// A contiguous copy of a strided view.
    pub fn copy_kernel(&mut self, elems: u64) {
        self.ew_strided(names::COPY, elems, 2.0, 0.0);
    }

    /// `torch.cat` into `elems` elements from `inputs` tensors.
    pub fn cat(&mut self, elems: u64, inputs: u32) {
        let blocks = cdiv(elems, 512 * 4).min(self.dev.sm_count as u64 * 2).max(1);
        let s = Spec::mem(names::CAT.to_string(), blocks, 128, elems as f64 * 8.0, 0.0, Mem::Strided)
            .with_grid(Dim3::new(clamp_u32(blocks), inputs.max(1), 1))
            .with_regs(32);
        self.kernel(s);
    }

    /// A `reduce_kernel<512, 1, ...>` reducing `in_elems` to `out_elems`.
    pub fn reduce(&mut self, ops: &str, in_elems: u64, out_elems: u64) {
        let out = out_elems.max(1);
        let blocks = cdiv(out, 16).max(cdiv(in_elems, 8192).min(self.dev.sm_count as u64 * 4)).max(1);
        let threads = if in_elems / out >= 32 { 512 } else { 128 };
        let name = format!(
            "void at::native::reduce_kernel<{threads}, 1, at::native::ReduceOp<float, {ops}, unsigned int, float, 4> >"
        );
        let bytes = (in_elems + out) as f64 * 4.0;
        let s = Spec::mem(name, blocks, threads, bytes, in_elems as f64, Mem::Reduce)
            .with_block(Dim3::new(32, threads / 32, 1))
            .with_regs(32)
            .with_smem(threads * 4 * 2);
        self.kernel(s);
    }

    /// A sum over rows (bias gradients, broadcast backward).
    pub fn sum_rows(&mut self, in_elems: u64, out_elems: u64) {
        self.reduce(names::SUM_OPS, in_elems, out_elems);
    }

    /// A GEMM: picks the tile and split-K with the shortest estimated time (cuBLAS/cuDNN
    /// heuristics stand-in) and emits the kernel (plus cuBLAS's split-K reduction).
    pub fn gemm(&mut self, g: Gemm) {
        let flops = 2.0 * (g.m * g.n * g.k * g.batch) as f64;
        if let GemmOp::Blas(_) = g.op
            && g.batch == 1
            && g.m.min(g.n) <= 8
        {
            // Matrix-vector-like: cuBLAS's gemv kernels, bound by reading the big operand.
            let big = g.m.max(g.n);
            let s =
                Spec { eff: 0.5, ..Spec::mem(names::GEMV.to_string(), cdiv(big, 4), 128, g.bytes, flops, Mem::Stream) }
                    .with_regs(40);
            self.kernel(s);
            return;
        }
        let tiles: &[Tile] = match (g.pipe, self.arch) {
            (Pipe::Fp32, _) | (Pipe::Tf32, Arch::Volta) => &SIMT_TILES,
            (Pipe::Tf32, Arch::Ampere) => &SM80_TILES,
            (Pipe::Tf32, Arch::Hopper) => &SM90_TILES,
        };
        // Smallest K per split, and the most blocks a split may create (per SM).
        let (min_kk, max_blocks_per_sm) = match g.op {
            GemmOp::Wgrad(_) => (128, 32),
            _ => (64, 8),
        };
        let mut best: Option<(f64, Tile, u64, Spec, Option<Spec>)> = None;
        for t in tiles {
            let tiles_mn = cdiv(g.m, t.tm) * cdiv(g.n, t.tn) * g.batch;
            for &s in &SPLITS {
                if s > 1 && (g.k / s < min_kk || tiles_mn * s > max_blocks_per_sm * self.dev.sm_count as u64) {
                    break;
                }
                let (main, reduce) = self.gemm_specs(&g, t, s, flops);
                let main = self.fit(main);
                let mut ns = self.time(&main).ns;
                if let Some(r) = &reduce {
                    let r = self.fit(r.clone());
                    ns += self.time(&r).ns;
                }
                if best.as_ref().is_none_or(|b| ns < b.0 * 0.999) {
                    best = Some((ns, *t, s, main, reduce));
                }
            }
        }
        let (_, t, s, mut main, reduce) = best.expect("at least one tile");
        main.name = self.gemm_name(&g, &t, s);
        self.kernel(main);
        if let Some(r) = reduce {
            self.kernel(r);
        }
    }

    fn gemm_specs(&self, g: &Gemm, t: &Tile, s: u64, flops: f64) -> (Spec, Option<Spec>) {
        let (gm, gn) = (cdiv(g.m, t.tm), cdiv(g.n, t.tn));
        let kk = g.k.div_ceil(s) as f64;
        let exec = 2.0 * (gm * t.tm * gn * t.tn * g.k * g.batch) as f64;
        let partial_bytes = if s > 1 { (g.m * g.n * g.batch * s) as f64 * 4.0 } else { 0.0 };
        let main = Spec {
            name: String::new(),
            grid: Dim3::new(clamp_u32(gn), clamp_u32(gm), clamp_u32(g.batch * s)),
            block: Dim3::linear(t.threads),
            regs: t.regs,
            smem: t.smem,
            flops,
            exec_flops: exec,
            bytes: g.bytes + partial_bytes,
            pipe: g.pipe,
            eff: g.pipe.max_eff() * t.eff * kk / (kk + GEMM_K0),
            mem: Mem::Tile,
            overhead_ns: GEMM_KERNEL_OVERHEAD_NS,
        };
        let reduce = (s > 1 && matches!(g.op, GemmOp::Blas(_))).then(|| {
            let elems = g.m * g.n * g.batch;
            Spec::mem(
                names::SPLITK_REDUCE.to_string(),
                cdiv(elems, 512),
                128,
                partial_bytes + elems as f64 * 4.0,
                (elems * s) as f64,
                Mem::Stream,
            )
            .with_regs(32)
        });
        (main, reduce)
    }

    fn gemm_name(&self, g: &Gemm, t: &Tile, s: u64) -> String {
        let (tm, tn) = (t.tm, t.tn);
        let p = self.arch.prefix();
        let tensor = g.pipe == Pipe::Tf32 && self.arch != Arch::Volta;
        match g.op {
            GemmOp::Blas(op) => match self.arch {
                Arch::Hopper => format!(
                    "sm90_xmma_gemm_f32f32_f32f32_f32_{op}_n_tilesize{tm}x{tn}x8_stage3_warpsize2x2x1_ffma_aligna4_alignc4_execute_kernel__5x_cublas"
                ),
                _ => format!("{p}_sgemm_{tm}x{tn}_{op}"),
            },
            GemmOp::Fprop(variant) | GemmOp::Wgrad(variant) if !tensor => {
                if let GemmOp::Wgrad(_) = g.op {
                    format!("{p}_scudnn_{tm}x{tn}_stridedB_splitK_{variant}_nn_v1")
                } else {
                    format!("{p}_scudnn_{tm}x{tn}_relu_{variant}_nn_v1")
                }
            }
            GemmOp::Dgrad(plain) if !tensor => {
                if plain {
                    format!("{p}_sgemm_{tm}x{tn}_nt")
                } else {
                    "void cudnn::detail::dgrad_engine<float, 128, 6, 8, 3, 3, 5, false>".to_string()
                }
            }
            _ => {
                let pass = match g.op {
                    GemmOp::Fprop(_) => "fprop",
                    GemmOp::Dgrad(_) => "dgrad",
                    _ => "wgrad",
                };
                if self.arch == Arch::Hopper {
                    let seg = if s > 1 { "on" } else { "off" };
                    format!(
                        "sm90_xmma_{pass}_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nchw_tilesize{tm}x{tn}x32_warpgroupsize1x1x1_g1_execute_segment_k_{seg}_kernel__5x_cudnn"
                    )
                } else {
                    format!(
                        "sm80_xmma_{pass}_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nchw_tilesize{tm}x{tn}x16_stage4_warpsize2x2x1_g1_tensor16x8x8_kernel"
                    )
                }
            }
        }
    }

    /// cuDNN's NCHW <-> NHWC layout transform of `elems` elements (`n` images of `c` channels).
    pub fn layout_transform(&mut self, to_nhwc: bool, n: u64, c: u64, elems: u64) {
        let hw = elems / (n * c).max(1);
        let name = if to_nhwc { names::NCHW_TO_NHWC } else { names::NHWC_TO_NCHW };
        let s = Spec::mem(name.to_string(), 1, 256, elems as f64 * 8.0, 0.0, Mem::Strided)
            .with_grid(Dim3::new(clamp_u32(cdiv(hw, 32)), clamp_u32(cdiv(c, 32)), clamp_u32(n)))
            .with_block(Dim3::new(32, 8, 1))
            .with_regs(24)
            .with_smem(32 * 33 * 4);
        self.kernel(s);
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Kernel names (as Nsight Systems prints them, argument lists dropped).
pub(crate) mod names {
    pub const FILL: &str = "at::native::FillFunctor<float>";
    pub const COPY: &str = "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#8}::operator()() const::{lambda(float)#1}";
    pub const CAST: &str = "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::{lambda(long)#1}, at::native::memory::LoadWithCast<1>, at::native::memory::StoreWithCast<1>";
    pub const ADD: &str = "at::native::CUDAFunctor_add<float>";
    pub const ADD_SELF_LONG: &str = "at::native::CUDAFunctorOnSelf_add<long>";
    pub const ADD_SCALAR: &str = "at::native::CUDAFunctorOnSelf_add<float>";
    pub const MUL: &str = "at::native::binary_internal::MulFunctor<float>";
    pub const MUL_SCALAR: &str =
        "at::native::AUnaryFunctor<float, float, float, at::native::binary_internal::MulFunctor<float> >";
    pub const DIV: &str = "at::native::binary_internal::DivFunctor<float>";
    pub const DIV_SCALAR: &str =
        "at::native::BUnaryFunctor<float, float, float, at::native::binary_internal::DivFunctor<float> >";
    pub const RSUB: &str = "at::native::AUnaryFunctor<float, float, float, at::native::CUDAFunctor_add<float> >";
    pub const NEG: &str =
        "at::native::neg_kernel_cuda(at::TensorIteratorBase&)::{lambda()#2}::operator()() const::{lambda(float)#1}";
    pub const RELU: &str = "at::native::(anonymous namespace)::launch_clamp_scalar(at::TensorIteratorBase&, c10::Scalar, c10::Scalar, at::native::detail::ClampLimits)::{lambda()#1}::operator()() const::{lambda(float)#1}";
    pub const CLAMP_LONG: &str = "at::native::(anonymous namespace)::launch_clamp_scalar(at::TensorIteratorBase&, c10::Scalar, c10::Scalar, at::native::detail::ClampLimits)::{lambda()#1}::operator()() const::{lambda(long)#1}";
    pub const THRESHOLD_BW: &str = "at::native::(anonymous namespace)::threshold_kernel_impl<float>(at::TensorIteratorBase&, float, float)::{lambda(float, float)#1}";
    pub const HARDTANH_BW: &str = "at::native::(anonymous namespace)::hardtanh_backward_kernel(at::TensorIterator&, c10::Scalar const&, c10::Scalar const&)::{lambda()#1}::operator()() const::{lambda(float, float)#1}";
    pub const GELU: &str = "at::native::GeluCUDAKernelImpl(at::TensorIteratorBase&, at::native::GeluType)::{lambda()#2}::operator()() const::{lambda(float)#1}";
    pub const GELU_BW: &str = "at::native::GeluBackwardCUDAKernelImpl(at::TensorIteratorBase&, at::native::GeluType)::{lambda()#2}::operator()() const::{lambda(float, float)#1}";
    pub const POW: &str = "at::native::(anonymous namespace)::pow_tensor_scalar_kernel_impl<float, float>(at::TensorIteratorBase&, float)::{lambda(float)#2}";
    pub const SQRT: &str =
        "at::native::sqrt_kernel_cuda(at::TensorIteratorBase&)::{lambda()#2}::operator()() const::{lambda(float)#1}";
    pub const ERF: &str =
        "at::native::erf_kernel_cuda(at::TensorIteratorBase&)::{lambda()#1}::operator()() const::{lambda(float)#1}";
    pub const EXP: &str =
        "at::native::exp_kernel_cuda(at::TensorIteratorBase&)::{lambda()#2}::operator()() const::{lambda(float)#1}";
    pub const SIN: &str =
        "at::native::sin_kernel_cuda(at::TensorIteratorBase&)::{lambda()#2}::operator()() const::{lambda(float)#1}";
    pub const COMPARE: &str = "at::native::(anonymous namespace)::compare_scalar_kernel<long>(at::TensorIteratorBase&, at::native::(anonymous namespace)::OpType, long)::{lambda(long)#1}";
    pub const ARANGE: &str = "void (anonymous namespace)::elementwise_kernel_with_index<int, at::native::arange_cuda_out(c10::Scalar const&, c10::Scalar const&, c10::Scalar const&, at::Tensor&)::{lambda()#1}::operator()() const::{lambda()#4}::operator()() const::{lambda(long)#1}>";
    pub const TRIU: &str = "void at::native::triu_tril_kernel<float, int, true, 4, true>";
    pub const MASKED_FILL: &str = "at::native::gpu_kernel_impl_nocast<at::native::(anonymous namespace)::masked_fill_kernel(at::TensorIterator&, c10::Scalar const&)::{lambda()#1}::operator()() const::{lambda()#10}::operator()() const::{lambda(float, bool)#1}>";
    pub const MASKED_SCALE: &str = "at::native::(anonymous namespace)::masked_scale_kernel<bool, float, float>(at::Tensor&, at::Tensor const&, at::Tensor const&, float)::{lambda(float, bool)#1}";
    pub const DROPOUT: &str =
        "void at::native::(anonymous namespace)::fused_dropout_kernel_vec<float, float, unsigned int, 1, 4, bool>";
    pub const MEAN_OPS: &str = "at::native::MeanOps<float, float, float, float>";
    pub const SUM_OPS: &str = "at::native::func_wrapper_t<float, at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>";
    pub const CAT: &str = "void at::native::(anonymous namespace)::CatArrayBatchedCopy<at::native::(anonymous namespace)::OpaqueType<4u>, unsigned int, 2, 128, 1>";
    pub const GEMV: &str = "void gemv2T_kernel_val<int, int, float, float, float, float, 128, 16, 4, 4, false, false>";
    pub const SPLITK_REDUCE: &str =
        "void cublasLt::splitKreduce_kernel<32, 16, int, float, float, float, float, true, false, false>";
    pub const NCHW_TO_NHWC: &str =
        "void cudnn::ops::nchwToNhwcKernel<float, float, float, false, true, (cudnnKernelDataType_t)2>";
    pub const NHWC_TO_NCHW: &str =
        "void cudnn::ops::nhwcToNchwKernel<float, float, float, true, false, (cudnnKernelDataType_t)0>";
    pub const BN_FW_INF: &str = "void cudnn::bn_fw_inf_1C11_kernel_NCHW<float, float, true, 1>";
    pub const BN_FW_TR: &str = "void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1, true>";
    pub const BN_BW: &str = "void cudnn::bn_bw_1C11_kernel_new<float, float, float2, 512, true, 1, true>";
    pub const MAXPOOL_FW: &str = "void at::native::(anonymous namespace)::max_pool_forward_nchw<float, float>";
    pub const MAXPOOL_BW: &str = "void at::native::(anonymous namespace)::max_pool_backward_nchw<float, float>";
    pub const LAYER_NORM: &str = "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>";
    pub const LAYER_NORM_BW_INPUT: &str =
        "void at::native::(anonymous namespace)::layer_norm_grad_input_kernel_vectorized<float, float>";
    pub const LAYER_NORM_BW_GAMMA: &str =
        "void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernel_32x32<float, float>";
    pub const INDEX_SELECT: &str =
        "void at::native::(anonymous namespace)::indexSelectLargeIndex<float, long, unsigned int, 2, 2, -2, true>";
    pub const INDEX_ADD: &str = "void at::native::(anonymous namespace)::indexFuncLargeIndex<float, long, unsigned int, 2, 2, -2, true, at::native::(anonymous namespace)::ReduceAdd>";
    pub const EMB_BW_FEATURE: &str =
        "void at::native::(anonymous namespace)::embedding_backward_feature_kernel<float, float, long>";
    pub const GATHER: &str = "void at::native::_scatter_gather_elementwise_kernel<128, 4, at::native::_cuda_scatter_gather_internal_kernel<false, float>::operator()<at::native::TensorAssign>(at::TensorIterator&, long, long, long, at::native::TensorAssign const&)::{lambda(int)#1}>";
    pub const SCATTER_ADD: &str = "void at::native::_scatter_gather_elementwise_kernel<128, 4, at::native::_cuda_scatter_gather_internal_kernel<true, float>::operator()<at::native::ReduceAdd>(at::TensorIterator&, long, long, long, at::native::ReduceAdd const&)::{lambda(int)#1}>";
    pub const INDEX_COPY: &str = "void at::native::index_elementwise_kernel<128, 4, at::native::gpu_index_kernel<at::native::index_copy_kernel_impl<at::native::OpaqueType<4> >(at::TensorIterator&, long, long, long)::{lambda(char*, char const*, long)#1}>(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>, at::native::index_copy_kernel_impl<at::native::OpaqueType<4> >(at::TensorIterator&, long, long, long)::{lambda(char*, char const*, long)#1} const&)::{lambda(int)#1}>";
    pub const NLL_FW: &str =
        "void at::native::(anonymous namespace)::nll_loss_forward_reduce_cuda_kernel_2d<float, float, long>";
    pub const NLL_BW: &str =
        "void at::native::(anonymous namespace)::nll_loss_backward_reduce_cuda_kernel_2d<float, long>";
    pub const CUB_REDUCE: &str = "void at_cuda_detail::cub::DeviceReduceKernel<at_cuda_detail::cub::DeviceReducePolicy<int, int, at_cuda_detail::cub::Sum>::Policy600, at_cuda_detail::cub::TransformInputIterator<bool, at::native::(anonymous namespace)::NonZeroOp<bool>, bool*, long>, int, at_cuda_detail::cub::Sum>";
    pub const CUB_REDUCE_TILE: &str = "void at_cuda_detail::cub::DeviceReduceSingleTileKernel<at_cuda_detail::cub::DeviceReducePolicy<int, int, at_cuda_detail::cub::Sum>::Policy600, int*, int*, int, at_cuda_detail::cub::Sum, int>";
    pub const CUB_COMPACT_INIT: &str =
        "void at_cuda_detail::cub::DeviceCompactInitKernel<at_cuda_detail::cub::ScanTileState<int, true>, int*>";
    pub const CUB_SELECT: &str = "void at_cuda_detail::cub::DeviceSelectSweepKernel<at_cuda_detail::cub::DispatchSelectIf<at_cuda_detail::cub::CountingInputIterator<long, long>, at_cuda_detail::cub::TransformInputIterator<bool, at::native::(anonymous namespace)::NonZeroOp<bool>, bool*, long>, long*, int*, at_cuda_detail::cub::NullType, at_cuda_detail::cub::NullType, int, false>::PtxSelectIfPolicyT, at_cuda_detail::cub::CountingInputIterator<long, long>, at_cuda_detail::cub::TransformInputIterator<bool, at::native::(anonymous namespace)::NonZeroOp<bool>, bool*, long>, long*, int*, at_cuda_detail::cub::ScanTileState<int, true>, at_cuda_detail::cub::NullType, at_cuda_detail::cub::NullType, int, false>";
    pub const WRITE_INDICES: &str = "void at::native::(anonymous namespace)::write_indices<long, 2>";
    pub const RADIX_SORT_HIST: &str = "void at_cuda_detail::cub::DeviceRadixSortHistogramKernel<at_cuda_detail::cub::DeviceRadixSortPolicy<long, long, unsigned int>::Policy800, false, long, unsigned int>";
    pub const RADIX_SORT_ONESWEEP: &str = "void at_cuda_detail::cub::DeviceRadixSortOnesweepKernel<at_cuda_detail::cub::DeviceRadixSortPolicy<long, long, unsigned int>::Policy800, false, long, long, unsigned int, int, int>";
    pub const EMB_BW_PARTIALS: &str = "void at::native::(anonymous namespace)::krn_partials_per_segment<long>";
    pub const EMB_BW_SEGMENT_OFFSETS: &str = "void at::native::(anonymous namespace)::krn_partial_segment_offset<long>";
    pub const EMB_BW_COMPUTE: &str = "void at::native::(anonymous namespace)::compute_grad_weight<float, long>";
    pub const EMB_BW_SCATTER: &str = "void at::native::(anonymous namespace)::sum_and_scatter<float, long>";
    pub const SOFTMAX_BLOCK_FW: &str = "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, at::native::(anonymous namespace)::";
    pub const SOFTMAX_BLOCK_BW: &str = "void at::native::(anonymous namespace)::cunn_SoftMaxBackward<4, float, float, float, at::native::(anonymous namespace)::";
}
