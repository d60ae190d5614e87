//! The utilisation timeline of a run: SMs busy per client, and DRAM bandwidth per client.

use super::{FAMILY, Figure, Mark, OrPlot, Provenance, client_color, frame, headroom};
use crate::gpu::Utilization;
use crate::run::RunDetail;
use anyhow::Result;
use orion_policies::Report;
use orion_traces::Scenario;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// SMs busy per client (stacked) and DRAM bandwidth per client (stacked, with the device's
/// peak dashed) over time, bucket averages.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilizationTimeline {
    /// Title.
    pub title: String,
    /// Client names, in the order of the samples' streams.
    pub clients: Vec<String>,
    /// The samples.
    pub utilization: Utilization,
    /// The device's peak DRAM bandwidth, GB/s.
    pub dram_peak_gbs: f64,
    /// Footer.
    pub provenance: Provenance,
}

impl UtilizationTimeline {
    /// From a run that sampled utilisation (`None` otherwise).
    pub fn of_run(scenario: &Scenario, report: &Report, detail: &RunDetail) -> Option<UtilizationTimeline> {
        let u = detail.utilization.clone().filter(|u| !u.is_empty())?;
        let note = if detail.dedicated { " (each client alone on its own GPU)" } else { "" };
        Some(UtilizationTimeline {
            title: format!("{} under {}: GPU utilisation{note}", report.scenario, report.policy.name),
            clients: scenario.clients.iter().map(|c| format!("{} ({})", c.name, c.role.as_str())).collect(),
            utilization: u,
            dram_peak_gbs: scenario.device.dram_bandwidth_gbs,
            provenance: Provenance::of_report(report),
        })
    }
}

/// Stacked step areas: for each series, its polygon between the running sums.
fn stacked(series: &[Vec<f64>], t: &[f64], scale: f64) -> Vec<Vec<(f64, f64)>> {
    let n = t.len().saturating_sub(1);
    let mut below = vec![0.0; n];
    let mut out = Vec::new();
    for s in series {
        let above: Vec<f64> = (0..n).map(|i| below[i] + s.get(i).copied().unwrap_or(0.0) * scale).collect();
        let mut poly = Vec::with_capacity(4 * n);
        for i in 0..n {
            poly.push((t[i], above[i]));
            poly.push((t[i + 1], above[i]));
        }
        for i in (0..n).rev() {
            poly.push((t[i + 1], below[i]));
            poly.push((t[i], below[i]));
        }
        out.push(poly);
        below = above;
    }
    out
}

impl Figure for UtilizationTimeline {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let legend: Vec<(String, Mark)> =
            self.clients.iter().enumerate().map(|(i, c)| (c.clone(), Mark::Box(client_color(i)))).collect();
        let body = frame(root, &self.title, &legend, &self.provenance)?;
        let u = &self.utilization;
        let span_ns = u.end_ns.saturating_sub(u.origin_ns);
        let (unit, div) = if span_ns < 2_000_000_000 { ("ms", 1e6) } else { ("s", 1e9) };
        let n = u.len();
        let t: Vec<f64> = (0..=n).map(|i| (u.bucket_start(i).min(u.end_ns)) as f64 / div).collect();
        let (t0, t1) = (u.origin_ns as f64 / div, (u.end_ns as f64 / div).max(u.origin_ns as f64 / div + 1e-9));
        let areas = body.split_evenly((2, 1));
        let total = |v: &[Vec<f64>], scale: f64| -> f64 {
            (0..n).map(|i| v.iter().map(|s| s.get(i).copied().unwrap_or(0.0)).sum::<f64>() * scale).fold(0.0, f64::max)
        };
        let panels = [
            ("SMs busy", &u.sms, 1.0, u.sm_count, "SMs"),
            ("DRAM bandwidth", &u.dram, self.dram_peak_gbs, self.dram_peak_gbs, "GB/s"),
        ];
        for ((name, series, scale, limit, y_unit), area) in panels.into_iter().zip(&areas) {
            let top = headroom(total(series, scale).max(limit));
            let mut chart = ChartBuilder::on(area)
                .caption(name, (FAMILY, 15))
                .margin_left(10)
                .margin_right(30)
                .margin_top(2)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(t0..t1, 0.0..top)
                .plot()?;
            chart
                .configure_mesh()
                .light_line_style(TRANSPARENT)
                .bold_line_style(RGBColor(215, 215, 215))
                .x_desc(format!("simulated time ({unit})"))
                .y_desc(y_unit)
                .y_label_formatter(&|v: &f64| format!("{v:.0}"))
                .label_style((FAMILY, 12))
                .axis_desc_style((FAMILY, 13))
                .draw()
                .plot()?;
            for (i, poly) in stacked(series, &t, scale).into_iter().enumerate() {
                chart.draw_series([Polygon::new(poly, client_color(i).mix(0.85).filled())]).plot()?;
            }
            chart
                .draw_series([DashedPathElement::new(vec![(t0, limit), (t1, limit)], 6, 4, BLACK.stroke_width(1))])
                .plot()?;
        }
        Ok(())
    }
}
