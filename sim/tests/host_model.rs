//! The host side of the model, pinned with tiny hand-built traces (H100 preset: launch latency
//! 4 us, kernel gap 1 us).

use orion_policies::{ClientInfo, registry};
use orion_sim::engine::{SimClient, SimInput, SimOutcome, simulate};
use orion_traces::{
    ArrivalProcess, ClientSpec, DeviceSpec, KernelClass, OpKind, OpRecord, Role, Stop, SubmitterSpec, Trace, TraceMeta,
    WorkKind,
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
    sim_on(&DeviceSpec::preset("h100").unwrap(), clients, policy, stop)
}

fn sim_on(device: &DeviceSpec, clients: &[ClientSpec], policy: &str, stop: Stop) -> SimOutcome {
    let infos: Vec<ClientInfo> = clients.iter().enumerate().map(|(i, c)| info(i, c)).collect();
    let input = SimInput {
        device,
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

/// The H100 preset with one thread making every launch call.
fn central(launch_call_us: u64, queue_depth: u32) -> DeviceSpec {
    let mut d = DeviceSpec::preset("h100").unwrap();
    d.submitter = Some(SubmitterSpec { launch_call_ns: launch_call_us * US, queue_depth });
    d
}

/// Each client's latencies, running `clients` (one request each) on `device` under `policy`.
fn latencies_on(device: &DeviceSpec, clients: &[ClientSpec], policy: &str) -> Vec<Vec<u64>> {
    let stop = Stop { duration_ns: Some(10_000 * US), requests: None };
    sim_on(device, clients, policy, stop).recorders.iter().map(|r| r.latencies_ns.clone()).collect()
}

#[test]
fn one_submitting_thread_serialises_the_launch_calls_of_all_clients() {
    // Both clients issue a 20-us kernel at 10 us. Through one thread whose calls take 10 us,
    // client 0's call starts at 10 (visible at 14, runs 14..34), client 1's at 20 (visible
    // at 24, runs 24..44); each client submitting its own (no submitter, or `mps`): both 34.
    let c = || client(Role::Be, vec![kernel(10, 20, 4)], ArrivalProcess::ClosedLoop, Some(1));
    let clients = [c(), c()];
    assert_eq!(latencies_on(&central(10, 1000), &clients, "streams"), vec![vec![34 * US], vec![44 * US]]);
    let own = DeviceSpec::preset("h100").unwrap();
    assert_eq!(latencies_on(&own, &clients, "streams"), vec![vec![34 * US], vec![34 * US]]);
    assert_eq!(latencies_on(&central(10, 1000), &clients, "mps"), vec![vec![34 * US], vec![34 * US]]);
}

#[test]
fn a_launch_to_a_full_stream_blocks_every_call_behind_it() {
    // Client 0 issues four 100-us kernels at 1, 2, 3, 4 us; its stream holds two pending ops.
    // k1 runs 5..105, k2 106..206 (1-us kernel gap); the call for k3 blocks until k1 completes
    // (105), the one for k4 until k2 completes (206). Client 1's 10-us kernel, issued at 5,
    // waits behind them: its call starts at 207 (after k4's, 1 us each), visible at 211, runs
    // 211..221. Without the thread (or under `mps`) it runs 9..19.
    let be = client(Role::Be, (0..4).map(|_| kernel(1, 100, 4)).collect(), ArrivalProcess::ClosedLoop, Some(1));
    let other = client(Role::Be, vec![kernel(5, 10, 4)], ArrivalProcess::ClosedLoop, Some(1));
    let clients = [be, other];
    assert_eq!(latencies_on(&central(1, 2), &clients, "streams")[1], vec![221 * US]);
    assert_eq!(latencies_on(&central(1, 2), &clients, "mps")[1], vec![19 * US]);
    assert_eq!(latencies_on(&DeviceSpec::preset("h100").unwrap(), &clients, "streams")[1], vec![19 * US]);
    // A deep enough queue never blocks: only the serialised calls remain (client 1's call
    // starts at 5 after client 0's four, visible at 9).
    assert_eq!(latencies_on(&central(1, 1000), &clients, "streams")[1], vec![19 * US]);
}

#[test]
fn a_submitter_with_no_queue_is_refused_naming_the_field() {
    let mut v: serde_json::Value = serde_json::to_value(DeviceSpec::preset("h100").unwrap()).unwrap();
    v["submitter"] = serde_json::json!({"launch_call_ns": 3000, "queue_depth": 0});
    let e = DeviceSpec::from_json_str(&v.to_string(), orion_traces::Location::file("d.json")).unwrap_err().to_string();
    assert!(e.contains("d.json") && e.contains("submitter.queue_depth"), "{e}");
}
