//! The lab's figures, each written as PNG and SVG: the IsoFLOP curves with their minima, and
//! the N_opt / D_opt power laws extrapolated to the prediction budgets.

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::{Analysis, Method};
use crate::error::{Result, ScalingError};
use crate::runs::{Run, by_budget};

type PlotResult = std::result::Result<(), Box<dyn Error>>;

/// A figure drawable on any plotters backend.
trait Figure {
    const SIZE: (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, labels: bool) -> PlotResult
    where
        DB::ErrorType: 'static;
}

/// Writes `<stem>.png` and `<stem>.svg` (each via a temp file and a rename); returns both paths.
fn save<F: Figure>(fig: &F, stem: &Path) -> Result<Vec<PathBuf>> {
    let labels = lm_basics::train::metrics::register_font();
    let err =
        |path: &Path, e: Box<dyn Error>| ScalingError::bad_file(path, format!("plotting: {e}"));
    let mut written = Vec::new();
    for ext in ["png", "svg"] {
        let out = stem.with_extension(ext);
        let tmp = stem.with_extension(format!("tmp.{ext}"));
        let drawn = if ext == "png" {
            let root = BitMapBackend::new(&tmp, F::SIZE).into_drawing_area();
            fig.draw(&root, labels).and_then(|_| Ok(root.present()?))
        } else {
            let root = SVGBackend::new(&tmp, F::SIZE).into_drawing_area();
            fig.draw(&root, labels).and_then(|_| Ok(root.present()?))
        };
        drawn.map_err(|e| err(&out, e))?;
        std::fs::rename(&tmp, &out).map_err(|e| ScalingError::io(&out, e))?;
        written.push(out);
    }
    Ok(written)
}

/// Loss against model size, one colour per budget: the runs, approach 2's parabolas, and
/// the optimum of each curve (filled: lowest-loss run; ring: parabola vertex).
struct IsoflopCurves<'a> {
    runs: &'a [Run],
    analysis: &'a Analysis,
}

impl Figure for IsoflopCurves<'_> {
    const SIZE: (u32, u32) = (1000, 650);

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, labels: bool) -> PlotResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (n_lo, n_hi) = span(self.runs.iter().map(|r| r.parameters));
        let (l_lo, l_hi) = span(self.runs.iter().map(|r| r.final_loss));
        let pad = (l_hi - l_lo) * 0.05;
        let mut chart = chart_builder(root, labels, "IsoFLOP curves").build_cartesian_2d(
            (n_lo / 1.3..n_hi * 1.3).log_scale(),
            (l_lo - pad)..(l_hi + pad),
        )?;
        let mut mesh = chart.configure_mesh();
        if labels {
            mesh.x_desc("parameters N")
                .y_desc("final loss")
                .x_label_formatter(&|x| format!("{x:.0e}"));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw()?;
        let parabolas = self.analysis.parabola.as_ref();
        for (i, (budget, group)) in by_budget(self.runs).iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts = group
                .iter()
                .map(|r| Circle::new((r.parameters, r.final_loss), 3, color.filled()));
            let series = chart.draw_series(pts)?;
            if labels {
                series
                    .label(format!("C = {budget:.0e}"))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
            }
            let opt = &self.analysis.isoflop.optima[i];
            chart.draw_series([Circle::new((opt.n_opt, opt.loss), 7, color.stroke_width(2))])?;
            if let Some(o) = parabolas.map(|p| &p.optima[i])
                && let Some(c) = o.parabola
            {
                let (lo, hi) = span(group.iter().map(|r| r.parameters));
                let curve = (0..=60).map(|k| {
                    let n = lo * (hi / lo).powf(k as f64 / 60.0);
                    (n, c[0] + c[1] * n.ln() + c[2] * n.ln().powi(2))
                });
                chart.draw_series(LineSeries::new(curve, color.stroke_width(1)))?;
                chart.draw_series([Cross::new((o.n_opt, o.loss), 6, BLACK.stroke_width(2))])?;
            }
        }
        if labels {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}

/// N_opt and D_opt against compute, log-log: the per-budget optima, each method's power law
/// extrapolated to the largest prediction budget, and the predictions with their intervals.
struct ScalingLaws<'a> {
    analysis: &'a Analysis,
}

impl Figure for ScalingLaws<'_> {
    const SIZE: (u32, u32) = (1400, 600);

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, labels: bool) -> PlotResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let a = self.analysis;
        let panels = root.split_evenly((1, 2));
        let c_lo = a.isoflop.optima[0].budget;
        let c_hi = a
            .options
            .predict_budgets
            .iter()
            .copied()
            .fold(a.isoflop.optima.last().map_or(c_lo, |o| o.budget), f64::max);
        for (panel, tokens) in panels.iter().zip([false, true]) {
            let what = if tokens {
                "D_opt (tokens)"
            } else {
                "N_opt (parameters)"
            };
            let pick = |n: f64, d: f64| if tokens { d } else { n };
            let mut ys: Vec<f64> = a
                .isoflop
                .optima
                .iter()
                .map(|o| pick(o.n_opt, o.d_opt))
                .collect();
            for m in &a.methods {
                for p in &m.predictions {
                    let e = if tokens { p.d_opt } else { p.n_opt };
                    ys.push(e.value);
                    if let Some((lo, hi)) = e.interval {
                        ys.extend([lo, hi]);
                    }
                }
            }
            let (y_lo, y_hi) = span(ys.into_iter());
            let mut chart = chart_builder(panel, labels, &format!("{what} vs compute"))
                .build_cartesian_2d(
                    (c_lo / 2.0..c_hi * 2.0).log_scale(),
                    (y_lo / 2.0..y_hi * 2.0).log_scale(),
                )?;
            let mut mesh = chart.configure_mesh();
            if labels {
                mesh.x_desc("compute C (FLOPs)")
                    .y_desc(what)
                    .x_label_formatter(&|x| format!("{x:.0e}"))
                    .y_label_formatter(&|y| format!("{y:.0e}"));
            } else {
                mesh.x_labels(0).y_labels(0);
            }
            mesh.draw()?;
            let optima = a
                .isoflop
                .optima
                .iter()
                .map(|o| Circle::new((o.budget, pick(o.n_opt, o.d_opt)), 4, BLACK.filled()));
            let s = chart.draw_series(optima)?;
            if labels {
                s.label("lowest-loss run per budget")
                    .legend(|(x, y)| Circle::new((x + 10, y), 4, BLACK.filled()));
            }
            for (i, m) in a.methods.iter().enumerate() {
                let color = Palette99::pick(i + 1).to_rgba();
                let law = |c: f64| -> f64 {
                    let iso = |f: &crate::isoflop::IsoflopFit| {
                        let (n, d) = f.predict(c);
                        pick(n, d)
                    };
                    match m.method {
                        Method::IsoflopMin => iso(&a.isoflop),
                        Method::IsoflopParabola => a.parabola.as_ref().map_or(f64::NAN, iso),
                        Method::LossSurface => a.surface.map_or(f64::NAN, |f| {
                            let (n, d) = f.surface.optimum(c);
                            pick(n, d)
                        }),
                    }
                };
                let line = (0..=80).map(|k| {
                    let c = c_lo * (c_hi / c_lo).powf(k as f64 / 80.0);
                    (c, law(c))
                });
                let s = chart.draw_series(LineSeries::new(line, color.stroke_width(2)))?;
                if labels {
                    s.label(m.method.label()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
                for p in &m.predictions {
                    let e = if tokens { p.d_opt } else { p.n_opt };
                    chart.draw_series([TriangleMarker::new(
                        (p.budget, e.value),
                        6,
                        color.filled(),
                    )])?;
                    if let Some((lo, hi)) = e.interval {
                        chart.draw_series([ErrorBar::new_vertical(
                            p.budget,
                            lo,
                            e.value,
                            hi,
                            color.stroke_width(2),
                            8,
                        )])?;
                    }
                }
            }
            if labels {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()?;
            }
        }
        Ok(())
    }
}

fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    labels: bool,
    caption: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.margin(20)
        .x_label_area_size(if labels { 40 } else { 5 })
        .y_label_area_size(if labels { 70 } else { 5 });
    if labels {
        b.caption(caption, ("sans-serif", 20));
    }
    b
}

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// Writes `isoflops.{png,svg}` and `scaling_laws.{png,svg}` into `dir`.
pub fn write_plots(dir: &Path, runs: &[Run], analysis: &Analysis) -> Result<Vec<PathBuf>> {
    let mut out = save(&IsoflopCurves { runs, analysis }, &dir.join("isoflops"))?;
    out.extend(save(&ScalingLaws { analysis }, &dir.join("scaling_laws"))?);
    Ok(out)
}
