//! A sweep's trade-off: HP p95 overhead against BE throughput, one colour per policy, with each
//! policy's Pareto front (the points no other point of the policy beats on both).

use super::{FAMILY, Figure, Mark, OrPlot, Provenance, distinct, frame, policy_color, tick};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One point of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoPoint {
    /// Policy (its colour).
    pub policy: String,
    /// BE throughput (x; higher is better).
    pub x: f64,
    /// HP p95 overhead (y; lower is better).
    pub y: f64,
}

/// The points of one panel (e.g. one BE job at one HP rate).
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoPanel {
    /// Panel title (empty: none).
    pub title: String,
    /// The points.
    pub points: Vec<ParetoPoint>,
}

/// Scatter of sweep points with each policy's Pareto front, one panel per group of comparable
/// points.
#[derive(Debug, Clone, PartialEq)]
pub struct Pareto {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The panels.
    pub panels: Vec<ParetoPanel>,
    /// Footer.
    pub provenance: Provenance,
}

/// Indices of the points of `pts` on the Pareto front (maximal x, minimal y), by increasing x.
pub(crate) fn front(pts: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..pts.len()).filter(|&i| pts[i].0.is_finite() && pts[i].1.is_finite()).collect();
    // By x descending, then y ascending: a point is on the front when its y beats every point
    // with a larger (or equal) x seen so far.
    idx.sort_by(|&a, &b| pts[b].0.total_cmp(&pts[a].0).then(pts[a].1.total_cmp(&pts[b].1)));
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for i in idx {
        if pts[i].1 < best {
            best = pts[i].1;
            out.push(i);
        }
    }
    out.reverse();
    out
}

impl Figure for Pareto {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let policies = distinct(self.panels.iter().flat_map(|p| &p.points).map(|p| p.policy.as_str()));
        let legend: Vec<(String, Mark)> =
            policies.iter().map(|p| (p.to_string(), Mark::Line(policy_color(p)))).collect();
        let body = frame(root, &self.title, &legend, &self.provenance)?;
        let n = self.panels.len().max(1);
        let cols = (n as f64).sqrt().ceil() as usize;
        let rows = n.div_ceil(cols);
        let areas = body.split_evenly((rows, cols));
        let small = n > 1;
        for (panel, area) in self.panels.iter().zip(&areas) {
            self.draw_panel(area, panel, &policies, small)?;
        }
        Ok(())
    }
}

/// An axis range around `lo..=hi` with a margin; `0..1` when either bound is not finite (a
/// panel without finite points). plotters' tick search does not end on a range with a
/// non-finite bound, so no such range may reach it.
pub(crate) fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let d = ((hi - lo) * 0.08).max(lo.abs().max(hi.abs()) * 0.02).max(1e-3);
    (lo - d, hi + d)
}

impl Pareto {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &ParetoPanel,
        policies: &[&str],
        small: bool,
    ) -> Result<()> {
        let fin = || panel.points.iter().filter(|p| p.x.is_finite() && p.y.is_finite());
        let (x0, x1) = fin().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.x), b.max(p.x)));
        let (y0, y1) = fin().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.y), b.max(p.y)));
        let (x0, x1) = padded(x0, x1);
        let (y0, y1) = padded(y0.min(0.0), y1);
        let mut builder = ChartBuilder::on(area);
        builder.margin_left(10).margin_right(20).margin_top(4).x_label_area_size(40).y_label_area_size(64);
        if !panel.title.is_empty() {
            builder.caption(&panel.title, (FAMILY, if small { 13 } else { 15 }));
        }
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).plot()?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FAMILY, if small { 11 } else { 13 }))
            .axis_desc_style((FAMILY, if small { 12 } else { 14 }))
            .draw()
            .plot()?;
        chart
            .draw_series([PathElement::new(vec![(x0, 0.0), (x1, 0.0)], RGBColor(120, 120, 120).stroke_width(1))])
            .plot()?;
        for policy in policies {
            let c = policy_color(policy);
            let pts: Vec<(f64, f64)> = fin().filter(|p| p.policy == *policy).map(|p| (p.x, p.y)).collect();
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.mix(0.45).filled()))).plot()?;
            let f: Vec<(f64, f64)> = front(&pts).into_iter().map(|i| pts[i]).collect();
            chart.draw_series(LineSeries::new(f.clone(), c.stroke_width(2))).plot()?;
            chart.draw_series(f.iter().map(|&p| Circle::new(p, 4, c.filled()))).plot()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::Provenance;

    #[test]
    fn front_keeps_the_undominated_points_by_increasing_x() {
        // (x, y): more x and less y are better. (1.0, 5.0) is beaten by (2.0, 3.0), and (3.0, 7.0)
        // by (3.0, 6.0); (2.5, 4.0) is beaten by nothing (no point has x >= 2.5 and y <= 4).
        let pts = [(1.0, 5.0), (2.0, 3.0), (2.5, 4.0), (3.0, 6.0), (1.5, 1.0), (3.0, 7.0)];
        assert_eq!(front(&pts), vec![4, 1, 2, 3]);
        // A point with a non-finite coordinate is never on the front.
        let pts = [(1.0, f64::NAN), (2.0, 1.0), (f64::INFINITY, 0.5)];
        assert_eq!(front(&pts), vec![1]);
    }

    #[test]
    fn ranges_are_finite_whatever_the_points() {
        assert_eq!(padded(f64::INFINITY, f64::NEG_INFINITY), (0.0, 1.0));
        // A panel without points: the y range starts at 0 but has no top.
        assert_eq!(padded(0.0, f64::NEG_INFINITY), (0.0, 1.0));
        let (a, b) = padded(0.0, 0.0);
        assert!(a < 0.0 && b > 0.0);
        let (a, b) = padded(1e6, 1e6);
        assert!(a < 1e6 && b > 1e6 && (b - a) > 1e4);
    }

    /// A sweep can yield a panel whose points are all undefined (no HP request completed in a
    /// short run) next to one whose points coincide: both must draw (plotters' tick search used
    /// to loop forever on the first).
    #[test]
    fn empty_and_degenerate_panels_draw() {
        let pt = |policy: &str, x: f64, y: f64| ParetoPoint { policy: policy.into(), x, y };
        let fig = Pareto {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            panels: vec![
                ParetoPanel { title: "none".into(), points: vec![pt("orion", f64::NAN, f64::NAN)] },
                ParetoPanel { title: "empty".into(), points: vec![] },
                ParetoPanel { title: "one".into(), points: vec![pt("orion", 12.0, 0.0), pt("streams", 12.0, 0.0)] },
            ],
            provenance: Provenance::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        crate::plot::save_both(&fig, dir.path(), "p").unwrap();
        let svg = std::fs::read_to_string(dir.path().join("p.svg")).unwrap();
        for t in ["none", "empty", "one"] {
            assert!(svg.contains(t), "no panel {t}");
        }
    }
}
