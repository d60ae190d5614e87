//! Reading one profiled step from a Kineto (torch.profiler) chrome trace.
//!
//! The capture harness (`workloads/capture.py`) runs each step in its own profiler session
//! framed by two `cudaMemGetInfo` marker calls (made after a synchronize), so a trace holds
//! exactly one step: the CUDA API calls between the end of the first marker and the start of
//! the last. (Captures made before the markers changed used `cudaDeviceSynchronize`, which the
//! profiler also calls on exit; they are still read, with that marker.)
//! Of those calls, the ones with a GPU activity of the same `correlation` id are launches
//! (kernels, copies, memsets; grid, block, registers per thread and shared memory come from the
//! kernel's `args`), `cuda*Synchronize`/`cu*Synchronize` calls are host syncs, `cudaMalloc`/
//! `cudaFree` are allocations; every other call only costs host time, which ends up in the
//! host gap of the next op.

use super::error::{ProfileError, Result};
use orion_traces::{Dim3, OpKind};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// What one item of a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepItemKind {
    /// A GPU operation (kernel, copy, memset) launched by an API call.
    Gpu(OpKind),
    /// A host synchronisation call (the host waits for the GPU).
    Sync,
    /// A device allocation or free (host time only).
    Alloc(OpKind),
}

/// One op of a profiled step, with its host (API call) and GPU times in microseconds on
/// Kineto's common timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct StepItem {
    /// What it is.
    pub kind: StepItemKind,
    /// Kernel name, Kineto's copy/memset label, or the API call's name for syncs and
    /// allocations.
    pub name: String,
    /// The API call that issued it (`cudaLaunchKernel`, `cuLaunchKernelEx`, ...).
    pub api: String,
    /// Start of the API call.
    pub api_start_us: f64,
    /// End of the API call.
    pub api_end_us: f64,
    /// GPU start and end, for GPU operations.
    pub gpu: Option<(f64, f64)>,
    /// Kernel grid.
    pub grid: Option<Dim3>,
    /// Kernel block.
    pub block: Option<Dim3>,
    /// Registers per thread.
    pub registers_per_thread: Option<u32>,
    /// Shared memory per block (static plus dynamic), bytes.
    pub shared_mem_per_block: Option<u32>,
    /// Bytes copied or set.
    pub bytes: Option<u64>,
    /// CUDA stream.
    pub stream: Option<i64>,
}

impl StepItem {
    /// GPU duration in microseconds (0 for host-only items).
    pub fn gpu_dur_us(&self) -> f64 {
        self.gpu.map_or(0.0, |(s, e)| (e - s).max(0.0))
    }
}

/// One profiled step: its ops in issue order and the time it started.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// End of the start marker (the host starts the step's work here).
    pub start_us: f64,
    /// Start of the end marker.
    pub end_us: f64,
    /// Ops in the order their API calls started.
    pub items: Vec<StepItem>,
    /// GPU activities inside the window whose launching call was not found (counted, then
    /// placed by their GPU start).
    pub unattributed: usize,
}

impl Step {
    /// Places the step's start at the end marker minus `wall_ms`, the step's wall time that
    /// the harness measured with `time.perf_counter()` from the start marker's return to the
    /// end marker's call, when that is later than the start marker's end. Right after a
    /// profiler session starts, the start marker's Kineto timestamp can lie milliseconds
    /// before the host really began the step (the first host gap of a step then reads 2-3 ms
    /// that the wall clock never saw). Returns how far the start moved (us, 0 if not at all).
    pub fn start_from_wall(&mut self, wall_ms: f64) -> f64 {
        if !(wall_ms.is_finite() && wall_ms > 0.0) {
            return 0.0;
        }
        let from_wall = self.end_us - wall_ms * 1e3;
        // Never past the first op's API call: the gap before it cannot be negative.
        let first = self.items.first().map_or(self.end_us, |i| i.api_start_us);
        let start = from_wall.min(first);
        if start > self.start_us {
            let moved = start - self.start_us;
            self.start_us = start;
            moved
        } else {
            0.0
        }
    }

    /// Sum of the GPU durations of the step's kernels, microseconds.
    pub fn kernel_time_us(&self) -> f64 {
        self.items.iter().filter(|i| i.kind == StepItemKind::Gpu(OpKind::Kernel)).map(StepItem::gpu_dur_us).sum()
    }
}

const SYNC_CALLS: [&str; 6] = [
    "cudaDeviceSynchronize",
    "cudaStreamSynchronize",
    "cudaEventSynchronize",
    "cuCtxSynchronize",
    "cuStreamSynchronize",
    "cuEventSynchronize",
];
/// The step markers capture.py writes (`torch.cuda.mem_get_info()`: no model calls it).
const MARKER: &str = "cudaMemGetInfo";
/// The markers of the first captures (a `cudaDeviceSynchronize` before and after the step).
const OLD_MARKER: &str = "cudaDeviceSynchronize";

/// Reads the step of a chrome trace file.
pub fn read_step(path: &Path) -> Result<Step> {
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError::io(path, e))?;
    parse_step(&text, path)
}

struct Event<'a> {
    index: usize,
    cat: String,
    name: &'a str,
    ts: f64,
    dur: f64,
    args: Option<&'a serde_json::Map<String, Value>>,
}

impl Event<'_> {
    fn at(&self) -> String {
        format!("traceEvents[{}] (`{}`)", self.index, short(self.name))
    }

    fn arg_u64(&self, key: &str) -> Option<u64> {
        self.args.and_then(|a| a.get(key)).and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)))
    }

    fn correlation(&self) -> Option<u64> {
        self.arg_u64("correlation")
    }
}

fn short(name: &str) -> String {
    if name.chars().count() > 60 { format!("{}...", name.chars().take(57).collect::<String>()) } else { name.into() }
}

/// Parses the step of a chrome trace's text; `file` names it in errors.
pub fn parse_step(text: &str, file: &Path) -> Result<Step> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        ProfileError::invalid(file, Some(format!("line {}", e.line())), format!("not a JSON chrome trace: {e}"))
    })?;
    let events = match &doc {
        Value::Object(m) => m.get("traceEvents").and_then(Value::as_array),
        Value::Array(a) => Some(a),
        _ => None,
    }
    .ok_or_else(|| ProfileError::invalid(file, None, "no `traceEvents` list (not a Kineto chrome trace)"))?;

    let mut api = Vec::new();
    let mut gpu = Vec::new();
    for (index, ev) in events.iter().enumerate() {
        let Some(obj) = ev.as_object() else { continue };
        if obj.get("ph").and_then(Value::as_str) != Some("X") {
            continue;
        }
        let cat = obj.get("cat").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
        let is_api = matches!(cat.as_str(), "cuda_runtime" | "cuda_driver" | "runtime" | "driver");
        let is_gpu = matches!(cat.as_str(), "kernel" | "gpu_memcpy" | "memcpy" | "gpu_memset" | "memset");
        if !is_api && !is_gpu {
            continue;
        }
        let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
        let num = |key: &str| -> Result<f64> {
            let v = obj.get(key).ok_or_else(|| {
                ProfileError::invalid(file, Some(format!("traceEvents[{index}], field `{key}`")), "missing")
            })?;
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|x: &f64| x.is_finite())
                .ok_or_else(|| {
                    ProfileError::invalid(
                        file,
                        Some(format!("traceEvents[{index}], field `{key}`")),
                        format!("`{v}` is not a number of microseconds"),
                    )
                })
        };
        let e = Event {
            index,
            cat,
            name,
            ts: num("ts")?,
            dur: num("dur")?.max(0.0),
            args: obj.get("args").and_then(Value::as_object),
        };
        if is_api { api.push(e) } else { gpu.push(e) }
    }
    api.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    gpu.sort_by(|a, b| a.ts.total_cmp(&b.ts));

    let marker = if api.iter().any(|e| e.name == MARKER) { MARKER } else { OLD_MARKER };
    let markers: Vec<&Event> = api.iter().filter(|e| e.name == marker).collect();
    let (start_us, end_us) = match (markers.first(), markers.last()) {
        (Some(a), Some(b)) if markers.len() >= 2 => (a.ts + a.dur, b.ts),
        _ => {
            return Err(ProfileError::invalid(
                file,
                None,
                format!(
                    "expected the step between two `{MARKER}` markers (as capture.py writes them), found {}",
                    markers.len()
                ),
            ));
        }
    };

    let mut launches: HashMap<u64, &Event> = HashMap::new();
    for e in &api {
        if let Some(c) = e.correlation() {
            launches.insert(c, e);
        }
    }
    let inside = |t: f64| t >= start_us && t <= end_us;
    let mut items = Vec::new();
    let mut attributed: HashMap<u64, ()> = HashMap::new();
    for g in &gpu {
        let call = g.correlation().and_then(|c| launches.get(&c).copied());
        let (api_name, api_start, api_end) = match call {
            Some(c) => (c.name.to_string(), c.ts, c.ts + c.dur),
            None => (String::new(), g.ts, g.ts),
        };
        if !inside(api_start) {
            continue;
        }
        if let Some(c) = g.correlation()
            && call.is_some()
        {
            attributed.insert(c, ());
        }
        items.push(gpu_item(g, api_name, api_start, api_end, file)?);
    }
    let unattributed = items.iter().filter(|i| i.api.is_empty()).count();
    for e in &api {
        if !inside(e.ts) || e.name == marker && (e.ts + e.dur <= start_us || e.ts >= end_us) {
            continue;
        }
        if e.correlation().is_some_and(|c| attributed.contains_key(&c)) {
            continue;
        }
        let kind = if SYNC_CALLS.contains(&e.name) {
            StepItemKind::Sync
        } else if matches!(e.name, "cudaMalloc" | "cuMemAlloc_v2" | "cudaMallocAsync") {
            StepItemKind::Alloc(OpKind::Malloc)
        } else if matches!(e.name, "cudaFree" | "cuMemFree_v2" | "cudaFreeAsync") {
            StepItemKind::Alloc(OpKind::Free)
        } else {
            continue;
        };
        items.push(StepItem {
            kind,
            name: e.name.to_string(),
            api: e.name.to_string(),
            api_start_us: e.ts,
            api_end_us: e.ts + e.dur,
            gpu: None,
            grid: None,
            block: None,
            registers_per_thread: None,
            shared_mem_per_block: None,
            bytes: None,
            stream: None,
        });
    }
    items.sort_by(|a, b| a.api_start_us.total_cmp(&b.api_start_us));
    Ok(Step { start_us, end_us, items, unattributed })
}

fn gpu_item(g: &Event<'_>, api: String, api_start_us: f64, api_end_us: f64, file: &Path) -> Result<StepItem> {
    let kind = match g.cat.as_str() {
        "kernel" => OpKind::Kernel,
        "gpu_memset" | "memset" => OpKind::Memset,
        _ => copy_kind(g.name).ok_or_else(|| {
            ProfileError::invalid(file, Some(g.at()), "a memcpy whose direction (HtoD, DtoH, DtoD) is not in its name")
        })?,
    };
    let dim = |key: &str| -> Result<Option<Dim3>> {
        let Some(v) = g.args.and_then(|a| a.get(key)) else { return Ok(None) };
        let parts: Option<Vec<u32>> =
            v.as_array().and_then(|a| a.iter().map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok())).collect());
        match parts.as_deref() {
            Some([x, y, z]) if *x > 0 && *y > 0 && *z > 0 => Ok(Some(Dim3::new(*x, *y, *z))),
            _ => Err(ProfileError::invalid(
                file,
                Some(format!("{}, field `args.{key}`", g.at())),
                format!("`{v}` is not a [x, y, z] dimension"),
            )),
        }
    };
    let is_kernel = kind == OpKind::Kernel;
    Ok(StepItem {
        kind: StepItemKind::Gpu(kind),
        name: g.name.to_string(),
        api,
        api_start_us,
        api_end_us,
        gpu: Some((g.ts, g.ts + g.dur)),
        grid: if is_kernel { dim("grid")? } else { None },
        block: if is_kernel { dim("block")? } else { None },
        registers_per_thread: g.arg_u64("registers per thread").and_then(|v| u32::try_from(v).ok()),
        shared_mem_per_block: g.arg_u64("shared memory").and_then(|v| u32::try_from(v).ok()),
        bytes: if is_kernel { None } else { g.arg_u64("bytes") },
        stream: g.args.and_then(|a| a.get("stream")).and_then(Value::as_i64),
    })
}

/// The direction of a Kineto memcpy from its name (`Memcpy HtoD (Pinned -> Device)`).
pub fn copy_kind(name: &str) -> Option<OpKind> {
    if name.contains("HtoD") {
        Some(OpKind::CopyH2D)
    } else if name.contains("DtoH") {
        Some(OpKind::CopyD2H)
    } else if name.contains("DtoD") || name.contains("PtoP") {
        Some(OpKind::CopyD2D)
    } else {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A hand-made Kineto trace: marker, H2D copy, two kernels, D2H copy, stream sync, marker,
    /// the profiler's own device sync, plus noise (a flow event, an API call that launches nothing, a kernel of an earlier step).
    pub(crate) fn fixture() -> String {
        r#"{"schemaVersion": 1, "traceEvents": [
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaMemGetInfo", "ts": 100.0, "dur": 5.0, "args": {"correlation": 1}},
 {"ph": "X", "cat": "kernel", "name": "stale_kernel", "ts": 50.0, "dur": 3.0, "args": {"correlation": 0, "grid": [1,1,1], "block": [32,1,1]}},
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaMemcpyAsync", "ts": 120.0, "dur": 4.0, "args": {"correlation": 2}},
 {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pinned -> Device)", "ts": 126.0, "dur": 48.0, "args": {"correlation": 2, "bytes": 2408448, "stream": 7}},
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamIsCapturing", "ts": 130.0, "dur": 1.0, "args": {"correlation": 3}},
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 140.0, "dur": 3.0, "args": {"correlation": 4}},
 {"ph": "X", "cat": "kernel", "name": "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, std::array<char*, 1ul> >(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)", "ts": 175.0, "dur": 2.5, "args": {"correlation": 4, "stream": 7, "registers per thread": 16, "shared memory": 0, "blocks per SM": 0.03, "grid": [4, 1, 1], "block": [128, 1, 1]}},
 {"ph": "s", "cat": "ac2g", "name": "ac2g", "ts": 140.0, "id": 4},
 {"ph": "X", "cat": "cuda_driver", "name": "cuLaunchKernelEx", "ts": 160.0, "dur": 4.0, "args": {"correlation": 5}},
 {"ph": "X", "cat": "kernel", "name": "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas", "ts": 178.0, "dur": 20.0, "args": {"correlation": 5, "stream": 7, "registers per thread": 168, "shared memory": 197632, "grid": [1, 8, 1], "block": [384, 1, 1]}},
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaMemcpyAsync", "ts": 170.0, "dur": 40.0, "args": {"correlation": 6}},
 {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy DtoH (Device -> Pageable)", "ts": 199.0, "dur": 2.0, "args": {"correlation": 6, "bytes": 16000, "stream": 7}},
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 212.0, "dur": 2.0, "args": {"correlation": 7}},
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaMemGetInfo", "ts": 230.0, "dur": 3.0, "args": {"correlation": 8}},
 {"ph": "X", "cat": "cuda_runtime", "name": "cudaDeviceSynchronize", "ts": 240.0, "dur": 3.0, "args": {"correlation": 9}}
]}"#
        .to_string()
    }

    fn path() -> PathBuf {
        PathBuf::from("kineto-0.json")
    }

    #[test]
    fn reads_the_step_between_the_markers() {
        let s = parse_step(&fixture(), &path()).unwrap();
        assert_eq!((s.start_us, s.end_us), (105.0, 230.0));
        let kinds: Vec<StepItemKind> = s.items.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds,
            vec![
                StepItemKind::Gpu(OpKind::CopyH2D),
                StepItemKind::Gpu(OpKind::Kernel),
                StepItemKind::Gpu(OpKind::Kernel),
                StepItemKind::Gpu(OpKind::CopyD2H),
                StepItemKind::Sync,
            ]
        );
        assert_eq!(s.unattributed, 0);
        let k = &s.items[2];
        assert_eq!(k.api, "cuLaunchKernelEx");
        assert_eq!(k.grid, Some(Dim3::new(1, 8, 1)));
        assert_eq!(k.block, Some(Dim3::linear(384)));
        assert_eq!(k.registers_per_thread, Some(168));
        assert_eq!(k.shared_mem_per_block, Some(197_632));
        assert_eq!(k.gpu, Some((178.0, 198.0)));
        assert_eq!(s.items[0].bytes, Some(2_408_448));
        assert!((s.kernel_time_us() - 22.5).abs() < 1e-9);
    }

    #[test]
    fn the_wall_clock_moves_a_late_step_start() {
        let mut s = parse_step(&fixture(), &path()).unwrap();
        // End marker at 230 us; the host measured 100 us: the step began at 130, not 105.
        // The first op's call (120) caps it.
        assert!((s.start_from_wall(0.1) - 15.0).abs() < 1e-9);
        assert_eq!(s.start_us, 120.0);
        let mut s = parse_step(&fixture(), &path()).unwrap();
        assert!((s.start_from_wall(0.115) - 10.0).abs() < 1e-9);
        assert_eq!(s.start_us, 115.0);
        // A wall longer than the marker span, or none, leaves the marker's start.
        for w in [0.2, 0.0, f64::NAN] {
            let mut s = parse_step(&fixture(), &path()).unwrap();
            assert_eq!(s.start_from_wall(w), 0.0);
            assert_eq!(s.start_us, 105.0);
        }
    }

    #[test]
    fn errors_name_the_file_and_event() {
        let bad = fixture().replace(r#""grid": [4, 1, 1]"#, r#""grid": [4, 0]"#);
        let msg = parse_step(&bad, &path()).unwrap_err().to_string();
        assert!(msg.starts_with("kineto-0.json, traceEvents[6]"), "{msg}");
        assert!(msg.contains("field `args.grid`"), "{msg}");
        let bad = fixture().replace(r#""ts": 160.0"#, r#""ts": "soon""#);
        let msg = parse_step(&bad, &path()).unwrap_err().to_string();
        assert!(msg.contains("traceEvents[8], field `ts`: `\"soon\"` is not a number"), "{msg}");
        let msg = parse_step("{\"traceEvents\": []}", &path()).unwrap_err().to_string();
        assert!(msg.contains("two `cudaMemGetInfo` markers") && msg.ends_with("found 0"), "{msg}");
        // An old capture (device-sync markers) still reads.
        let old = fixture().replace(",\n {\"ph\": \"X\", \"cat\": \"cuda_runtime\", \"name\": \"cudaDeviceSynchronize\", \"ts\": 240.0, \"dur\": 3.0, \"args\": {\"correlation\": 9}}", "").replace("cudaMemGetInfo", "cudaDeviceSynchronize");
        assert_eq!(parse_step(&old, &path()).unwrap().items.len(), 5);
        let msg = parse_step("{\"traceEvents\": [", &path()).unwrap_err().to_string();
        assert!(msg.contains("not a JSON chrome trace"), "{msg}");
        let bad = fixture().replace("Memcpy DtoH", "Memcpy ???");
        let msg = parse_step(&bad, &path()).unwrap_err().to_string();
        assert!(msg.contains("direction"), "{msg}");
    }
}
