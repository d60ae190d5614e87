//! A tiny driver for policies: clients with hand-built ops, explicit issue/complete/schedule.

#![allow(dead_code)]

use orion_policies::{
    Action, Backend, ClientInfo, ClientState, DeviceInfo, ParamMap, Policy, PolicySetup, ProfileRef, RequestDone,
    SchedState, registry,
};
use orion_traces::{KernelClass, OpKind, OpRecord, Role, WorkKind};
use std::sync::Arc;

pub const US: u64 = 1_000;

pub fn kernel(class: KernelClass, sm_needed: u32, duration_us: u64) -> OpRecord {
    OpRecord::kernel("k", duration_us * US, sm_needed, class)
}

pub fn copy() -> OpRecord {
    OpRecord::new(OpKind::CopyH2D, "h2d", 5 * US, 0, KernelClass::Unknown)
}

pub struct Client {
    pub role: Role,
    pub kind: WorkKind,
    pub ops: Vec<OpRecord>,
    pub warmup: u32,
    pub update_start: Option<usize>,
    pub standalone_latency_ns: u64,
}

impl Client {
    pub fn hp(ops: Vec<OpRecord>) -> Self {
        Client {
            role: Role::Hp,
            kind: WorkKind::Inference,
            ops,
            warmup: 0,
            update_start: None,
            standalone_latency_ns: 4_000 * US,
        }
    }
    pub fn be(ops: Vec<OpRecord>) -> Self {
        Client {
            role: Role::Be,
            kind: WorkKind::Training,
            ops,
            warmup: 0,
            update_start: None,
            standalone_latency_ns: 50_000 * US,
        }
    }
}

pub struct Harness {
    pub state: SchedState,
    pub policy: Box<dyn Policy>,
    pub now: u64,
    pub next_index: Vec<usize>,
    /// Submitted ops as (client, index in request), in order.
    pub submitted: Vec<(usize, usize)>,
    pub preempted: Vec<usize>,
    pub wake: Option<u64>,
}

impl Harness {
    pub fn new(policy: &str, params: &[(&str, serde_json::Value)], clients: Vec<Client>) -> Self {
        Self::with_backend(policy, params, clients, Backend::Sim).unwrap()
    }

    pub fn with_backend(
        policy: &str,
        params: &[(&str, serde_json::Value)],
        clients: Vec<Client>,
        backend: Backend,
    ) -> Result<Self, orion_policies::PolicyError> {
        let map: ParamMap = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let mut policy = registry::build(policy, &map)?;
        let device = DeviceInfo { name: "test".into(), sm_count: 100 };
        let infos: Vec<ClientInfo> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| ClientInfo {
                id: i,
                name: format!("c{i}"),
                role: c.role,
                kind: c.kind,
                warmup: c.warmup,
                ops_per_request: c.ops.len(),
                standalone_latency_ns: c.standalone_latency_ns,
                max_sm_needed: c.ops.iter().map(|o| o.sm_needed).max().unwrap_or(0),
                update_start: c.update_start,
            })
            .collect();
        policy.setup(&PolicySetup { clients: &infos, device: &device, backend })?;
        let states = clients
            .into_iter()
            .zip(&infos)
            .map(|(c, info)| ClientState::new(info.clone(), vec![Arc::from(c.ops)]))
            .collect();
        let n = infos.len();
        let mut h = Harness {
            state: SchedState::new(states, device),
            policy,
            now: 0,
            next_index: vec![0; n],
            submitted: Vec::new(),
            preempted: Vec::new(),
            wake: None,
        };
        for c in 0..n {
            h.state.begin_request(c);
        }
        Ok(h)
    }

    /// The host of `c` issues its next `n` ops.
    pub fn issue(&mut self, c: usize, n: usize) {
        for _ in 0..n {
            let i = self.next_index[c];
            self.state.issue(c, i, ProfileRef { table: 0, row: i as u32 }, self.now);
            self.next_index[c] += 1;
        }
    }

    /// The oldest in-flight op of `c` completes.
    pub fn complete(&mut self, c: usize) {
        self.state.complete(c);
    }

    /// Ends `c`'s request (all its ops done) and starts the next, reporting `latency_ns`.
    pub fn finish_request(&mut self, c: usize, latency_ns: u64) {
        let request = self.state.client(c).request();
        let warmup = self.state.client(c).in_warmup();
        self.state.end_request(c);
        self.policy.on_request_complete(&RequestDone {
            client: c,
            request,
            arrival: self.now,
            completed_at: self.now + latency_ns,
            warmup,
        });
        self.state.begin_request(c);
        self.next_index[c] = 0;
    }

    /// Calls the policy; returns the ops it submitted in this call.
    pub fn schedule(&mut self) -> Vec<(usize, usize)> {
        let mut actions = Vec::new();
        let mut cx = self.state.context(self.now, &mut actions);
        self.policy.schedule(&mut cx);
        self.wake = cx.wake();
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::Submit { client, seq } => {
                    let op = self.state.client(client).in_flight().iter().find(|f| f.op.seq == seq).unwrap().op;
                    out.push((client, op.index));
                }
                Action::Preempt { client } => self.preempted.push(client),
            }
        }
        self.submitted.extend(&out);
        out
    }
}
