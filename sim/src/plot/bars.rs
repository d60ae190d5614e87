//! Grouped bar charts in the style of the paper's Figures 7 and 10: one group per BE job, one
//! bar per policy, one panel per HP model.

use super::{FAMILY, Figure, Mark, OrPlot, Provenance, distinct, frame, headroom, policy_color, tick};
use crate::experiment::ExperimentReport;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::ops::Range;

/// One panel of bars: values per policy and group, and a reference per group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarPanel {
    /// Panel title (e.g. `HP resnet50`).
    pub title: String,
    /// `values[policy][group]`: the bar's height (the total of a stacked bar).
    pub values: Vec<Vec<Option<f64>>>,
    /// `lower[policy][group]`: the lower part of a stacked bar (empty: not stacked).
    pub lower: Vec<Vec<Option<f64>>>,
    /// Per group, a reference drawn as a dashed line across the group (empty: none).
    pub reference: Vec<Option<f64>>,
}

/// HP p95 latency per BE job (groups) and policy (bars), with the ideal (dedicated-GPU) p95 as
/// a dashed line; one panel per HP model. The latency axis is logarithmic when the bars span
/// more than a factor of 4.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBars {
    /// Title.
    pub title: String,
    /// Group names (BE jobs).
    pub groups: Vec<String>,
    /// Bar series (policies; the ideal is the reference line, not a bar).
    pub policies: Vec<String>,
    /// Panels (HP models).
    pub panels: Vec<BarPanel>,
    /// Label of the group axis.
    pub x_label: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Footer.
    pub provenance: Provenance,
}

/// Throughput per BE job (groups) and policy (bars), each bar stacked: HP (solid, below) and BE
/// (light, above); one panel per HP model. The ideal is a bar like the others.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputBars {
    /// Title.
    pub title: String,
    /// Group names (BE jobs).
    pub groups: Vec<String>,
    /// Bar series (policies).
    pub policies: Vec<String>,
    /// Panels (HP models): `values` the total, `lower` the HP's part.
    pub panels: Vec<BarPanel>,
    /// Label of the group axis.
    pub x_label: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Footer.
    pub provenance: Provenance,
}

fn order_of<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    distinct(items).into_iter().map(str::to_string).collect()
}

impl LatencyBars {
    /// From an experiment's cells.
    pub fn of_experiment(r: &ExperimentReport) -> LatencyBars {
        let hps = order_of(r.cells.iter().map(|c| c.hp.as_str()));
        let groups = order_of(r.cells.iter().map(|c| c.be.as_str()));
        let policies: Vec<String> = r.policies.iter().filter(|p| *p != "ideal").cloned().collect();
        let cell = |hp: &str, be: &str, p: &str| r.cells.iter().find(|c| c.hp == hp && c.be == be && c.policy == p);
        let panels = hps
            .iter()
            .map(|hp| BarPanel {
                title: format!("HP {hp}"),
                values: policies
                    .iter()
                    .map(|p| groups.iter().map(|be| cell(hp, be, p).map(|c| c.hp_p95_ms)).collect())
                    .collect(),
                lower: Vec::new(),
                reference: groups
                    .iter()
                    .map(|be| {
                        cell(hp, be, "ideal").map(|c| c.hp_p95_ms).or_else(|| {
                            // Without the ideal among the policies: p95 / (1 + overhead).
                            r.cells
                                .iter()
                                .filter(|c| &c.hp == hp && &c.be == be)
                                .find_map(|c| c.hp_p95_overhead.map(|o| c.hp_p95_ms / (1.0 + o)))
                        })
                    })
                    .collect(),
            })
            .collect();
        let what =
            if r.experiment == "fig10" { "bursty HP inference vs BE inference" } else { "HP inference vs BE training" };
        LatencyBars {
            title: format!("{}: HP p95 latency per BE job and policy ({what})", r.experiment),
            groups,
            policies,
            panels,
            x_label: "BE job".into(),
            y_label: "HP p95 latency (ms)".into(),
            provenance: Provenance::of_experiment(r),
        }
    }
}

impl ThroughputBars {
    /// From an experiment's cells.
    pub fn of_experiment(r: &ExperimentReport) -> ThroughputBars {
        let hps = order_of(r.cells.iter().map(|c| c.hp.as_str()));
        let groups = order_of(r.cells.iter().map(|c| c.be.as_str()));
        let policies = r.policies.clone();
        let cell = |hp: &str, be: &str, p: &str| r.cells.iter().find(|c| c.hp == hp && c.be == be && c.policy == p);
        let panels = hps
            .iter()
            .map(|hp| BarPanel {
                title: format!("HP {hp}"),
                values: policies
                    .iter()
                    .map(|p| {
                        groups
                            .iter()
                            .map(|be| cell(hp, be, p).map(|c| c.hp_throughput_per_s + c.be_throughput_per_s))
                            .collect()
                    })
                    .collect(),
                lower: policies
                    .iter()
                    .map(|p| groups.iter().map(|be| cell(hp, be, p).map(|c| c.hp_throughput_per_s)).collect())
                    .collect(),
                reference: Vec::new(),
            })
            .collect();
        let (unit, what) = if r.experiment == "fig10" {
            ("requests/s", "HP requests/s (solid) + BE requests/s (light)")
        } else {
            ("per second", "HP requests/s (solid) + BE iterations/s (light)")
        };
        ThroughputBars {
            title: format!("{}: throughput per BE job and policy, {what}", r.experiment),
            groups,
            policies,
            panels,
            x_label: "BE job".into(),
            y_label: format!("throughput ({unit})"),
            provenance: Provenance::of_experiment(r),
        }
    }
}

fn legend(policies: &[String], reference: Option<&str>) -> Vec<(String, Mark)> {
    let mut l: Vec<(String, Mark)> = policies.iter().map(|p| (p.clone(), Mark::Box(policy_color(p)))).collect();
    if let Some(r) = reference {
        l.push((r.to_string(), Mark::Dashed(RGBColor(0, 0, 0))));
    }
    l
}

impl Figure for LatencyBars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let has_ref = self.panels.iter().any(|p| p.reference.iter().any(Option::is_some));
        let body = frame(root, &self.title, &legend(&self.policies, has_ref.then_some("ideal")), &self.provenance)?;
        let areas = body.split_evenly((self.panels.len().max(1), 1));
        for (panel, area) in self.panels.iter().zip(&areas) {
            let all: Vec<f64> = panel
                .values
                .iter()
                .flatten()
                .chain(&panel.reference)
                .flatten()
                .copied()
                .filter(|v| v.is_finite() && *v > 0.0)
                .collect();
            let max = all.iter().copied().fold(0.0f64, f64::max);
            let min = all.iter().copied().fold(f64::INFINITY, f64::min);
            if all.is_empty() || max / min <= 4.0 {
                let spec = 0.0..headroom(max);
                draw_panel(area, &self.groups, &self.policies, &self.y_label, panel, spec, 0.0)?;
            } else {
                let lo = 10f64.powf((min * 0.7).log10().floor());
                let spec = (lo..max * 1.6).log_scale();
                draw_panel(area, &self.groups, &self.policies, &self.y_label, panel, spec, lo)?;
            }
        }
        Ok(())
    }
}

impl Figure for ThroughputBars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = frame(root, &self.title, &legend(&self.policies, None), &self.provenance)?;
        let areas = body.split_evenly((self.panels.len().max(1), 1));
        for (panel, area) in self.panels.iter().zip(&areas) {
            let max = panel.values.iter().flatten().flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
            draw_panel(area, &self.groups, &self.policies, &self.y_label, panel, 0.0..headroom(max), 0.0)?;
        }
        Ok(())
    }
}

/// A category axis: group `i` spans `i..i + 1`, its label sits at `i + 0.5`.
#[derive(Debug, Clone, Copy)]
struct GroupAxis(usize);

impl Ranged for GroupAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = value / self.0.max(1) as f64;
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() { Vec::new() } else { (0..self.0).map(|i| i as f64 + 0.5).collect() }
    }

    fn range(&self) -> Range<f64> {
        0.0..self.0.max(1) as f64
    }
}

impl ValueFormatter<f64> for GroupAxis {
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

/// Draws one panel of grouped (optionally stacked) bars with bars starting at `base`.
fn draw_panel<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    groups: &[String],
    policies: &[String],
    y_label: &str,
    panel: &BarPanel,
    y: Y,
    base: f64,
) -> Result<()>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let x = GroupAxis(groups.len());
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FAMILY, 16))
        .margin_left(10)
        .margin_right(20)
        .margin_top(4)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .plot()?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .x_label_formatter(&|v: &f64| groups.get(v.floor().max(0.0) as usize).cloned().unwrap_or_default())
        .y_desc(y_label)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .draw()
        .plot()?;
    let series = panel.values.len().max(1) as f64;
    let slot = 0.8 / series;
    for (pi, per_group) in panel.values.iter().enumerate() {
        let color = policy_color(policies.get(pi).map_or("", String::as_str));
        let lower = panel.lower.get(pi);
        for (g, v) in per_group.iter().enumerate() {
            let Some(v) = *v else { continue };
            let x0 = g as f64 + 0.1 + pi as f64 * slot;
            let x1 = x0 + slot * 0.9;
            match lower.and_then(|l| l.get(g).copied().flatten()) {
                Some(lo) => {
                    chart.draw_series([Rectangle::new([(x0, base), (x1, lo)], color.filled())]).plot()?;
                    chart.draw_series([Rectangle::new([(x0, lo), (x1, v)], color.mix(0.35).filled())]).plot()?;
                    chart.draw_series([Rectangle::new([(x0, base), (x1, v)], color.stroke_width(1))]).plot()?;
                }
                None => {
                    chart.draw_series([Rectangle::new([(x0, base), (x1, v)], color.filled())]).plot()?;
                }
            }
        }
    }
    for (g, r) in panel.reference.iter().enumerate() {
        if let Some(r) = *r {
            let pts = vec![(g as f64 + 0.04, r), (g as f64 + 0.96, r)];
            chart.draw_series([DashedPathElement::new(pts, 6, 4, BLACK.stroke_width(2))]).plot()?;
        }
    }
    Ok(())
}
