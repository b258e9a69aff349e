//! `profile.png` of `cargo xtask lab2`: training tokens/s against context length, one
//! colour per (size, precision); ours as solid lines with dots, PyTorch's as thin lines with
//! triangles.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use lm_systems::report::Row;
use plotters::prelude::*;

type Series = Vec<(f64, f64)>;

/// `(label → (ours, pytorch))` points, x = log2(context), y = tokens/s.
fn series(rows: &[Row]) -> BTreeMap<String, (Series, Series)> {
    let mut out: BTreeMap<String, (Series, Series)> = BTreeMap::new();
    for row in rows {
        let c = &row.case;
        let label = format!("{} {:?}", c.size, c.precision).to_lowercase();
        let x = (c.context as f64).log2();
        let entry = out.entry(label).or_default();
        if let Ok(r) = &row.ours {
            entry.0.push((x, r.tokens_per_s));
        }
        if let Some(Ok((step, _))) = &row.baseline {
            let tokens = (c.batch * c.context) as f64;
            entry.1.push((x, tokens / (step.mean_ms / 1e3)));
        }
    }
    out
}

pub fn plot(rows: &[Row], out: &Path) -> Result<()> {
    let series = series(rows);
    let ys = series
        .values()
        .flat_map(|(a, b)| a.iter().chain(b))
        .map(|p| p.1);
    let (lo, hi) = ys.fold((f64::INFINITY, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if !lo.is_finite() {
        return Ok(()); // nothing measured
    }
    let xs = rows.iter().map(|r| (r.case.context as f64).log2());
    let (x0, x1) = xs.fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let labels = lm_basics::train::metrics::register_font();
    let tmp = out.with_extension("tmp.png");
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(&tmp, (1000, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(20)
            .x_label_area_size(if labels { 40 } else { 5 })
            .y_label_area_size(if labels { 80 } else { 5 });
        if labels {
            builder.caption(
                "training tokens/s: ours (dots) vs PyTorch (triangles)",
                ("sans-serif", 20),
            );
        }
        let mut chart = builder
            .build_cartesian_2d((x0 - 0.3)..(x1 + 0.3), ((lo * 0.7)..(hi * 1.4)).log_scale())?;
        let mut mesh = chart.configure_mesh();
        if labels {
            mesh.x_desc("context length")
                .y_desc("tokens/s")
                .x_label_formatter(&|x| format!("{}", 2f64.powf(*x).round()));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw()?;
        for (i, (label, (ours, torch))) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let line = chart.draw_series(LineSeries::new(ours.clone(), color.stroke_width(2)))?;
            if labels {
                line.label(label.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            chart.draw_series(ours.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            chart.draw_series(LineSeries::new(torch.clone(), color.stroke_width(1)))?;
            chart.draw_series(
                torch
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 5, color.filled())),
            )?;
        }
        if labels {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("plotting {}: {e}", out.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))
}
