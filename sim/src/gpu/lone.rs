//! Fast-forwarding one stream that has the GPU to itself.
//!
//! An op that runs with nothing else on the GPU (no other kernel, transfer or stream) always
//! runs the same way, wherever it starts: the model only ever uses time differences. So its
//! duration, the stream's gap after it, its cohorts and the busy-SM integral it adds are
//! measured once, by running it alone on a scratch model, and reused. [`Lone`] runs a stream
//! from those measurements alone, op after op, and hands the stream back to the model exactly
//! as the model would have left it: every op that started has completed, and the ops still
//! queued wait with their visibility times.
//!
//! The busy-SM integral is replayed increment by increment, in the order the model adds them,
//! so that it is the same floating-point sum.

use super::{GpuModel, NEVER, StreamOp};
use crate::shape::Exec;
use orion_traces::DeviceSpec;
use std::collections::{HashMap, VecDeque};

/// A whole request of a client alone, as the fast path processed it from its beginning, to be
/// replayed: from the end of the instant it began (the ops its host issued then are submitted,
/// none has completed) to its end (the completion of its last op, or a host event after it).
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// From its beginning to its end, ns.
    pub duration: u64,
    /// From the completion of its last op to its end, ns.
    idle_after: u64,
    /// Ops on the stream at its beginning.
    queued: u64,
    /// Ops completed.
    ops: u64,
    /// Ops issued after its beginning.
    pub issued: u64,
    /// Host events processed.
    pub host_events: u64,
    cohorts: u64,
    events: u64,
    /// Its busy-SM increments: `replay_increments[from..to]`.
    from: usize,
    to: usize,
    /// From its end until the stream may start its next op, ns (negative: before its end).
    ready_after: i64,
}

/// What a request's replay depends on: the client, its profile table, and how long after the
/// request began the stream could start an op after its previous one (0 if it already could).
type ReplayKey = (usize, u16, u64);

/// A request being recorded for [`Replay`].
#[derive(Debug)]
struct Recording {
    key: ReplayKey,
    began: u64,
    /// The client's request number while it runs.
    request: u64,
    queued: u64,
    completed: u64,
    cohorts: u64,
    events: u64,
    host_events: u64,
    /// Its completed ops' measurements, in completion order.
    solos: Vec<u32>,
}

/// Requests recorded at most, over all clients and keys (each keeps its busy-SM increments).
const MAX_REPLAYS: usize = 256;

/// How an op runs alone, measured on the scratch model.
#[derive(Debug, Clone, Copy)]
struct Solo {
    /// From its start to its completion, ns.
    duration: u64,
    /// From its completion until the stream may start its next op, ns.
    after: u64,
    /// Cohorts it ran as.
    cohorts: u64,
    /// GPU events the model processed for it (its start, cohort and transfer completions).
    events: u64,
    /// Its busy-SM increments: `increments[from..to]`.
    from: u32,
    to: u32,
}

/// An op of the lone stream: submitted, not completed.
#[derive(Debug, Clone, Copy)]
struct LoneOp {
    seq: u64,
    exec: Exec,
    visible_at: u64,
    end: u64,
    solo: u32,
}

/// The solo measurements of every op met so far, and the state of a stream being
/// fast-forwarded.
#[derive(Debug)]
pub struct Lone {
    scratch: GpuModel,
    /// Per client, per profile table, per row: index into `solos`, or `u32::MAX`.
    index: Vec<Vec<Vec<u32>>>,
    solos: Vec<Solo>,
    increments: Vec<f64>,
    // The stretch under way.
    stream: usize,
    ops: VecDeque<LoneOp>,
    /// When the stream may start the op after the last one in `ops`.
    ready_next: u64,
    /// The stream's `ready_at` after the last completed op.
    ready_done: u64,
    /// The model's clock after the last completed op.
    now: u64,
    busy: f64,
    completed: u64,
    cohorts: u64,
    /// GPU events to count for the completed ops.
    events: u64,
    /// Count each op's events as the model would have processed them (else one per op).
    full_events: bool,
    horizon: u64,
    bound: u64,
    /// Recorded requests by what they depend on; `None`: not replayable (it ended otherwise
    /// than by an op's completion).
    replays: HashMap<ReplayKey, Option<Replay>>,
    replay_increments: Vec<f64>,
    recording: Option<Recording>,
}

impl Lone {
    /// Measurements for ops of clients whose profile tables have `table_sizes[client][table]`
    /// rows, on `device`.
    pub fn new(device: &DeviceSpec, table_sizes: &[Vec<usize>]) -> Self {
        let mut scratch = GpuModel::new(device, &[0]);
        scratch.busy_log = Some(Vec::new());
        Lone {
            scratch,
            index: table_sizes.iter().map(|t| t.iter().map(|&n| vec![u32::MAX; n]).collect()).collect(),
            solos: Vec::new(),
            increments: Vec::new(),
            stream: 0,
            ops: VecDeque::new(),
            ready_next: 0,
            ready_done: 0,
            now: 0,
            busy: 0.0,
            completed: 0,
            cohorts: 0,
            events: 0,
            full_events: false,
            horizon: NEVER,
            bound: NEVER,
            replays: HashMap::new(),
            replay_increments: Vec::new(),
            recording: None,
        }
    }

    /// The measurement of op `row` of profile table `table` of `client`, whose shape is
    /// `exec`.
    fn solo(&mut self, client: usize, table: u16, row: u32, exec: Exec) -> u32 {
        let slot = &mut self.index[client][table as usize][row as usize];
        if *slot == u32::MAX {
            *slot = self.solos.len() as u32;
            let s = &mut self.scratch;
            let log_from = s.busy_log.as_ref().map_or(0, Vec::len);
            let (starts, cohorts, events) = (s.stats.starts, s.stats.cohorts, s.stats.events);
            let first = s.now;
            s.submit(0, 0, exec, first);
            let start = first.max(s.streams[0].ready_at);
            let mut done = Vec::new();
            while done.is_empty() {
                let t = s.next_time();
                assert!(t != NEVER, "an op alone always completes");
                s.advance(t, &mut done);
            }
            let end = s.now;
            assert_eq!(s.stats.starts - starts, 1, "one op started");
            assert!(s.kernels.is_empty() && s.transfers.iter().all(Vec::is_empty), "the op ran alone");
            let log = s.busy_log.as_mut().expect("the scratch model logs its busy increments");
            let from = self.increments.len() as u32;
            self.increments.extend_from_slice(&log[log_from..]);
            log.clear();
            self.solos.push(Solo {
                duration: end - start,
                after: s.streams[0].ready_at - end,
                cohorts: s.stats.cohorts - cohorts,
                events: s.stats.events - events,
                from,
                to: self.increments.len() as u32,
            });
        }
        *slot
    }

    /// Takes over `stream` of `gpu`, which must be [alone](GpuModel::alone), for a stretch in
    /// which nothing else can happen before `horizon`. `profiles` gives, for each op queued on
    /// the stream (oldest first), its client, profile table and row. With `full_events`, each
    /// completed op counts the GPU events the model would have processed for it (its start,
    /// cohorts, transfer completion), else one.
    pub fn begin(
        &mut self,
        gpu: &mut GpuModel,
        stream: usize,
        horizon: u64,
        profiles: impl Iterator<Item = (u16, u32)>,
        full_events: bool,
    ) {
        debug_assert!(gpu.alone(stream));
        self.stream = stream;
        self.horizon = horizon;
        self.bound = horizon;
        self.ready_done = gpu.streams[stream].ready_at;
        self.ready_next = self.ready_done;
        self.now = gpu.now;
        self.busy = gpu.stats.busy_sm_ns;
        self.completed = 0;
        self.cohorts = 0;
        self.events = 0;
        self.full_events = full_events;
        self.ops.clear();
        let queued = std::mem::take(&mut gpu.streams[stream].queue);
        let mut profiles = profiles;
        for op in queued {
            let (table, row) = profiles.next().expect("a profile for every queued op");
            self.submit(stream, op.seq, op.exec, table, row, op.visible_at);
        }
        gpu.next_time = NEVER;
    }

    /// Submits op `seq` (row `row` of profile table `table`, shape `exec`) of the client of the
    /// lone stream; it becomes visible at `visible_at`.
    pub fn submit(&mut self, client: usize, seq: u64, exec: Exec, table: u16, row: u32, visible_at: u64) {
        let solo = self.solo(client, table, row, exec);
        let m = self.solos[solo as usize];
        let start = visible_at.max(self.ready_next);
        let end = start + m.duration;
        self.ready_next = end + m.after;
        if end >= self.horizon {
            // It would still run when something else can happen: the stretch ends before it
            // starts.
            self.bound = self.bound.min(start);
        }
        self.ops.push_back(LoneOp { seq, exec, visible_at, end, solo });
    }

    /// The stretch must end before this time: the horizon, or the start of the first op that
    /// would still run at the horizon.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// When the oldest op completes ([`NEVER`] if none is queued).
    pub fn next_completion(&self) -> u64 {
        self.ops.front().map_or(NEVER, |o| o.end)
    }

    /// Completes the oldest op if it completes at or before `now`; returns its sequence number.
    pub fn complete(&mut self, now: u64) -> Option<u64> {
        let op = *self.ops.front().filter(|o| o.end <= now)?;
        self.ops.pop_front();
        let m = self.solos[op.solo as usize];
        for &inc in &self.increments[m.from as usize..m.to as usize] {
            self.busy += inc;
        }
        self.completed += 1;
        self.cohorts += m.cohorts;
        self.events += if self.full_events { m.events } else { 1 };
        if let Some(r) = &mut self.recording {
            r.solos.push(op.solo);
        }
        self.ready_done = op.end + m.after;
        self.now = op.end;
        Some(op.seq)
    }

    /// The replay key of a request of `client` on profile table `table` that began at `began`,
    /// none of whose ops has completed.
    pub fn replay_key(&self, client: usize, table: u16, began: u64) -> ReplayKey {
        (client, table, self.ready_done.saturating_sub(began))
    }

    /// The recorded request for `key`: `Some(None)` if it cannot be replayed, `None` if none
    /// was recorded.
    pub fn replay(&self, key: ReplayKey) -> Option<Option<Replay>> {
        self.replays.get(&key).copied()
    }

    /// Replays `r`, a request that began at `began` (with the key it was recorded under), at
    /// the end of that instant: its ops complete, the last at `began + r.duration`.
    pub fn apply(&mut self, r: &Replay, began: u64) {
        debug_assert!(self.ops.len() as u64 == r.queued && self.recording.is_none());
        self.ops.clear();
        let end = began + r.duration;
        for &inc in &self.replay_increments[r.from..r.to] {
            self.busy += inc;
        }
        self.completed += r.ops;
        self.cohorts += r.cohorts;
        self.events += r.events;
        self.ready_done = end.wrapping_add_signed(r.ready_after);
        self.ready_next = self.ready_done;
        self.now = end - r.idle_after;
    }

    /// Starts recording the request of `key` that began at `began` and has request number
    /// `request`, when `host_events` host events were processed so far (unless a recording is
    /// under way or enough requests are recorded).
    pub fn record(&mut self, key: ReplayKey, began: u64, request: u64, host_events: u64) {
        if self.recording.is_some() || self.replays.len() >= MAX_REPLAYS {
            return;
        }
        self.recording = Some(Recording {
            key,
            began,
            request,
            queued: self.ops.len() as u64,
            completed: self.completed,
            cohorts: self.cohorts,
            events: self.events,
            host_events,
            solos: Vec::new(),
        });
    }

    /// The request number of the request being recorded, if any.
    pub fn recording(&self) -> Option<u64> {
        self.recording.as_ref().map(|r| r.request)
    }

    /// The recorded request ended at `end`, when `host_events` host events were processed,
    /// and nothing else happened since (else `None`: it is not replayable).
    pub fn finish_recording(&mut self, end: Option<(u64, u64)>) {
        let Some(r) = self.recording.take() else { return };
        let Some((now, host_events)) = end else {
            self.replays.insert(r.key, None);
            return;
        };
        debug_assert!(self.ops.is_empty() && self.now <= now);
        let from = self.replay_increments.len();
        for &solo in &r.solos {
            let m = self.solos[solo as usize];
            self.replay_increments.extend_from_slice(&self.increments[m.from as usize..m.to as usize]);
        }
        let ops = self.completed - r.completed;
        let replay = Replay {
            duration: now - r.began,
            idle_after: now - self.now,
            queued: r.queued,
            ops,
            issued: ops - r.queued,
            host_events: host_events - r.host_events,
            cohorts: self.cohorts - r.cohorts,
            events: self.events - r.events,
            from,
            to: self.replay_increments.len(),
            ready_after: self.ready_done.wrapping_sub(now) as i64,
        };
        self.replays.insert(r.key, Some(replay));
    }

    /// Ops completed in this stretch.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Hands the stream back to `gpu`: the counters of the completed ops (each counted as one
    /// event unless `full_events`: its start and cohorts were not processed one by one), and the
    /// ops still queued.
    pub fn end(&mut self, gpu: &mut GpuModel) {
        // A request not finished in the stretch is not recorded.
        self.recording = None;
        let s = self.stream;
        gpu.stats.busy_sm_ns = self.busy;
        gpu.stats.events += self.events;
        gpu.stats.starts += self.completed;
        gpu.stats.cohorts += self.cohorts;
        gpu.now = gpu.now.max(self.now);
        let st = &mut gpu.streams[s];
        debug_assert!(!st.head_running && st.queue.is_empty());
        st.ready_at = self.ready_done;
        st.queue.extend(self.ops.drain(..).map(|o| StreamOp { seq: o.seq, exec: o.exec, visible_at: o.visible_at }));
        gpu.refresh_next_time();
    }
}

impl GpuModel {
    /// Whether `stream` has the GPU to itself and nothing running: no kernel or transfer is
    /// active and every other stream is empty.
    pub fn alone(&self, stream: usize) -> bool {
        self.kernels.is_empty()
            && self.transfers.iter().all(Vec::is_empty)
            && self.sampler.is_none()
            && self.log.is_none()
            && self.streams.iter().enumerate().all(|(i, s)| i == stream || s.queue.is_empty())
    }
}
