//! The simulated GPU: streams, the block dispatcher, resident blocks and their progress, copy
//! engines.
//!
//! # Model
//! * **Streams.** Each client has one stream; its ops run in order, the next starting
//!   `kernel_gap_ns` after the previous completes and not before it becomes visible (submission
//!   plus launch latency).
//! * **Block dispatch.** A started kernel's blocks wait for resources. The dispatcher walks the
//!   kernels with undispatched blocks by stream priority, then launch order, and gives each as
//!   many blocks as fit in the free resources (threads, registers, shared memory, block slots,
//!   summed over the SMs), so later kernels get the leftovers. Running blocks are never evicted:
//!   a high-priority kernel wins only the next freed slots. The slots a kernel frees when it
//!   completes go to kernels already waiting before its stream's next op starts (on the GPU
//!   its last wave's blocks end one by one, and the next op waits for the last): a stream of
//!   back-to-back high-priority kernels leaves a waiting low-priority kernel one wave of the
//!   GPU between two of its kernels.
//! * **Cohorts.** Blocks dispatched together form a cohort that finishes together after one
//!   block time (the time of one full wave of the kernel alone, see
//!   [`KernelShape::block_time_ns`](crate::shape::KernelShape::block_time_ns)), scaled by the
//!   contention model (see [`contention`]): longer when others share its SMs or DRAM, shorter
//!   when its blocks are sparser than in a full wave (a partial last wave, blocks left over
//!   after another kernel took some slots). A kernel that is resource-limited and alone in
//!   wanting resources is dispatched as one cohort of several back-to-back waves (its partial
//!   last wave with them while it is alone, taking the time it takes alone), so a many-wave
//!   kernel costs two events instead of one per wave; the cohort is cut back to its current
//!   wave as soon as anything else could use the resources it holds.
//! * **Copies.** Host-device copies use one copy engine per direction, shared equally by the
//!   copies active in that direction; device-side copies and memsets draw DRAM bandwidth and
//!   no SMs.

pub mod contention;
mod lone;
pub mod sampling;

use crate::shape::{Exec, KernelShape, Res};
use contention::{Load, slowdowns};
pub use lone::Lone;
use orion_traces::DeviceSpec;
use orion_traces::device::ContentionParams;
use sampling::Sampler;
pub use sampling::{Utilization, UtilizationWindow};
use std::collections::VecDeque;

/// Time in ns meaning "never".
pub const NEVER: u64 = u64::MAX;

/// An op finished on the GPU: (stream, sequence number).
pub type Done = (usize, u64);

/// When an op ran on the GPU, for logs and timelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSpan {
    /// Stream (client index).
    pub stream: usize,
    /// The op's sequence number on its stream.
    pub seq: u64,
    /// When it started (reached the head of its stream and became visible), ns.
    pub start: u64,
    /// When it completed, ns.
    pub end: u64,
}

#[derive(Debug, Clone, Copy)]
struct StreamOp {
    seq: u64,
    exec: Exec,
    visible_at: u64,
}

#[derive(Debug, Clone)]
struct Stream {
    priority: u8,
    queue: VecDeque<StreamOp>,
    head_running: bool,
    head_started_at: u64,
    ready_at: u64,
}

#[derive(Debug, Clone, Copy)]
struct Cohort {
    /// Blocks per wave (the resources the cohort holds).
    blocks: u64,
    /// Back-to-back waves, the last of which runs only `tail` blocks.
    waves: u64,
    /// Blocks of the last wave (`blocks` when it is full).
    tail: u64,
    /// Work of the last wave, in full waves: 1 when it is full, else the kernel's partial last
    /// wave alone ([`KernelShape::last_wave`](crate::shape::KernelShape::last_wave)); a partial
    /// last wave is only batched while the kernel is alone.
    last_work: f64,
    /// Work done, in full waves.
    progress: f64,
    finish_at: u64,
}

#[derive(Debug, Clone)]
struct ActiveKernel {
    stream: usize,
    priority: u8,
    started_at: u64,
    shape: KernelShape,
    undispatched: u64,
    resident: u64,
    cohorts: Vec<Cohort>,
    /// Progress rate in waves per ns.
    rate: f64,
    sigma: f64,
}

#[derive(Debug, Clone, Copy)]
struct Transfer {
    stream: usize,
    /// Remaining standalone work, ns.
    remaining: f64,
    rate: f64,
    finish_at: u64,
    started_at: u64,
    dram: f64,
}

/// Counters the GPU model keeps for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuStats {
    /// GPU-internal events processed (op starts, cohort and transfer completions).
    pub events: u64,
    /// Of which op starts.
    pub starts: u64,
    /// Of which cohort completions.
    pub cohorts: u64,
    /// Integral of SMs holding at least one block over time, SM-ns.
    pub busy_sm_ns: f64,
    /// Standalone-equivalent time of work killed by preemption, ns.
    pub preempted_work_ns: f64,
}

/// The simulated GPU.
#[derive(Debug, Clone)]
pub struct GpuModel {
    sm_count: u64,
    capacity: Res,
    free: Res,
    params: ContentionParams,
    kernel_gap: u64,
    streams: Vec<Stream>,
    kernels: Vec<ActiveKernel>,
    /// Active transfers: index 0 device-side DMA (D2D copies, memsets), 1 H2D copies, 2 D2H.
    transfers: [Vec<Transfer>; 3],
    now: u64,
    next_time: u64,
    stats: GpuStats,
    log: Option<Vec<OpSpan>>,
    sampler: Option<Box<Sampler>>,
    /// Every non-zero busy-SM increment, in order (for [`Lone`]'s measurements).
    busy_log: Option<Vec<f64>>,
    wave_batching: bool,
    scratch_loads: Vec<Load>,
    scratch_dma: Vec<f64>,
    scratch_sigma: Vec<f64>,
    scratch_sigma_dma: Vec<f64>,
}

impl Cohort {
    /// The wave under way (1-based); at a wave boundary (within rounding), the one just done,
    /// so that a cut there ends the cohort now, as wave-by-wave dispatch would.
    fn current_wave(&self) -> u64 {
        let nearest = self.progress.round();
        if nearest >= 1.0 && (self.progress - nearest).abs() < 1e-6 {
            nearest as u64
        } else {
            self.progress.ceil() as u64
        }
        .clamp(1, self.waves)
    }

    /// Its whole work, in full waves.
    fn work(&self) -> f64 {
        (self.waves - 1) as f64 + self.last_work
    }
}

/// How many blocks needing `need` fit in `free`.
fn fits(free: &Res, need: &Res) -> u64 {
    free.iter().zip(need).filter_map(|(f, n)| f.checked_div(*n)).min().unwrap_or(u64::MAX)
}

/// `free += blocks * per_block` (blocks returning their resources).
fn release(free: &mut Res, per_block: &Res, blocks: u64) {
    for (f, p) in free.iter_mut().zip(per_block) {
        *f += blocks * p;
    }
}

/// `free -= blocks * per_block` (blocks taking resources).
fn acquire(free: &mut Res, per_block: &Res, blocks: u64) {
    for (f, p) in free.iter_mut().zip(per_block) {
        *f -= blocks * p;
    }
}

impl GpuModel {
    /// A GPU for `device` with one stream per entry of `priorities` (higher value = higher
    /// priority).
    pub fn new(device: &DeviceSpec, priorities: &[u8]) -> Self {
        let capacity = crate::shape::gpu_capacity(device);
        GpuModel {
            sm_count: device.sm_count as u64,
            capacity,
            free: capacity,
            params: device.contention.clone(),
            kernel_gap: device.kernel_gap_ns,
            streams: priorities
                .iter()
                .map(|&p| Stream {
                    priority: p,
                    queue: VecDeque::new(),
                    head_running: false,
                    head_started_at: 0,
                    ready_at: 0,
                })
                .collect(),
            kernels: Vec::new(),
            transfers: [Vec::new(), Vec::new(), Vec::new()],
            now: 0,
            next_time: NEVER,
            stats: GpuStats::default(),
            log: None,
            sampler: None,
            busy_log: None,
            wave_batching: true,
            scratch_loads: Vec::new(),
            scratch_dma: Vec::new(),
            scratch_sigma: Vec::new(),
            scratch_sigma_dma: Vec::new(),
        }
    }

    /// Turns dispatching several waves as one cohort on or off (on by default; off dispatches
    /// wave by wave, which must give the same times at a higher event count).
    pub fn set_wave_batching(&mut self, on: bool) {
        self.wave_batching = on;
    }

    /// Starts recording when each op runs (see [`take_log`](Self::take_log)).
    pub fn record_ops(&mut self) {
        self.log.get_or_insert_with(Vec::new);
    }

    /// The ops completed since recording started, in completion order.
    pub fn take_log(&mut self) -> Vec<OpSpan> {
        self.log.take().unwrap_or_default()
    }

    /// Starts sampling per-stream SM occupancy and DRAM bandwidth over `window` (see
    /// [`take_utilization`](Self::take_utilization)). Off by default: it costs a little time
    /// per event.
    pub fn record_utilization(&mut self, window: UtilizationWindow) {
        self.sampler = Some(Box::new(Sampler::new(window, self.streams.len(), self.sm_count as f64)));
    }

    /// The utilisation sampled so far, up to `end` (the end of the run), if sampling is on.
    pub fn take_utilization(&mut self, end: u64) -> Option<Utilization> {
        let mut sampler = self.sampler.take()?;
        if end > self.now {
            sampler.integrate(self.now, end, &self.kernels, &self.transfers[0]);
        }
        Some(sampler.finish(end.max(self.now)))
    }

    /// Counters so far.
    pub fn stats(&self) -> GpuStats {
        self.stats
    }

    /// Time of the next GPU-internal event ([`NEVER`] if idle).
    pub fn next_time(&self) -> u64 {
        self.next_time
    }

    /// Whether nothing is queued or running.
    pub fn is_idle(&self) -> bool {
        self.streams.iter().all(|s| s.queue.is_empty())
    }

    /// Ops of `stream` submitted and not completed (queued or running).
    pub fn pending(&self, stream: usize) -> usize {
        self.streams[stream].queue.len()
    }

    /// Appends an op to `stream`; it becomes visible to the GPU at `visible_at`.
    pub fn submit(&mut self, stream: usize, seq: u64, exec: Exec, visible_at: u64) {
        let s = &mut self.streams[stream];
        s.queue.push_back(StreamOp { seq, exec, visible_at });
        if !s.head_running && s.queue.len() == 1 {
            let start = visible_at.max(s.ready_at).max(self.now);
            self.next_time = self.next_time.min(start);
        }
    }

    /// Kills everything queued or running on `stream` (reset-based preemption). Returns the
    /// sequence numbers removed, oldest first; the work already done is added to
    /// [`GpuStats::preempted_work_ns`].
    pub fn preempt(&mut self, stream: usize, now: u64) -> Vec<u64> {
        self.account(now);
        let removed: Vec<u64> = self.streams[stream].queue.drain(..).map(|o| o.seq).collect();
        if self.streams[stream].head_running {
            self.streams[stream].head_running = false;
            self.streams[stream].ready_at = now;
            if let Some(i) = self.kernels.iter().position(|k| k.stream == stream) {
                let k = self.kernels.remove(i);
                for c in &k.cohorts {
                    release(&mut self.free, &k.shape.per_block, c.blocks);
                }
                self.stats.preempted_work_ns += (now - k.started_at) as f64;
            }
            for list in &mut self.transfers {
                if let Some(i) = list.iter().position(|t| t.stream == stream) {
                    let t = list.remove(i);
                    self.stats.preempted_work_ns += (now - t.started_at) as f64;
                }
            }
            self.dispatch_and_rate(now);
        }
        self.refresh_next_time();
        removed
    }

    /// Integrates busy SMs and progress from the last update to `now`.
    fn account(&mut self, now: u64) {
        if now <= self.now {
            return;
        }
        if let Some(sampler) = &mut self.sampler {
            sampler.integrate(self.now, now, &self.kernels, &self.transfers[0]);
        }
        let dt = (now - self.now) as f64;
        let busy = match self.kernels.as_slice() {
            // A kernel alone in a batched partial last wave covers only that wave's SMs.
            [k] if k.cohorts.len() == 1 && k.cohorts[0].tail < k.cohorts[0].blocks => {
                let c = &k.cohorts[0];
                let full = ((c.waves - 1) as f64 - c.progress).max(0.0) / k.rate;
                let t_full = full.min(dt);
                let s = self.sm_count;
                c.blocks.min(s) as f64 * t_full + c.tail.min(s) as f64 * (dt - t_full)
            }
            kernels => {
                let covered: u64 = kernels.iter().map(|k| k.resident.min(self.sm_count)).sum();
                covered.min(self.sm_count) as f64 * dt
            }
        };
        self.stats.busy_sm_ns += busy;
        if busy != 0.0
            && let Some(log) = &mut self.busy_log
        {
            log.push(busy);
        }
        for k in &mut self.kernels {
            for c in &mut k.cohorts {
                c.progress = (c.progress + dt * k.rate).min(c.work());
            }
        }
        for t in self.transfers.iter_mut().flatten() {
            t.remaining = (t.remaining - dt * t.rate).max(0.0);
        }
        self.now = now;
    }

    /// Processes every GPU-internal event at `now` (which must be [`next_time`](Self::next_time)
    /// or later than the last update) and appends the ops that completed.
    pub fn advance(&mut self, now: u64, done: &mut Vec<Done>) {
        self.account(now);
        loop {
            let mut changed = false;
            let mut kernel_done = false;
            // Cohorts and kernels that finished.
            let mut i = 0;
            while i < self.kernels.len() {
                let k = &mut self.kernels[i];
                let before = k.cohorts.len();
                let free = &mut self.free;
                k.cohorts.retain(|c| {
                    if c.finish_at <= now {
                        release(free, &k.shape.per_block, c.blocks);
                        k.resident -= c.blocks;
                        false
                    } else {
                        true
                    }
                });
                if k.cohorts.len() != before {
                    changed = true;
                    self.stats.events += (before - k.cohorts.len()) as u64;
                    self.stats.cohorts += (before - k.cohorts.len()) as u64;
                }
                if k.cohorts.is_empty() && k.undispatched == 0 {
                    let k = self.kernels.remove(i);
                    kernel_done = true;
                    self.finish_head(k.stream, now, done);
                } else {
                    i += 1;
                }
            }
            // Transfers that finished.
            for list_id in 0..self.transfers.len() {
                let mut j = 0;
                while j < self.transfers[list_id].len() {
                    if self.transfers[list_id][j].finish_at <= now {
                        let t = self.transfers[list_id].remove(j);
                        changed = true;
                        self.stats.events += 1;
                        self.finish_head(t.stream, now, done);
                    } else {
                        j += 1;
                    }
                }
            }
            // The blocks of a kernel's last wave do not all end at one instant: the slots of all
            // but the last were freed, and taken by kernels already waiting, before the kernel
            // completed and its stream could start its next op. So those kernels get the
            // slots freed now before any op that starts now, whatever its priority.
            // (Only a head of higher priority than a waiting kernel would take them first.)
            if kernel_done && self.head_would_overtake(now) {
                self.dispatch_and_rate(now);
            }
            // Stream heads that can start.
            for s in 0..self.streams.len() {
                let st = &self.streams[s];
                if st.head_running {
                    continue;
                }
                let Some(op) = st.queue.front() else { continue };
                if op.visible_at.max(st.ready_at) > now {
                    continue;
                }
                let op = *op;
                changed = true;
                self.stats.events += 1;
                self.stats.starts += 1;
                self.start(s, op, now, done);
            }
            if !changed {
                break;
            }
            self.dispatch_and_rate(now);
        }
        self.refresh_next_time();
    }

    /// Whether a stream head that can start at `now` has a higher priority than a kernel
    /// waiting for slots: with blocks not dispatched, or in waves of a multi-wave cohort after
    /// the one under way (wave-by-wave dispatch would hold those as not dispatched).
    fn head_would_overtake(&self, now: u64) -> bool {
        let waiting = |k: &&ActiveKernel| k.undispatched > 0 || k.cohorts.iter().any(|c| c.current_wave() < c.waves);
        let Some(lowest) = self.kernels.iter().filter(waiting).map(|k| k.priority).min() else {
            return false;
        };
        self.streams.iter().any(|s| {
            !s.head_running
                && s.priority > lowest
                && s.queue.front().is_some_and(|op| op.visible_at.max(s.ready_at) <= now)
        })
    }

    fn finish_head(&mut self, stream: usize, now: u64, done: &mut Vec<Done>) {
        let s = &mut self.streams[stream];
        let op = s.queue.pop_front().expect("finished op is the stream head");
        s.head_running = false;
        s.ready_at = now + self.kernel_gap;
        if let Some(log) = &mut self.log {
            log.push(OpSpan { stream, seq: op.seq, start: s.head_started_at, end: now });
        }
        done.push((stream, op.seq));
    }

    fn start(&mut self, stream: usize, op: StreamOp, now: u64, done: &mut Vec<Done>) {
        let priority = self.streams[stream].priority;
        self.streams[stream].head_running = true;
        self.streams[stream].head_started_at = now;
        match op.exec {
            Exec::Kernel(shape) => {
                let k = ActiveKernel {
                    stream,
                    priority,
                    started_at: now,
                    shape,
                    undispatched: shape.blocks,
                    resident: 0,
                    cohorts: Vec::new(),
                    rate: 0.0,
                    sigma: 1.0,
                };
                // Keep kernels in dispatch precedence: priority first, then launch order.
                let pos = self.kernels.iter().position(|o| o.priority < priority).unwrap_or(self.kernels.len());
                self.kernels.insert(pos, k);
            }
            Exec::Copy { dir, work_ns } => self.transfers[1 + dir].push(Transfer {
                stream,
                remaining: work_ns.max(1.0),
                rate: 1.0,
                finish_at: NEVER,
                started_at: now,
                dram: 0.0,
            }),
            Exec::Dma { work_ns, dram } => self.transfers[0].push(Transfer {
                stream,
                remaining: work_ns.max(1.0),
                rate: 1.0,
                finish_at: NEVER,
                started_at: now,
                dram,
            }),
            Exec::Instant => {
                let s = &mut self.streams[stream];
                s.queue.pop_front();
                s.head_running = false;
                s.ready_at = now;
                if let Some(log) = &mut self.log {
                    log.push(OpSpan { stream, seq: op.seq, start: now, end: now });
                }
                done.push((stream, op.seq));
            }
        }
    }

    /// Gives free resources to waiting blocks, then recomputes every rate and finish time.
    fn dispatch_and_rate(&mut self, now: u64) {
        let n = self.kernels.len();
        // Anything else on the GPU feels a kernel's resident blocks, which drop in a partial
        // last wave: that wave then needs its own cohort (and event).
        let not_alone = n > 1 || !self.transfers[0].is_empty();
        // First cut multi-wave cohorts back wherever wave-by-wave dispatch would now decide
        // differently (cutting is always exact: wave-by-wave re-decides at every boundary), so
        // that every slot they give back is free before anything is dispatched.
        let mut cut = false;
        for i in 0..n {
            let ahead_waiting = self.kernels[..i].iter().any(|k| k.undispatched > 0);
            let free = &mut self.free;
            let k = &mut self.kernels[i];
            let more_fit = fits(free, &k.shape.per_block) > 0;
            for c in &mut k.cohorts {
                let current = c.current_wave();
                if (ahead_waiting || more_fit) && current < c.waves {
                    // A kernel ahead is waiting, or more of this kernel's blocks would fit: the
                    // dispatcher decides afresh at the next wave boundary.
                    k.undispatched += (c.waves - current - 1) * c.blocks + c.tail;
                    c.waves = current;
                    c.tail = c.blocks;
                    c.last_work = 1.0;
                    c.finish_at = NEVER;
                    cut = true;
                } else if not_alone && c.tail < c.blocks {
                    if current < c.waves {
                        // Others share the GPU: end the cohort before the partial last wave, so
                        // that its leftovers and its lighter load are seen when it starts.
                        k.undispatched += c.tail;
                        c.waves -= 1;
                        c.tail = c.blocks;
                        c.last_work = 1.0;
                        c.finish_at = NEVER;
                        cut = true;
                    } else {
                        // Already in the partial last wave: give back the slots it does not use,
                        // and count what is left of it in waves of its own (the contention
                        // model now rates its sparser load).
                        let spare = c.blocks - c.tail;
                        release(free, &k.shape.per_block, spare);
                        k.resident -= spare;
                        c.blocks = c.tail;
                        let start = (c.waves - 1) as f64;
                        c.progress = start + (c.progress - start) / c.last_work;
                        c.last_work = 1.0;
                        c.finish_at = NEVER;
                    }
                }
            }
            // A cohort cut at a wave boundary is done: its slots are free for this dispatch, as
            // they would be after the wave's own completion event.
            let before = k.cohorts.len();
            k.cohorts.retain(|c| {
                let ended = c.finish_at == NEVER && c.progress >= c.work() - 1e-6;
                if ended {
                    release(free, &k.shape.per_block, c.blocks);
                    k.resident -= c.blocks;
                }
                !ended
            });
            let ended = (before - k.cohorts.len()) as u64;
            self.stats.events += ended;
            self.stats.cohorts += ended;
        }
        // Then hand free resources to waiting blocks by priority, then launch order.
        for i in 0..n {
            let ahead_waiting = self.kernels[..i].iter().any(|k| k.undispatched > 0);
            let free = &mut self.free;
            let k = &mut self.kernels[i];
            if k.undispatched == 0 {
                continue;
            }
            let n_fit = fits(free, &k.shape.per_block).min(k.undispatched);
            if n_fit == 0 {
                continue;
            }
            // Resource-limited and nothing ahead waiting: dispatch all remaining full waves as
            // one cohort, and the partial last wave with them while the kernel is alone in its
            // standalone waves (the shape gives that wave's time alone). After a cut, one wave at
            // a time (the cut happened because the picture is changing).
            let (waves, tail, last_work) = if self.wave_batching && n_fit < k.undispatched && !cut && !ahead_waiting {
                let full = k.undispatched / n_fit;
                let rest = k.undispatched % n_fit;
                if rest > 0 && !not_alone && n_fit == k.shape.resident_alone {
                    (full + 1, rest, k.shape.last_wave)
                } else {
                    (full, n_fit, 1.0)
                }
            } else {
                (1, n_fit, 1.0)
            };
            acquire(free, &k.shape.per_block, n_fit);
            k.undispatched -= (waves - 1) * n_fit + tail;
            k.resident += n_fit;
            k.cohorts.push(Cohort { blocks: n_fit, waves, tail, last_work, progress: 0.0, finish_at: NEVER });
        }
        self.update_rates(now);
    }

    fn update_rates(&mut self, now: u64) {
        let s = self.sm_count as f64;
        self.scratch_loads.clear();
        for k in &self.kernels {
            let cov_alone = k.shape.resident_alone.min(self.sm_count) as f64;
            self.scratch_loads.push(Load {
                issue_load: k.shape.issue_load,
                dram_util: k.shape.dram_util,
                dram_demand: k.shape.dram_demand,
                dram_latency_alone: k.shape.dram_latency_alone,
                alpha: k.resident as f64 / k.shape.resident_alone.max(1) as f64,
                cov: k.resident.min(self.sm_count) as f64,
                cov_alone,
            });
        }
        self.scratch_dma.clear();
        self.scratch_dma.extend(self.transfers[0].iter().map(|d| d.dram));
        slowdowns(
            &self.params,
            s,
            &self.scratch_loads,
            &self.scratch_dma,
            &mut self.scratch_sigma,
            &mut self.scratch_sigma_dma,
        );
        for (k, &sigma) in self.kernels.iter_mut().zip(&self.scratch_sigma) {
            let rate = 1.0 / (k.shape.block_time_ns * sigma);
            let changed = rate != k.rate;
            k.rate = rate;
            k.sigma = sigma;
            for c in &mut k.cohorts {
                if changed || c.finish_at == NEVER {
                    // Less a picosecond, so that floating-point residue of the progress never adds a
                    // nanosecond (which could reorder events that coincide).
                    c.finish_at = now + ((c.work() - c.progress) / rate - 1e-3).ceil().max(0.0) as u64;
                }
            }
        }
        for (t, &sigma) in self.transfers[0].iter_mut().zip(&self.scratch_sigma_dma) {
            set_rate(t, 1.0 / sigma, now);
        }
        for list in &mut self.transfers[1..] {
            let n = list.len() as f64;
            for t in list.iter_mut() {
                set_rate(t, 1.0 / n, now);
            }
        }
    }

    fn refresh_next_time(&mut self) {
        let mut t = NEVER;
        for k in &self.kernels {
            for c in &k.cohorts {
                t = t.min(c.finish_at);
            }
        }
        for x in self.transfers.iter().flatten() {
            t = t.min(x.finish_at);
        }
        for s in &self.streams {
            if !s.head_running
                && let Some(op) = s.queue.front()
            {
                t = t.min(op.visible_at.max(s.ready_at));
            }
        }
        self.next_time = t;
    }

    /// Number of SMs.
    pub fn sm_count(&self) -> u64 {
        self.sm_count
    }

    /// Resources free now (for tests and invariants).
    pub fn free_resources(&self) -> Res {
        self.free
    }

    /// Total resources.
    pub fn capacity(&self) -> Res {
        self.capacity
    }

    /// Resident blocks per stream now (for tests).
    pub fn resident_blocks(&self, stream: usize) -> u64 {
        self.kernels.iter().filter(|k| k.stream == stream).map(|k| k.resident).sum()
    }

    /// Current slowdown of the kernel running on `stream`, if any (for tests).
    pub fn slowdown(&self, stream: usize) -> Option<f64> {
        self.kernels.iter().find(|k| k.stream == stream).map(|k| k.sigma)
    }
}

fn set_rate(t: &mut Transfer, rate: f64, now: u64) {
    if rate != t.rate || t.finish_at == NEVER {
        t.rate = rate;
        t.finish_at = now + (t.remaining / rate).ceil() as u64;
    }
}

#[cfg(test)]
mod tests;
