//! `reef`: REEF (OSDI'22) as it can run on NVIDIA GPUs, following Orion's REEF baseline.
//!
//! * HP ops are submitted at once on the high-priority stream.
//! * BE ops wait in host-side queues of depth `reef_depth` (a BE host blocks when its queue is
//!   full). While an HP request is in flight (the HP has a queued or running op) nothing new of
//!   the BE clients is submitted, except by **dynamic kernel padding**: when an HP kernel is
//!   submitted, at most one BE kernel may be co-launched with it, if it fits in the SMs the HP
//!   kernel leaves free (`be.sm_needed <= SMs - hp.sm_needed`) and is not longer than the HP
//!   kernel (`padding = "reef"`, the default); or, as Orion's artifact implements the test, if
//!   `be.duration <= hp.duration` and `be.sm_needed >= hp.sm_needed` (`padding =
//!   "orion-artifact"`).
//! * When no HP request is in flight, BE queues are drained in batches: each scheduling round in
//!   which BE ops are pending adds one to a counter; when it reaches `reef_depth`, every BE
//!   client's head op is submitted and the counter restarts. A scheduling round is one pass of
//!   the scheduler's polling loop, `round` long (default 1 us), so both backends drain at the
//!   same pace.
//! * `reset = true` (simulator only) models REEF's reset-based preemption on AMD GPUs: when an HP
//!   request arrives, the BE clients' running and queued GPU work is killed and re-executed
//!   later; the lost work is reported.

use crate::client::{ClientId, ClientInfo};
use crate::params::{ParamMap, Params, us_value};
use crate::policy::{Backend, Policy, PolicyError, PolicySetup, StreamPriority};
use crate::state::{SchedContext, SchedState};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// How the padding test decides whether a BE kernel may accompany an HP kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// REEF's rule: fits in the SMs the HP kernel leaves free and is not longer.
    Reef,
    /// Orion's artifact: not longer, and needs at least as many SMs.
    OrionArtifact,
}

/// The REEF policy.
#[derive(Debug)]
pub struct Reef {
    depth: u64,
    padding: Padding,
    reset: bool,
    round_ns: u64,
    sm_count: u32,
    cursor: usize,
    /// Rounds counted before the current stretch of pending BE work began.
    carried_rounds: u64,
    /// Start of the current stretch of rounds with BE work pending and the HP idle.
    stretch_start: Option<u64>,
    hp_was_busy: bool,
    padded: u64,
    drains: u64,
    preemptions: u64,
}

impl Reef {
    /// Builds the policy from parameters `reef_depth`, `padding`, `reset`, `round`.
    pub fn from_params(map: &ParamMap) -> Result<Self, PolicyError> {
        let mut p = Params::new("reef", map);
        let depth = p.uint("reef_depth")?.unwrap_or(12);
        let padding = match p.choice("padding", &["reef", "orion-artifact"])? {
            Some("orion-artifact") => Padding::OrionArtifact,
            _ => Padding::Reef,
        };
        let reset = p.boolean("reset")?.unwrap_or(false);
        let round_ns = p.duration_ns("round")?.unwrap_or(1_000);
        p.finish()?;
        let bad = |key: &str, message: &str| PolicyError::Param {
            policy: "reef".into(),
            key: key.into(),
            message: message.into(),
        };
        if depth == 0 {
            return Err(bad("reef_depth", "must be at least 1"));
        }
        if round_ns == 0 {
            return Err(bad("round", "must be positive"));
        }
        Ok(Reef {
            depth,
            padding,
            reset,
            round_ns,
            sm_count: 0,
            cursor: 0,
            carried_rounds: 0,
            stretch_start: None,
            hp_was_busy: false,
            padded: 0,
            drains: 0,
            preemptions: 0,
        })
    }

    fn pads(&self, hp_sm: u32, hp_dur: u64, be_sm: u32, be_dur: u64) -> bool {
        match self.padding {
            Padding::Reef => be_dur <= hp_dur && be_sm <= self.sm_count.saturating_sub(hp_sm),
            Padding::OrionArtifact => be_dur <= hp_dur && be_sm >= hp_sm,
        }
    }

    /// Submits at most one BE kernel that passes the padding test against an HP kernel.
    fn pad(&mut self, cx: &mut SchedContext<'_>, hp: ClientId, hp_sm: u32, hp_dur: u64) {
        let n = cx.num_clients();
        for k in 0..n {
            let c = (self.cursor + k) % n;
            if c == hp {
                continue;
            }
            let Some((_, rec)) = cx.head(c) else { continue };
            if rec.kind.is_kernel() && self.pads(hp_sm, hp_dur, rec.sm_needed, rec.duration_ns) {
                cx.submit(c);
                self.padded += 1;
                self.cursor = (c + 1) % n;
                return;
            }
        }
    }

    /// Rounds counted by `now`: those carried over plus the rounds of the current stretch that
    /// have begun (a stretch may start one round after a drain, in the future).
    fn rounds_now(&self, now: u64) -> u64 {
        let current = match self.stretch_start {
            Some(s) if now >= s => (now - s) / self.round_ns + 1,
            _ => 0,
        };
        self.carried_rounds + current
    }
}

impl Policy for Reef {
    fn name(&self) -> &'static str {
        "reef"
    }

    fn setup(&mut self, setup: &PolicySetup<'_>) -> Result<(), PolicyError> {
        if self.reset && setup.backend == Backend::Real {
            return Err(PolicyError::Unsupported {
                policy: "reef".into(),
                message: "reset-based preemption (reset=true) exists only in the simulator: NVIDIA GPUs cannot kill running kernels".into(),
            });
        }
        self.sm_count = setup.device.sm_count;
        Ok(())
    }

    fn stream_priority(&self, client: &ClientInfo) -> StreamPriority {
        if client.is_hp() { StreamPriority::High } else { StreamPriority::Low }
    }

    fn host_queue_limit(&self, client: &ClientInfo) -> Option<usize> {
        (!client.is_hp()).then_some(self.depth as usize)
    }

    fn schedule(&mut self, cx: &mut SchedContext<'_>) {
        let hp = cx.hp();
        let n = cx.num_clients();
        let hp_busy = hp.is_some_and(|h| cx.has_work(h));
        if self.reset && hp_busy && !self.hp_was_busy {
            for c in (0..n).filter(|&c| Some(c) != hp) {
                if !cx.client(c).in_flight().is_empty() {
                    cx.preempt(c);
                    self.preemptions += 1;
                }
            }
        }
        self.hp_was_busy = hp_busy;
        if let Some(h) = hp {
            while let Some(rec) = cx.submit(h) {
                if rec.kind.is_kernel() {
                    let (sm, dur) = (rec.sm_needed, rec.duration_ns);
                    self.pad(cx, h, sm, dur);
                }
            }
        }
        let be_pending = (0..n).any(|c| Some(c) != hp && !cx.client(c).pending().is_empty());
        let now = cx.now();
        if hp_busy || !be_pending {
            // The stretch of rounds ends; the rounds counted so far are kept.
            self.carried_rounds = self.rounds_now(now).min(self.depth);
            self.stretch_start = None;
            return;
        }
        let start = *self.stretch_start.get_or_insert(now);
        if self.rounds_now(now) >= self.depth {
            for c in 0..n {
                if Some(c) != hp {
                    cx.submit(c);
                }
            }
            self.drains += 1;
            self.carried_rounds = 0;
            self.stretch_start = None;
            if (0..n).any(|c| Some(c) != hp && !cx.client(c).pending().is_empty()) {
                self.stretch_start = Some(now + self.round_ns);
                cx.wake_at(now + self.depth * self.round_ns);
            }
        } else {
            let need = self.depth - self.carried_rounds - 1;
            cx.wake_at(start + need * self.round_ns);
        }
    }

    fn lone_client_only_submits(&self, _client: ClientId, _state: &SchedState) -> bool {
        // REEF preempts only the BE clients' in-flight work when an HP request begins; while
        // one client alone has anything to do, no other client has work in flight and the HP
        // cannot become busy unless it is that client, whose work is never preempted.
        true
    }

    fn ignores_op_completions(&self) -> bool {
        true
    }

    fn params(&self) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        m.insert("reef_depth".into(), json!(self.depth));
        m.insert(
            "padding".into(),
            json!(match self.padding {
                Padding::Reef => "reef",
                Padding::OrionArtifact => "orion-artifact",
            }),
        );
        m.insert("reset".into(), json!(self.reset));
        m.insert("round_us".into(), us_value(self.round_ns));
        m
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        m.insert("padded_be_kernels".into(), self.padded);
        m.insert("batched_drains".into(), self.drains);
        if self.reset {
            m.insert("preemptions".into(), self.preemptions);
        }
        m
    }
}
