//! The distribution of the HP's request latency, one curve per policy.

use super::{FAMILY, Figure, Mark, OrPlot, Provenance, frame, headroom, inference_hp, policy_color, tick};
use crate::experiment::ExperimentReport;
use crate::run::RunDetail;
use anyhow::Result;
use orion_policies::Report;
use orion_traces::Scenario;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// Empirical CDF of the HP's request latency per policy, with the p95 and p99 levels marked.
/// The latency axis is logarithmic when the curves span more than a factor of 20.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyCdf {
    /// Title.
    pub title: String,
    /// Per curve: policy name (its colour) and latencies in ms.
    pub series: Vec<(String, Vec<f64>)>,
    /// Footer.
    pub provenance: Provenance,
}

fn ms(ns: &[u64]) -> Vec<f64> {
    ns.iter().map(|&x| x as f64 / 1e6).collect()
}

impl LatencyCdf {
    /// The HP's latencies in a run, and in its ideal reference when the run simulated it;
    /// `None` without an inference HP or without measured requests.
    pub fn of_run(scenario: &Scenario, report: &Report, detail: &RunDetail) -> Option<LatencyCdf> {
        let h = inference_hp(scenario)?;
        let own = detail.latencies_ns.get(h).filter(|l| !l.is_empty())?;
        let mut series = vec![(report.policy.name.clone(), ms(own))];
        if report.policy.name != "ideal"
            && let Some(ideal) = detail.ideal_latencies_ns.as_ref().and_then(|i| i.get(h)).filter(|l| !l.is_empty())
        {
            series.push(("ideal".into(), ms(ideal)));
        }
        let c = &scenario.clients;
        let be: Vec<&str> = c.iter().filter(|x| x.role != orion_traces::Role::Hp).map(|x| x.name.as_str()).collect();
        let with = if be.is_empty() { String::new() } else { format!(" sharing with {}", be.join(", ")) };
        Some(LatencyCdf {
            title: format!("HP {} request latency{with}", c[h].name),
            series,
            provenance: Provenance::of_report(report),
        })
    }

    /// The HP's latencies in the cells of pair `hp`/`be` of an experiment, one curve per policy;
    /// `None` when the report holds none (it was read from a file, not run).
    pub fn of_experiment(r: &ExperimentReport, hp: &str, be: &str) -> Option<LatencyCdf> {
        let series: Vec<(String, Vec<f64>)> = r
            .policies
            .iter()
            .filter_map(|p| {
                let l = r.hp_latencies_ns.get(&(hp.to_string(), be.to_string(), p.clone()))?;
                (!l.is_empty()).then(|| (p.clone(), ms(l)))
            })
            .collect();
        if series.is_empty() {
            return None;
        }
        Some(LatencyCdf {
            title: format!("{}: HP {hp} request latency, BE {be}", r.experiment),
            series,
            provenance: Provenance::of_experiment(r),
        })
    }
}

impl Figure for LatencyCdf {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let legend: Vec<(String, Mark)> = self
            .series
            .iter()
            .map(|(p, _)| {
                (p.clone(), if p == "ideal" { Mark::Dashed(policy_color(p)) } else { Mark::Line(policy_color(p)) })
            })
            .collect();
        let body = frame(root, &self.title, &legend, &self.provenance)?;
        let all = || self.series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite() && *v > 0.0);
        let max = all().fold(0.0f64, f64::max);
        let min = all().fold(f64::INFINITY, f64::min);
        if max > 0.0 && max / min > 6.0 {
            let lo = min * 0.85;
            self.draw_with(&body, (lo..max * 1.3).log_scale(), lo)
        } else {
            let lo = if max > 0.0 { (min * 0.9).max(0.0) } else { 0.0 };
            self.draw_with(&body, lo..headroom(max), lo)
        }
    }
}

impl LatencyCdf {
    fn draw_with<DB, X>(&self, area: &DrawingArea<DB, Shift>, x: X, lo: f64) -> Result<()>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(10)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x, 0.0..1.02f64)
            .plot()?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .x_desc("HP request latency (ms)")
            .y_desc("fraction of requests")
            .x_label_formatter(&tick)
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .draw()
            .plot()?;
        let gray = RGBColor(150, 150, 150);
        let x_end = self.series.iter().flat_map(|(_, v)| v.iter().copied()).fold(lo, f64::max) * 1.25;
        for q in [0.95, 0.99] {
            chart
                .draw_series([DashedPathElement::new(vec![(lo, q), (x_end, q)], 4, 4, gray.stroke_width(1))])
                .plot()?;
        }
        // The ideal last and dashed, so that it shows over the curves it is compared with.
        let mut order: Vec<&(String, Vec<f64>)> = self.series.iter().filter(|(p, _)| p != "ideal").collect();
        order.extend(self.series.iter().filter(|(p, _)| p == "ideal"));
        for (policy, values) in order {
            let mut v = values.clone();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            // A step curve: at each latency the fraction jumps by 1/n.
            let mut pts = Vec::with_capacity(2 * v.len() + 1);
            pts.push((v.first().copied().unwrap_or(lo).max(lo), 0.0));
            for (i, &x) in v.iter().enumerate() {
                let x = x.max(lo);
                pts.push((x, i as f64 / n));
                pts.push((x, (i + 1) as f64 / n));
            }
            let style = policy_color(policy).stroke_width(2);
            if policy == "ideal" {
                chart.draw_series(DashedLineSeries::new(pts, 7, 5, style)).plot()?;
            } else {
                chart.draw_series(LineSeries::new(pts, style)).plot()?;
            }
        }
        Ok(())
    }
}
