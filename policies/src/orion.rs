//! `orion`: Orion (EuroSys'24), interference-aware admission of best-effort kernels.
//!
//! HP ops go straight to the highest-priority stream. BE clients are visited round-robin, at
//! most one op per client per scheduling round (one poll of Orion's scheduler loop; polls are
//! `round` apart, default 1 us); the head op of a BE client is admitted when ANY of:
//! 1. no HP request is in flight (the HP has no queued or running op);
//! 2. the op is not a kernel (copy, memset, allocation, free);
//! 3. the BE client is still in its warm-up requests;
//! 4. `sm_needed` of the op plus the SMs of BE kernels admitted in this round is at most
//!    `sm_threshold`, and the op's class differs from the class of the HP's most recently
//!    submitted kernel (or either is unknown).
//!
//! With a training HP, once the HP has issued op `update_start` of its iteration and op
//! `update_start - 1` has completed, BE kernels with `sm_needed <= sm_threshold` are admitted
//! regardless of class (the optimizer update phase).
//!
//! The duration gate applies on top of the rules: the standalone durations of admitted BE
//! kernels are summed; once the sum exceeds `dur_threshold`, no BE op is admitted until every
//! outstanding BE kernel has completed, and the sum restarts from zero.
//!
//! `sm_threshold` defaults to the device's SM count for an inference HP; for a training HP it
//! starts at half the largest `sm_needed` of the (first) BE client and is adapted by binary
//! search every 10 HP iterations to keep the mean HP iteration time under `hp_limit`.

use crate::client::{ClientId, ClientInfo};
use crate::params::{ParamMap, Params, us_value};
use crate::policy::{Policy, PolicyError, PolicySetup, StreamPriority};
use crate::state::{RequestDone, SchedContext, SchedState};
use orion_traces::{KernelClass, WorkKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Which rule admitted a BE op (for the report's counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    HpIdle,
    NotKernel,
    Warmup,
    UpdatePhase,
    Compatible,
}

/// The Orion policy.
#[derive(Debug)]
pub struct Orion {
    given_dur_threshold: Option<u64>,
    given_sm_threshold: Option<u32>,
    given_hp_limit: Option<u64>,
    given_update_start: Option<usize>,
    round_ns: u64,
    dur_threshold: u64,
    sm_threshold: u32,
    initial_sm_threshold: u32,
    hp_limit: Option<u64>,
    update_start: Option<usize>,
    hp_training: bool,
    hp_client_id: Option<ClientId>,
    hp_last_class: KernelClass,
    be_dur_sum: u64,
    gate_closed: bool,
    cursor: usize,
    low_sms: u32,
    high_sms: u32,
    window_ns: u64,
    window_count: u32,
    counters: [u64; 5],
    gate_closures: u64,
    threshold_updates: u64,
}

/// Iterations of the training HP between two steps of the SM-threshold binary search.
pub const SEARCH_WINDOW: u32 = 10;

impl Orion {
    /// Builds the policy from parameters `dur_threshold`, `sm_threshold`, `hp_limit`,
    /// `update_start` and `round`; defaults are resolved at setup.
    pub fn from_params(map: &ParamMap) -> Result<Self, PolicyError> {
        let mut p = Params::new("orion", map);
        let given_dur_threshold = p.duration_ns("dur_threshold")?;
        let given_sm_threshold = p.uint("sm_threshold")?.map(|v| v.min(u32::MAX as u64) as u32);
        let given_hp_limit = p.duration_ns("hp_limit")?;
        let given_update_start = p.uint("update_start")?.map(|v| v as usize);
        let round_ns = p.duration_ns("round")?.unwrap_or(1_000);
        p.finish()?;
        if round_ns == 0 {
            return Err(PolicyError::Param {
                policy: "orion".into(),
                key: "round".into(),
                message: "must be positive".into(),
            });
        }
        if given_sm_threshold == Some(0) {
            return Err(PolicyError::Param {
                policy: "orion".into(),
                key: "sm_threshold".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(Orion {
            given_dur_threshold,
            given_sm_threshold,
            given_hp_limit,
            given_update_start,
            round_ns,
            dur_threshold: u64::MAX,
            sm_threshold: 0,
            initial_sm_threshold: 0,
            hp_limit: None,
            update_start: None,
            hp_training: false,
            hp_client_id: None,
            hp_last_class: KernelClass::Unknown,
            be_dur_sum: 0,
            gate_closed: false,
            cursor: 0,
            low_sms: 0,
            high_sms: 0,
            window_ns: 0,
            window_count: 0,
            counters: [0; 5],
            gate_closures: 0,
            threshold_updates: 0,
        })
    }

    /// The SM threshold in force now.
    pub fn sm_threshold(&self) -> u32 {
        self.sm_threshold
    }

    /// The duration threshold in force, ns.
    pub fn dur_threshold(&self) -> u64 {
        self.dur_threshold
    }

    fn admit_rule(&self, cx: &SchedContext<'_>, c: ClientId, hp: Option<ClientId>, round_sms: u32) -> Option<Rule> {
        let (_, rec) = cx.head(c)?;
        let Some(hp) = hp.filter(|&h| cx.has_work(h)) else {
            return Some(Rule::HpIdle);
        };
        if !rec.kind.is_kernel() {
            return Some(Rule::NotKernel);
        }
        if cx.client(c).in_warmup() {
            return Some(Rule::Warmup);
        }
        if let Some(start) = self.update_start {
            let h = cx.client(hp);
            let submitted = h.completed_in_request() + h.in_flight().len();
            if h.request_active()
                && submitted >= start
                && h.completed_in_request() >= start
                && rec.sm_needed <= self.sm_threshold
            {
                return Some(Rule::UpdatePhase);
            }
        }
        let fits = rec.sm_needed.saturating_add(round_sms) <= self.sm_threshold;
        let compatible = rec.class != self.hp_last_class
            || rec.class == KernelClass::Unknown
            || self.hp_last_class == KernelClass::Unknown;
        (fits && compatible).then_some(Rule::Compatible)
    }
}

impl Policy for Orion {
    fn name(&self) -> &'static str {
        "orion"
    }

    fn setup(&mut self, setup: &PolicySetup<'_>) -> Result<(), PolicyError> {
        let hp = setup.hp();
        self.hp_training = hp.is_some_and(|h| h.kind == WorkKind::Training);
        self.hp_client_id = hp.map(|h| h.id);
        let first_be_max = setup.clients.iter().find(|c| !c.is_hp()).map_or(0, |c| c.max_sm_needed);
        self.dur_threshold = match (self.given_dur_threshold, hp) {
            (Some(d), _) => d,
            // 2.5% of the HP's standalone request latency.
            (None, Some(h)) => (h.standalone_latency_ns as f64 * 0.025).round().max(1.0) as u64,
            (None, None) => u64::MAX,
        };
        self.sm_threshold = match self.given_sm_threshold {
            Some(v) => v,
            None if self.hp_training => (first_be_max / 2).max(1),
            None => setup.device.sm_count,
        };
        self.initial_sm_threshold = self.sm_threshold;
        self.low_sms = 0;
        self.high_sms = if self.hp_training { first_be_max.max(self.sm_threshold) } else { self.sm_threshold };
        self.hp_limit = match (self.given_hp_limit, hp) {
            (Some(l), _) => Some(l),
            // Without a limit, allow the training HP 10% over its standalone iteration time.
            (None, Some(h)) if self.hp_training => Some((h.standalone_latency_ns as f64 * 1.1).round() as u64),
            _ => None,
        };
        self.update_start =
            if self.hp_training { self.given_update_start.or(hp.and_then(|h| h.update_start)) } else { None };
        Ok(())
    }

    fn stream_priority(&self, client: &ClientInfo) -> StreamPriority {
        if client.is_hp() { StreamPriority::High } else { StreamPriority::Low }
    }

    fn schedule(&mut self, cx: &mut SchedContext<'_>) {
        let hp = cx.hp();
        if let Some(h) = hp {
            while let Some(rec) = cx.submit(h) {
                if rec.kind.is_kernel() {
                    self.hp_last_class = rec.class;
                }
            }
        }
        let n = cx.num_clients();
        if self.gate_closed {
            if (0..n).any(|c| Some(c) != hp && cx.client(c).in_flight_kernels() > 0) {
                return;
            }
            self.gate_closed = false;
            self.be_dur_sum = 0;
        }
        // One scheduling round (one poll of Orion's loop): each BE client, from the round-robin
        // cursor, may have its head op admitted.
        let mut round_sms = 0u32;
        let mut admitted = false;
        for k in 0..n {
            let c = (self.cursor + k) % n;
            if Some(c) == hp {
                continue;
            }
            let Some(rule) = self.admit_rule(cx, c, hp, round_sms) else {
                continue;
            };
            let rec = cx.submit(c).expect("head op exists");
            admitted = true;
            self.counters[rule as usize] += 1;
            if rec.kind.is_kernel() {
                round_sms = round_sms.saturating_add(rec.sm_needed);
                self.be_dur_sum = self.be_dur_sum.saturating_add(rec.duration_ns);
                if self.be_dur_sum > self.dur_threshold {
                    self.gate_closed = true;
                    self.gate_closures += 1;
                    break;
                }
            }
        }
        self.cursor = (self.cursor + 1) % n;
        // The next poll comes one round later; ask for it while BE work may still be admitted
        // (held ops are otherwise reconsidered at the next completion or issue).
        if admitted && !self.gate_closed && (0..n).any(|c| Some(c) != hp && !cx.client(c).pending().is_empty()) {
            let t = cx.now() + self.round_ns;
            cx.wake_at(t);
        }
    }

    fn on_request_complete(&mut self, done: &RequestDone) {
        if !self.hp_training || self.hp_limit.is_none() {
            return;
        }
        // Only the HP's iterations drive the search; `on_request_complete` is called for every
        // client, so compare against the client the search is about.
        if Some(done.client) != self.hp_client_id {
            return;
        }
        self.window_ns += done.latency_ns();
        self.window_count += 1;
        if self.window_count < SEARCH_WINDOW {
            return;
        }
        let avg = self.window_ns / SEARCH_WINDOW as u64;
        self.window_ns = 0;
        self.window_count = 0;
        if self.low_sms == self.sm_threshold {
            return;
        }
        if avg > self.hp_limit.unwrap_or(u64::MAX) {
            self.high_sms = self.sm_threshold;
        } else {
            self.low_sms = self.sm_threshold;
        }
        self.sm_threshold = ((self.low_sms + self.high_sms) / 2).max(1);
        self.threshold_updates += 1;
    }

    fn lone_client_only_submits(&self, _client: ClientId, _state: &SchedState) -> bool {
        // Orion only submits (it never preempts): with the HP idle it admits one BE op per round
        // and closes its duration gate, which the calls made as usual decide.
        true
    }

    fn ignores_op_completions(&self) -> bool {
        true
    }

    fn params(&self) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        m.insert(
            "dur_threshold_us".into(),
            if self.dur_threshold == u64::MAX { Value::Null } else { us_value(self.dur_threshold) },
        );
        m.insert("sm_threshold".into(), json!(self.initial_sm_threshold));
        m.insert("hp_limit_us".into(), self.hp_limit.map_or(Value::Null, us_value));
        m.insert("update_start".into(), self.update_start.map_or(Value::Null, |v| json!(v)));
        m.insert("round_us".into(), us_value(self.round_ns));
        m
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        m.insert("be_admitted_hp_idle".into(), self.counters[Rule::HpIdle as usize]);
        m.insert("be_admitted_not_kernel".into(), self.counters[Rule::NotKernel as usize]);
        m.insert("be_admitted_warmup".into(), self.counters[Rule::Warmup as usize]);
        m.insert("be_admitted_update_phase".into(), self.counters[Rule::UpdatePhase as usize]);
        m.insert("be_admitted_compatible".into(), self.counters[Rule::Compatible as usize]);
        m.insert("duration_gate_closures".into(), self.gate_closures);
        if self.hp_training {
            m.insert("sm_threshold_final".into(), self.sm_threshold as u64);
            m.insert("sm_threshold_updates".into(), self.threshold_updates);
        }
        m
    }
}
