//! From captured steps and ncu metrics to a trace.
//!
//! * **Op sequence**: the profiled steps must issue the same ops (kind and name) in the same
//!   order; steps that differ from the most common sequence are dropped and counted.
//! * **Durations**: per op, the median over the kept steps of the GPU duration Kineto (CUPTI)
//!   recorded. Ops of a step run one after another on one stream with nothing else on the
//!   GPU, so each is a standalone duration.
//! * **Host gaps** (the project's host model, `policies/src/driver.rs`): the host issues op
//!   `i` a gap after it issued op `i-1`, or after it resumed from a sync. Measured per step as
//!   the time from the previous op's API call start (from the end of an allocation call; from
//!   the moment the GPU finished, for the op after a sync, since that is when the host model
//!   resumes) to this op's API call start, then the median over the steps. A device-to-host
//!   copy whose API call returned only after the copy ended blocked the host: a sync is
//!   inserted after it. The first op's gap starts at the end of the step's start marker.
//!   With `host_gap_scale` the gaps are multiplied by a factor (see [`HostGapScale`]).
//! * **Occupancy and `sm_needed`**: blocks per SM from ncu's occupancy limits (the
//!   driver's occupancy calculation for the launch) when the kernel was matched to an ncu
//!   row, else from the occupancy calculator on the device's SM limits with Kineto's block
//!   size, registers and shared memory; `sm_needed = ceil(blocks / blocks_per_sm)`.
//! * **Class**: Orion's rule ([`KernelClass::classify`]) on ncu's FLOPs / DRAM bytes against
//!   the device's roofline knee, then SM and DRAM throughput at 60% of peak. A kernel without
//!   ncu metrics is `unknown` and counted in the trace's `ncu_missing` metadata.
//! * **ncu rows from another run** ([`ConvertOptions::ncu_by_shape`], `convert --ncu-from`):
//!   after the launch-order alignment and identical launches, a kernel still without metrics
//!   takes those of the first complete row with the same kernel ([`shape_name`]: template
//!   arguments included), grid and block.

use super::kineto::{Step, StepItem, StepItemKind};
use super::ncu::NcuKernel;
use crate::stats::median;
use orion_traces::occupancy::{occupancy, sm_needed};
use orion_traces::{DeviceSpec, KernelClass, OpKind, OpRecord, Trace, TraceMeta, TraceSource, WorkKind};
use std::collections::{BTreeMap, HashMap};

/// How host gaps measured under the profiler are corrected for its overhead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HostGapScale {
    /// Keep the gaps as measured under the profiler.
    None,
    /// A fixed factor.
    Factor(f64),
    /// `1 - (L_profiled - L_unprofiled) / sum(gaps)`, clamped to [0.3, 1]: the profiler's
    /// extra host time per step (profiled step wall minus the median unprofiled latency of the
    /// same step) is taken out of the host gaps, pro rata. Needs both latencies; otherwise 1.
    Auto,
}

/// What the conversion needs besides the steps and metrics.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Trace name (`resnet50-inference-b4`).
    pub name: String,
    /// Model, mode and batch, when known.
    pub model: Option<String>,
    /// Inference request or training iteration.
    pub mode: Option<WorkKind>,
    /// Batch size.
    pub batch: Option<u32>,
    /// Host gap correction.
    pub host_gap_scale: HostGapScale,
    /// Median wall latency of unprofiled steps, ms (for [`HostGapScale::Auto`]).
    pub unprofiled_latency_ms: Option<f64>,
    /// Wall time of each profiled step, ms.
    pub profiled_step_wall_ms: Vec<f64>,
    /// Provenance written into the trace's metadata (gpu, driver, cuda, torch, date, command).
    pub provenance: BTreeMap<String, String>,
    /// The ncu rows come from another run of the same workload (`convert --ncu-from`): a
    /// kernel that the launch-order alignment and identical launches leave without metrics
    /// takes those of the first complete row with the same kernel ([`shape_name`]), grid and
    /// block extents.
    pub ncu_by_shape: bool,
}

/// Facts about a conversion, for the progress output and the metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConvertSummary {
    /// Steps captured.
    pub steps: usize,
    /// Steps kept (same op sequence as the majority).
    pub steps_kept: usize,
    /// Kernels in the trace.
    pub kernels: usize,
    /// Kernels matched to an ncu row.
    pub ncu_matched: usize,
    /// Kernels whose class could not be decided from ncu metrics (missing or unmatched).
    pub ncu_missing: Vec<usize>,
    /// Syncs inserted after blocking device-to-host copies (per step).
    pub inserted_syncs: usize,
    /// The host gap factor applied.
    pub host_gap_scale: f64,
    /// Median over the kept steps of the summed kernel time, ns.
    pub kernel_time_ns: f64,
    /// Median over the kept steps of the summed GPU time of kernels, copies and memsets, ns.
    pub gpu_time_ns: f64,
}

/// One op of one step, after host-gap accounting.
#[derive(Debug, Clone)]
struct Timed<'a> {
    item: Option<&'a StepItem>,
    kind: OpKind,
    name: String,
    gap_ns: f64,
    dur_ns: f64,
}

fn signature(ops: &[Timed<'_>]) -> Vec<(OpKind, String)> {
    ops.iter().map(|o| (o.kind, o.name.clone())).collect()
}

/// The ops of one step with their host gaps (ns).
fn timed(step: &Step) -> (Vec<Timed<'_>>, usize) {
    let mut out = Vec::with_capacity(step.items.len());
    let mut host_ref = step.start_us;
    let mut gpu_done = f64::NEG_INFINITY;
    let mut inserted = 0;
    for it in &step.items {
        let gap = (it.api_start_us - host_ref).max(0.0);
        match it.kind {
            StepItemKind::Gpu(kind) => {
                let (gs, ge) = it.gpu.unwrap_or((it.api_start_us, it.api_start_us));
                gpu_done = gpu_done.max(ge);
                out.push(Timed {
                    item: Some(it),
                    kind,
                    name: it.name.clone(),
                    gap_ns: gap * 1e3,
                    dur_ns: (ge - gs).max(0.0) * 1e3,
                });
                host_ref = it.api_start_us;
                if kind == OpKind::CopyD2H && it.api_end_us >= ge {
                    out.push(Timed {
                        item: None,
                        kind: OpKind::Sync,
                        name: "blocking copy".into(),
                        gap_ns: 0.0,
                        dur_ns: 0.0,
                    });
                    host_ref = gpu_done.max(it.api_start_us).min(it.api_end_us);
                    inserted += 1;
                }
            }
            StepItemKind::Sync => {
                out.push(Timed {
                    item: Some(it),
                    kind: OpKind::Sync,
                    name: it.name.clone(),
                    gap_ns: gap * 1e3,
                    dur_ns: 0.0,
                });
                host_ref = gpu_done.max(it.api_start_us).min(it.api_end_us);
            }
            StepItemKind::Alloc(kind) => {
                let dur = (it.api_end_us - it.api_start_us).max(0.0);
                out.push(Timed { item: Some(it), kind, name: it.name.clone(), gap_ns: gap * 1e3, dur_ns: dur * 1e3 });
                host_ref = it.api_end_us;
            }
        }
    }
    (out, inserted)
}

/// The short name used to match a captured kernel to an ncu row: the last identifier before
/// the template or parameter list, without `void ` and anonymous namespaces.
pub fn match_key(name: &str) -> String {
    let n = name.replace("(anonymous namespace)::", "");
    let n = n.trim();
    let n = n.strip_prefix("void ").unwrap_or(n);
    let end = n.find(['<', '(']).unwrap_or(n.len());
    let head = &n[..end];
    head.rsplit("::").next().unwrap_or(head).trim().to_string()
}

/// The name used to match a kernel to an ncu row of another run by shape: the kernel with its
/// template arguments, spelt so that Kineto's and ncu's demanglings agree (no namespaces, no
/// parameter list, no casts, `true`/`false` as 1/0, no spaces). Unlike [`match_key`] it tells
/// instantiations apart (`Kernel2<..._128x64_...>` from `Kernel2<..._64x64_...>`).
pub fn shape_name(name: &str) -> String {
    let n = name.trim();
    let n = n.strip_prefix("void ").unwrap_or(n);
    // The parameter list: the first `(` outside the template arguments.
    let mut depth = 0usize;
    let mut end = n.len();
    for (i, c) in n.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            '(' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    // Drop parenthesised groups (casts, `(anonymous namespace)`, lambdas' `()`).
    let mut bare = String::new();
    let mut parens = 0usize;
    for c in n[..end].chars() {
        match c {
            '(' => parens += 1,
            ')' => parens = parens.saturating_sub(1),
            c if parens == 0 && !c.is_whitespace() => bare.push(c),
            _ => {}
        }
    }
    // Drop namespace qualifiers and spell booleans as numbers, token by token.
    let mut out = String::new();
    let mut word = String::new();
    let mut chars = bare.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
            continue;
        }
        out.push_str(match word.as_str() {
            "true" => "1",
            "false" => "0",
            w => w,
        });
        word.clear();
        out.push(c);
    }
    out.push_str(match word.as_str() {
        "true" => "1",
        "false" => "0",
        w => w,
    });
    out
}

/// Matches captured kernels (name, blocks, threads) to ncu rows in launch order: by index when
/// the sequences agree, else by a longest-common-subsequence alignment. Returns, per captured
/// kernel, the index of its ncu row.
pub fn align(kernels: &[(String, Option<u64>, Option<u64>)], ncu: &[NcuKernel]) -> Vec<Option<usize>> {
    let same = |k: &(String, Option<u64>, Option<u64>), n: &NcuKernel| {
        match_key(&k.0) == match_key(&n.name)
            && (k.1.is_none() || n.blocks.is_none() || k.1 == n.blocks)
            && (k.2.is_none() || n.threads.is_none() || k.2 == n.threads)
    };
    if kernels.len() == ncu.len() && kernels.iter().zip(ncu).all(|(k, n)| same(k, n)) {
        return (0..kernels.len()).map(Some).collect();
    }
    let (n, m) = (kernels.len(), ncu.len());
    let mut out = vec![None; n];
    if n.saturating_mul(m) > 40_000_000 {
        // Too large for the table: greedy forward matching.
        let mut j = 0;
        for (i, k) in kernels.iter().enumerate() {
            if let Some(off) = ncu[j..].iter().take(64).position(|r| same(k, r)) {
                out[i] = Some(j + off);
                j += off + 1;
            }
        }
        return out;
    }
    let mut len = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[at(i, j)] = if same(&kernels[i], &ncu[j]) {
                len[at(i + 1, j + 1)] + 1
            } else {
                len[at(i + 1, j)].max(len[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if same(&kernels[i], &ncu[j]) {
            out[i] = Some(j);
            i += 1;
            j += 1;
        } else if len[at(i + 1, j)] >= len[at(i, j + 1)] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// What makes two launches identical: kernel, grid, block, registers, shared memory.
type Signature = (String, Option<orion_traces::Dim3>, Option<orion_traces::Dim3>, Option<u32>, Option<u32>);

fn signature_of(it: &StepItem) -> Signature {
    (it.name.clone(), it.grid, it.block, it.registers_per_thread, it.shared_mem_per_block)
}

/// Builds the trace from the captured steps and (optionally) ncu's rows.
pub fn build_trace(
    steps: &[Step],
    ncu: Option<&[NcuKernel]>,
    device: &DeviceSpec,
    opts: &ConvertOptions,
) -> Result<(Trace, ConvertSummary), String> {
    if steps.is_empty() {
        return Err("no captured step".into());
    }
    let timed_steps: Vec<(Vec<Timed<'_>>, usize)> = steps.iter().map(timed).collect();
    // The most common op sequence wins.
    let mut counts: HashMap<Vec<(OpKind, String)>, usize> = HashMap::new();
    for (t, _) in &timed_steps {
        *counts.entry(signature(t)).or_default() += 1;
    }
    let best = counts.iter().max_by_key(|(sig, c)| (**c, std::cmp::Reverse(sig.len()))).map(|(s, _)| s.clone());
    let best = best.unwrap_or_default();
    let kept: Vec<&(Vec<Timed<'_>>, usize)> = timed_steps.iter().filter(|(t, _)| signature(t) == best).collect();
    let reference = &kept[0].0;
    let n_ops = reference.len();

    let mut gaps = vec![0.0; n_ops];
    let mut durs = vec![0.0; n_ops];
    for i in 0..n_ops {
        let g: Vec<f64> = kept.iter().map(|(t, _)| t[i].gap_ns).collect();
        let d: Vec<f64> = kept.iter().map(|(t, _)| t[i].dur_ns).collect();
        gaps[i] = median(&g);
        durs[i] = median(&d);
    }
    let kernel_sums: Vec<f64> =
        kept.iter().map(|(t, _)| t.iter().filter(|o| o.kind == OpKind::Kernel).map(|o| o.dur_ns).sum()).collect();
    let gpu_sums: Vec<f64> =
        kept.iter().map(|(t, _)| t.iter().filter(|o| o.kind.uses_gpu()).map(|o| o.dur_ns).sum()).collect();

    let gap_sum: f64 = gaps.iter().sum();
    let scale = match opts.host_gap_scale {
        HostGapScale::None => 1.0,
        HostGapScale::Factor(f) => f,
        HostGapScale::Auto => {
            let walls = &opts.profiled_step_wall_ms;
            match opts.unprofiled_latency_ms {
                Some(unprof) if !walls.is_empty() && gap_sum > 0.0 => {
                    let prof = median(walls);
                    (1.0 - (prof - unprof) * 1e6 / gap_sum).clamp(0.3, 1.0)
                }
                _ => 1.0,
            }
        }
    };

    let kernel_items: Vec<(String, Option<u64>, Option<u64>)> = reference
        .iter()
        .filter(|o| o.kind == OpKind::Kernel)
        .map(|o| {
            let it = o.item.expect("kernels come from captured items");
            (o.name.clone(), it.grid.map(|g| g.count()), it.block.map(|b| b.count()))
        })
        .collect();
    let mut matches = match ncu {
        Some(rows) => align(&kernel_items, rows),
        None => vec![None; kernel_items.len()],
    };
    // A kernel ncu did not profile (a capped `--launch-count`, a lost kernel) takes the
    // metrics of an identical launch that it did profile: same kernel, grid, block, registers
    // and shared memory run the same code on the same amount of data.
    let signatures: Vec<Signature> = reference
        .iter()
        .filter(|o| o.kind == OpKind::Kernel)
        .map(|o| signature_of(o.item.expect("kernels come from captured items")))
        .collect();
    let mut by_signature: HashMap<&Signature, usize> = HashMap::new();
    for (k, m) in matches.iter().enumerate() {
        if let Some(j) = m
            && ncu.is_some_and(|rows| rows[*j].complete())
        {
            by_signature.entry(&signatures[k]).or_insert(*j);
        }
    }
    let mut copied = 0;
    for (k, m) in matches.iter_mut().enumerate() {
        let complete = m.is_some_and(|j| ncu.is_some_and(|rows| rows[j].complete()));
        if !complete && let Some(j) = by_signature.get(&signatures[k]) {
            *m = Some(*j);
            copied += 1;
        }
    }

    let mut by_shape_count = 0;
    if opts.ncu_by_shape
        && let Some(rows) = ncu
    {
        let mut by_shape: HashMap<(String, orion_traces::Dim3, orion_traces::Dim3), usize> = HashMap::new();
        for (j, r) in rows.iter().enumerate() {
            if let (true, Some(g), Some(b)) = (r.complete(), r.grid, r.block) {
                by_shape.entry((shape_name(&r.name), g, b)).or_insert(j);
            }
        }
        for (m, sig) in matches.iter_mut().zip(&signatures) {
            if m.is_some_and(|j| rows[j].complete()) {
                continue;
            }
            if let (Some(g), Some(b)) = (sig.1, sig.2)
                && let Some(j) = by_shape.get(&(shape_name(&sig.0), g, b))
            {
                *m = Some(*j);
                by_shape_count += 1;
            }
        }
    }

    let knee = device.roofline_knee();
    let mut ops = Vec::with_capacity(n_ops);
    let mut summary = ConvertSummary {
        steps: steps.len(),
        steps_kept: kept.len(),
        inserted_syncs: kept[0].1,
        host_gap_scale: scale,
        kernel_time_ns: median(&kernel_sums),
        gpu_time_ns: median(&gpu_sums),
        ..Default::default()
    };
    let mut k_index = 0;
    for (i, o) in reference.iter().enumerate() {
        let gap = (gaps[i] * scale).round() as u64;
        let dur = durs[i].round() as u64;
        let mut r = OpRecord::new(o.kind, o.name.clone(), dur, 0, KernelClass::Unknown);
        r.host_gap_ns = Some(gap);
        match o.kind {
            OpKind::Kernel => {
                let it = o.item.expect("kernels come from captured items");
                let row = matches[k_index].and_then(|j| ncu.map(|rows| &rows[j]));
                k_index += 1;
                r.grid = it.grid;
                r.block = it.block;
                r.registers_per_thread = it.registers_per_thread;
                r.shared_mem_per_block = it.shared_mem_per_block;
                let threads = it.block.map_or(1, |b| b.count()) as u32;
                let calc = occupancy(
                    &device.sm,
                    threads,
                    it.registers_per_thread.unwrap_or(0),
                    it.shared_mem_per_block.unwrap_or(0),
                )
                .blocks_per_sm;
                let bps = row.and_then(|n| n.blocks_per_sm).unwrap_or(calc).max(1);
                r.blocks_per_sm = Some(bps);
                r.sm_needed = sm_needed(it.grid.map_or(1, |g| g.count()), bps).max(1);
                summary.kernels += 1;
                if let Some(n) = row {
                    summary.ncu_matched += 1;
                    r.sm_throughput_pct = n.sm_pct.map(round2);
                    r.dram_throughput_pct = n.dram_pct.map(round2);
                    r.flops = n.flops.map(f64::round);
                    r.bytes = n.bytes.map(f64::round);
                }
                if row.is_some_and(NcuKernel::complete) {
                    let ai = match (r.flops, r.bytes) {
                        (Some(f), Some(b)) if b > 0.0 => Some(f / b),
                        _ => None,
                    };
                    r.class = KernelClass::classify(ai, knee, r.sm_throughput_pct, r.dram_throughput_pct);
                } else {
                    summary.ncu_missing.push(i);
                }
            }
            OpKind::CopyH2D | OpKind::CopyD2H | OpKind::CopyD2D | OpKind::Memset => {
                let bytes = o.item.and_then(|it| it.bytes);
                r.copy_bytes = bytes;
                r.bytes = bytes.map(|b| b as f64);
            }
            OpKind::Sync => {
                r.name = if o.item.is_some() { o.name.clone() } else { "cudaStreamSynchronize (blocking copy)".into() };
            }
            OpKind::Malloc | OpKind::Free => {}
        }
        ops.push(r);
    }

    let mut extra = opts.provenance.clone();
    extra.insert("generator".into(), format!("orion-profile {}", env!("CARGO_PKG_VERSION")));
    extra.insert("steps".into(), format!("{} captured, {} kept (same op sequence)", summary.steps, summary.steps_kept));
    extra.insert(
        "durations".into(),
        "median over the kept steps of each op's GPU duration (CUPTI, via torch.profiler), one stream, GPU otherwise idle"
            .into(),
    );
    extra.insert("kernel_time_ns".into(), format!("{:.0}", summary.kernel_time_ns));
    extra.insert("host_gap_scale".into(), format!("{scale:.4}"));
    if let Some(l) = opts.unprofiled_latency_ms {
        extra.insert("unprofiled_latency_ms".into(), format!("{l:.4}"));
    }
    if !opts.profiled_step_wall_ms.is_empty() {
        extra.insert("profiled_step_wall_ms".into(), format!("{:.4}", median(&opts.profiled_step_wall_ms)));
    }
    extra.insert(
        "ncu".into(),
        match ncu {
            Some(rows) => format!(
                "{} rows; {} of {} kernels matched ({} of them through an identical launch{}); {} without class metrics",
                rows.len(),
                summary.ncu_matched,
                summary.kernels,
                copied,
                if opts.ncu_by_shape {
                    format!(", {by_shape_count} by kernel, grid and block alone (rows from another run)")
                } else {
                    String::new()
                },
                summary.ncu_missing.len()
            ),
            None => "not run: every kernel's class is unknown".into(),
        },
    );
    if !summary.ncu_missing.is_empty() {
        let list: Vec<String> = summary.ncu_missing.iter().take(50).map(usize::to_string).collect();
        let more = summary.ncu_missing.len().saturating_sub(50);
        extra.insert(
            "ncu_missing".into(),
            format!(
                "op indices {}{}",
                list.join(" "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ),
        );
    }
    let update_start = if opts.mode == Some(WorkKind::Training) { update_start(&ops) } else { None };
    let meta = TraceMeta {
        name: opts.name.clone(),
        model: opts.model.clone(),
        mode: opts.mode,
        batch_size: opts.batch,
        device: Some(device.name.clone()),
        source: TraceSource::Measured,
        update_start,
        extra,
    };
    Ok((Trace::new(meta, ops), summary))
}

/// The first op of the optimizer update: the first kernel of the last run of optimizer
/// kernels (`multi_tensor_apply`, `_foreach`, fused Adam/SGD) at the end of the iteration.
fn update_start(ops: &[OpRecord]) -> Option<usize> {
    let is_opt = |o: &OpRecord| {
        o.kind == OpKind::Kernel
            && (o.name.contains("multi_tensor_apply") || o.name.contains("foreach") || o.name.contains("fused_adam"))
    };
    let first = ops.iter().position(is_opt)?;
    // Optimizer kernels come after the last backward kernel: take the first optimizer kernel
    // after which only optimizer kernels, copies, memsets and syncs follow... or, failing
    // that, the first optimizer kernel.
    let last_other = ops.iter().rposition(|o| o.kind == OpKind::Kernel && !is_opt(o));
    match last_other {
        Some(l) if l > first => ops[l..].iter().position(is_opt).map(|p| p + l).or(Some(first)),
        _ => Some(first),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::profile::kineto::{parse_step, tests as kt};
    use crate::profile::ncu::{default_metrics, parse_ncu_csv, tests as nt};
    use std::path::Path;

    fn h100() -> DeviceSpec {
        DeviceSpec::preset("h100").unwrap()
    }

    fn opts() -> ConvertOptions {
        ConvertOptions {
            name: "toy-inference-b4".into(),
            model: Some("toy".into()),
            mode: Some(WorkKind::Inference),
            batch: Some(4),
            host_gap_scale: HostGapScale::None,
            unprofiled_latency_ms: None,
            profiled_step_wall_ms: vec![],
            provenance: BTreeMap::new(),
            ncu_by_shape: false,
        }
    }

    fn step() -> Step {
        parse_step(&kt::fixture(), Path::new("k.json")).unwrap()
    }

    #[test]
    fn fixture_becomes_a_trace_with_gaps_classes_and_a_blocking_copy_sync() {
        let ncu = parse_ncu_csv(&nt::fixture(), Path::new("n.csv"), &default_metrics()).unwrap();
        let (t, s) = build_trace(&[step()], Some(&ncu), &h100(), &opts()).unwrap();
        let kinds: Vec<OpKind> = t.ops.iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            vec![OpKind::CopyH2D, OpKind::Kernel, OpKind::Kernel, OpKind::CopyD2H, OpKind::Sync, OpKind::Sync]
        );
        // Gaps: copy API at 120 after the marker ended at 105; kernel calls at 140 and 160; the
        // D2H call at 170 returned at 210 after its copy ended at 201: blocking, so a sync; the
        // host resumed when the GPU was done (201), and the stream sync started at 212.
        let gaps: Vec<u64> = t.ops.iter().map(|o| o.host_gap_ns.unwrap()).collect();
        assert_eq!(gaps, vec![15_000, 20_000, 20_000, 10_000, 0, 11_000]);
        let durs: Vec<u64> = t.ops.iter().map(|o| o.duration_ns).collect();
        assert_eq!(durs, vec![48_000, 2_500, 20_000, 2_000, 0, 0]);
        // The fill kernel: 4 blocks, ncu's occupancy 16 blocks per SM; memory-bound numbers
        // too low for either class: unknown. The GEMM: no DRAM metrics: marked, unknown.
        let fill = &t.ops[1];
        assert_eq!((fill.blocks_per_sm, fill.sm_needed, fill.class), (Some(16), 1, KernelClass::Unknown));
        assert_eq!(fill.bytes, Some(9216.0));
        let gemm = &t.ops[2];
        assert_eq!((gemm.blocks_per_sm, gemm.sm_needed), (Some(1), 8));
        assert_eq!(gemm.class, KernelClass::Unknown);
        assert_eq!(s.ncu_matched, 2);
        assert_eq!(s.ncu_missing, vec![2]);
        assert!(t.meta.extra["ncu_missing"].contains("op indices 2"));
        assert_eq!(t.meta.source, TraceSource::Measured);
        assert_eq!(t.ops[3].copy_bytes, Some(16_000));
        for op in &t.ops {
            op.validate().unwrap();
        }
    }

    #[test]
    fn classes_follow_orions_rule() {
        let mut ncu = parse_ncu_csv(&nt::fixture(), Path::new("n.csv"), &default_metrics()).unwrap();
        ncu[1].dram_pct = Some(10.0);
        ncu[1].bytes = Some(1e6);
        ncu[0].dram_pct = Some(75.0);
        let (t, s) = build_trace(&[step()], Some(&ncu), &h100(), &opts()).unwrap();
        assert_eq!(t.ops[1].class, KernelClass::Memory);
        // 1e9 FLOPs over 1e6 bytes is far above the H100's knee (~20 FLOP/B).
        assert_eq!(t.ops[2].class, KernelClass::Compute);
        assert!(s.ncu_missing.is_empty());
    }

    #[test]
    fn without_ncu_every_kernel_is_unknown_and_occupancy_comes_from_the_calculator() {
        let (t, s) = build_trace(&[step()], None, &h100(), &opts()).unwrap();
        assert_eq!(s.ncu_missing, vec![1, 2]);
        // 128 threads, 16 registers, no shared memory: 16 blocks (64 warps / 4).
        assert_eq!(t.ops[1].blocks_per_sm, Some(16));
        // 384 threads, 168 registers, 193 KB shared memory: one block per SM.
        assert_eq!(t.ops[2].blocks_per_sm, Some(1));
        assert!(t.meta.extra["ncu"].starts_with("not run"));
    }

    #[test]
    fn medians_over_steps_and_odd_steps_dropped() {
        let a = step();
        let mut b = step();
        for it in &mut b.items {
            if let Some((s, e)) = it.gpu {
                it.gpu = Some((s, s + 2.0 * (e - s)));
            }
        }
        let mut c = step();
        c.items.remove(1);
        let (t, s) = build_trace(&[a.clone(), b, c, a], None, &h100(), &opts()).unwrap();
        assert_eq!((s.steps, s.steps_kept), (4, 3));
        assert_eq!(t.ops[2].duration_ns, 20_000);
        assert!((s.kernel_time_ns - 22_500.0).abs() < 1e-6);
    }

    #[test]
    fn auto_scale_takes_the_profiler_overhead_out_of_the_gaps() {
        let mut o = opts();
        o.host_gap_scale = HostGapScale::Auto;
        // Gaps sum to 76 us; the profiled step took 0.138 ms, unprofiled 0.1 ms: 38 us less.
        o.profiled_step_wall_ms = vec![0.138];
        o.unprofiled_latency_ms = Some(0.1);
        let (t, s) = build_trace(&[step()], None, &h100(), &o).unwrap();
        assert!((s.host_gap_scale - 0.5).abs() < 1e-9, "{}", s.host_gap_scale);
        assert_eq!(t.ops[0].host_gap_ns, Some(7_500));
    }

    #[test]
    fn an_identical_launch_lends_its_metrics() {
        let mut st = step();
        let mut again = st.items[1].clone();
        again.api_start_us = 215.0;
        again.api_end_us = 216.0;
        again.gpu = Some((220.0, 222.5));
        st.items.push(again);
        let ncu = parse_ncu_csv(&nt::fixture(), Path::new("n.csv"), &default_metrics()).unwrap();
        let (t, s) = build_trace(&[st], Some(&ncu), &h100(), &opts()).unwrap();
        let last = t.ops.last().unwrap();
        assert_eq!(last.kind, OpKind::Kernel);
        assert_eq!(last.dram_throughput_pct, Some(0.52));
        assert_eq!(s.ncu_matched, 3);
        assert!(t.meta.extra["ncu"].contains("(1 of them through an identical launch)"), "{}", t.meta.extra["ncu"]);
    }

    #[test]
    fn rows_of_another_run_match_by_kernel_grid_and_block() {
        // The other run's ncu profiled the kernels in another order (the fill kernel last):
        // the launch-order alignment finds only one of the two; matching by shape the other.
        let st = step();
        let mut rows = parse_ncu_csv(&nt::fixture(), Path::new("n.csv"), &default_metrics()).unwrap();
        rows.reverse();
        let without = build_trace(std::slice::from_ref(&st), Some(&rows), &h100(), &opts()).unwrap();
        assert_eq!(without.1.ncu_matched, 1, "{:?}", without.0.meta.extra["ncu"]);
        let o = ConvertOptions { ncu_by_shape: true, ..opts() };
        let (t, s) = build_trace(std::slice::from_ref(&st), Some(&rows), &h100(), &o).unwrap();
        assert_eq!(s.ncu_matched, 2);
        let fill = t.ops.iter().find(|o| o.name.contains("FillFunctor")).unwrap();
        assert_eq!(fill.dram_throughput_pct, Some(0.52));
        assert!(t.meta.extra["ncu"].contains("1 by kernel, grid and block alone"), "{}", t.meta.extra["ncu"]);
        // A different grid is a different launch: no metrics for it.
        let mut rows2 = rows.clone();
        for r in &mut rows2 {
            r.grid = Some(orion_traces::Dim3::new(99, 1, 1));
        }
        let (_, s2) = build_trace(std::slice::from_ref(&st), Some(&rows2), &h100(), &o).unwrap();
        assert_eq!(s2.ncu_matched, 1);
    }

    #[test]
    fn alignment_skips_kernels_ncu_lost() {
        let k = |n: &str| (n.to_string(), Some(4), Some(128));
        let row = |n: &str| NcuKernel { name: n.into(), blocks: Some(4), threads: Some(128), ..Default::default() };
        let kernels = vec![k("void a<1>(int)"), k("b"), k("void ns::c(int)"), k("a")];
        let rows = vec![row("a"), row("ns::c"), row("a")];
        assert_eq!(align(&kernels, &rows), vec![Some(0), None, Some(1), Some(2)]);
        assert_eq!(match_key("void at::native::(anonymous namespace)::foo<4>(int)"), "foo");
    }

    #[test]
    fn shape_names_agree_across_demanglings_and_tell_instantiations_apart() {
        // Kineto's spelling, then ncu's, of the same kernels (H100, 2026-11-24).
        let kineto = "void cudnn::engines_precompiled::nchwToNhwcKernel<float, float, float, false, true, \
                      (cudnnKernelDataType_t)2>(cudnn::engines_precompiled::nchw2nhwc_params_t<float>, float const*, float*)";
        let ncu = "void engines_precompiled::nchwToNhwcKernel<float, float, float, 0, 1, 2>\
                   (engines_precompiled::nchw2nhwc_params_t<T3>, const T1 *, T2 *)";
        assert_eq!(shape_name(kineto), "nchwToNhwcKernel<float,float,float,0,1,2>");
        assert_eq!(shape_name(kineto), shape_name(ncu));
        let a = "void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_128x64_32x6_nn_align4>(T1::Params)";
        let b = "void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_64x64_32x6_nn_align4>(cutlass_80_tensorop_s1688gemm_64x64_32x6_nn_align4::Params)";
        assert_eq!(match_key(a), match_key(b));
        assert_ne!(shape_name(a), shape_name(b));
        assert_eq!(shape_name("sm90_xmma_gemm_kernel__5x_cublas"), "sm90_xmma_gemm_kernel__5x_cublas");
    }

    #[test]
    fn update_start_is_the_optimizer_tail() {
        let k = |n: &str| OpRecord::kernel(n, 1, 1, KernelClass::Unknown);
        let ops = vec![
            k("conv"),
            k("multi_tensor_apply_kernel"),
            k("conv_bwd"),
            k("multi_tensor_apply_kernel"),
            k("x_foreach"),
        ];
        assert_eq!(update_start(&ops), Some(3));
    }
}
