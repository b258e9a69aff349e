//! Run metrics: one JSON object per line in `metrics.jsonl`, and the loss-curve PNG.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use crate::error::{BasicsError, Result};

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const PLOT_FILE: &str = "loss_curve.png";

/// Appends JSON records to a run's `metrics.jsonl`, flushing each line so a crash keeps them.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    pub fn open(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| BasicsError::io(&path, e))?;
        Ok(Self { path, file })
    }

    pub fn log(&mut self, record: Value) -> Result<()> {
        writeln!(self.file, "{record}").map_err(|e| BasicsError::io(&self.path, e))
    }
}

/// `(step, value)` points.
pub type Series = Vec<(f64, f64)>;

/// The train and eval loss series of a metrics file.
pub fn read_losses(path: &Path) -> Result<(Series, Series)> {
    let mut series = read_series(path, "step", &["loss", "eval_loss"])?.into_iter();
    let train = series.next().unwrap_or_default();
    Ok((train, series.next().unwrap_or_default()))
}

/// One series per key of `ys`: `(record[x], record[y])` for every record of a metrics JSONL
/// file that has both as numbers.
pub fn read_series(path: &Path, x: &str, ys: &[&str]) -> Result<Vec<Series>> {
    let file = std::fs::File::open(path).map_err(|e| BasicsError::io(path, e))?;
    let mut out = vec![Vec::new(); ys.len()];
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| BasicsError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| BasicsError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        let Some(step) = v[x].as_f64() else { continue };
        for (series, key) in out.iter_mut().zip(ys) {
            if let Some(y) = v[*key].as_f64() {
                series.push((step, y));
            }
        }
    }
    Ok(out)
}

/// Registers a sans-serif font for plot labels, if the system has DejaVu (Debian
/// `fonts-dejavu-core`); without one, plots are drawn unlabelled.
pub fn register_font() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ];
        candidates
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
    })
}

/// Draws train (line) and eval (points) loss against step into `out` (PNG). Without a system
/// font the axes are drawn unlabelled.
pub fn plot_losses(metrics: &Path, out: &Path, title: &str) -> Result<()> {
    let (train, eval) = read_losses(metrics)?;
    if train.is_empty() {
        return Err(BasicsError::BadFile {
            path: metrics.to_path_buf(),
            reason: "no training loss recorded".into(),
        });
    }
    let curves = [
        Curve {
            label: "train",
            points: train,
            mark: Mark::Line,
            color: BLUE,
        },
        Curve {
            label: "validation",
            points: eval,
            mark: Mark::Points,
            color: RED,
        },
    ];
    plot_curves(out, title, "loss (nats/token)", &curves)
}

/// How a curve is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Line,
    Points,
}

pub struct Curve<'a> {
    pub label: &'a str,
    pub points: Series,
    pub mark: Mark,
    pub color: RGBColor,
}

/// Draws `curves` against step into `out` (PNG, written via a temp file and a rename), the
/// y range fitted to their finite values. Without a system font the axes are unlabelled.
pub fn plot_curves(out: &Path, title: &str, y_desc: &str, curves: &[Curve<'_>]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| BasicsError::BadFile {
        path: out.to_path_buf(),
        reason: format!("plotting: {e}"),
    };
    let labels = register_font();
    let all = curves.iter().flat_map(|c| &c.points);
    let (lo, hi) = all
        .clone()
        .filter(|p| p.1.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if !lo.is_finite() {
        return Err(err(&"no finite values to plot"));
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let max_step = all.map(|p| p.0).fold(1.0, f64::max);
    let tmp = out.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(20)
            .x_label_area_size(if labels { 40 } else { 5 })
            .y_label_area_size(if labels { 60 } else { 5 });
        if labels {
            builder.caption(title, ("sans-serif", 22));
        }
        let mut chart = builder
            .build_cartesian_2d(0.0..max_step, (lo - pad)..(hi + pad))
            .map_err(|e| err(&e))?;
        let mut mesh = chart.configure_mesh();
        if labels {
            mesh.x_desc("step").y_desc(y_desc);
        } else {
            mesh.disable_x_mesh()
                .disable_y_mesh()
                .x_labels(0)
                .y_labels(0);
        }
        mesh.draw().map_err(|e| err(&e))?;
        for c in curves {
            let color = c.color;
            let series = match c.mark {
                Mark::Line => chart.draw_series(LineSeries::new(c.points.iter().copied(), color)),
                Mark::Points => {
                    chart.draw_series(c.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                }
            }
            .map_err(|e| err(&e))?;
            if labels {
                series
                    .label(c.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        if labels {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, out).map_err(|e| BasicsError::io(out, e))
}
