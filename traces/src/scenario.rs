//! A resolved scenario: which clients share which device, for how long, under which policy.
//!
//! Files (Orion's `config.json`, the project's scenario JSON) and command lines are turned into
//! this one form, which both backends consume.

use crate::arrival::ArrivalProcess;
use crate::device::DeviceSpec;
use crate::trace::Trace;
use crate::workload::{Role, WorkKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Default number of warm-up requests per client excluded from statistics.
pub const DEFAULT_WARMUP: u32 = 10;

/// One job sharing the GPU.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Display name (e.g. `resnet50`).
    pub name: String,
    /// HP or BE.
    pub role: Role,
    /// Inference (requests) or training (iterations).
    pub kind: WorkKind,
    /// The ops of one request or iteration (the steady state).
    pub trace: Arc<Trace>,
    /// The ops of the first request or iteration when they differ from the steady state
    /// (Orion's `kernel_file` when an `additional_kernel_file` is given).
    pub first_trace: Option<Arc<Trace>>,
    /// How requests arrive (training clients are closed loop).
    pub arrival: ArrivalProcess,
    /// Stop issuing after this many requests or iterations (warm-up included).
    pub max_requests: Option<u64>,
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// Simulated (or wall) time limit, ns.
    pub duration_ns: Option<u64>,
    /// Stop once the HP client (or, without one, the first client) has completed this many
    /// measured requests (warm-up excluded).
    pub requests: Option<u64>,
}

impl Stop {
    /// The default: 20 seconds.
    pub const DEFAULT: Stop = Stop { duration_ns: Some(20_000_000_000), requests: None };
}

/// Everything a backend needs to run one policy on one set of clients.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name for reports (e.g. `resnet50_bert`).
    pub name: String,
    /// The clients; at most one has role HP.
    pub clients: Vec<ClientSpec>,
    /// The device.
    pub device: DeviceSpec,
    /// Where the device description came from (`builtin:h100` or a path).
    pub device_source: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// When the run ends.
    pub stop: Stop,
    /// Warm-up requests per client excluded from statistics.
    pub warmup: u32,
    /// Policy named by the scenario, if any (the command line may override it).
    pub policy: Option<String>,
    /// Policy parameters (name -> value), validated by the policy.
    pub policy_params: BTreeMap<String, Value>,
}

impl Scenario {
    /// Index of the HP client, if there is one.
    pub fn hp_client(&self) -> Option<usize> {
        self.clients.iter().position(|c| c.role == Role::Hp)
    }

    /// Checks the invariants every backend relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients.is_empty() {
            return Err("the scenario has no clients".into());
        }
        let hp = self.clients.iter().filter(|c| c.role == Role::Hp).count();
        if hp > 1 {
            return Err(format!("{hp} clients are high-priority; at most one may be"));
        }
        for c in &self.clients {
            c.arrival.validate().map_err(|(f, m)| format!("client `{}`: arrival {f}: {m}", c.name))?;
            if c.trace.ops.is_empty() {
                return Err(format!("client `{}`: trace `{}` has no ops", c.name, c.trace.meta.name));
            }
            if c.kind == WorkKind::Training && c.arrival.is_open_loop() {
                return Err(format!("client `{}`: a training client runs closed loop, not {}", c.name, c.arrival));
            }
        }
        if self.stop.duration_ns.is_none()
            && self.stop.requests.is_none()
            && self.clients.iter().any(|c| c.max_requests.is_none())
        {
            return Err("the run has no end: give a duration, a request count, or per-client request limits".into());
        }
        if self.stop.duration_ns == Some(0) {
            return Err("the duration must be positive".into());
        }
        Ok(())
    }
}
