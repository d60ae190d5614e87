//! The one trait every scheduling policy implements.

use crate::client::{ClientId, ClientInfo};
use crate::state::{Completion, DeviceInfo, RequestDone, SchedContext, SchedState};
use serde_json::Value;
use std::collections::BTreeMap;

/// Which backend drives the policy (policies must not behave differently; this only lets a
/// policy refuse a mechanism a backend lacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The discrete-event simulator.
    Sim,
    /// A real GPU.
    Real,
}

/// Priority of a client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamPriority {
    /// The lowest priority (CUDA's default).
    Low,
    /// The highest priority the device offers.
    High,
}

/// Whether clients share one GPU or each gets its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// All clients share one GPU.
    Shared,
    /// Each client runs alone on a dedicated GPU (the `ideal` reference).
    Dedicated,
}

/// What a policy learns before the run starts.
#[derive(Debug, Clone)]
pub struct PolicySetup<'a> {
    /// The clients.
    pub clients: &'a [ClientInfo],
    /// The device.
    pub device: &'a DeviceInfo,
    /// Which backend runs it.
    pub backend: Backend,
}

impl PolicySetup<'_> {
    /// The HP client, if any.
    pub fn hp(&self) -> Option<&ClientInfo> {
        self.clients.iter().find(|c| c.is_hp())
    }
}

/// Errors of building or setting up a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// No policy has this name.
    #[error("unknown policy `{name}` (expected one of: {expected})")]
    Unknown {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        expected: String,
    },
    /// A parameter is invalid or not known to the policy.
    #[error("policy `{policy}`: parameter `{key}`: {message}")]
    Param {
        /// The policy.
        policy: String,
        /// The parameter.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The policy cannot run this scenario or on this backend.
    #[error("policy `{policy}`: {message}")]
    Unsupported {
        /// The policy.
        policy: String,
        /// Why.
        message: String,
    },
}

/// A scheduling policy: decides, op by op, what each client submits to the GPU and when.
///
/// The same object runs in the simulator and on the real GPU. A backend calls [`setup`] once,
/// then [`schedule`] after every change of the state (an op issued, an op completed, a request
/// begun or ended, a requested wake-up), and the notification hooks as things complete. A
/// policy never knows which backend drives it beyond [`PolicySetup::backend`].
///
/// [`setup`]: Policy::setup
/// [`schedule`]: Policy::schedule
pub trait Policy: Send {
    /// The policy's name (`orion`, `reef`, ...).
    fn name(&self) -> &'static str;

    /// Resolves defaults that depend on the clients and checks the scenario is supported.
    fn setup(&mut self, setup: &PolicySetup<'_>) -> Result<(), PolicyError> {
        let _ = setup;
        Ok(())
    }

    /// The priority of a client's stream.
    fn stream_priority(&self, client: &ClientInfo) -> StreamPriority;

    /// Whether clients share the GPU (every policy but `ideal`).
    fn sharing(&self) -> Sharing {
        Sharing::Shared
    }

    /// Capacity of a client's host-side queue: a client's host blocks while this many of its
    /// ops wait unsubmitted. `None`: unbounded.
    fn host_queue_limit(&self, client: &ClientInfo) -> Option<usize> {
        let _ = client;
        None
    }

    /// Decides what to submit now.
    fn schedule(&mut self, cx: &mut SchedContext<'_>);

    /// Whether a backend may skip [`schedule`](Policy::schedule) calls while `client` is the
    /// only client with anything to do (every other client has no request under way and no op
    /// queued or in flight), submitting each op of `client` itself as soon as it is issued.
    ///
    /// Answer `true` only if, in that situation, every `schedule` call submits all queued ops of
    /// `client`, asks for no wake-up, and leaves the policy in a state that does not depend on
    /// how many such calls were made (one call after the stretch, which the backend makes,
    /// leaves it as a call after every change would have). The notification hooks are still
    /// called for everything that happens. The simulator then fast-forwards such stretches
    /// without calling the policy per op; the default, `false`, keeps every call.
    fn lone_client_submits_at_once(&self, client: ClientId, state: &SchedState) -> bool {
        let _ = (client, state);
        false
    }

    /// Whether each client makes its own launch calls, from its own process (`mps`: one
    /// process per client under the MPS daemon), rather than the backend's one scheduler
    /// thread making every client's. A device's central submitter
    /// ([`SubmitterSpec`](orion_traces::SubmitterSpec)) models that thread, so the simulator
    /// applies it only when this is `false`, the default.
    fn clients_submit_separately(&self) -> bool {
        false
    }

    /// Whether a backend may run `client`'s GPU work on a model of a GPU that has nothing else
    /// to do while `client` is the only client with anything to do, still calling
    /// [`schedule`](Policy::schedule) after every change and every requested wake-up as usual.
    ///
    /// Answer `true` only if, in that situation, `schedule` never preempts (it can only submit
    /// `client`'s ops: no other client has any). The simulator then runs such stretches on its
    /// lone-stream model, with the same policy calls; the default, `false`, keeps the full GPU
    /// model. Policies that answer [`lone_client_submits_at_once`] take the cheaper path that
    /// skips the calls.
    ///
    /// [`lone_client_submits_at_once`]: Policy::lone_client_submits_at_once
    fn lone_client_only_submits(&self, client: ClientId, state: &SchedState) -> bool {
        let _ = (client, state);
        false
    }

    /// Whether [`on_op_complete`](Policy::on_op_complete) does nothing (as by default). A backend
    /// may then skip it, e.g. when it replays a whole request of a client alone, fast-forwarded
    /// ([`lone_client_submits_at_once`](Policy::lone_client_submits_at_once)), from a request
    /// it simulated before. The default, `false`, keeps every call.
    fn ignores_op_completions(&self) -> bool {
        false
    }

    /// An op completed (called before the next [`schedule`](Policy::schedule)).
    fn on_op_complete(&mut self, done: &Completion<'_>) {
        let _ = done;
    }

    /// A request (iteration) completed.
    fn on_request_complete(&mut self, done: &RequestDone) {
        let _ = done;
    }

    /// A request (iteration) of a client began (its arrival was reached and the client is free).
    fn on_request_begin(&mut self, client: ClientId, now: u64) {
        let _ = (client, now);
    }

    /// The resolved parameters, for the report.
    fn params(&self) -> BTreeMap<String, Value> {
        BTreeMap::new()
    }

    /// Policy-specific counters for the report (e.g. REEF's padded kernels).
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}
