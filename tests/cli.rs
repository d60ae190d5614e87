//! The `orion-sim` command line end to end: bad input gets a clear error naming the file, line
//! and field, a non-zero exit and no panic; good input runs.

use std::path::PathBuf;

fn data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name).display().to_string()
}

/// Runs orion-sim with `args`; returns (exit code, stdout, stderr).
fn orion_sim(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("orion-sim").chain(args.iter().copied());
    let code = orion_sim::cli::main_with(argv, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn assert_error(args: &[&str], needles: &[&str]) {
    let (code, out, err) = orion_sim(args);
    assert_ne!(code, 0, "expected failure for {args:?}, got output {out}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "error for {args:?} should mention `{n}`:\n{err}");
    }
}

#[test]
fn malformed_orion_csv_names_file_line_and_field() {
    assert_error(&["--trace", &data("bad_profile.csv"), "--duration", "1s"], &["bad_profile.csv", "line 4", "Profile"]);
}

#[test]
fn config_naming_a_missing_file_names_the_config_the_field_and_the_path() {
    assert_error(&[&data("missing_file.json")], &["missing_file.json", "kernel_file", "no_such_profile.csv"]);
}

#[test]
fn unknown_model_is_named_with_the_known_ones() {
    assert_error(&["--trace", "resnet51_bert"], &["resnet51", "resnet50", "mobilenetv2"]);
}

#[test]
fn unknown_policy_is_named_with_the_known_ones() {
    assert_error(&["--trace", "resnet50_bert", "--policy", "fifo"], &["fifo", "orion", "reef", "priority-streams"]);
}

#[test]
fn negative_rate_in_a_config_is_located() {
    assert_error(&[&data("negative_rate.json")], &["negative_rate.json", "rps", "-15"]);
}

#[test]
fn negative_rate_on_the_command_line_is_refused() {
    assert_error(&["--trace", "resnet50_bert", "--hp-rate=-3"], &["rate"]);
}

#[test]
fn unknown_policy_parameter_is_named() {
    assert_error(
        &["--trace", "resnet50_bert", "--policy", "orion", "-P", "dur_treshold=100us"],
        &["dur_treshold", "dur_threshold"],
    );
}

#[test]
fn bad_duration_is_refused() {
    assert_error(&["--trace", "resnet50_bert", "--duration", "ten seconds"], &["--duration"]);
}

#[test]
fn unknown_device_is_named() {
    assert_error(&["--trace", "resnet50_bert", "--device", "k80"], &["k80", "h100"]);
}

#[test]
fn usage_errors_exit_with_2() {
    let (code, _, err) = orion_sim(&["--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn orion_config_runs_and_stops_after_the_hp_requests() {
    // HP: 60 iterations, 10 of them warm-up -> stops after 50 measured requests.
    let (code, out, err) = orion_sim(&[&data("orion_config.json"), "--policy", "orion", "--json", "--no-ideal"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hp = &report["clients"][1];
    assert_eq!(hp["role"], "hp");
    assert_eq!(hp["completed"], 50);
    assert_eq!(report["policy"]["name"], "orion");
    assert_eq!(hp["trace"]["source"], "file");
}

#[test]
fn ideal_with_a_request_count_stops_and_runs_the_be_as_long_as_the_hp() {
    // Each client alone: the HP until its 30 requests are done, the BE (closed-loop training,
    // no count of its own) for as long; this never ended before.
    let (code, out, err) =
        orion_sim(&["--policy", "ideal", "--trace", "resnet50_bert", "--requests", "30", "--json", "--no-ideal"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["clients"][0]["role"], "hp");
    assert_eq!(report["clients"][0]["completed"], 30);
    let be = report["clients"][1]["completed"].as_u64().unwrap();
    assert!(be > 0, "the BE ran: {be} iterations");
    // 30 requests at 15/s take about 2 s; the BE ran about as long (an iteration of ~0.1 s).
    let d = report["duration_s"].as_f64().unwrap();
    assert!((1.0..4.0).contains(&d), "duration {d} s");
}

#[test]
fn same_inputs_and_seed_give_byte_identical_json() {
    let args = ["--trace", "mobilenetv2_resnet50", "--policy", "orion", "--duration", "3s", "--seed", "7", "--json"];
    let (c1, a, _) = orion_sim(&args);
    let (c2, b, _) = orion_sim(&args);
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(a, b);
    let (_, c, _) = orion_sim(&[
        "--trace",
        "mobilenetv2_resnet50",
        "--policy",
        "orion",
        "--duration",
        "3s",
        "--seed",
        "8",
        "--json",
    ]);
    assert_ne!(a, c, "a different seed gives different arrivals");
}

/// `--timeline` writes a Chrome trace-event file that passes the format check, with a process
/// per client, a slice per op (its profile in `args`) and the run's provenance.
#[test]
fn timeline_is_valid_trace_event_json_with_every_client_and_the_provenance() {
    let path = std::env::temp_dir().join(format!("orion-timeline-test-{}.json", std::process::id()));
    let p = path.display().to_string();
    let (code, out, err) = orion_sim(&[
        "--trace",
        "resnet50_bert",
        "--duration",
        "2s",
        "--seed",
        "7",
        "--timeline",
        &p,
        "--window",
        "0.5s..0.7s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&path).expect("timeline written");
    std::fs::remove_file(&path).ok();
    let v: serde_json::Value = serde_json::from_str(&text).expect("timeline is JSON");
    let summary = orion_sim::timeline::validate(&v).expect("timeline passes the trace-event check");
    assert!(summary.slices > 100, "{summary:?}");
    let events = v["traceEvents"].as_array().unwrap();
    let processes: Vec<&str> =
        events.iter().filter(|e| e["name"] == "process_name").filter_map(|e| e["args"]["name"].as_str()).collect();
    assert!(processes.iter().any(|n| n.contains("resnet50")), "{processes:?}");
    assert!(processes.iter().any(|n| n.contains("bert")), "{processes:?}");
    let kernel = events.iter().find(|e| e["ph"] == "X" && e["cat"] == "kernel").expect("a kernel slice");
    assert!(kernel["args"].as_object().is_some_and(|a| !a.is_empty()), "{kernel}");
    // Every slice lies in the window (µs).
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        assert!(ts + dur >= 500_000.0 - 1e-3 && ts <= 700_000.0 + 1e-3, "{e}");
    }
    let meta = v["otherData"].to_string();
    for needle in ["seed", "7", "h100", "resnet50"] {
        assert!(meta.contains(needle), "provenance should name {needle}: {meta}");
    }
}
