//! Simulated against measured values of the same metric, one point per scenario cell and one
//! colour per policy, with the line of perfect agreement and a +-15% band around it.

use super::pareto::padded;
use super::{FAMILY, Figure, Mark, OrPlot, Provenance, distinct, frame, policy_color, tick};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// One cell: its policy (colour), the measured value (x) and the simulated one (y).
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPoint {
    /// Policy.
    pub policy: String,
    /// Measured on the real GPU.
    pub real: f64,
    /// Simulated.
    pub sim: f64,
}

/// One metric.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPanel {
    /// Metric and unit, e.g. `HP p95 latency (ms)`.
    pub metric: String,
    /// The cells.
    pub points: Vec<ScatterPoint>,
}

/// Simulated vs measured, one panel per metric, side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct SimVsReal {
    /// Title.
    pub title: String,
    /// The panels.
    pub panels: Vec<ScatterPanel>,
    /// Footer.
    pub provenance: Provenance,
}

impl Figure for SimVsReal {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let policies = distinct(self.panels.iter().flat_map(|p| &p.points).map(|p| p.policy.as_str()));
        let mut legend: Vec<(String, Mark)> =
            policies.iter().map(|p| (p.to_string(), Mark::Box(policy_color(p)))).collect();
        legend.push(("sim = real".into(), Mark::Line(RGBColor(60, 60, 60))));
        legend.push(("+-15%".into(), Mark::Dashed(RGBColor(150, 150, 150))));
        let body = frame(root, &self.title, &legend, &self.provenance)?;
        let areas = body.split_evenly((1, self.panels.len().max(1)));
        for (panel, area) in self.panels.iter().zip(&areas) {
            draw_panel(area, panel)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &ScatterPanel) -> Result<()> {
    let fin = || panel.points.iter().filter(|p| p.real.is_finite() && p.sim.is_finite());
    let (lo, hi) = fin()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.real).min(p.sim), b.max(p.real).max(p.sim)));
    // One range for both axes (the diagonal is the diagonal), from 0 when the values allow.
    let (lo, hi) = padded(if lo.is_finite() && lo > 0.0 && lo < hi * 0.4 { 0.0 } else { lo }, hi);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.metric, (FAMILY, 15))
        .margin_left(10)
        .margin_right(24)
        .margin_top(4)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, lo..hi)
        .plot()?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .x_desc("measured on the GPU")
        .y_desc("simulated")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .draw()
        .plot()?;
    chart.draw_series([PathElement::new(vec![(lo, lo), (hi, hi)], RGBColor(60, 60, 60).stroke_width(1))]).plot()?;
    let band = RGBColor(150, 150, 150);
    for f in [0.85, 1.15] {
        chart
            .draw_series([DashedPathElement::new(vec![(lo, lo * f), (hi, hi * f)], 5, 4, band.stroke_width(1))])
            .plot()?;
    }
    for p in fin() {
        chart.draw_series([Circle::new((p.real, p.sim), 5, policy_color(&p.policy).filled())]).plot()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_with_points_without_and_with_undefined_values() {
        let pt = |policy: &str, real: f64, sim: f64| ScatterPoint { policy: policy.into(), real, sim };
        let fig = SimVsReal {
            title: "sim vs real".into(),
            panels: vec![
                ScatterPanel {
                    metric: "HP p95 latency (ms)".into(),
                    points: vec![pt("orion", 8.0, 9.0), pt("streams", 15.0, 9.5)],
                },
                ScatterPanel { metric: "BE throughput (/s)".into(), points: vec![pt("orion", f64::NAN, 3.0)] },
                ScatterPanel { metric: "empty".into(), points: vec![] },
            ],
            provenance: Provenance::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        crate::plot::save_both(&fig, dir.path(), "s").unwrap();
        let svg = std::fs::read_to_string(dir.path().join("s.svg")).unwrap();
        for t in ["HP p95 latency (ms)", "BE throughput (/s)", "sim = real", "measured on the GPU", "streams"] {
            assert!(svg.contains(t), "no {t}");
        }
    }
}
