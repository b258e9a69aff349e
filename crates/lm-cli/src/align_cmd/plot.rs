//! `metrics.png` of an alignment run: the figures each loop is judged by, against its step.

use std::path::Path;

use lm_basics::train::metrics::{Curve, Mark, plot_curves, read_series};
use plotters::style::{BLUE, GREEN, RED, RGBColor};

use super::train::Algorithm;

/// `(metrics key, legend, mark, colour)` of one curve.
type Spec = (&'static str, &'static str, Mark, RGBColor);

/// Draws `<run>/metrics.png` from `<run>/metrics.jsonl`.
pub fn plot_metrics(run: &Path, algorithm: Algorithm) -> anyhow::Result<()> {
    let (x, y_desc, specs): (&str, &str, &[Spec]) = match algorithm {
        Algorithm::Sft => (
            "step",
            "loss (nats/token)",
            &[
                ("loss", "response loss", Mark::Line, BLUE),
                ("eval_accuracy", "eval accuracy", Mark::Points, RED),
            ],
        ),
        Algorithm::ExpertIteration => (
            "ei_step",
            "accuracy",
            &[
                ("rollout_accuracy", "rollout accuracy", Mark::Line, BLUE),
                ("eval_accuracy", "eval accuracy", Mark::Points, RED),
            ],
        ),
        Algorithm::Grpo => (
            "step",
            "reward / accuracy",
            &[
                ("reward", "train reward", Mark::Line, BLUE),
                ("format_reward", "format reward", Mark::Line, GREEN),
                ("eval_accuracy", "eval accuracy", Mark::Points, RED),
            ],
        ),
        Algorithm::Dpo => (
            "step",
            "loss / accuracy",
            &[
                ("loss", "DPO loss", Mark::Line, BLUE),
                (
                    "reward_accuracy",
                    "implicit-reward accuracy",
                    Mark::Line,
                    GREEN,
                ),
            ],
        ),
    };
    let keys: Vec<&str> = specs.iter().map(|s| s.0).collect();
    let series = read_series(&run.join("metrics.jsonl"), x, &keys)?;
    let curves: Vec<Curve<'_>> = specs
        .iter()
        .zip(series)
        .map(|(&(_, label, mark, color), points)| Curve {
            label,
            points,
            mark,
            color,
        })
        .collect();
    plot_curves(
        &run.join("metrics.png"),
        &format!("{algorithm:?}"),
        y_desc,
        &curves,
    )?;
    Ok(())
}
