//! Device descriptions: the data a GPU model needs, loaded from JSON files; presets embedded.
//!
//! A new device is a data file, not code: `DeviceSpec::from_file` reads one, and the built-in
//! presets (`v100`, `a100`, `h100`) are the JSON files in `traces/devices/` compiled in.

use crate::error::{Location, Result, TraceError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Per-SM resource limits, as the CUDA occupancy calculator uses them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmLimits {
    /// Maximum resident threads per SM.
    pub max_threads: u32,
    /// Maximum resident warps per SM.
    pub max_warps: u32,
    /// Maximum resident blocks per SM.
    pub max_blocks: u32,
    /// 32-bit registers per SM.
    pub registers: u32,
    /// Register allocation unit per warp (registers).
    pub register_alloc_unit: u32,
    /// Maximum registers per thread.
    pub max_registers_per_thread: u32,
    /// Shared memory per SM usable by blocks (bytes).
    pub shared_mem_bytes: u32,
    /// Maximum shared memory one block may use (bytes).
    pub max_shared_mem_per_block: u32,
    /// Shared memory the system reserves per resident block (bytes).
    pub reserved_shared_mem_per_block: u32,
    /// Shared memory allocation granularity (bytes).
    pub shared_mem_alloc_unit: u32,
}

/// Parameters of the contention model, fitted by the validation suite's calibration step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentionParams {
    /// Issue utilisation below which a kernel is latency-bound and does not feel issue
    /// contention until the shared SMs are oversubscribed past it (0..1).
    pub latency_floor: f64,
    /// Fraction of peak DRAM bandwidth the device sustains (0..1]: the level delivered
    /// bandwidth saturates at as demand grows (DRAM latency rises with load; see the
    /// simulator's contention model).
    pub dram_efficiency: f64,
    /// Extra slowdown per co-resident kernel sharing SMs (cache and scheduler interference).
    pub colocation_penalty: f64,
    /// What a compute-class kernel without measurements is assumed to draw: (issue demand of
    /// one resident block on its SM, as a fraction of the SM's issue capacity, 0..1; DRAM
    /// demand of an SM full of its warps at every SM, as a multiple of peak bandwidth at
    /// unloaded DRAM latency, >= 0: Little's law, bytes in flight over latency, so it can
    /// exceed 1 for a kernel that saturates DRAM).
    pub compute_class_util: [f64; 2],
    /// The same for a memory-class kernel.
    pub memory_class_util: [f64; 2],
    /// The same for an unknown-class kernel.
    pub unknown_class_util: [f64; 2],
}

/// Host-side costs of a deep-learning framework on this machine, used by the analytic trace
/// generator for the host gap before each op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostParams {
    /// Framework dispatch cost of a simple op (elementwise, pooling), ns.
    pub simple_op_ns: u64,
    /// Cost of a cuDNN convolution call (heuristics, descriptors), ns.
    pub conv_op_ns: u64,
    /// Cost of a cuBLAS matmul call, ns.
    pub gemm_op_ns: u64,
    /// Cost of a normalisation op (batch norm, layer norm), ns.
    pub norm_op_ns: u64,
    /// Host cost of one backward op issued by the autograd engine, relative to the forward
    /// op's cost.
    pub backward_factor: f64,
}

/// How ops reach the GPU when one host thread submits every client's: orion-real's replay
/// executor and interposer, like Orion's own scheduler, make every launch call on one thread.
/// Each call takes that thread `launch_call_ns`, so the calls of all clients are serialised;
/// and a call to a stream that already holds `queue_depth` pending ops blocks until one of
/// them completes, holding back every call behind it, whichever client's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitterSpec {
    /// Host time of one launch call (kernel, copy or memset, with the event the backend
    /// records after it), ns.
    pub launch_call_ns: u64,
    /// Ops one stream can hold submitted and not completed before a launch call to it blocks.
    pub queue_depth: u32,
}

/// Provenance of fitted parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Date of the measurement (ISO 8601).
    pub date: String,
    /// What was measured and where the data lives.
    pub source: String,
    /// The folder of measurements the parameters were fitted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Median absolute relative error of the calibration pairs' co-run slowdown, simulated on
    /// the device the fit started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowdown_error_before: Option<f64>,
    /// The same error on the fitted device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowdown_error_after: Option<f64>,
}

/// Everything the simulator and the analytic generator know about one GPU model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Short name used on the command line (`h100`).
    pub name: String,
    /// Marketing name (`NVIDIA H100 SXM5 80GB`).
    pub full_name: String,
    /// Compute capability, e.g. `9.0`.
    pub compute_capability: String,
    /// Number of SMs.
    pub sm_count: u32,
    /// Per-SM limits.
    pub sm: SmLimits,
    /// Peak DRAM bandwidth, GB/s.
    pub dram_bandwidth_gbs: f64,
    /// L2 cache size, bytes.
    pub l2_bytes: u64,
    /// Peak FP32 (non-tensor) throughput, TFLOP/s.
    pub peak_fp32_tflops: f64,
    /// Peak TF32 tensor-core throughput (dense), TFLOP/s; FP32 peak where there are none.
    pub peak_tf32_tflops: f64,
    /// Peak FP16/BF16 tensor-core throughput (dense), TFLOP/s.
    pub peak_fp16_tflops: f64,
    /// Host-to-device copy bandwidth (pinned memory), GB/s.
    pub h2d_bandwidth_gbs: f64,
    /// Device-to-host copy bandwidth (pinned memory), GB/s.
    pub d2h_bandwidth_gbs: f64,
    /// Device-to-device copy bandwidth counting bytes read and written, GB/s.
    pub d2d_bandwidth_gbs: f64,
    /// Time from a launch call until the GPU can start the op, ns.
    pub launch_latency_ns: u64,
    /// Minimum GPU-side gap between two consecutive ops of one stream, ns.
    pub kernel_gap_ns: u64,
    /// Shortest kernel duration the device produces, ns.
    pub min_kernel_ns: u64,
    /// Contention model parameters.
    pub contention: ContentionParams,
    /// Framework host costs for analytic traces.
    pub host: HostParams,
    /// One host thread submits every client's ops (see [`SubmitterSpec`]); absent, each client
    /// submits its own (as separate processes under MPS, or threads with their own streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<SubmitterSpec>,
    /// Where fitted parameters come from, when they were fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// Which built-in traces the built-in workloads use on this device: measured ones where
    /// `model_kernels/` has them (the default), or always the analytic estimates.
    #[serde(default, skip_serializing_if = "BuiltinTraces::is_default")]
    pub builtin_traces: BuiltinTraces,
}

/// Which built-in traces a device's built-in workloads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTraces {
    /// The measured trace when one is embedded for this device, model, mode and batch; the
    /// analytic one otherwise.
    #[default]
    MeasuredWhenAvailable,
    /// Always the analytic trace (e.g. to keep results comparable with earlier ones).
    Analytic,
}

impl BuiltinTraces {
    fn is_default(&self) -> bool {
        *self == BuiltinTraces::default()
    }
}

const PRESETS: [(&str, &str); 3] = [
    ("v100", include_str!("../devices/v100.json")),
    ("a100", include_str!("../devices/a100.json")),
    ("h100", include_str!("../devices/h100.json")),
];

impl DeviceSpec {
    /// Names of the built-in presets.
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS.iter().map(|(n, _)| *n).collect()
    }

    /// A built-in preset by name (`v100`, `a100`, `h100`; case-insensitive).
    pub fn preset(name: &str) -> Result<DeviceSpec> {
        let key = name.trim().to_ascii_lowercase();
        let (n, text) = PRESETS.iter().find(|(n, _)| *n == key).ok_or_else(|| TraceError::Unknown {
            what: "device",
            name: name.to_string(),
            expected: Self::preset_names().into_iter().map(String::from).collect(),
        })?;
        Self::from_json_str(text, Location::file(format!("<built-in device {n}>")))
    }

    /// Reads a device file.
    pub fn from_file(path: &Path) -> Result<DeviceSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
        Self::from_json_str(&text, Location::file(path))
    }

    /// Parses a device description from JSON; `origin` names the source in errors.
    pub fn from_json_str(text: &str, origin: Location) -> Result<DeviceSpec> {
        let spec: DeviceSpec = serde_json::from_str(text)
            .map_err(|e| TraceError::invalid(origin.clone().line(e.line() as u64), e.to_string()))?;
        spec.validate().map_err(|(field, msg)| TraceError::invalid(origin.field(field), msg))?;
        Ok(spec)
    }

    /// Checks that every quantity is physically meaningful.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        let positive = [
            ("dram_bandwidth_gbs", self.dram_bandwidth_gbs),
            ("peak_fp32_tflops", self.peak_fp32_tflops),
            ("peak_tf32_tflops", self.peak_tf32_tflops),
            ("peak_fp16_tflops", self.peak_fp16_tflops),
            ("h2d_bandwidth_gbs", self.h2d_bandwidth_gbs),
            ("d2h_bandwidth_gbs", self.d2h_bandwidth_gbs),
            ("d2d_bandwidth_gbs", self.d2d_bandwidth_gbs),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err((field, format!("must be a positive number, got {v}")));
            }
        }
        if self.sm_count == 0 {
            return Err(("sm_count", "must be at least 1".into()));
        }
        let sm = &self.sm;
        for (field, v) in [
            ("sm.max_threads", sm.max_threads),
            ("sm.max_warps", sm.max_warps),
            ("sm.max_blocks", sm.max_blocks),
            ("sm.registers", sm.registers),
            ("sm.register_alloc_unit", sm.register_alloc_unit),
            ("sm.max_registers_per_thread", sm.max_registers_per_thread),
            ("sm.shared_mem_alloc_unit", sm.shared_mem_alloc_unit),
        ] {
            if v == 0 {
                return Err((field, "must be at least 1".into()));
            }
        }
        if self.submitter.is_some_and(|s| s.queue_depth == 0) {
            return Err(("submitter.queue_depth", "must be at least 1".into()));
        }
        let c = &self.contention;
        if !(0.0..1.0).contains(&c.latency_floor) {
            return Err(("contention.latency_floor", format!("must be in [0, 1), got {}", c.latency_floor)));
        }
        if !(c.dram_efficiency > 0.0 && c.dram_efficiency <= 1.0) {
            return Err(("contention.dram_efficiency", format!("must be in (0, 1], got {}", c.dram_efficiency)));
        }
        if !(c.colocation_penalty >= 0.0 && c.colocation_penalty.is_finite()) {
            return Err(("contention.colocation_penalty", "must be a non-negative number".into()));
        }
        for (field, u) in [
            ("contention.compute_class_util", c.compute_class_util),
            ("contention.memory_class_util", c.memory_class_util),
            ("contention.unknown_class_util", c.unknown_class_util),
        ] {
            if !(0.0..=1.0).contains(&u[0]) {
                return Err((field, format!("the issue demand (first) must be in [0, 1], got {u:?}")));
            }
            if !(u[1] >= 0.0 && u[1].is_finite()) {
                return Err((field, format!("the DRAM demand (second) must be a non-negative number, got {u:?}")));
            }
        }
        if !(self.host.backward_factor > 0.0 && self.host.backward_factor.is_finite()) {
            return Err(("host.backward_factor", "must be a positive number".into()));
        }
        Ok(())
    }

    /// The roofline knee in FLOPs per DRAM byte (FP32 peak over DRAM bandwidth), the arithmetic
    /// intensity above which Orion calls a kernel compute-bound.
    pub fn roofline_knee(&self) -> f64 {
        self.peak_fp32_tflops * 1e12 / (self.dram_bandwidth_gbs * 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_defaults_take_an_issue_fraction_and_a_dram_demand_past_peak() {
        let mut d = DeviceSpec::preset("h100").unwrap();
        // A streaming kernel filling every SM asks for several times the peak bandwidth.
        d.contention.memory_class_util = [0.3, 11.5];
        assert!(d.validate().is_ok());
        d.contention.memory_class_util = [1.2, 11.5];
        let (field, msg) = d.validate().unwrap_err();
        assert_eq!(field, "contention.memory_class_util");
        assert!(msg.contains("issue demand"), "{msg}");
        for bad in [-0.1, f64::INFINITY, f64::NAN] {
            d.contention.memory_class_util = [0.3, bad];
            let (field, msg) = d.validate().unwrap_err();
            assert_eq!(field, "contention.memory_class_util");
            assert!(msg.contains("DRAM demand"), "{msg}");
        }
    }
}
