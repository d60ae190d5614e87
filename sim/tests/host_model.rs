//! The host side of the model, pinned with tiny hand-built traces (H100 preset: launch latency
//! 4 us, kernel gap 1 us).

use orion_policies::{ClientInfo, registry};
use orion_sim::engine::{SimClient, SimInput, SimOutcome, simulate};
use orion_traces::{
    ArrivalProcess, ClientSpec, DeviceSpec, KernelClass, OpKind, OpRecord, Role, Stop, Trace, TraceMeta, WorkKind,
};
use std::sync::Arc;

const US: u64 = 1_000;

fn kernel(gap_us: u64, duration_us: u64, sm_needed: u32) -> OpRecord {
    let mut r = OpRecord::kernel("k", duration_us * US, sm_needed, KernelClass::Compute);
    r.host_gap_ns = Some(gap_us * US);
    r
}

fn op(kind: OpKind, gap_us: u64) -> OpRecord {
    let mut r = OpRecord::new(kind, kind.as_str(), 0, 0, KernelClass::Unknown);
    r.host_gap_ns = Some(gap_us * US);
    r
}

fn client(role: Role, ops: Vec<OpRecord>, arrival: ArrivalProcess, max_requests: Option<u64>) -> ClientSpec {
    ClientSpec {
        name: "c".into(),
        role,
        kind: if arrival.is_open_loop() { WorkKind::Inference } else { WorkKind::Training },
        trace: Arc::new(Trace::new(TraceMeta { name: "t".into(), ..Default::default() }, ops)),
        first_trace: None,
        arrival,
        max_requests,
    }
}

fn info(id: usize, c: &ClientSpec) -> ClientInfo {
    ClientInfo {
        id,
        name: c.name.clone(),
        role: c.role,
        kind: c.kind,
        warmup: 0,
        ops_per_request: c.trace.ops.len(),
        standalone_latency_ns: 0,
        max_sm_needed: c.trace.max_sm_needed(),
        update_start: None,
    }
}

fn sim(clients: &[ClientSpec], policy: &str, stop: Stop) -> SimOutcome {
    let device = DeviceSpec::preset("h100").unwrap();
    let infos: Vec<ClientInfo> = clients.iter().enumerate().map(|(i, c)| info(i, c)).collect();
    let input = SimInput {
        device: &device,
        clients: clients
            .iter()
            .zip(&infos)
            .enumerate()
            .map(|(i, (spec, info))| SimClient { scenario_id: i, spec, info })
            .collect(),
        seed: 1,
        warmup: 0,
        stop,
        record_ops: false,
    };
    let mut p = registry::build(policy, &Default::default()).unwrap();
    simulate(&input, p.as_mut()).unwrap()
}

const ONE: Stop = Stop { duration_ns: None, requests: Some(1) };

#[test]
fn host_gaps_and_launch_latency_add_to_the_request_latency() {
    // k1 issued at 10, visible at 14 (4 us launch latency), runs 14..34.
    // k2 issued at 15, visible at 19, starts after k1 + 1 us kernel gap = 35, ends 55.
    let c = client(Role::Hp, vec![kernel(10, 20, 4), kernel(5, 20, 4)], ArrivalProcess::ClosedLoop, Some(1));
    let out = sim(&[c], "streams", ONE);
    assert_eq!(out.recorders[0].latencies_ns, vec![55 * US]);
}

#[test]
fn a_launch_bound_request_leaves_the_gpu_idle_between_kernels() {
    // Host gaps of 20 us dominate 5 us kernels: k_i is issued at 20i, visible at 20i+4, ends at
    // 20i+9: the last of 3 ends at 69 us, though the kernels sum to 15 us.
    let c = client(
        Role::Hp,
        vec![kernel(20, 5, 4), kernel(20, 5, 4), kernel(20, 5, 4)],
        ArrivalProcess::ClosedLoop,
        Some(1),
    );
    let out = sim(&[c], "streams", ONE);
    assert_eq!(out.recorders[0].latencies_ns, vec![69 * US]);
}

#[test]
fn sync_blocks_the_host_until_earlier_ops_complete() {
    // k1 issued 0, runs 4..104; the sync waits until 104; k2 issued 10 us later at 114,
    // visible 118, ends 128.
    let c = client(
        Role::Hp,
        vec![kernel(0, 100, 4), op(OpKind::Sync, 0), kernel(10, 10, 4)],
        ArrivalProcess::ClosedLoop,
        Some(1),
    );
    let out = sim(&[c], "streams", ONE);
    assert_eq!(out.recorders[0].latencies_ns, vec![128 * US]);
}

#[test]
fn open_loop_requests_queue_and_latency_counts_from_the_scheduled_arrival() {
    // Requests every 10 us (uniform 100k/s), each 25 us of GPU work issued at arrival: the
    // client serves one at a time, so request i completes at 10 + 29 * (i + 1) us
    // (4 us launch latency + 25 us kernel, back to back) and waits longer and longer.
    let c = client(Role::Hp, vec![kernel(0, 25, 4)], ArrivalProcess::Uniform { rate: 100_000.0 }, Some(3));
    let out = sim(&[c], "streams", Stop { duration_ns: None, requests: Some(3) });
    // Completions 39, 68, 97 us; arrivals 10, 20, 30 us.
    assert_eq!(out.recorders[0].latencies_ns, vec![29 * US, 48 * US, 67 * US]);
}

#[test]
fn closed_loop_iterations_run_back_to_back() {
    // One 50 us kernel per iteration, no host gap: 4 + 50 us per iteration.
    let c = client(Role::Be, vec![kernel(0, 50, 132)], ArrivalProcess::ClosedLoop, Some(3));
    let out = sim(&[c], "streams", Stop { duration_ns: None, requests: Some(3) });
    assert_eq!(out.recorders[0].latencies_ns, vec![54 * US; 3]);
    assert_eq!(out.end_ns, 162 * US);
}

#[test]
fn temporal_sharing_runs_one_request_at_a_time() {
    // Two closed-loop clients of one 50 us full-GPU kernel each; under temporal sharing each
    // iteration (4 us launch + 50 us) runs alone, alternating: 6 iterations end at 6 * 54 us.
    let a = client(Role::Be, vec![kernel(0, 50, 10)], ArrivalProcess::ClosedLoop, Some(3));
    let b = client(Role::Be, vec![kernel(0, 50, 10)], ArrivalProcess::ClosedLoop, Some(3));
    let out = sim(&[a.clone(), b.clone()], "temporal", Stop { duration_ns: Some(10_000 * US), requests: None });
    assert_eq!(out.end_ns, 324 * US);
    // Under streams the two 10-SM kernels overlap: both finish 3 iterations by 162 us.
    let out = sim(&[a, b], "streams", Stop { duration_ns: Some(10_000 * US), requests: None });
    assert_eq!(out.end_ns, 162 * US);
}

#[test]
fn allocations_take_host_time_and_no_gpu_time() {
    // malloc costs 30 us on the host (its duration), then the kernel is issued: 30 + 4 + 10.
    let mut m = op(OpKind::Malloc, 0);
    m.duration_ns = 30 * US;
    let c = client(Role::Hp, vec![m, kernel(0, 10, 4)], ArrivalProcess::ClosedLoop, Some(1));
    let out = sim(&[c], "streams", ONE);
    assert_eq!(out.recorders[0].latencies_ns, vec![44 * US]);
}
