//! What a policy knows about each client: static facts, and the live queues a backend keeps.

use orion_traces::{OpRecord, Role, WorkKind};
use std::collections::VecDeque;
use std::sync::Arc;

/// Index of a client in its scenario.
pub type ClientId = usize;

/// Static facts about a client that a policy may use.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Index in the scenario.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    /// HP or BE.
    pub role: Role,
    /// Inference or training.
    pub kind: WorkKind,
    /// Requests (iterations) of warm-up.
    pub warmup: u32,
    /// Ops per request (iteration) in the steady state.
    pub ops_per_request: usize,
    /// Latency of one request (iteration) with the GPU to itself, ns (host gaps included).
    pub standalone_latency_ns: u64,
    /// Largest `sm_needed` of the client's kernels.
    pub max_sm_needed: u32,
    /// Training: op index where the optimizer update phase starts, when known.
    pub update_start: Option<usize>,
}

impl ClientInfo {
    /// Whether this is the HP client.
    pub fn is_hp(&self) -> bool {
        self.role == Role::Hp
    }
}

/// Where an op's profile lives: which of the client's profile tables, and which row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProfileRef {
    /// Table index (0: the steady-state trace; backends may add more, e.g. a first-iteration
    /// trace or fallback profiles).
    pub table: u16,
    /// Row in the table.
    pub row: u32,
}

/// An op issued by a client's host and not yet submitted to the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedOp {
    /// Per-client sequence number, increasing in program order.
    pub seq: u64,
    /// Position of the op in its request (iteration).
    pub index: usize,
    /// Request (iteration) number, counting from 0.
    pub request: u64,
    /// When the host issued it, ns.
    pub issued_at: u64,
    /// Its profile.
    pub profile: ProfileRef,
    /// Whether it is a kernel (cached from the profile for speed).
    pub is_kernel: bool,
}

/// An op submitted to the GPU and not yet completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightOp {
    /// The op.
    pub op: QueuedOp,
    /// When the policy submitted it, ns.
    pub submitted_at: u64,
}

/// The live state of one client as every backend maintains it.
#[derive(Debug, Clone)]
pub struct ClientState {
    pub(crate) info: ClientInfo,
    pub(crate) tables: Vec<Arc<[OpRecord]>>,
    pub(crate) pending: VecDeque<QueuedOp>,
    pub(crate) in_flight: VecDeque<InFlightOp>,
    pub(crate) in_flight_kernels: usize,
    pub(crate) request_active: bool,
    pub(crate) request: u64,
    pub(crate) requests_completed: u64,
    pub(crate) completed_in_request: usize,
    pub(crate) next_seq: u64,
}

impl ClientState {
    /// A client with its profile tables (table 0 is the steady-state trace).
    pub fn new(info: ClientInfo, tables: Vec<Arc<[OpRecord]>>) -> Self {
        ClientState {
            info,
            tables,
            pending: VecDeque::new(),
            in_flight: VecDeque::new(),
            in_flight_kernels: 0,
            request_active: false,
            request: 0,
            requests_completed: 0,
            completed_in_request: 0,
            next_seq: 0,
        }
    }

    /// Static facts.
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// The profile an op refers to.
    pub fn record(&self, p: ProfileRef) -> &OpRecord {
        &self.tables[p.table as usize][p.row as usize]
    }

    /// Ops issued and not yet submitted, oldest first.
    pub fn pending(&self) -> &VecDeque<QueuedOp> {
        &self.pending
    }

    /// Ops submitted and not yet completed, oldest first.
    pub fn in_flight(&self) -> &VecDeque<InFlightOp> {
        &self.in_flight
    }

    /// Number of submitted kernels not yet completed.
    pub fn in_flight_kernels(&self) -> usize {
        self.in_flight_kernels
    }

    /// Whether the client has any op queued or running.
    pub fn has_work(&self) -> bool {
        !self.pending.is_empty() || !self.in_flight.is_empty()
    }

    /// Whether a request (iteration) has started and not completed.
    pub fn request_active(&self) -> bool {
        self.request_active
    }

    /// Number of the current (or next) request, counting from 0.
    pub fn request(&self) -> u64 {
        self.request
    }

    /// Requests (iterations) completed so far, warm-up included.
    pub fn requests_completed(&self) -> u64 {
        self.requests_completed
    }

    /// Whether the client is still in its warm-up requests.
    pub fn in_warmup(&self) -> bool {
        self.request < self.info.warmup as u64
    }

    /// Ops of the current request that have completed.
    pub fn completed_in_request(&self) -> usize {
        self.completed_in_request
    }

    /// Ops of the current request issued so far (completed, in flight or queued).
    pub fn issued_in_request(&self) -> usize {
        self.completed_in_request + self.in_flight.len() + self.pending.len()
    }
}
