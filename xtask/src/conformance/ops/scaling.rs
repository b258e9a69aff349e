//! Assignment 3: the handout's IsoFLOP fit (lm-scaling), on host f64 values.

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use lm_scaling::isoflop::{IsoflopFit, OptimumRule};
use lm_scaling::runs::Run;

use crate::conformance::ctx::CaseCtx;
use crate::conformance::tensors::{HostTensor, Values};

fn host_floats<'a, B: AutodiffBackend>(ctx: &'a CaseCtx<B>, key: &str) -> Result<&'a [f64]> {
    match &ctx.tensor(key)?.values {
        Values::Float(v) => Ok(v),
        _ => bail!("`{key}` must be a float tensor"),
    }
}

pub fn isoflops_fit<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let budgets = host_floats(ctx, "inputs.compute_budget")?;
    let params = host_floats(ctx, "inputs.parameters")?;
    let losses = host_floats(ctx, "inputs.final_loss")?;
    if budgets.len() != params.len() || budgets.len() != losses.len() {
        bail!("compute_budget, parameters and final_loss must have one entry per run");
    }
    let runs: Vec<Run> = (0..budgets.len())
        .map(|i| Run::new(params[i], budgets[i], losses[i]))
        .collect();
    let predict: Vec<f64> = ctx
        .attr("predict_budgets")?
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_f64()).collect())
        .context("attr `predict_budgets` must be a list of numbers")?;
    let fit = IsoflopFit::fit(&runs, OptimumRule::LowestLoss)?;
    let column = |f: fn(&lm_scaling::isoflop::BudgetOptimum) -> f64| {
        let v: Vec<f64> = fit.optima.iter().map(f).collect();
        HostTensor::float(vec![v.len()], v)
    };
    let scalar = |v: f64| HostTensor::float(vec![], vec![v]);
    let preds: Vec<(f64, f64)> = predict.iter().map(|&c| fit.predict(c)).collect();
    ctx.output_host("budgets", column(|o| o.budget));
    ctx.output_host("n_opt", column(|o| o.n_opt));
    ctx.output_host("d_opt", column(|o| o.d_opt));
    ctx.output_host("n_exponent", scalar(fit.n_law.exponent));
    ctx.output_host("n_coefficient", scalar(fit.n_law.coefficient));
    ctx.output_host("d_exponent", scalar(fit.d_law.exponent));
    ctx.output_host("d_coefficient", scalar(fit.d_law.coefficient));
    let n_pred: Vec<f64> = preds.iter().map(|p| p.0).collect();
    let d_pred: Vec<f64> = preds.iter().map(|p| p.1).collect();
    ctx.output_host("n_pred", HostTensor::float(vec![n_pred.len()], n_pred));
    ctx.output_host("d_pred", HostTensor::float(vec![d_pred.len()], d_pred));
    Ok(())
}
