//! Assignment 1 model, loss and optimiser ops.

use anyhow::{Context, Result, ensure};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use lm_core::TransformerLm;
use lm_core::functional::cross_entropy as ce;
use lm_core::optim::{AdamW, AdamWConfig, clip_gradients, lr_cosine_schedule};
use lm_core::params::{FlatTensor, NamedTensors, assign_params, named_grads};

use super::layers::case_config;
use super::with_rank_and_next;
use crate::conformance::ctx::{CaseCtx, flat_to_host};
use crate::conformance::tensors::{HostTensor, Values};

fn case_model<B: AutodiffBackend>(ctx: &CaseCtx<B>) -> Result<TransformerLm<B>> {
    let cfg = case_config(ctx)?;
    let model = TransformerLm::new(&cfg, 0, &ctx.device)?;
    assign_params(model, &mut ctx.param_source()).context("loading the case's params")
}

pub fn transformer_lm<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let model = case_model(ctx)?;
    let logits = model.try_forward(ctx.int::<2>("inputs.input_ids")?)?;
    ctx.output("logits", logits);
    Ok(())
}

pub fn lm_train_step<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let model = case_model(ctx)?;
    let logits = model.try_forward(ctx.int::<2>("inputs.input_ids")?)?;
    let loss = ce(logits, ctx.int::<2>("inputs.targets")?);
    ctx.output("loss", loss.clone());
    let grads = loss.backward();
    ctx.grads_named(named_grads(&model, &grads));
    Ok(())
}

pub fn cross_entropy<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let t_rank = ctx.rank("inputs.targets")?;
    ensure!(
        ctx.rank("inputs.logits")? == t_rank + 1,
        "logits must be targets' shape plus a vocab dim"
    );
    with_rank_and_next!(t_rank, "cross_entropy targets", |DT, DL| {
        let logits = ctx.tracked::<DL>("inputs.logits")?;
        let loss = ce(logits.clone(), ctx.int::<DT>("inputs.targets")?);
        ctx.output("loss", loss.clone());
        let grads = loss.backward();
        ctx.grad("logits", &logits, &grads)?;
        Ok(())
    })
}

/// A stored float tensor flattened onto backend `B` (any rank).
fn flat<B: Backend>(
    ctx_tensor: &HostTensor,
    key: &str,
    device: &B::Device,
) -> Result<FlatTensor<B>> {
    let Values::Float(v) = &ctx_tensor.values else {
        anyhow::bail!("`{key}` must be a float tensor")
    };
    let values = Tensor::<B, 1>::from_data(
        burn::tensor::TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [v.len()]),
        device,
    );
    Ok(FlatTensor {
        values,
        shape: ctx_tensor.shape.clone(),
    })
}

pub fn gradient_clipping<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let n = ctx.attr_usize("num_tensors")?;
    let device = ctx.device.clone();
    let mut grads: NamedTensors<B::InnerBackend> = NamedTensors::new();
    for i in 0..n {
        let key = format!("inputs.g{i}");
        grads.insert(format!("g{i}"), flat(ctx.tensor(&key)?, &key, &device)?);
    }
    clip_gradients(
        &mut grads,
        ctx.attr_f64("max_l2_norm")?,
        ctx.attr_f64("eps")?,
    );
    for (name, g) in grads {
        ctx.output_host(&name, flat_to_host(g));
    }
    Ok(())
}

pub fn adamw<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let betas = ctx
        .attr("betas")?
        .as_array()
        .context("attr `betas` must be a list")?;
    ensure!(betas.len() == 2, "attr `betas` must have two entries");
    let config = AdamWConfig {
        lr: ctx.attr_f64("lr")?,
        betas: (
            betas[0].as_f64().context("betas[0]")?,
            betas[1].as_f64().context("betas[1]")?,
        ),
        eps: ctx.attr_f64("eps")?,
        weight_decay: ctx.attr_f64("weight_decay")?,
    };
    let (steps, num_params) = (ctx.attr_usize("steps")?, ctx.attr_usize("num_params")?);
    let device = ctx.device.clone();
    let mut opt = AdamW::<B::InnerBackend>::new(config.clone());
    let mut params = Vec::with_capacity(num_params);
    let mut grads = Vec::with_capacity(num_params);
    for i in 0..num_params {
        let p = flat::<B::InnerBackend>(ctx.tensor(&format!("params.p{i}"))?, "p", &device)?;
        let key = format!("inputs.grads_p{i}");
        let g = flat::<B::InnerBackend>(ctx.tensor(&key)?, &key, &device)?;
        ensure!(
            g.numel() == steps * p.numel(),
            "`{key}` must be [steps, *shape(p{i})]"
        );
        params.push(p);
        grads.push(g);
    }
    let mut trajectories: Vec<Vec<Tensor<B::InnerBackend, 1>>> =
        vec![Vec::with_capacity(steps); num_params];
    for t in 0..steps {
        opt.begin_step();
        for i in 0..num_params {
            let n = params[i].numel();
            let g_t = grads[i].values.clone().narrow(0, t * n, n);
            let updated = opt.update(&format!("p{i}"), params[i].values.clone(), g_t, config.lr);
            trajectories[i].push(updated.clone());
            params[i].values = updated;
        }
    }
    for (i, p) in params.into_iter().enumerate() {
        let mut traj_shape = vec![steps];
        traj_shape.extend(&p.shape);
        let traj = Tensor::cat(std::mem::take(&mut trajectories[i]), 0);
        ctx.output_host(
            &format!("traj_p{i}"),
            flat_to_host(FlatTensor {
                values: traj,
                shape: traj_shape,
            }),
        );
        let moments = opt
            .moments
            .get(&format!("p{i}"))
            .context("AdamW kept no moments")?
            .clone();
        ctx.output_host(
            &format!("m_p{i}"),
            flat_to_host(FlatTensor {
                values: moments.m,
                shape: p.shape.clone(),
            }),
        );
        ctx.output_host(
            &format!("v_p{i}"),
            flat_to_host(FlatTensor {
                values: moments.v,
                shape: p.shape.clone(),
            }),
        );
        ctx.output_host(&format!("final_p{i}"), flat_to_host(p));
    }
    Ok(())
}

pub fn lr_cosine<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let Values::Int(ts) = &ctx.tensor("inputs.t")?.values else {
        anyhow::bail!("`inputs.t` must be an integer tensor")
    };
    let (max, min) = (
        ctx.attr_f64("max_learning_rate")?,
        ctx.attr_f64("min_learning_rate")?,
    );
    let (warmup, cycle) = (
        ctx.attr_usize("warmup_iters")? as u64,
        ctx.attr_usize("cosine_cycle_iters")? as u64,
    );
    let lrs = ts
        .iter()
        .map(|&t| {
            ensure!(t >= 0, "iteration {t} is negative");
            Ok(lr_cosine_schedule(t as u64, max, min, warmup, cycle))
        })
        .collect::<Result<Vec<f64>>>()?;
    ctx.output_host("lr", HostTensor::float(vec![lrs.len()], lrs));
    Ok(())
}
