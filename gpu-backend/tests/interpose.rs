//! `orion-real run` (`orion-real --policy P config.json`) without a GPU: a fake Python driver
//! (a shell script given as `--python`) stands in for PyTorch and writes what the real driver
//! writes, so that what the front end hands to the driver and the interposer, and the report it
//! builds, are checked exactly. The real thing runs on the GPU machine
//! (`gpu-backend/scripts/interpose_fig7.sh`).

#![cfg(unix)]

use orion_gpu::cli::main_with;
use orion_policies::report::LatencyStats;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How the fake driver behaves.
#[derive(Default)]
struct Fake {
    /// Exit 1 without output.
    fail: bool,
    /// The interposer's report says it failed and passed everything through.
    interposer_failed: bool,
    /// Never finishes (prints a stack when sent SIGUSR1, as `driver.py` does).
    hang: bool,
}

/// A fake `python3`: logs each call (workload file, LD_PRELOAD, MPS pipe folder) to
/// `calls.log`, writes a serve output with four requests per client of its workload file
/// (latencies 10, 30, 20, 5 ms times k for its k-th client, over a 2-s window) and, under the
/// interposer, its report.
fn fake_python(dir: &Path, fake: &Fake) -> PathBuf {
    let log = dir.join("calls.log");
    let script = format!(
        r#"#!/bin/sh
wl=""; out=""
while [ $# -gt 0 ]; do case "$1" in --scenario) wl=$2; shift;; --out) out=$2; shift;; esac; shift; done
echo "$wl ${{LD_PRELOAD:-none}} ${{CUDA_MPS_PIPE_DIRECTORY:-none}}" >> "{log}"
if [ "{fail}" = yes ]; then echo "Traceback: fake failure" >&2; exit 1; fi
if [ "{hang}" = yes ]; then
  trap 'echo "Thread 0x7f00 (most recent call first): fake stack of a hung client" >&2' USR1
  while :; do sleep 0.1; done
fi
names=$(grep -o '"name": "[^"]*"' "$wl" | sed 's/"name": "\(.*\)"/\1/')
{{ printf '{{"format": "orion-rs-workload-serve/1", "env": {{"gpu": {{"name": "Fake GPU"}}, "torch": "0.0"}}, "interrupted": false, "stop_reason": "duration reached", "measured_phase_s": 2.0, "clients": ['
  sep=""; m=1
  for n in $names; do
    printf '%s{{"name": "%s", "window_s": 2.0, "warmup": {{"n": 10}}, "requests_ms": [[0, 0, %d], [100, 100, %d], [200, 201, %d], [300, 300, %d]]}}' "$sep" "$n" $((10 * m)) $((100 + 30 * m)) $((200 + 20 * m)) $((300 + 5 * m))
    sep=", "; m=$((m + 1))
  done
  printf ']}}\n'; }} > "$out"
if [ -n "$ORION_PRELOAD_REPORT" ]; then
  printf '{{"mode": 2, "failure_logged": {failed}, "captured": {{"kernel": 5}}, "schedule": {{"submit_errors": 0, "params": {{"sm_threshold": 66, "dur_threshold_us": 179.06}}, "counters": {{"be_admitted_hp_idle": 7}}, "clients": [{{"name": "x", "latency": {{"count": 1, "requests_ns": [1]}}}}]}}}}\n' > "$ORION_PRELOAD_REPORT"
fi
"#,
        log = log.display(),
        fail = if fake.fail { "yes" } else { "no" },
        hang = if fake.hang { "yes" } else { "no" },
        failed = fake.interposer_failed,
    );
    let path = dir.join("python");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A fake MPS control program: `-d` creates the control pipe and a log line; anything else
/// appends what it reads on stdin (`quit`) to `mps-commands.log`.
fn fake_mps(dir: &Path) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = "-d" ]; then
  touch "$CUDA_MPS_PIPE_DIRECTORY/control"
  echo "[2026-11-25] Starting new server 1 for user 0" > "$CUDA_MPS_LOG_DIRECTORY/control.log"
  exit 0
fi
read cmd
echo "$cmd" >> "{}"
"#,
        dir.join("mps-commands.log").display()
    );
    let path = dir.join("mps-control");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Run {
    code: i32,
    out: String,
    err: String,
    dir: tempfile::TempDir,
}

impl Run {
    fn report(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.out, self.err))
    }
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
}

fn run(fake: Fake, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let python = fake_python(dir.path(), &fake);
    let mps = fake_mps(dir.path());
    let lib = dir.path().join("liborion_preload.so");
    std::fs::write(&lib, b"not a library: the fake driver does not load it").unwrap();
    let work = dir.path().join("work");
    let mut argv: Vec<String> = vec!["orion-real".into()];
    argv.extend(args.iter().map(|s| s.to_string()));
    for (k, v) in [("--python", &python), ("--preload", &lib), ("--work-dir", &work), ("--mps-control", &mps)] {
        argv.push(k.into());
        argv.push(v.display().to_string());
    }
    argv.extend(["--json".into(), "--quiet".into()]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = main_with(argv, &mut out, &mut err);
    Run { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap(), dir }
}

/// Two kernels in Orion's kernel-file format (no model named).
const KERNELS: &str = "Name,Profile,Memory_footprint,SM_usage,Duration\nk1,1,0,80,50000\nk2,0,0,20,10000\n";

/// Runs `orion-real ARGS --python /bin/true`, which must be refused before any driver runs
/// (exit 1); its error output.
fn refused(args: &[&str]) -> String {
    let mut argv = vec!["orion-real"];
    argv.extend_from_slice(args);
    argv.extend(["--python", "/bin/true"]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = main_with(argv, &mut out, &mut err);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1, "{err}");
    err
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_shared_policy_runs_every_client_in_one_process_under_the_interposer() {
    let r = run(
        Fake::default(),
        &["--policy", "orion", "--trace", "resnet50_bert", "--duration", "2s", "-P", "sm_threshold=66"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let calls = r.calls();
    // One process under the interposer, then one per client alone (the ideal reference).
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls[0].contains("shared-workload.json") && calls[0].contains("liborion_preload.so"), "{calls:?}");
    assert!(calls[1..].iter().all(|c| c.contains("ideal-") && c.contains(" none none")), "{calls:?}");

    let wl = read_json(&r.work().join("shared-workload.json"));
    assert_eq!(wl["duration"], "2s");
    assert_eq!(wl["warmup"], 10);
    let c = &wl["clients"];
    assert_eq!(
        (c[0]["model"].as_str(), c[0]["mode"].as_str(), c[0]["batch"].as_u64()),
        (Some("resnet50"), Some("inference"), Some(4))
    );
    assert_eq!(
        (c[1]["model"].as_str(), c[1]["mode"].as_str(), c[1]["batch"].as_u64()),
        (Some("bert"), Some("training"), Some(8))
    );
    assert_eq!(c[0]["role"], "hp");
    assert_eq!(c[0]["arrival"]["type"], "poisson");
    assert_eq!(c[1]["arrival"]["type"], "closed_loop");
    assert_eq!((c[0]["seed_id"].as_u64(), c[1]["seed_id"].as_u64()), (Some(0), Some(1)));

    // The interposer's configuration names the policy and each client's profile, written beside it.
    let cfg = read_json(&r.work().join("preload-config.json"));
    assert_eq!(cfg["policy"], "orion");
    // The parameters as given, which the interposer builds the policy from.
    assert_eq!(cfg["params"]["sm_threshold"], 66.0);
    let params: orion_policies::ParamMap = serde_json::from_value(cfg["params"].clone()).unwrap();
    assert!(orion_policies::registry::build("orion", &params).is_ok());
    assert_eq!(cfg["device"]["sm_count"], 132);
    for client in cfg["clients"].as_array().unwrap() {
        let trace = client["trace"].as_str().unwrap();
        assert!(r.work().join(trace).is_file(), "{trace} was not written");
    }

    let rep = r.report();
    assert_eq!(rep["backend"], "real");
    assert_eq!(rep["policy"]["name"], "orion");
    // The policy's parameters and counters as the interposer resolved them (it set the policy
    // up; the front end's copy never was).
    assert_eq!(rep["policy"]["params"]["dur_threshold_us"], 179.06);
    assert_eq!(rep["policy"]["params"]["sm_threshold"], 66);
    assert_eq!(rep["policy"]["counters"]["be_admitted_hp_idle"], 7);
    let hp = &rep["clients"][0];
    // Latencies 10, 30, 20, 5 ms (completion minus scheduled arrival); 4 requests over 2 s.
    let expected = LatencyStats::from_ns(&[10_000_000, 30_000_000, 20_000_000, 5_000_000]).unwrap();
    assert_eq!(hp["completed"], 4);
    assert_eq!(hp["latency_ms"]["p50"], expected.p50);
    assert_eq!(hp["latency_ms"]["p95"], expected.p95);
    assert_eq!(hp["latency_ms"]["mean"], 16.25);
    assert_eq!(hp["throughput_per_s"], 2.0);
    assert_eq!(rep["clients"][1]["mean_iteration_ms"], 32.5, "the second client's own requests");
    // Alone, each client is the first of its process: the HP ran the same requests (no
    // overhead), the BE's took half as long, at the same throughput.
    assert_eq!(hp["overhead_vs_ideal"]["p95"], 0.0);
    assert_eq!(rep["gpu"]["normalized_throughput"], 2.0);
    assert_eq!(rep["engine"]["interposer"]["captured"]["kernel"], 5);
    assert!(rep["engine"]["interposer"]["schedule"]["clients"][0]["latency"].get("requests_ns").is_none());
    assert_eq!(rep["engine"]["gpu"]["name"], "Fake GPU");
}

#[test]
fn clients_of_the_same_name_keep_their_own_results() {
    // resnet50_resnet50: two clients called resnet50; the BE's iterations are its own.
    let r = run(
        Fake::default(),
        &["--policy", "streams", "--trace", "resnet50_resnet50", "--duration", "2s", "--no-ideal"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let rep = r.report();
    assert_eq!(rep["clients"][0]["name"], rep["clients"][1]["name"]);
    assert_eq!(rep["clients"][0]["role"], "hp");
    assert!(rep["clients"][0]["latency_ms"].is_object());
    assert_eq!(rep["clients"][0]["latency_ms"]["mean"], 16.25);
    assert_eq!(rep["clients"][1]["mean_iteration_ms"], 32.5, "the BE's own iterations, not the HP's");
}

#[test]
fn ideal_runs_each_client_alone_without_the_interposer() {
    let r = run(Fake::default(), &["--policy", "ideal", "--trace", "mobilenetv2_resnet101", "--duration", "2s"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let calls = r.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| c.ends_with(" none none")), "{calls:?}");
    for i in 0..2 {
        let wl = read_json(&r.work().join(format!("ideal-{i}-workload.json")));
        let clients = wl["clients"].as_array().unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0]["seed_id"], i, "a client alone keeps its seed");
    }
    assert_eq!(r.report()["policy"]["name"], "ideal");
}

#[test]
fn mps_runs_a_process_per_client_under_a_private_daemon_and_stops_it() {
    let r = run(Fake::default(), &["--policy", "mps", "--trace", "resnet50_bert", "--duration", "2s", "--no-ideal"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let calls = r.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let pipe = r.work().join("mps-pipe");
    assert!(calls.iter().all(|c| c.contains(" none ") && c.ends_with(&pipe.display().to_string())), "{calls:?}");
    let stopped = std::fs::read_to_string(r.dir.path().join("mps-commands.log")).unwrap();
    assert_eq!(stopped.trim(), "quit");
    let rep = r.report();
    assert_eq!(rep["engine"]["mps"]["server_started"], 1);
    assert_eq!(rep["clients"].as_array().unwrap().len(), 2);
}

#[test]
fn mps_stops_its_daemon_when_the_driver_fails() {
    let r = run(
        Fake { fail: true, ..Fake::default() },
        &["--policy", "mps", "--trace", "resnet50_bert", "--duration", "2s"],
    );
    assert_eq!(r.code, 1);
    assert!(r.err.contains("exited with") && r.err.contains("fake failure"), "{}", r.err);
    let stopped = std::fs::read_to_string(r.dir.path().join("mps-commands.log")).unwrap();
    assert_eq!(stopped.trim(), "quit");
}

#[test]
fn a_run_the_interposer_passed_through_is_refused() {
    let r = run(
        Fake { interposer_failed: true, ..Fake::default() },
        &["--policy", "streams", "--trace", "resnet50_bert", "--duration", "2s"],
    );
    assert_eq!(r.code, 1);
    assert!(r.err.contains("passed every call through"), "{}", r.err);
}

#[test]
fn a_missing_interposer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.so");
    let err = refused(&["--policy", "streams", "--trace", "resnet50_bert", "--preload", missing.to_str().unwrap()]);
    assert!(err.contains("nope.so") && err.contains("does not exist"), "{err}");
}

#[test]
fn orion_configs_give_each_client_its_model_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(dir.path().join("r101"), KERNELS).unwrap();
    std::fs::write(dir.path().join("mbv2"), KERNELS).unwrap();
    std::fs::write(
        &cfg,
        r#"[{"arch": "resnet101", "kernel_file": "r101", "num_kernels": 2, "num_iters": 100,
             "args": {"model_name": "resnet101", "batchsize": 16, "rps": 0, "uniform": false, "dummy_data": true, "train": true}},
            {"arch": "mobilenet_v2", "kernel_file": "mbv2", "num_kernels": 2, "num_iters": 100,
             "args": {"model_name": "mobilenet_v2", "batchsize": 4, "rps": 40, "uniform": true, "dummy_data": true, "train": false}}]"#,
    )
    .unwrap();
    let r = run(Fake::default(), &["--policy", "reef", cfg.to_str().unwrap(), "--duration", "2s", "--no-ideal"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let wl = read_json(&r.work().join("shared-workload.json"));
    let c = &wl["clients"];
    assert_eq!(
        (c[0]["model"].as_str(), c[0]["mode"].as_str(), c[0]["batch"].as_u64()),
        (Some("resnet101"), Some("training"), Some(16))
    );
    assert_eq!(
        (c[1]["model"].as_str(), c[1]["role"].as_str(), c[1]["arrival"]["type"].as_str()),
        (Some("mobilenetv2"), Some("hp"), Some("uniform"))
    );
    assert_eq!(c[1]["arrival"]["rate"], 40.0);
    assert_eq!(r.report()["policy"]["name"], "reef");
}

#[test]
fn a_trace_without_a_model_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("mystery.csv");
    std::fs::write(&csv, KERNELS).unwrap();
    let err = refused(&["--policy", "streams", "--trace", csv.to_str().unwrap()]);
    assert!(err.contains("names no model") && err.contains("mystery"), "{err}");
}

#[test]
fn a_driver_that_hangs_is_stopped_with_its_stacks_in_the_error() {
    let r = run(
        Fake { hang: true, ..Fake::default() },
        &["--policy", "temporal", "--trace", "resnet50_bert", "--duration", "1s", "--startup-timeout", "1"],
    );
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(r.err.contains("ran longer than the run plus --startup-timeout (2 s)"), "{}", r.err);
    assert!(r.err.contains("fake stack of a hung client"), "the stacks the driver printed: {}", r.err);
}
