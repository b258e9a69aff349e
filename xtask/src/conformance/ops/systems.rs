//! Assignment 2 ops: FlashAttention-2 (the CubeCL kernel where the backend has it).

use anyhow::{Result, bail};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use lm_core::layers::attention_with_lse;

use crate::conformance::ctx::CaseCtx;
use crate::conformance::tensors::HostTensor;

/// `flash_attention`: `q`, `k`, `v` `[batch, (heads,) seq, d]`, outputs `o` and `lse`, grads of
/// `sum(o ⊙ upstream)`. Runs lm-core's kernel dispatch: the CubeCL kernel on wgpu and cuda,
/// the tensor-op reference (`attention_with_lse`) elsewhere. bf16 inputs are computed in f32
/// (their values are exact in f32).
pub fn flash_attention<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    match ctx.rank("inputs.q")? {
        3 => flash_case::<B, 3>(ctx),
        4 => flash_case::<B, 4>(ctx),
        r => bail!("flash_attention q: rank {r} (expected 3 or 4)"),
    }
}

fn flash_case<B: AutodiffBackend, const D: usize>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let (q, k, v) = (
        ctx.tracked::<D>("inputs.q")?,
        ctx.tracked::<D>("inputs.k")?,
        ctx.tracked::<D>("inputs.v")?,
    );
    let (causal, scale) = (ctx.attr_bool("is_causal")?, ctx.attr_f64("scale")?);
    let dims = q.dims();
    let (seq, head_dim) = (dims[D - 2], dims[D - 1]);
    let heads: usize = dims[1..D - 2].iter().product();
    let as4 = |t: Tensor<B, D>| t.reshape([dims[0], heads, seq, head_dim]);
    let (q4, k4, v4) = (as4(q.clone()), as4(k.clone()), as4(v.clone()));
    let (o, lse) = match lm_core::kernels::flash_attention(
        q4.clone(),
        k4.clone(),
        v4.clone(),
        causal,
        Some(scale as f32),
    ) {
        Some(result) => result?,
        None => attention_with_lse(q4, k4, v4, causal, scale),
    };
    let o: Tensor<B, D> = o.reshape(dims);
    ctx.output("o", o.clone());
    let mut lse = HostTensor::from_float(lse);
    lse.shape = dims[..D - 1].to_vec();
    ctx.output_host("lse", lse);
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(o)?;
        ctx.grad("q", &q, &g)?;
        ctx.grad("k", &k, &g)?;
        ctx.grad("v", &v, &g)?;
    }
    Ok(())
}
