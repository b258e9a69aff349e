//! Assignment 1 layer ops: each builds the lm-core layer from the case's params by course name.

use anyhow::{Context, Result, ensure};
use burn::tensor::backend::AutodiffBackend;
use lm_core::TransformerConfig;
use lm_core::functional;
use lm_core::init::Initializer;
use lm_core::layers::{
    Embedding, Linear, MultiHeadSelfAttention, RmsNorm, Rope, SwiGlu, TransformerBlock,
    scaled_dot_product_attention,
};
use lm_core::params::{assign_params, named_grads};

use super::{with_rank, with_rank_and_next};
use crate::conformance::ctx::CaseCtx;

/// Builds a module with placeholder weights, then loads the case's `params.*` by name: this
/// also checks our parameter names against the course's.
fn with_case_params<B: AutodiffBackend, M: burn::module::Module<B>>(
    ctx: &CaseCtx<B>,
    module: M,
) -> Result<M> {
    assign_params(module, &mut ctx.param_source()).context("loading the case's params")
}

pub fn linear<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    with_rank!(ctx.rank("inputs.x")?, "linear x", |D| {
        let x = ctx.tracked::<D>("inputs.x")?;
        let layer = Linear::from_weight(ctx.float::<2>("params.weight")?);
        ensure!(
            layer.d_in() == ctx.attr_usize("d_in")? && layer.d_out() == ctx.attr_usize("d_out")?,
            "weight shape disagrees with attrs d_in/d_out"
        );
        let y = layer.forward(x.clone());
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("x", &x, &g)?;
            ctx.grad("weight", &layer.weight.val(), &g)?;
        }
        Ok(())
    })
}

pub fn embedding<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    with_rank_and_next!(
        ctx.rank("inputs.token_ids")?,
        "embedding token_ids",
        |DI, DO| {
            let ids = ctx.int::<DI>("inputs.token_ids")?;
            let layer = Embedding::from_weight(ctx.float::<2>("params.weight")?);
            let y = layer.forward::<DI, DO>(ids);
            ctx.output("y", y.clone());
            if ctx.wants_grads() {
                let g = ctx.backward_upstream(y)?;
                ctx.grad("weight", &layer.weight.val(), &g)?;
            }
            Ok(())
        }
    )
}

pub fn rmsnorm<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    with_rank!(ctx.rank("inputs.x")?, "rmsnorm x", |D| {
        let x = ctx.tracked::<D>("inputs.x")?;
        let layer = RmsNorm::from_weight(ctx.float::<1>("params.weight")?, ctx.attr_f64("eps")?);
        let y = layer.forward(x.clone());
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("x", &x, &g)?;
            ctx.grad("weight", &layer.weight.val(), &g)?;
        }
        Ok(())
    })
}

pub fn silu<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    with_rank!(ctx.rank("inputs.x")?, "silu x", |D| {
        let x = ctx.tracked::<D>("inputs.x")?;
        let y = functional::silu(x.clone());
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("x", &x, &g)?;
        }
        Ok(())
    })
}

pub fn softmax<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let rank = ctx.rank("inputs.x")?;
    let dim = ctx.attr_dim("dim", rank)?;
    with_rank!(rank, "softmax x", |D| {
        let x = ctx.tracked::<D>("inputs.x")?;
        let y = functional::softmax(x.clone(), dim);
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("x", &x, &g)?;
        }
        Ok(())
    })
}

pub fn swiglu<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    // This op's params are the bare matrices `w1`, `w2`, `w3` (not `w1.weight`).
    let ffn = SwiGlu {
        w1: Linear::from_weight(ctx.float::<2>("params.w1")?),
        w2: Linear::from_weight(ctx.float::<2>("params.w2")?),
        w3: Linear::from_weight(ctx.float::<2>("params.w3")?),
    };
    ensure!(
        ffn.w1.d_in() == ctx.attr_usize("d_model")? && ffn.w1.d_out() == ctx.attr_usize("d_ff")?,
        "w1 shape disagrees with attrs d_model/d_ff"
    );
    with_rank!(ctx.rank("inputs.x")?, "swiglu x", |D| {
        let x = ctx.tracked::<D>("inputs.x")?;
        let y = ffn.forward(x.clone());
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("x", &x, &g)?;
            ctx.grad("w1", &ffn.w1.weight.val(), &g)?;
            ctx.grad("w2", &ffn.w2.weight.val(), &g)?;
            ctx.grad("w3", &ffn.w3.weight.val(), &g)?;
        }
        Ok(())
    })
}

pub fn rope<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let rope = Rope::new(
        ctx.attr_f64("theta")?,
        ctx.attr_usize("d_k")?,
        ctx.attr_usize("max_seq_len")?,
        &ctx.device,
    );
    let pos_rank = ctx.rank("inputs.token_positions")?;
    ensure!(
        ctx.rank("inputs.x")? == pos_rank + 1,
        "token_positions must have x's leading dims"
    );
    with_rank_and_next!(pos_rank, "rope token_positions", |DP, D| {
        let x = ctx.tracked::<D>("inputs.x")?;
        let y = rope.forward(x.clone(), ctx.int::<DP>("inputs.token_positions")?);
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("x", &x, &g)?;
        }
        Ok(())
    })
}

pub fn sdpa<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    with_rank!(ctx.rank("inputs.q")?, "sdpa q", |D| {
        let (q, k, v) = (
            ctx.tracked::<D>("inputs.q")?,
            ctx.tracked::<D>("inputs.k")?,
            ctx.tracked::<D>("inputs.v")?,
        );
        let mask = if ctx.attr_bool("has_mask")? {
            Some(ctx.bool::<D>("inputs.mask")?)
        } else {
            None
        };
        let y = scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), mask);
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("q", &q, &g)?;
            ctx.grad("k", &k, &g)?;
            ctx.grad("v", &v, &g)?;
        }
        Ok(())
    })
}

fn attention<B: AutodiffBackend>(
    ctx: &CaseCtx<B>,
    rope: Option<Rope<B>>,
) -> Result<MultiHeadSelfAttention<B>> {
    let (d_model, heads) = (ctx.attr_usize("d_model")?, ctx.attr_usize("num_heads")?);
    ensure!(
        heads > 0 && d_model % heads == 0,
        "d_model {d_model} not divisible by num_heads {heads}"
    );
    let mha =
        MultiHeadSelfAttention::new(d_model, heads, rope, &mut Initializer::new(0), &ctx.device);
    with_case_params(ctx, mha)
}

pub fn mha<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let attn = attention(ctx, None)?;
    with_rank!(ctx.rank("inputs.x")?, "mha x", |D| {
        let x = ctx.tracked::<D>("inputs.x")?;
        let y = attn.forward(x.clone(), None);
        ctx.output("y", y.clone());
        if ctx.wants_grads() {
            let g = ctx.backward_upstream(y)?;
            ctx.grad("x", &x, &g)?;
            ctx.grads_named(named_grads(&attn, &g));
        }
        Ok(())
    })
}

pub fn mha_rope<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let d_head = ctx.attr_usize("d_model")? / ctx.attr_usize("num_heads")?.max(1);
    let rope = Rope::new(
        ctx.attr_f64("theta")?,
        d_head,
        ctx.attr_usize("max_seq_len")?,
        &ctx.device,
    );
    let attn = attention(ctx, Some(rope))?;
    let x = ctx.tracked::<3>("inputs.x")?;
    let y = attn.forward(x.clone(), Some(ctx.int::<2>("inputs.token_positions")?));
    ctx.output("y", y.clone());
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(y)?;
        ctx.grad("x", &x, &g)?;
        ctx.grads_named(named_grads(&attn, &g));
    }
    Ok(())
}

/// The model config of a case (block cases have no vocab or layer count: they get 1).
pub fn case_config<B: AutodiffBackend>(ctx: &CaseCtx<B>) -> Result<TransformerConfig> {
    let opt = |name: &str| ctx.spec.attrs.contains_key(name);
    let cfg = TransformerConfig {
        vocab_size: if opt("vocab_size") {
            ctx.attr_usize("vocab_size")?
        } else {
            1
        },
        context_length: if opt("context_length") {
            ctx.attr_usize("context_length")?
        } else {
            ctx.attr_usize("max_seq_len")?
        },
        d_model: ctx.attr_usize("d_model")?,
        num_layers: if opt("num_layers") {
            ctx.attr_usize("num_layers")?
        } else {
            1
        },
        num_heads: ctx.attr_usize("num_heads")?,
        d_ff: ctx.attr_usize("d_ff")?,
        rope_theta: if opt("rope_theta") {
            ctx.attr_f64("rope_theta")?
        } else {
            ctx.attr_f64("theta")?
        },
        eps: if opt("eps") {
            ctx.attr_f64("eps")?
        } else {
            1e-5
        },
        attention: Default::default(),
        precision: Default::default(),
        matmul: Default::default(),
    };
    cfg.validate()?;
    Ok(cfg)
}

pub fn transformer_block<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let cfg = case_config(ctx)?;
    let block = with_case_params(
        ctx,
        TransformerBlock::new(&cfg, &mut Initializer::new(0), &ctx.device),
    )?;
    let x = ctx.tracked::<3>("inputs.x")?;
    let y = block.forward(x.clone(), None);
    ctx.output("y", y.clone());
    if ctx.wants_grads() {
        let g = ctx.backward_upstream(y)?;
        ctx.grad("x", &x, &g)?;
        ctx.grads_named(named_grads(&block, &g));
    }
    Ok(())
}
