//! The synthetic kernels: one CUDA C++ source compiled by NVRTC at run time.
//!
//! Every synthetic kernel takes the same five parameters, so that one launch path serves all:
//!
//! | parameter | meaning |
//! | --- | --- |
//! | `q` | work, in 1/256 of an iteration per block: block `b` runs `(q + r_b) >> 8` iterations, where `r_b` runs through 0..255 over consecutive blocks, so the mean is `q / 256` and the work can be set finer than one iteration of every block |
//! | `buf` | a device buffer of `float4`, `n4` long: its first half is read, its second half written |
//! | `n4` | the buffer's length in `float4` |
//! | `offset` | the first element this launch touches; the executor moves it on after each launch so that a launch never finds its data in L2 |
//! | `s` | a multiplier just below 1, passed at run time so that nothing is constant-folded |
//!
//! Dynamic shared memory is requested at launch only to pin the occupancy (blocks per SM) to the
//! record's; it is never touched. The module is compiled with `--maxrregcount=32`, so registers
//! never bound occupancy below what threads allow (32 registers x 2048 threads = 64 K, one SM's
//! register file), and only the block size and the dynamic shared memory decide it.
//!
//! * `synth_compute`: eight independent dependent-FMA chains per thread, eight FMAs deep per
//!   iteration: no memory traffic, the FP32 pipes (or, at low occupancy, their latency) bound it.
//! * `synth_memory`: grid-stride streaming over the buffer, one 16-byte read and one 16-byte
//!   write per thread and iteration with streaming (evict-first) cache hints, blocks touching
//!   disjoint lines: DRAM bandwidth (or, at low occupancy, DRAM latency) bounds it.
//! * `synth_mixed`: the streaming access of `synth_memory` plus 16 FMAs per element.
//! * `synth_spin`: one thread sleeping until `%globaltimer` has advanced `ns`: a gate that keeps
//!   a stream busy while the host queues the launches to be timed behind it.

/// Registers per thread the module is compiled with.
pub const MAX_REGISTERS: u32 = 32;

/// Names of the three synthetic kernels, in [`SynthKind`](crate::plan::SynthKind) order.
pub const KERNEL_NAMES: [&str; 3] = ["synth_compute", "synth_memory", "synth_mixed"];

/// Name of the gate kernel.
pub const SPIN_KERNEL: &str = "synth_spin";

/// The CUDA C++ source of the synthetic kernels.
pub const SOURCE: &str = r#"
__device__ __forceinline__ unsigned block_linear() {
    return blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
}
__device__ __forceinline__ unsigned thread_linear() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
__device__ __forceinline__ unsigned block_iters(unsigned q, unsigned b) {
    // 157 is odd, so (b * 157 + 13) mod 256 is a permutation of 0..255 over 256 consecutive blocks.
    return (q + ((b * 157u + 13u) & 255u)) >> 8;
}

extern "C" __global__ void __maxnreg__(32) synth_compute(unsigned q, float4* buf, unsigned long long n4,
                                         unsigned long long offset, float s) {
    const unsigned b = block_linear();
    const unsigned t = thread_linear();
    const unsigned n = block_iters(q, b);
    if (n == 0) return;
    float a0 = t * 1e-3f, a1 = a0 + 1.0f, a2 = a0 + 2.0f, a3 = a0 + 3.0f;
    float a4 = a0 + 4.0f, a5 = a0 + 5.0f, a6 = a0 + 6.0f, a7 = a0 + 7.0f;
    for (unsigned i = 0; i < n; ++i) {
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            a0 = fmaf(a0, s, 0.5f); a1 = fmaf(a1, s, 0.5f);
            a2 = fmaf(a2, s, 0.5f); a3 = fmaf(a3, s, 0.5f);
            a4 = fmaf(a4, s, 0.5f); a5 = fmaf(a5, s, 0.5f);
            a6 = fmaf(a6, s, 0.5f); a7 = fmaf(a7, s, 0.5f);
        }
    }
    const float r = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    // Never true for s < 1 (the chains converge to 0.5 / (1 - s)), but the compiler cannot know.
    if (r == -1.0f) {
        buf[(offset + (unsigned long long)b * blockDim.x + t) % n4] = make_float4(r, r, r, r);
    }
}

// The streaming loop over the buffer's two halves: read `src`, write `dst`. Two iterations'
// loads are issued before their stores (the hardware could not reorder them: PTX carries no
// aliasing facts), so each thread keeps two 16-byte reads in flight (four would spill at 32
// registers). FMA_ROUNDS rounds of 4
// FMAs per element make the mixed kernel.
template <int FMA_ROUNDS>
__device__ __forceinline__ float4 touch(float4 v, float s) {
    if (FMA_ROUNDS == 0) {
        v.x = v.x * s + 1.0f; v.y = v.y * s + 1.0f; v.z = v.z * s + 1.0f; v.w = v.w * s + 1.0f;
    }
#pragma unroll
    for (int k = 0; k < FMA_ROUNDS; ++k) {
        v.x = fmaf(v.x, s, 0.5f); v.y = fmaf(v.y, s, 0.5f);
        v.z = fmaf(v.z, s, 0.5f); v.w = fmaf(v.w, s, 0.5f);
    }
    return v;
}

// Indices are 32-bit (a half holds fewer than 2^32 float4: the buffer is at most 64 GiB) to
// keep the loop within 32 registers.
__device__ __forceinline__ unsigned wrap(unsigned j, unsigned step, unsigned half) {
    j += step;
    return j >= half ? j - half : j;
}

template <int FMA_ROUNDS>
__device__ __forceinline__ void stream_loop(const float4* src, float4* dst, unsigned long long half64,
                                            unsigned long long offset, unsigned n, float s) {
    const unsigned half = (unsigned)half64;
    const unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    const unsigned long long stride =
        (unsigned long long)gridDim.x * gridDim.y * gridDim.z * nt;
    const unsigned step = (unsigned)(stride % half64);
    unsigned j = (unsigned)((offset + (unsigned long long)block_linear() * nt + thread_linear()) % half64);
    unsigned i = 0;
    for (; i + 2 <= n; i += 2) {
        const unsigned j1 = wrap(j, step, half);
        float4 v0 = __ldcs(src + j);
        float4 v1 = __ldcs(src + j1);
        __stcs(dst + j, touch<FMA_ROUNDS>(v0, s));
        __stcs(dst + j1, touch<FMA_ROUNDS>(v1, s));
        j = wrap(j1, step, half);
    }
    for (; i < n; ++i) {
        __stcs(dst + j, touch<FMA_ROUNDS>(__ldcs(src + j), s));
        j = wrap(j, step, half);
    }
}

extern "C" __global__ void __maxnreg__(32) synth_memory(unsigned q, float4* buf, unsigned long long n4,
                                                        unsigned long long offset, float s) {
    const unsigned n = block_iters(q, block_linear());
    if (n == 0) return;  // a block with no work leaves at once (the shape's floor stays low)
    const unsigned long long half = n4 / 2;
    stream_loop<0>(buf, buf + half, half, offset, n, s);
}

extern "C" __global__ void __maxnreg__(32) synth_mixed(unsigned q, float4* buf, unsigned long long n4,
                                                       unsigned long long offset, float s) {
    const unsigned n = block_iters(q, block_linear());
    if (n == 0) return;
    const unsigned long long half = n4 / 2;
    stream_loop<4>(buf, buf + half, half, offset, n, s);
}

extern "C" __global__ void synth_spin(unsigned long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    t = t0;
    while (t - t0 < ns) {
        __nanosleep(500);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    }
}
"#;
