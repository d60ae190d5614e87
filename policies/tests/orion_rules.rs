//! Orion's admission rules, one per test. Client 0 is the HP, the others BE; the device has
//! 100 SMs. Each test fails if its rule is removed or inverted.

mod harness;

use harness::{Client, Harness, US, copy, kernel};
use orion_traces::KernelClass::{Compute, Memory, Unknown};
use orion_traces::WorkKind;
use serde_json::json;

/// HP busy with a compute kernel in flight; the BE heads are then tested against it.
fn hp_busy_with(
    class: orion_traces::KernelClass,
    be_ops: Vec<orion_traces::OpRecord>,
    params: &[(&str, serde_json::Value)],
) -> Harness {
    let mut h = Harness::new("orion", params, vec![Client::hp(vec![kernel(class, 10, 50)]), Client::be(be_ops)]);
    h.issue(0, 1);
    assert_eq!(h.schedule(), vec![(0, 0)], "HP ops are submitted at once");
    h
}

#[test]
fn hp_ops_go_straight_to_the_gpu_on_the_high_priority_stream() {
    let mut h = Harness::new("orion", &[], vec![Client::hp(vec![kernel(Compute, 500, 500); 3]), Client::be(vec![])]);
    h.issue(0, 3);
    assert_eq!(h.schedule(), vec![(0, 0), (0, 1), (0, 2)]);
    let infos = h.state.infos();
    assert_eq!(h.policy.stream_priority(&infos[0]), orion_policies::StreamPriority::High);
    assert_eq!(h.policy.stream_priority(&infos[1]), orion_policies::StreamPriority::Low);
}

#[test]
fn rule1_with_no_hp_request_in_flight_any_be_kernel_is_admitted() {
    // A compute kernel needing more SMs than the threshold: only rule 1 can admit it.
    let mut h = Harness::new(
        "orion",
        &[("sm_threshold", json!(50))],
        vec![Client::hp(vec![kernel(Compute, 10, 50)]), Client::be(vec![kernel(Compute, 90, 10)])],
    );
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)]);
    // The same kernel while the HP has an op in flight is held.
    let mut h = hp_busy_with(Compute, vec![kernel(Compute, 90, 10)], &[("sm_threshold", json!(50))]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![]);
    // Once the HP's op completes, it is admitted.
    h.complete(0);
    assert_eq!(h.schedule(), vec![(1, 0)]);
}

#[test]
fn rule2_non_kernel_ops_are_admitted_while_the_hp_runs() {
    // A copy whose profile would fail rule 4 (compute class like the HP's kernel, more SMs
    // than the threshold): only rule 2 admits it.
    let mut odd_copy = copy();
    odd_copy.class = Compute;
    odd_copy.sm_needed = 90;
    let mut h = hp_busy_with(Compute, vec![odd_copy, kernel(Compute, 10, 10)], &[("sm_threshold", json!(50))]);
    h.issue(1, 2);
    assert_eq!(h.schedule(), vec![(1, 0)]);
    // The compute kernel behind it conflicts with the HP's compute kernel.
    h.now += US;
    assert_eq!(h.schedule(), vec![]);
}

#[test]
fn rule3_be_clients_in_warm_up_are_admitted() {
    let be_ops = vec![kernel(Compute, 90, 10)];
    let mut h = Harness::new(
        "orion",
        &[("sm_threshold", json!(50))],
        vec![Client::hp(vec![kernel(Compute, 10, 50)]), Client { warmup: 1, ..Client::be(be_ops) }],
    );
    h.issue(0, 1);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(0, 0), (1, 0)]);
    // After warm-up the same kernel is held.
    h.complete(1);
    h.finish_request(1, 1);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![]);
}

#[test]
fn rule4_a_be_kernel_of_the_hp_kernels_class_is_held() {
    let mut h = hp_busy_with(Compute, vec![kernel(Compute, 10, 10)], &[]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![]);
}

#[test]
fn rule4_a_be_kernel_of_the_other_class_is_admitted() {
    let mut h = hp_busy_with(Compute, vec![kernel(Memory, 10, 10)], &[]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)]);
    let mut h = hp_busy_with(Memory, vec![kernel(Compute, 10, 10)], &[]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)]);
}

#[test]
fn rule4_unknown_class_on_either_side_is_compatible() {
    let mut h = hp_busy_with(Compute, vec![kernel(Unknown, 10, 10)], &[]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)]);
    let mut h = hp_busy_with(Unknown, vec![kernel(Compute, 10, 10)], &[]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)]);
}

#[test]
fn rule4_sm_threshold_bounds_the_sms_admitted_in_one_round() {
    // Threshold 50: a compatible 60-SM kernel is held, a 40-SM one admitted.
    let mut h = hp_busy_with(Compute, vec![kernel(Memory, 60, 10)], &[("sm_threshold", json!(50))]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![]);
    let mut h = hp_busy_with(Compute, vec![kernel(Memory, 40, 10)], &[("sm_threshold", json!(50))]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)]);
    // Two BE clients of 30 SMs each: the round admits the first; the second would bring the
    // round to 60 > 50 and waits for the next round.
    let mut h = Harness::new(
        "orion",
        &[("sm_threshold", json!(50))],
        vec![
            Client::hp(vec![kernel(Compute, 10, 50)]),
            Client::be(vec![kernel(Memory, 30, 10)]),
            Client::be(vec![kernel(Memory, 30, 10)]),
        ],
    );
    h.issue(0, 1);
    h.issue(1, 1);
    h.issue(2, 1);
    assert_eq!(h.schedule(), vec![(0, 0), (1, 0)]);
    assert_eq!(h.wake, Some(US), "the next round is one polling period later");
    h.now = US;
    assert_eq!(h.schedule(), vec![(2, 0)]);
}

#[test]
fn each_round_admits_at_most_one_op_per_be_client() {
    let mut h = Harness::new("orion", &[], vec![Client::hp(vec![]), Client::be(vec![kernel(Memory, 10, 10); 3])]);
    h.issue(1, 3);
    assert_eq!(h.schedule(), vec![(1, 0)]);
    h.now = US;
    assert_eq!(h.schedule(), vec![(1, 1)]);
}

#[test]
fn the_sm_threshold_defaults_to_the_device_for_an_inference_hp() {
    // 100 SMs: a 100-SM memory kernel fits, a 101-SM one does not.
    let mut h = hp_busy_with(Compute, vec![kernel(Memory, 100, 10)], &[]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)]);
    let mut h = hp_busy_with(Compute, vec![kernel(Memory, 101, 10)], &[]);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![]);
}

#[test]
fn duration_gate_holds_be_work_until_outstanding_be_kernels_complete() {
    // Threshold 100 us, BE kernels of 60 us, HP idle (rule 1 admits everything else).
    let mut h = Harness::new(
        "orion",
        &[("dur_threshold", json!("100us"))],
        vec![Client::hp(vec![kernel(Compute, 10, 50)]), Client::be(vec![kernel(Memory, 10, 60); 5])],
    );
    h.issue(1, 5);
    // 60 us admitted (sum 60), then, a round later, 60 more (sum 120 > 100): the gate closes.
    assert_eq!(h.schedule(), vec![(1, 0)]);
    h.now = US;
    assert_eq!(h.schedule(), vec![(1, 1)]);
    assert_eq!(h.wake, None, "nothing to poll for until BE kernels complete");
    // While either is outstanding, nothing else starts, even after one completes.
    h.now = 2 * US;
    assert_eq!(h.schedule(), vec![]);
    h.complete(1);
    assert_eq!(h.schedule(), vec![]);
    // Both complete: the sum restarts.
    h.complete(1);
    assert_eq!(h.schedule(), vec![(1, 2)]);
    h.now = 3 * US;
    assert_eq!(h.schedule(), vec![(1, 3)]);
}

#[test]
fn duration_threshold_defaults_to_2_5_percent_of_the_hp_standalone_latency() {
    let h = Harness::new("orion", &[], vec![Client::hp(vec![kernel(Compute, 10, 50)]), Client::be(vec![])]);
    // 4 ms standalone -> 100 us.
    assert_eq!(h.policy.params()["dur_threshold_us"], json!(100.0));
}

fn training_hp(update_start: usize) -> Client {
    Client {
        kind: WorkKind::Training,
        update_start: Some(update_start),
        ..Client::hp(vec![
            kernel(Compute, 10, 50),
            kernel(Compute, 10, 50),
            kernel(Compute, 10, 50),
            kernel(Compute, 10, 50),
        ])
    }
}

#[test]
fn update_phase_admits_small_be_kernels_regardless_of_class() {
    // HP trains; its update phase starts at op 2. BE kernel: compute (conflicts), 20 SMs.
    let be = || Client::be(vec![kernel(Compute, 20, 10)]);
    let mut h = Harness::new("orion", &[("sm_threshold", json!(50))], vec![training_hp(2), be()]);
    h.issue(0, 3);
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(0, 0), (0, 1), (0, 2)]);
    // Op 2 is issued but op 1 has not completed: not yet the update phase.
    h.complete(0);
    assert_eq!(h.schedule(), vec![]);
    // Op 1 (update_start - 1) completes: the conflicting BE kernel is admitted.
    h.complete(0);
    assert_eq!(h.schedule(), vec![(1, 0)]);
}

#[test]
fn update_phase_still_respects_the_sm_threshold() {
    let mut h = Harness::new(
        "orion",
        &[("sm_threshold", json!(50))],
        vec![training_hp(1), Client::be(vec![kernel(Compute, 60, 10)])],
    );
    h.issue(0, 2);
    h.issue(1, 1);
    h.schedule();
    h.complete(0);
    assert_eq!(h.schedule(), vec![]);
}

#[test]
fn training_hp_sm_threshold_starts_at_half_the_be_maximum_and_is_binary_searched() {
    // BE's largest kernel needs 80 SMs: threshold starts at 40, search range [0, 80].
    let mut h = Harness::new(
        "orion",
        &[("hp_limit", json!("10ms"))],
        vec![training_hp(3), Client::be(vec![kernel(Memory, 80, 10)])],
    );
    assert_eq!(h.policy.params()["sm_threshold"], json!(40));
    let threshold = |h: &Harness| h.policy.counters()["sm_threshold_final"];
    // 10 HP iterations over the limit: the threshold halves towards 0: (0 + 40) / 2 = 20.
    for _ in 0..10 {
        h.finish_request(0, 12 * US * 1000);
    }
    assert_eq!(threshold(&h), 20);
    // 9 iterations under the limit change nothing; the 10th moves it up: (20 + 40) / 2 = 30.
    for _ in 0..9 {
        h.finish_request(0, 8 * US * 1000);
    }
    assert_eq!(threshold(&h), 20);
    h.finish_request(0, 8 * US * 1000);
    assert_eq!(threshold(&h), 30);
    // BE iterations do not drive the search.
    for _ in 0..20 {
        h.finish_request(1, 100 * US * 1000);
    }
    assert_eq!(threshold(&h), 30);
}

#[test]
fn unknown_parameters_are_rejected_by_name() {
    let e = orion_policies::registry::build("orion", &[("dur_treshold".to_string(), json!(5))].into_iter().collect())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("dur_treshold") && e.contains("dur_threshold"), "{e}");
}
