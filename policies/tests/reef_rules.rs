//! REEF's rules, one per test. Client 0 is the HP, the others BE; the device has 100 SMs.

mod harness;

use harness::{Client, Harness, US, copy, kernel};
use orion_policies::Backend;
use orion_traces::KernelClass::{Compute, Memory};
use serde_json::json;

#[test]
fn hp_ops_are_submitted_at_once_and_be_ops_held_while_the_hp_runs() {
    let mut h = Harness::new(
        "reef",
        &[],
        vec![
            Client::hp(vec![kernel(Compute, 90, 50), kernel(Compute, 90, 50)]),
            Client::be(vec![copy(), kernel(Memory, 50, 100)]),
        ],
    );
    h.issue(1, 2);
    h.issue(0, 2);
    assert_eq!(h.schedule(), vec![(0, 0), (0, 1)]);
    // Rounds pass while the HP runs: nothing of the BE is submitted, not even a copy.
    for _ in 0..50 {
        h.now += US;
        assert_eq!(h.schedule(), vec![]);
    }
}

#[test]
fn padding_co_launches_at_most_one_be_kernel_per_hp_kernel() {
    // HP kernel: 40 SMs, 50 us. Two BE clients with kernels that fit (60 SMs free) and are
    // shorter: only one is padded per HP kernel.
    let mut h = Harness::new(
        "reef",
        &[],
        vec![
            Client::hp(vec![kernel(Compute, 40, 50), kernel(Compute, 40, 50)]),
            Client::be(vec![kernel(Memory, 30, 20), kernel(Memory, 30, 20)]),
            Client::be(vec![kernel(Memory, 30, 20)]),
        ],
    );
    h.issue(1, 2);
    h.issue(2, 1);
    h.issue(0, 1);
    let first = h.schedule();
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0], (0, 0));
    // A second HP kernel pads one more BE kernel.
    h.issue(0, 1);
    assert_eq!(h.schedule().len(), 2);
}

#[test]
fn padding_refuses_a_be_kernel_longer_than_the_hp_kernel() {
    let mut h = Harness::new(
        "reef",
        &[],
        vec![Client::hp(vec![kernel(Compute, 40, 50)]), Client::be(vec![kernel(Memory, 30, 51)])],
    );
    h.issue(1, 1);
    h.issue(0, 1);
    assert_eq!(h.schedule(), vec![(0, 0)]);
}

#[test]
fn padding_refuses_a_be_kernel_that_does_not_fit_in_the_free_sms() {
    // 40 SMs taken by the HP kernel, 60 free: a 61-SM BE kernel is not padded by REEF's rule...
    let ops = || vec![Client::hp(vec![kernel(Compute, 40, 50)]), Client::be(vec![kernel(Memory, 61, 20)])];
    let mut h = Harness::new("reef", &[], ops());
    h.issue(1, 1);
    h.issue(0, 1);
    assert_eq!(h.schedule(), vec![(0, 0)]);
    // ...but it is by Orion's artifact variant (shorter, and at least as many SMs as the HP's).
    let mut h = Harness::new("reef", &[("padding", json!("orion-artifact"))], ops());
    h.issue(1, 1);
    h.issue(0, 1);
    assert_eq!(h.schedule(), vec![(0, 0), (1, 0)]);
}

#[test]
fn orion_artifact_padding_refuses_a_be_kernel_smaller_than_the_hp_kernel() {
    let mut h = Harness::new(
        "reef",
        &[("padding", json!("orion-artifact"))],
        vec![Client::hp(vec![kernel(Compute, 40, 50)]), Client::be(vec![kernel(Memory, 30, 20)])],
    );
    h.issue(1, 1);
    h.issue(0, 1);
    assert_eq!(h.schedule(), vec![(0, 0)]);
}

#[test]
fn with_the_hp_idle_be_queues_drain_one_op_per_client_every_depth_rounds() {
    // Depth 4, 1 us rounds: rounds count from the first call with BE work pending (t = 0 is
    // round 1), so the first drain is at t = 3 us, the next at 7 us.
    let mut h = Harness::new(
        "reef",
        &[("reef_depth", json!(4))],
        vec![
            Client::hp(vec![kernel(Compute, 40, 50)]),
            Client::be(vec![kernel(Memory, 30, 20); 3]),
            Client::be(vec![kernel(Memory, 30, 20); 3]),
        ],
    );
    h.issue(1, 3);
    h.issue(2, 3);
    assert_eq!(h.schedule(), vec![]);
    assert_eq!(h.wake, Some(3 * US), "asks to be woken when the counter will reach the depth");
    h.now = 2 * US;
    assert_eq!(h.schedule(), vec![]);
    h.now = 3 * US;
    assert_eq!(h.schedule(), vec![(1, 0), (2, 0)]);
    assert_eq!(h.wake, Some(7 * US));
    h.now = 6 * US;
    assert_eq!(h.schedule(), vec![]);
    h.now = 7 * US;
    assert_eq!(h.schedule(), vec![(1, 1), (2, 1)]);
}

#[test]
fn be_host_queues_hold_reef_depth_ops() {
    let h = Harness::new("reef", &[("reef_depth", json!(7))], vec![Client::hp(vec![]), Client::be(vec![])]);
    let infos = h.state.infos();
    assert_eq!(h.policy.host_queue_limit(&infos[0]), None);
    assert_eq!(h.policy.host_queue_limit(&infos[1]), Some(7));
}

#[test]
fn reset_preempts_running_be_work_when_an_hp_request_arrives() {
    let mut h = Harness::new(
        "reef",
        &[("reset", json!(true)), ("reef_depth", json!(1))],
        vec![Client::hp(vec![kernel(Compute, 40, 50)]), Client::be(vec![kernel(Memory, 90, 500)])],
    );
    h.issue(1, 1);
    assert_eq!(h.schedule(), vec![(1, 0)], "depth 1 drains at once");
    h.now = 10 * US;
    h.issue(0, 1);
    h.schedule();
    assert_eq!(h.preempted, vec![1]);
    assert_eq!(h.state.client(1).pending().len(), 1, "the killed kernel is back in the host queue");
    // Without reset nothing is preempted.
    let mut h = Harness::new(
        "reef",
        &[("reef_depth", json!(1))],
        vec![Client::hp(vec![kernel(Compute, 40, 50)]), Client::be(vec![kernel(Memory, 90, 500)])],
    );
    h.issue(1, 1);
    h.schedule();
    h.issue(0, 1);
    h.schedule();
    assert!(h.preempted.is_empty());
}

#[test]
fn reset_is_refused_on_the_real_backend() {
    let err = Harness::with_backend("reef", &[("reset", json!(true))], vec![Client::hp(vec![])], Backend::Real)
        .err()
        .expect("reset needs the simulator")
        .to_string();
    assert!(err.contains("reset"), "{err}");
    assert!(Harness::with_backend("reef", &[], vec![Client::hp(vec![])], Backend::Real).is_ok());
}
