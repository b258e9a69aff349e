//! Assignment 5 (alignment) ops: log-probabilities, masked reductions and the SFT, GRPO and
//! DPO losses of `lm_align::losses`.

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use lm_align::losses::{self, LossType, PolicyGradientInputs};

use super::with_rank_and_next;
use crate::conformance::ctx::CaseCtx;
use crate::conformance::tensors::{HostTensor, Values};

/// A stored float tensor of any shape as a flat rank-1 tensor (row-major order).
fn flat_input<B: AutodiffBackend>(ctx: &CaseCtx<B>, key: &str) -> Result<Tensor<B, 1>> {
    let t = ctx.tensor(key)?;
    let Values::Float(v) = &t.values else {
        anyhow::bail!("`{key}` is {} but a float tensor is expected", t.dtype)
    };
    let values: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let n = values.len();
    Ok(Tensor::from_data(TensorData::new(values, [n]), &ctx.device))
}

/// Back-propagates `sum(y ⊙ upstream)` where `y` holds the primary output's elements in
/// row-major order under another shape (reduced dims kept as size 1 by the library).
fn backward_flat<B: AutodiffBackend, const D: usize>(
    ctx: &CaseCtx<B>,
    y: Tensor<B, D>,
) -> Result<B::Gradients> {
    let upstream = flat_input(ctx, "inputs.upstream")?;
    let n = y.shape().num_elements();
    anyhow::ensure!(
        upstream.dims()[0] == n,
        "`inputs.upstream` has {} elements, the output {n}",
        upstream.dims()[0]
    );
    Ok((y.reshape([n]) * upstream).sum().backward())
}

/// Records `y` under the golden shape `shape` (same elements, row-major).
fn output_shaped<B: AutodiffBackend, const D: usize>(
    ctx: &mut CaseCtx<B>,
    name: &str,
    y: Tensor<B, D>,
    shape: Vec<usize>,
) {
    let mut h = HostTensor::from_float(y);
    h.shape = shape;
    ctx.output_host(name, h);
}

pub fn compute_entropy<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let rank = ctx.rank("inputs.logits")?;
    with_rank_and_next!(rank - 1, "compute_entropy entropy", |DO, DL| {
        let logits = ctx.tracked::<DL>("inputs.logits")?;
        let entropy = losses::compute_entropy::<B, DL, DO>(logits.clone())?;
        ctx.output("entropy", entropy.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(entropy)?;
            ctx.grad("logits", &logits, &g)?;
        }
        Ok(())
    })
}

pub fn log_probs_from_logits<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let logits = ctx.tracked::<3>("inputs.logits")?;
    let log_probs = losses::log_probs_from_logits(logits.clone(), ctx.int::<2>("inputs.labels")?)?;
    ctx.output("log_probs", log_probs.clone());
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(log_probs)?;
        ctx.grad("logits", &logits, &g)?;
    }
    Ok(())
}

/// Attr `dim` resolved against `rank` (`null` = every element), and the output shape.
fn reduce_dim<B: AutodiffBackend>(
    ctx: &CaseCtx<B>,
    shape: &[usize],
) -> Result<(Option<usize>, Vec<usize>)> {
    if ctx.attr("dim")?.is_null() {
        return Ok((None, Vec::new()));
    }
    let d = ctx.attr_dim("dim", shape.len())?;
    let mut out = shape.to_vec();
    out.remove(d);
    Ok((Some(d), out))
}

/// `masked_normalize` (`Some(constant)`) or `masked_mean` (`None`).
fn masked_op<B: AutodiffBackend>(ctx: &mut CaseCtx<B>, constant: Option<f64>) -> Result<()> {
    let shape = ctx.tensor("inputs.tensor")?.shape.clone();
    let (dim, out_shape) = reduce_dim(ctx, &shape)?;
    macro_rules! run {
        ($D:literal) => {{
            let tensor = ctx.tracked::<$D>("inputs.tensor")?;
            let mask = ctx.bool::<$D>("inputs.mask")?;
            let y = match constant {
                Some(c) => losses::masked_normalize(tensor.clone(), mask, dim, c)?,
                None => losses::masked_mean(tensor.clone(), mask, dim)?,
            };
            output_shaped(ctx, "y", y.clone(), out_shape);
            if ctx.wants_grads() {
                let g = backward_flat(ctx, y)?;
                ctx.grad("tensor", &tensor, &g)?;
            }
            Ok(())
        }};
    }
    match shape.len().max(1) {
        1 => run!(1),
        2 => run!(2),
        3 => run!(3),
        4 => run!(4),
        r => anyhow::bail!("masked ops: rank {r} is not supported (1 to 4)"),
    }
}

pub fn masked_normalize<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let c = ctx.attr_f64("normalize_constant")?;
    masked_op(ctx, Some(c))
}

pub fn masked_mean<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    masked_op(ctx, None)
}

pub fn sft_microbatch_train_step<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let plp = ctx.tracked::<2>("inputs.policy_log_probs")?;
    let loss = losses::sft_microbatch_train_step(
        plp.clone(),
        ctx.bool::<2>("inputs.response_mask")?,
        ctx.attr_usize("gradient_accumulation_steps")?,
        ctx.attr_f64("normalize_constant")?,
    )?;
    ctx.output("loss", loss.clone());
    let g = loss.backward();
    ctx.grad("policy_log_probs", &plp, &g)
}

pub fn compute_group_normalized_rewards<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let out = losses::compute_group_normalized_rewards(
        ctx.float::<1>("inputs.raw_rewards")?,
        ctx.attr_usize("group_size")?,
        ctx.attr_f64("advantage_eps")?,
        ctx.attr_bool("normalize_by_std")?,
    )?;
    ctx.output("advantages", out.advantages);
    ctx.output("raw_rewards", out.raw_rewards);
    Ok(())
}

pub fn compute_naive_policy_gradient_loss<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let plp = ctx.tracked::<2>("inputs.policy_log_probs")?;
    let loss = losses::compute_naive_policy_gradient_loss(
        ctx.float::<2>("inputs.raw_rewards_or_advantages")?,
        plp.clone(),
    )?;
    ctx.output("loss", loss.clone());
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(loss)?;
        ctx.grad("policy_log_probs", &plp, &g)?;
    }
    Ok(())
}

pub fn compute_grpo_clip_loss<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let plp = ctx.tracked::<2>("inputs.policy_log_probs")?;
    let (loss, stats) = losses::compute_grpo_clip_loss(
        ctx.float::<2>("inputs.advantages")?,
        plp.clone(),
        ctx.float::<2>("inputs.old_log_probs")?,
        ctx.attr_f64("cliprange")?,
    )?;
    ctx.output("loss", loss.clone());
    ctx.output_bool("clipped", stats.clipped);
    ctx.output("clip_fraction", stats.clip_fraction);
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(loss)?;
        ctx.grad("policy_log_probs", &plp, &g)?;
    }
    Ok(())
}

/// The loss type and its optional inputs, all four stored by every case.
fn policy_inputs<B: AutodiffBackend>(
    ctx: &CaseCtx<B>,
) -> Result<(LossType, PolicyGradientInputs<B>)> {
    let loss_type: LossType = ctx
        .attr("loss_type")?
        .as_str()
        .context("attr `loss_type` is not a string")?
        .parse()?;
    let inputs = PolicyGradientInputs {
        raw_rewards: Some(ctx.float::<2>("inputs.raw_rewards")?),
        advantages: Some(ctx.float::<2>("inputs.advantages")?),
        old_log_probs: Some(ctx.float::<2>("inputs.old_log_probs")?),
        cliprange: Some(ctx.attr_f64("cliprange")?),
    };
    Ok((loss_type, inputs))
}

pub fn compute_policy_gradient_loss<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let plp = ctx.tracked::<2>("inputs.policy_log_probs")?;
    let (loss_type, inputs) = policy_inputs(ctx)?;
    let loss = losses::compute_policy_gradient_loss(plp.clone(), loss_type, inputs)?.loss;
    ctx.output("loss", loss.clone());
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(loss)?;
        ctx.grad("policy_log_probs", &plp, &g)?;
    }
    Ok(())
}

pub fn grpo_microbatch_train_step<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let plp = ctx.tracked::<2>("inputs.policy_log_probs")?;
    let (loss_type, inputs) = policy_inputs(ctx)?;
    let (loss, _) = losses::grpo_microbatch_train_step(
        plp.clone(),
        ctx.bool::<2>("inputs.response_mask")?,
        ctx.attr_usize("gradient_accumulation_steps")?,
        loss_type,
        inputs,
    )?;
    ctx.output("loss", loss.clone());
    let g = loss.backward();
    ctx.grad("policy_log_probs", &plp, &g)
}

pub fn dpo_loss<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let chosen = ctx.tracked::<1>("inputs.policy_chosen_logps")?;
    let rejected = ctx.tracked::<1>("inputs.policy_rejected_logps")?;
    let loss = losses::dpo_loss(
        chosen.clone(),
        rejected.clone(),
        ctx.float::<1>("inputs.ref_chosen_logps")?,
        ctx.float::<1>("inputs.ref_rejected_logps")?,
        ctx.attr_f64("beta")?,
    )?;
    ctx.output("loss", loss.clone());
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(loss)?;
        ctx.grad("policy_chosen_logps", &chosen, &g)?;
        ctx.grad("policy_rejected_logps", &rejected, &g)?;
    }
    Ok(())
}
