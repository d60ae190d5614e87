//! Figures as PNG and SVG: the paper's bar charts, latency CDFs, utilisation timelines and
//! sweep Pareto plots.
//!
//! Text is drawn with a bundled font (DejaVu Sans, `sim/assets/`), registered with plotters'
//! `ab_glyph` renderer, so figures render identically on a machine without system fonts. Each
//! figure is a value implementing [`Figure`]; [`save`] writes it as PNG or SVG by the file's
//! extension. Every figure carries a [`Provenance`] footer: simulator version, device and its
//! source, traces and where their numbers come from, and the seed.
//!
//! * [`LatencyBars`]: HP p95 latency per BE job and policy, the ideal as a line (fig7, fig10).
//! * [`ThroughputBars`]: HP + BE throughput per BE job and policy, stacked (fig7, fig10).
//! * [`LatencyCdf`]: the HP's request latency distribution per policy.
//! * [`UtilizationTimeline`]: SMs busy per client and DRAM bandwidth over time.
//! * [`Pareto`]: a sweep's HP p95 overhead against BE throughput per policy.

mod bars;
mod cdf;
mod pareto;
mod scatter;
mod text;
mod utilization;

pub use bars::{BarPanel, LatencyBars, ThroughputBars};
pub use cdf::LatencyCdf;
pub use pareto::{Pareto, ParetoPanel, ParetoPoint};
pub use scatter::{ScatterPanel, ScatterPoint, SimVsReal};
pub use utilization::UtilizationTimeline;

use crate::experiment::ExperimentReport;
use crate::run::{RunDetail, RunResult};
use anyhow::{Context, Result, anyhow, bail};
use orion_policies::Report;
use orion_traces::{Role, Scenario};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The bundled font (DejaVu Sans; license in `sim/assets/DejaVuSans-LICENSE.txt`).
pub const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Default figure size in pixels.
pub const SIZE: (u32, u32) = (1000, 600);

/// Font family every figure uses (registered with the bundled font).
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the bundled font as plotters' `sans-serif`, `serif` and `monospace` families (once
/// per process; [`save`] calls it).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            for style in [FontStyle::Normal, FontStyle::Bold] {
                // The font is bundled and known to parse (a unit test checks it).
                let _ = plotters::style::register_font(family, style, FONT);
            }
        }
    });
}

/// Where a figure's numbers come from, printed in its footer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Provenance {
    /// Simulator version (`orion-rs 0.1.0`).
    pub tool: String,
    /// Device name.
    pub device: String,
    /// Where the device description came from (`builtin:h100` or a file).
    pub device_source: String,
    /// Trace name and source (`analytic`, `measured`, `file`).
    pub traces: Vec<(String, String)>,
    /// Seed.
    pub seed: u64,
    /// Anything else worth a line (run length, scenario, sweep axes...).
    pub extra: Vec<String>,
}

impl Provenance {
    /// Of a run's report.
    pub fn of_report(r: &Report) -> Provenance {
        let mut traces: Vec<(String, String)> = Vec::new();
        for c in &r.clients {
            let t = (c.trace.name.clone(), c.trace.source.clone());
            if !traces.contains(&t) {
                traces.push(t);
            }
        }
        Provenance {
            tool: r.tool.clone(),
            device: r.device.name.clone(),
            device_source: r.device.source.clone(),
            traces,
            seed: r.seed,
            extra: vec![format!("scenario {}, {} s simulated, warm-up {}", r.scenario, r.duration_s, r.warmup)],
        }
    }

    /// Of an experiment.
    pub fn of_experiment(r: &ExperimentReport) -> Provenance {
        Provenance {
            tool: r.tool.clone(),
            device: r.device.clone(),
            device_source: r.device_source.clone(),
            traces: r.traces.iter().map(|(n, s)| (n.clone(), s.clone())).collect(),
            seed: r.seed,
            extra: vec![format!("{}, {} s simulated per cell, warm-up {}", r.experiment, r.duration_s, r.warmup)],
        }
    }

    /// The footer's text, wrapped at about `width` characters.
    pub fn lines(&self, width: usize) -> Vec<String> {
        let mut words: Vec<String> = vec![
            format!("{} (simulated)", self.tool),
            format!("device {} ({})", self.device, self.device_source),
            format!("seed {}", self.seed),
        ];
        words.extend(self.extra.iter().cloned());
        let traces: Vec<String> = self.traces.iter().map(|(n, s)| format!("{n} ({s})")).collect();
        if !traces.is_empty() {
            words.push(format!("traces: {}", traces.join(", ")));
        }
        let mut lines: Vec<String> = Vec::new();
        let mut cur = String::new();
        for w in words.join(" | ").split(' ') {
            if !cur.is_empty() && cur.len() + 1 + w.len() > width {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
        if !cur.is_empty() {
            lines.push(cur);
        }
        lines
    }
}

/// A figure that can be drawn on any plotters backend.
pub trait Figure {
    /// Size in pixels.
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    /// Draws the figure on `root` (the whole canvas).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Turns plotters' errors (generic over the backend) into `anyhow` errors.
pub(crate) trait OrPlot<T> {
    /// The result with the error as text.
    fn plot(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> OrPlot<T> for std::result::Result<T, E> {
    fn plot(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing: {e}"))
    }
}

/// Writes `fig` to `path`, as PNG or SVG by the extension.
pub fn save(fig: &impl Figure, path: &Path) -> Result<()> {
    register_font();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let size = fig.size();
    match ext.as_deref() {
        Some("png") => {
            let root = text::GlyphText(BitMapBackend::new(path, size)).into_drawing_area();
            fig.draw(&root).with_context(|| format!("drawing {}", path.display()))?;
            root.present().map_err(|e| anyhow!("{e}")).with_context(|| format!("writing {}", path.display()))?;
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            fig.draw(&root).with_context(|| format!("drawing {}", path.display()))?;
            root.present().map_err(|e| anyhow!("{e}")).with_context(|| format!("writing {}", path.display()))?;
        }
        _ => bail!("{}: a figure is written as .png or .svg", path.display()),
    }
    Ok(())
}

/// Writes `fig` as `DIR/NAME.png` and `DIR/NAME.svg`; returns the paths.
pub fn save_both(fig: &impl Figure, dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for ext in ["png", "svg"] {
        let p = dir.join(format!("{name}.{ext}"));
        save(fig, &p)?;
        out.push(p);
    }
    Ok(out)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating the plot folder {}", dir.display()))
}

/// The figures of one run: the HP latency CDF (policy and ideal) when the run has an inference
/// HP, and the utilisation timeline when it was sampled. Returns the files written.
pub fn write_run_plots(
    dir: &Path,
    scenario: &Scenario,
    result: &RunResult,
    detail: &RunDetail,
) -> Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let mut files = Vec::new();
    if let Some(cdf) = LatencyCdf::of_run(scenario, &result.report, detail) {
        files.extend(save_both(&cdf, dir, "latency_cdf")?);
    }
    if let Some(u) = UtilizationTimeline::of_run(scenario, &result.report, detail) {
        files.extend(save_both(&u, dir, "utilization")?);
    }
    Ok(files)
}

/// The figures of an experiment: HP p95 bars, stacked throughput bars, and the HP latency CDF
/// of every HP/BE pair (`cdf_HP_BE`). Returns the files written.
pub fn write_experiment_plots(dir: &Path, report: &ExperimentReport) -> Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let mut files = Vec::new();
    let e = &report.experiment;
    files.extend(save_both(&LatencyBars::of_experiment(report), dir, &format!("{e}_latency"))?);
    files.extend(save_both(&ThroughputBars::of_experiment(report), dir, &format!("{e}_throughput"))?);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for c in &report.cells {
        if !pairs.contains(&(c.hp.as_str(), c.be.as_str())) {
            pairs.push((&c.hp, &c.be));
        }
    }
    for (hp, be) in pairs {
        if let Some(cdf) = LatencyCdf::of_experiment(report, hp, be) {
            files.extend(save_both(&cdf, dir, &format!("{e}_cdf_{hp}_{be}"))?);
        }
    }
    Ok(files)
}

/// Colour of a policy, the same in every figure (Okabe-Ito palette, safe for colour blindness).
pub fn policy_color(name: &str) -> RGBColor {
    match name {
        "ideal" => RGBColor(0, 0, 0),
        "temporal" => RGBColor(230, 159, 0),
        "streams" => RGBColor(213, 94, 0),
        "mps" => RGBColor(240, 228, 66),
        "priority-streams" => RGBColor(204, 121, 167),
        "reef" => RGBColor(0, 114, 178),
        "orion" => RGBColor(0, 158, 115),
        other => {
            let h = other.bytes().fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
            RGBColor((h % 160) as u8 + 40, (h / 160 % 160) as u8 + 40, (h / 25600 % 160) as u8 + 40)
        }
    }
}

/// Colour of the `i`-th client.
pub fn client_color(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(213, 94, 0),
        RGBColor(0, 114, 178),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
    ];
    C[i % C.len()]
}

/// How a legend entry is marked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mark {
    /// A filled box.
    Box(RGBColor),
    /// A line.
    Line(RGBColor),
    /// A dashed line.
    Dashed(RGBColor),
}

/// Lays out a figure: white background, a title strip, an optional legend strip, the body, and
/// the provenance footer. Returns the body.
pub(crate) fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[(String, Mark)],
    provenance: &Provenance,
) -> Result<DrawingArea<DB, Shift>> {
    root.fill(&WHITE).plot()?;
    let (w, h) = root.dim_in_pixel();
    let lines = provenance.lines((w as usize).saturating_sub(20) / 7);
    let footer_h = 8 + 15 * lines.len() as u32;
    let (top, footer) = root.split_vertically(h.saturating_sub(footer_h));
    let footer_style = TextStyle::from((FAMILY, 12).into_font()).color(&RGBColor(90, 90, 90));
    for (i, l) in lines.iter().enumerate() {
        footer.draw_text(l, &footer_style, (10, 2 + 15 * i as i32)).plot()?;
    }
    let (title_area, rest) = top.split_vertically(34);
    let title_style = TextStyle::from((FAMILY, 20).into_font()).color(&BLACK);
    let (tw, _) = title_area.estimate_text_size(title, &title_style).plot()?;
    title_area.draw_text(title, &title_style, ((w as i32 - tw as i32).max(0) / 2, 8)).plot()?;
    if legend.is_empty() {
        return Ok(rest);
    }
    let (legend_area, body) = rest.split_vertically(26);
    draw_legend(&legend_area, legend)?;
    Ok(body)
}

/// A horizontal legend, centred.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[(String, Mark)]) -> Result<()> {
    let style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    let (w, _) = area.dim_in_pixel();
    let widths: Vec<i32> = items
        .iter()
        .map(|(t, _)| area.estimate_text_size(t, &style).map(|(tw, _)| tw as i32 + 36))
        .collect::<std::result::Result<_, _>>()
        .plot()?;
    let total: i32 = widths.iter().sum();
    let mut x = ((w as i32 - total) / 2).max(4);
    let y = 13;
    for ((text, mark), width) in items.iter().zip(widths) {
        match *mark {
            Mark::Box(c) => area.draw(&Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled())).plot()?,
            Mark::Line(c) => area.draw(&PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3))).plot()?,
            Mark::Dashed(c) => {
                area.draw(&DashedPathElement::new(vec![(x, y), (x + 22, y)], 5, 3, c.stroke_width(2))).plot()?
            }
        }
        area.draw_text(text, &style, (x + 26, y - 8)).plot()?;
        x += width;
    }
    Ok(())
}

/// The HP client of a scenario, if it serves requests (inference).
pub(crate) fn inference_hp(scenario: &Scenario) -> Option<usize> {
    scenario.clients.iter().position(|c| c.role == Role::Hp && c.kind == orion_traces::WorkKind::Inference)
}

/// A tick label with as few decimals as its magnitude needs (`100`, `2.5`, `0.25`).
pub(crate) fn tick(v: &f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// The distinct values of `items`, in order of first appearance (the policies of a figure).
pub(crate) fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// An upper axis bound with some headroom.
pub(crate) fn headroom(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 { max * 1.12 } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_drop_useless_decimals() {
        assert_eq!(tick(&100.0), "100");
        assert_eq!(tick(&10.0), "10");
        assert_eq!(tick(&2.5), "2.5");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&0.0), "0");
        assert_eq!(tick(&-12.5), "-12.5");
    }

    #[test]
    fn bundled_font_parses() {
        assert!(plotters::style::register_font("test-family", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn footer_wraps_and_names_everything() {
        let p = Provenance {
            tool: "orion-rs 0.1.0".into(),
            device: "h100".into(),
            device_source: "builtin:h100".into(),
            traces: vec![("a-trace".into(), "analytic".into()), ("b-trace".into(), "measured".into())],
            seed: 42,
            extra: vec![],
        };
        let lines = p.lines(40);
        assert!(lines.len() > 1 && lines.iter().all(|l| l.len() <= 40), "{lines:?}");
        let all = lines.join(" ");
        for needle in ["orion-rs 0.1.0", "builtin:h100", "seed 42", "a-trace (analytic)", "b-trace (measured)"] {
            assert!(all.contains(needle), "{all}");
        }
    }
}
