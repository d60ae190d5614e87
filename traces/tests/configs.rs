//! Loading experiment descriptions through `orion_traces::config`.

mod common;

use common::{Scratch, data};
use orion_traces::config::orion::load_orion_config;
use orion_traces::config::scenario_file::{
    ArrivalEntry, ArrivalKind, ClientEntry, DeviceRef, ScenarioFile, load_scenario_file,
};
use orion_traces::config::{LoadOptions, load_scenario};
use orion_traces::{ArrivalProcess, Location, Role, Stop, WorkKind};
use std::path::Path;

fn opts() -> LoadOptions {
    LoadOptions::preset("h100").unwrap()
}

fn load_err(path: &Path) -> String {
    load_scenario(path, &opts()).unwrap_err().to_string()
}

// ---------------------------------------------------------------- Orion's config.json

#[test]
fn orion_training_be_and_poisson_hp() {
    let s = load_scenario(&data().join("orion_rnet_rnet.json"), &opts()).unwrap();
    assert_eq!(s.name, "orion_rnet_rnet");
    assert_eq!(s.device_source, "builtin:h100");
    assert_eq!(s.device.name, "h100");
    assert_eq!(s.seed, 0);
    assert_eq!(s.warmup, 10);
    assert_eq!(s.policy, None);
    assert_eq!(s.clients.len(), 2);
    assert_eq!(s.hp_client(), Some(1));

    let be = &s.clients[0];
    assert_eq!(be.name, "resnet50_0");
    assert_eq!(be.role, Role::Be);
    assert_eq!(be.kind, WorkKind::Training);
    assert_eq!(be.arrival, ArrivalProcess::ClosedLoop);
    assert_eq!(be.max_requests, Some(1_200_000));
    assert_eq!(be.trace.meta.name, "resnet50_32_fb1");
    assert_eq!(be.trace.ops.len(), 5);
    let first = be.first_trace.as_ref().unwrap();
    assert_eq!(first.meta.name, "resnet50_32_fb0");
    assert_eq!(first.ops.len(), 3);
    assert_eq!(be.trace.meta.model.as_deref(), Some("resnet50"));
    assert_eq!(be.trace.meta.batch_size, Some(32));
    assert_eq!(be.trace.meta.mode, Some(WorkKind::Training));

    let hp = &s.clients[1];
    assert_eq!(hp.name, "resnet50_1");
    assert_eq!(hp.role, Role::Hp);
    assert_eq!(hp.kind, WorkKind::Inference);
    assert_eq!(hp.arrival, ArrivalProcess::Poisson { rate: 15.0 });
    assert_eq!(hp.first_trace, None);
    assert_eq!(hp.max_requests, Some(100));
    assert_eq!(s.stop, Stop { duration_ns: None, requests: Some(90) });
}

#[test]
fn orion_uniform_and_input_file_arrivals() {
    let mut o = opts();
    o.seed = 3;
    o.warmup = 20;
    let s = load_orion_config(&data().join("orion_inf_inf.json"), &o).unwrap();
    assert_eq!(s.seed, 3);
    assert_eq!(s.warmup, 20);
    assert_eq!(s.clients[0].name, "resnet50");
    assert_eq!(s.clients[0].arrival, ArrivalProcess::Uniform { rate: 80.0 });
    assert_eq!(s.clients[1].name, "mobilenet_v2");
    assert_eq!(s.clients[1].arrival, ArrivalProcess::Trace { inter_arrival_s: vec![0.02, 0.05, 0.03, 0.1] });
    assert_eq!(s.stop.requests, Some(480));
}

/// A config with one BE training client and one HP inference client; `hp` is spliced in as the
/// HP's JSON and `be_extra` into the BE's.
fn orion_config(be_extra: &str, hp: &str) -> String {
    format!(
        r#"[
  {{"arch": "resnet50", "kernel_file": "model_kernels/resnet50_32_fb0",
    "additional_kernel_file": "model_kernels/resnet50_32_fb1",
    "num_kernels": 3, "additional_num_kernels": 5, "num_iters": 1000{be_extra},
    "args": {{"model_name": "resnet50", "batchsize": 32, "rps": 0, "uniform": false,
             "dummy_data": true, "train": true}}}},
  {hp}
]"#
    )
}

const HP_OK: &str = r#"{"arch": "mobilenet_v2", "kernel_file": "model_kernels/mobilenetv2_4_fwd",
    "num_kernels": 2, "num_iters": 100,
    "args": {"batchsize": 4, "rps": 40, "uniform": false, "train": false}}"#;

#[test]
fn orion_rps_zero_inference_is_closed_loop() {
    let s = Scratch::new("rps0");
    let p = s.write("c.json", &orion_config("", &HP_OK.replace("\"rps\": 40", "\"rps\": 0")));
    let sc = load_scenario(&p, &opts()).unwrap();
    assert_eq!(sc.clients[1].arrival, ArrivalProcess::ClosedLoop);
    assert_eq!(sc.clients[0].name, "resnet50");
    // Absolute paths work as well as relative ones.
    let abs = s.dir.join("model_kernels/mobilenetv2_4_fwd");
    let p = s
        .write("abs.json", &orion_config("", &HP_OK.replace("model_kernels/mobilenetv2_4_fwd", abs.to_str().unwrap())));
    assert!(load_scenario(&p, &opts()).is_ok());
}

#[test]
fn orion_single_client_is_the_hp() {
    let s = Scratch::new("single");
    let p = s.write("c.json", &format!("[{HP_OK}]"));
    let sc = load_scenario(&p, &opts()).unwrap();
    assert_eq!(sc.clients.len(), 1);
    assert_eq!(sc.clients[0].role, Role::Hp);
}

#[test]
fn orion_missing_kernel_file_names_config_client_field_and_path() {
    let s = Scratch::new("missing");
    let p = s.write(
        "config.json",
        &orion_config(
            "",
            &HP_OK
                .replace("model_kernels/mobilenetv2_4_fwd", "/root/orion/benchmarking/model_kernels/mobilenetv2_4_fwd"),
        ),
    );
    let msg = load_err(&p);
    assert!(msg.contains(&format!("{}, field `[1].kernel_file`", p.display())), "{msg}");
    assert!(msg.contains("client 1 (mobilenet_v2)"), "{msg}");
    assert!(msg.contains("`/root/orion/benchmarking/model_kernels/mobilenetv2_4_fwd` does not exist"), "{msg}");

    // A relative path is taken from the config's folder (exp/), where the files are not.
    let p = s.write("exp/config2.json", &orion_config("", HP_OK));
    let msg = load_err(&p);
    assert!(msg.contains("field `[0].kernel_file`"), "{msg}");
    assert!(msg.contains("exp/model_kernels/resnet50_32_fb0"), "{msg}");
    assert!(msg.contains("relative paths are taken from"), "{msg}");
}

#[test]
fn orion_unknown_arch_is_an_error() {
    let s = Scratch::new("arch");
    let p = s.write("c.json", &orion_config("", &HP_OK.replace("mobilenet_v2", "vgg16")));
    let msg = load_err(&p);
    assert!(msg.contains("field `[1].arch`"), "{msg}");
    assert!(msg.contains("unknown model `vgg16`"), "{msg}");
    assert!(msg.contains("resnet50"), "{msg}");
}

#[test]
fn orion_negative_rps_is_an_error() {
    let s = Scratch::new("rps");
    let p = s.write("c.json", &orion_config("", &HP_OK.replace("\"rps\": 40", "\"rps\": -5")));
    let msg = load_err(&p);
    assert!(msg.contains("field `[1].args.rps`"), "{msg}");
    assert!(msg.contains("-5"), "{msg}");
}

#[test]
fn orion_missing_rps_for_inference_is_an_error() {
    let s = Scratch::new("norps");
    let p = s.write("c.json", &orion_config("", &HP_OK.replace("\"rps\": 40,", "")));
    let msg = load_err(&p);
    assert!(msg.contains("field `[1].args.rps`"), "{msg}");
}

#[test]
fn orion_num_kernels_mismatch_names_field_and_both_numbers() {
    let s = Scratch::new("numk");
    let p = s.write("c.json", &orion_config("", &HP_OK.replace("\"num_kernels\": 2", "\"num_kernels\": 152")));
    let msg = load_err(&p);
    assert!(msg.contains("field `[1].num_kernels`"), "{msg}");
    assert!(msg.contains("152") && msg.contains("has 2 kernel rows"), "{msg}");

    let p = s.write(
        "c2.json",
        &orion_config("", HP_OK).replace("\"additional_num_kernels\": 5", "\"additional_num_kernels\": 946"),
    );
    let msg = load_err(&p);
    assert!(msg.contains("field `[0].additional_num_kernels`"), "{msg}");
    assert!(msg.contains("946") && msg.contains("has 5 kernel rows"), "{msg}");

    let p = s.write("c3.json", &orion_config("", HP_OK).replace("\"additional_num_kernels\": 5,", ""));
    let msg = load_err(&p);
    assert!(msg.contains("field `[0].additional_num_kernels`: client 0 (resnet50): missing"), "{msg}");
}

#[test]
fn orion_missing_input_file_is_an_error() {
    let s = Scratch::new("input");
    let p = s.write(
        "c.json",
        &orion_config("", &HP_OK.replace("\"train\": false", "\"train\": false, \"input_file\": \"nope.json\"")),
    );
    let msg = load_err(&p);
    assert!(msg.contains("field `[1].args.input_file`"), "{msg}");
    assert!(msg.contains("nope.json` does not exist"), "{msg}");
}

#[test]
fn orion_hp_num_iters_must_exceed_warmup() {
    let s = Scratch::new("iters");
    let p = s.write("c.json", &orion_config("", &HP_OK.replace("\"num_iters\": 100", "\"num_iters\": 10")));
    let msg = load_err(&p);
    assert!(msg.contains("field `[1].num_iters`"), "{msg}");
    let p = s.write("c2.json", &orion_config("", &HP_OK.replace("\"num_iters\": 100", "\"num_iters\": 0")));
    assert!(load_err(&p).contains("field `[1].num_iters`"));
}

#[test]
fn orion_json_errors_carry_line_and_path() {
    let s = Scratch::new("json");
    let p = s.write("c.json", &orion_config("", &HP_OK.replace("\"arch\": \"mobilenet_v2\",", "")));
    let msg = load_err(&p);
    assert!(msg.contains("field `[1]`"), "{msg}");
    assert!(msg.contains("missing field `arch`"), "{msg}");
    let p = s.write("c2.json", &orion_config(", \"num_kernels\": 3", HP_OK));
    let msg = load_err(&p);
    assert!(msg.contains("duplicate field `num_kernels`"), "{msg}");
    let p = s.write("c3.json", &orion_config("", &HP_OK.replace("\"num_iters\": 100", "\"num_iters\": \"lots\"")));
    let msg = load_err(&p);
    assert!(msg.contains("line 8, field `[1].num_iters`: invalid type"), "{msg}");
    let p = s.write("c4.json", "[]");
    assert!(load_err(&p).contains("no clients"));
    let p = s.write("c5.json", "[{\"arch\": \"bert\",");
    assert!(load_err(&p).contains("line 1"));
}

// ---------------------------------------------------------------- the project's scenario file

#[test]
fn scenario_file_with_traces() {
    let s = load_scenario(&data().join("scenario.json"), &opts()).unwrap();
    assert_eq!(s.name, "resnet50_bert");
    assert_eq!(s.device.name, "a100");
    assert_eq!(s.device_source, "builtin:a100");
    assert_eq!(s.seed, 7);
    assert_eq!(s.warmup, 5);
    assert_eq!(s.stop, Stop { duration_ns: Some(30_000_000_000), requests: None });
    assert_eq!(s.policy.as_deref(), Some("orion"));
    assert_eq!(s.policy_params["dur_threshold"], "160us");
    assert_eq!(s.policy_params["sm_threshold"], 80);
    let hp = &s.clients[0];
    assert_eq!((hp.name.as_str(), hp.role, hp.kind), ("hp", Role::Hp, WorkKind::Inference));
    assert_eq!(hp.arrival, ArrivalProcess::Poisson { rate: 15.0 });
    assert_eq!(hp.max_requests, Some(5000));
    assert_eq!(hp.trace.meta.name, "resnet50-inference-b4");
    let be = &s.clients[1];
    assert_eq!((be.name.as_str(), be.role, be.kind), ("be", Role::Be, WorkKind::Training));
    assert_eq!(be.arrival, ArrivalProcess::ClosedLoop);
    assert_eq!(be.trace.ops.len(), 5);
    assert_eq!(be.max_requests, None);
}

#[test]
fn scenario_file_with_device_file_and_every_arrival() {
    let s = load_scenario_file(&data().join("scenario_device_file.json"), &opts()).unwrap();
    assert_eq!(s.name, "scenario_device_file");
    assert_eq!(s.device.name, "v100");
    assert!(s.device_source.ends_with("devices/v100.json"), "{}", s.device_source);
    assert_eq!(s.stop, Stop { duration_ns: None, requests: Some(200) });
    assert_eq!(s.seed, 0);
    assert_eq!(s.warmup, 10);
    let names: Vec<&str> = s.clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "resnet50_4_fwd",
            "resnet50_32_fb1_1",
            "resnet50_32_fb1_2",
            "resnet50-inference-b4_3",
            "resnet50-inference-b4_4",
            "resnet50-inference-b4_5"
        ]
    );
    assert_eq!(s.hp_client(), Some(0));
    assert_eq!(s.clients[0].arrival, ArrivalProcess::Trace { inter_arrival_s: vec![0.02, 0.05, 0.03, 0.1] });
    assert_eq!(s.clients[1].first_trace.as_ref().unwrap().meta.name, "resnet50_32_fb0");
    assert_eq!(s.clients[2].first_trace, None);
    assert_eq!(s.clients[3].arrival, ArrivalProcess::Trace { inter_arrival_s: vec![0.01, 0.02] });
    assert_eq!(s.clients[4].arrival, ArrivalProcess::Uniform { rate: 50.0 });
    assert_eq!(s.clients[5].arrival, ArrivalProcess::ClosedLoop);
    assert!(s.clients.iter().skip(1).all(|c| c.role == Role::Be));
}

#[test]
fn scenario_file_round_trips_through_serde() {
    let file = ScenarioFile {
        name: Some("x".into()),
        device: Some(DeviceRef::File("d.json".into())),
        seed: Some(1),
        duration_ns: Some(2_500_000),
        requests: None,
        warmup: None,
        policy: Some("reef".into()),
        policy_params: [("depth".to_string(), serde_json::json!(4))].into(),
        clients: vec![
            ClientEntry {
                role: Some(Role::Hp),
                model: Some("bert".into()),
                mode: Some(WorkKind::Inference),
                arrival: Some(ArrivalEntry {
                    kind: ArrivalKind::Poisson,
                    rate: Some(8.0),
                    file: None,
                    inter_arrival_s: None,
                }),
                ..ClientEntry::default()
            },
            ClientEntry { trace: Some("t.csv".into()), ..ClientEntry::default() },
        ],
    };
    let text = serde_json::to_string_pretty(&file).unwrap();
    assert!(text.contains("\"duration\": \"2500us\""), "{text}");
    assert!(text.contains("\"device\": {\n    \"file\": \"d.json\"\n  }"), "{text}");
    let back = ScenarioFile::parse(&text, &Location::file("x.json")).unwrap();
    assert_eq!(back, file);
    let preset =
        ScenarioFile::parse(r#"{"device": "h100", "duration": 2.5, "clients": []}"#, &Location::default()).unwrap();
    assert_eq!(preset.device, Some(DeviceRef::Preset("h100".into())));
    assert_eq!(preset.duration_ns, Some(2_500_000_000));
}

/// A scenario with an HP inference trace client and a BE training trace client; `hp` and `be`
/// are spliced into the clients' objects and `top` into the top level.
fn scenario(top: &str, hp: &str, be: &str) -> String {
    format!(
        r#"{{
  "device": "h100"{top},
  "clients": [
    {{"role": "hp", "trace": "traces/resnet50_inf.json", "arrival": {{"type": "poisson", "rate": 15}}{hp}}},
    {{"role": "be", "trace": "traces/bert_train.csv"{be}}}
  ]
}}"#
    )
}

fn scenario_err(top: &str, hp: &str, be: &str) -> String {
    let s = Scratch::new("scenario");
    let p = s.write("sc.json", &scenario(top, hp, be));
    load_err(&p)
}

#[test]
fn scenario_minimal_defaults() {
    let s = Scratch::new("scenario-ok");
    let p = s.write("sc.json", &scenario("", "", ""));
    let sc = load_scenario(&p, &opts()).unwrap();
    assert_eq!(sc.name, "sc");
    assert_eq!(sc.stop, Stop::DEFAULT);
    assert_eq!(sc.clients[0].name, "resnet50-inference-b4");
    assert_eq!(sc.clients[1].name, "bert-training-b8");
}

#[test]
fn scenario_two_hps_is_an_error() {
    let s = Scratch::new("twohp");
    let p = s.write("sc.json", &scenario("", "", "").replace(r#""role": "be""#, r#""role": "hp""#));
    let msg = load_err(&p);
    assert!(msg.contains("sc.json, field `clients[1].role`"), "{msg}");
    assert!(msg.contains("clients[0] is already high-priority"), "{msg}");
}

#[test]
fn scenario_client_errors_name_the_field() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("", r#", "max_requests": 0"#, "", "clients[0].max_requests"),
        (
            "",
            "",
            r#", "arrival": {"type": "poisson", "rate": 2}"#,
            "clients[1].arrival`: a training client runs closed loop",
        ),
        (
            "",
            "",
            r#", "mode": "inference""#,
            "clients[1].mode`: is inference, but trace `traces/bert_train.csv` is a training trace",
        ),
        ("", "", r#", "batch": 8"#, "clients[1].batch`: `batch` applies to `model` only"),
        ("", "", r#", "model": "bert""#, "clients[1]`: give either `model` or `trace`, not both"),
        ("", "", r#", "first_trace": "traces/nope.csv""#, "clients[1].first_trace`: trace file"),
        ("", "", r#", "colour": "red""#, "line 5, field `clients[1].colour`: unknown field `colour`"),
        ("", "", r#", "role": "high""#, "duplicate field `role`"),
        ("", "", r#", "name": """#, "clients[1].name`: the name is empty"),
        ("", r#", "name": "x""#, r#", "name": "x""#, "clients[1].name`: `x` is also the name of clients[0]"),
    ];
    for (top, hp, be, want) in cases {
        let msg = scenario_err(top, hp, be);
        assert!(msg.contains("sc.json"), "{msg}");
        assert!(msg.contains(want), "want `{want}` in `{msg}`");
    }
}

#[test]
fn scenario_arrival_errors_name_the_field() {
    let s = Scratch::new("arrival");
    let base = scenario("", "", "");
    let cases = [
        (r#"{"type": "poisson", "rate": -15}"#, "clients[0].arrival.rate`: must be a positive number"),
        (r#"{"type": "poisson"}"#, "clients[0].arrival.rate`: missing"),
        (r#"{"type": "poisson", "rate": "fast"}"#, "line 4, field `clients[0].arrival.rate`: invalid type"),
        (r#"{"type": "uniform", "rate": 0}"#, "clients[0].arrival.rate`"),
        (
            r#"{"type": "poisson", "rate": 1, "file": "g.json"}"#,
            "clients[0].arrival.file`: not used by a `poisson` arrival",
        ),
        (r#"{"type": "closed_loop", "rate": 1}"#, "clients[0].arrival.rate`: not used by a `closed_loop` arrival"),
        (r#"{"type": "trace"}"#, "clients[0].arrival`: a `trace` arrival needs `file` or `inter_arrival_s`"),
        (r#"{"type": "trace", "file": "g.json", "inter_arrival_s": [1]}"#, "clients[0].arrival`: give either"),
        (
            r#"{"type": "trace", "inter_arrival_s": []}"#,
            "clients[0].arrival.inter_arrival_s`: the list of inter-arrival times is empty",
        ),
        (r#"{"type": "trace", "file": "missing.json"}"#, "clients[0].arrival.file`: inter-arrival file"),
        (r#"{"type": "bursty"}"#, "clients[0].arrival.type`: unknown variant `bursty`"),
        (r#"{"type": "poisson", "rate": 1, "burst": 2}"#, "unknown field `burst`"),
    ];
    for (arrival, want) in cases {
        let text = base.replace(r#"{"type": "poisson", "rate": 15}"#, arrival);
        let p = s.write("sc.json", &text);
        let msg = load_err(&p);
        assert!(msg.contains(want), "want `{want}` in `{msg}`");
    }
    let text = base.replace(r#", "arrival": {"type": "poisson", "rate": 15}"#, "");
    let p = s.write("sc.json", &text);
    let msg = load_err(&p);
    assert!(msg.contains("clients[0].arrival`: an inference client needs an arrival process"), "{msg}");
}

#[test]
fn scenario_model_errors_do_not_reach_the_builtin_traces() {
    let s = Scratch::new("model");
    let base = scenario("", "", "");
    let text = base.replace(r#""trace": "traces/resnet50_inf.json""#, r#""model": "vgg16", "mode": "inference""#);
    let msg = load_err(&s.write("sc.json", &text));
    assert!(msg.contains("clients[0].model`: unknown model `vgg16`"), "{msg}");
    let text = base.replace(r#""trace": "traces/resnet50_inf.json""#, r#""model": "resnet50""#);
    let msg = load_err(&s.write("sc.json", &text));
    assert!(msg.contains("clients[0].mode`: missing"), "{msg}");
    let text = base
        .replace(r#""trace": "traces/resnet50_inf.json""#, r#""model": "resnet50", "mode": "inference", "batch": 0"#);
    let msg = load_err(&s.write("sc.json", &text));
    assert!(msg.contains("clients[0].batch`"), "{msg}");
    let text = base.replace(r#""trace": "traces/resnet50_inf.json", "#, "");
    let msg = load_err(&s.write("sc.json", &text));
    assert!(msg.contains("clients[0]`: give `model`"), "{msg}");
}

#[test]
fn scenario_top_level_errors_name_the_field() {
    let cases = [
        (r#", "duration": "soon""#, "line 2, field `duration`: `soon` is not a duration"),
        (r#", "duration": "0s""#, "field `duration`: the duration must be positive"),
        (r#", "duration": -3"#, "field `duration`"),
        (r#", "requests": 0"#, "field `requests`"),
        (r#", "name": " ""#, "field `name`: the name is empty"),
        (r#", "seed": -1"#, "field `seed`"),
        (r#", "polcy": "orion""#, "unknown field `polcy`"),
    ];
    for (top, want) in cases {
        let msg = scenario_err(top, "", "");
        assert!(msg.contains(want), "want `{want}` in `{msg}`");
    }
    let s = Scratch::new("device");
    let text = scenario("", "", "");
    let msg = load_err(&s.write("sc.json", &text.replace(r#""device": "h100""#, r#""device": "tpu""#)));
    assert!(msg.contains("field `device`: unknown device `tpu`"), "{msg}");
    let msg = load_err(&s.write("sc.json", &text.replace(r#""device": "h100""#, r#""device": {"file": "gpu.json"}"#)));
    assert!(msg.contains("field `device.file`: device file"), "{msg}");
    assert!(msg.contains("gpu.json` does not exist"), "{msg}");
    let msg = load_err(&s.write("sc.json", &text.replace(r#""device": "h100""#, r#""device": {"path": "gpu.json"}"#)));
    assert!(msg.contains("field `device`: unknown field `path`"), "{msg}");
    let msg = load_err(&s.write("sc.json", &text.replace(r#""device": "h100""#, r#""device": 7"#)));
    assert!(msg.contains("field `device`: invalid type"), "{msg}");
    let msg = load_err(&s.write("sc.json", r#"{"clients": []}"#));
    assert!(msg.contains("field `clients`: the scenario has no clients"), "{msg}");
    let msg = load_err(&s.write("sc.json", r#"{"name": "x"}"#));
    assert!(msg.contains("missing field `clients`"), "{msg}");
}

#[test]
fn scenario_missing_trace_file_names_the_client() {
    let s = Scratch::new("trace");
    let text = scenario("", "", "").replace("traces/bert_train.csv", "traces/gpt.csv");
    let msg = load_err(&s.write("sc.json", &text));
    assert!(msg.contains("sc.json, field `clients[1].trace`: trace file"), "{msg}");
    assert!(msg.contains("traces/gpt.csv` does not exist"), "{msg}");
}

#[test]
fn scenario_trace_errors_name_the_trace_file() {
    let s = Scratch::new("badtrace");
    s.write("traces/bad.csv", "kind,name,duration_ns,sm_needed,class\nkernel,k,1,1,compute\nkernel,k,x,1,compute\n");
    let text = scenario("", "", r#", "mode": "training""#).replace("traces/bert_train.csv", "traces/bad.csv");
    let msg = load_err(&s.write("sc.json", &text));
    assert!(msg.contains("traces/bad.csv, line 3, field `duration_ns`"), "{msg}");
}

#[test]
fn scenario_validate_failures_name_the_file() {
    let s = Scratch::new("validate");
    let text = scenario("", "", "").replace("traces/bert_train.csv", "traces/empty.csv");
    let text = text.replace(r#""role": "be", "trace""#, r#""role": "be", "arrival": {"type": "closed_loop"}, "trace""#);
    let msg = load_err(&s.write("sc.json", &text));
    assert!(msg.contains("sc.json: client `nothing`: trace `nothing` has no ops"), "{msg}");
}

#[test]
fn scenario_and_orion_formats_are_told_apart() {
    let s = Scratch::new("detect");
    let msg = load_err(&s.write("x.json", "\"hello\""));
    assert!(msg.contains("x.json: not an experiment description"), "{msg}");
    let msg = load_err(&s.write("y.json", "{\"clients\": [], }"));
    assert!(msg.contains("y.json, line 1"), "{msg}");
}
