//! Every figure type renders with the bundled font (no system fonts: plotters is built without
//! `font-kit`/`ttf`), to a PNG that decodes at the expected size with non-blank content and
//! text in its title strip, and to an SVG that parses and carries its text.

use orion_policies::ParamMap;
use orion_sim::engine::Recording;
use orion_sim::experiment::{Experiment, ExperimentOptions, run_experiment};
use orion_sim::gpu::UtilizationWindow;
use orion_sim::plot::{self, Figure, LatencyBars, LatencyCdf, ThroughputBars, UtilizationTimeline};
use orion_sim::run::{IdealReference, run_with};
use orion_sim::sweep::{SweepSpec, parse_param_axis, run_sweep};
use orion_traces::builtin::workload_scenario;
use orion_traces::{DeviceSpec, Model, Scenario, Stop};
use std::path::Path;

fn scenario(pair: &str, seconds: u64) -> Scenario {
    let mut s = workload_scenario(pair, None, DeviceSpec::preset("h100").unwrap(), "builtin:h100".into()).unwrap();
    s.stop = Stop { duration_ns: Some(seconds * 1_000_000_000), requests: None };
    s
}

/// Decodes a PNG: (width, height, RGBA pixels).
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 4]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let px: Vec<[u8; 4]> = match info.color_type {
        png::ColorType::Rgb => bytes.chunks(3).map(|c| [c[0], c[1], c[2], 255]).collect(),
        png::ColorType::Rgba => bytes.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, px)
}

/// Renders `fig` as PNG and SVG into `dir` and checks both; `texts` must appear in the SVG.
fn check(fig: &impl Figure, dir: &Path, name: &str, texts: &[&str]) {
    let files = plot::save_both(fig, dir, name).unwrap();
    assert_eq!(files.len(), 2);
    let (w, h, px) = decode(&dir.join(format!("{name}.png")));
    assert_eq!((w, h), plot::SIZE, "{name}: size");
    assert_eq!(px.len(), (w * h) as usize);
    let white = |p: &[u8; 4]| p[0] > 245 && p[1] > 245 && p[2] > 245;
    let inked = px.iter().filter(|p| !white(p)).count();
    assert!(inked > (w * h) as usize / 50, "{name}: only {inked} non-white pixels");
    let mut colours: Vec<[u8; 4]> = px.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 16, "{name}: only {} colours", colours.len());
    // The title strip (top 34 px) holds only the title's text: dark anti-aliased pixels there
    // prove that the bundled font rendered.
    let title_ink = px[..(34 * w) as usize].iter().filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100).count();
    assert!(title_ink > 200, "{name}: no title text ({title_ink} dark pixels)");
    // The footer (last 20 px) holds the provenance text.
    let footer = &px[((h - 20) * w) as usize..];
    assert!(footer.iter().any(|p| !white(p)), "{name}: no footer text");

    let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}.svg does not parse: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("1000"));
    assert_eq!(root.attribute("height"), Some("600"));
    let text: String = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n");
    for t in texts.iter().chain(&["orion-rs", "seed 1", "builtin:h100", "measured"]) {
        assert!(text.contains(t), "{name}.svg lacks the text `{t}`");
    }
}

#[test]
fn every_figure_type_renders_to_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Bars and CDFs of an experiment (temporal makes the latency axis logarithmic).
    let mut opts = ExperimentOptions::new(DeviceSpec::preset("h100").unwrap(), "builtin:h100".into());
    opts.duration_ns = 2_000_000_000;
    opts.policies = vec!["ideal".into(), "temporal".into(), "orion".into()];
    opts.hp_models = vec![Model::ResNet50, Model::MobileNetV2];
    opts.be_models = vec![Model::Bert, Model::ResNet50];
    let exp = run_experiment(Experiment::Fig7, &opts).unwrap();
    check(&LatencyBars::of_experiment(&exp), d, "latency_bars", &["HP p95 latency", "bert", "temporal"]);
    check(&ThroughputBars::of_experiment(&exp), d, "throughput_bars", &["throughput", "resnet50", "orion"]);
    let cdf = LatencyCdf::of_experiment(&exp, "resnet50", "bert").unwrap();
    assert_eq!(cdf.series.len(), 3);
    check(&cdf, d, "experiment_cdf", &["request latency", "ideal"]);
    // Without temporal the bars are close: a linear axis.
    let mut close = exp.clone();
    close.cells.retain(|c| c.policy != "temporal");
    close.policies.retain(|p| p != "temporal");
    check(&LatencyBars::of_experiment(&close), d, "latency_bars_linear", &["HP p95 latency"]);

    // A run: its CDF against the ideal, and its utilisation timeline.
    let sc = scenario("resnet50_bert", 2);
    let rec = Recording {
        ops: false,
        utilization: Some(UtilizationWindow { from_ns: 0, to_ns: Some(2_000_000_000), buckets: 500 }),
        ..Recording::default()
    };
    let (result, detail) = run_with(&sc, "streams", &ParamMap::new(), IdealReference::Simulate, &rec).unwrap();
    let cdf = LatencyCdf::of_run(&sc, &result.report, &detail).unwrap();
    assert_eq!(cdf.series.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["streams", "ideal"]);
    check(&cdf, d, "run_cdf", &["resnet50", "streams"]);
    let util = UtilizationTimeline::of_run(&sc, &result.report, &detail).unwrap();
    assert_eq!(util.utilization.len(), 500);
    check(&util, d, "utilization", &["SMs busy", "DRAM bandwidth", "resnet50 (hp)", "bert (be)"]);
    let files = plot::write_run_plots(&d.join("run"), &sc, &result, &detail).unwrap();
    assert_eq!(files.len(), 4);

    // A sweep's Pareto plot, one panel and several (3 s each: at 10/s, 1 s is all warm-up).
    let spec = SweepSpec {
        policies: vec!["orion".into(), "streams".into()],
        params: vec![parse_param_axis("orion.dur_threshold=50us..1ms:log:3").unwrap()],
        ..SweepSpec::default()
    };
    let sweep = run_sweep(&scenario("resnet50_bert", 3), &spec, vec!["test".into()], &|| {}).unwrap();
    check(&sweep.pareto(), d, "pareto", &["HP p95 overhead", "orion", "streams"]);
    let spec = SweepSpec { hp_rates: vec![10.0, 30.0], ..spec };
    let sweep = run_sweep(&scenario("resnet50_bert", 3), &spec, vec!["test".into()], &|| {}).unwrap();
    let pareto = sweep.pareto();
    assert_eq!(pareto.panels.len(), 2);
    check(&pareto, d, "pareto_panels", &["poisson(10/s)", "poisson(30/s)"]);
}

#[test]
fn figures_refuse_unknown_extensions_and_unwritable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario("resnet50_bert", 1);
    let (result, detail) =
        run_with(&sc, "orion", &ParamMap::new(), IdealReference::Simulate, &Recording::default()).unwrap();
    let cdf = LatencyCdf::of_run(&sc, &result.report, &detail).unwrap();
    let e = plot::save(&cdf, &dir.path().join("x.jpg")).unwrap_err().to_string();
    assert!(e.contains(".png or .svg"), "{e}");
    let e = plot::save(&cdf, &dir.path().join("missing/x.png")).unwrap_err();
    assert!(format!("{e:#}").contains("missing"), "{e:#}");
    // No utilisation was sampled: no timeline figure.
    assert!(UtilizationTimeline::of_run(&sc, &result.report, &detail).is_none());
}
