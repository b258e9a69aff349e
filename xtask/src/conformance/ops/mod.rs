//! The ops the runner knows, by the golden README's names (§4).

use burn::tensor::backend::AutodiffBackend;

use super::ctx::CaseCtx;

mod align;
mod layers;
mod models;
mod scaling;
mod systems;
mod training;

/// Runs one case of an op, recording what it produces into the context.
pub type OpFn<B> = fn(&mut CaseCtx<B>) -> anyhow::Result<()>;

/// The implementation of `op`, or `None` when we have none (the runner then fails the case).
pub fn lookup<B: AutodiffBackend>(op: &str) -> Option<OpFn<B>> {
    let f: OpFn<B> = match op {
        "linear" => layers::linear,
        "embedding" => layers::embedding,
        "rmsnorm" => layers::rmsnorm,
        "silu" => layers::silu,
        "swiglu" => layers::swiglu,
        "softmax" => layers::softmax,
        "rope" => layers::rope,
        "sdpa" => layers::sdpa,
        "mha" => layers::mha,
        "mha_rope" => layers::mha_rope,
        "transformer_block" => layers::transformer_block,
        "transformer_lm" => training::transformer_lm,
        "cross_entropy" => training::cross_entropy,
        "lm_train_step" => training::lm_train_step,
        "gradient_clipping" => training::gradient_clipping,
        "adamw" => training::adamw,
        "lr_cosine" => training::lr_cosine,
        "flash_attention" => systems::flash_attention,
        "isoflops_fit" => scaling::isoflops_fit,
        "compute_entropy" => align::compute_entropy,
        "log_probs_from_logits" => align::log_probs_from_logits,
        "masked_normalize" => align::masked_normalize,
        "masked_mean" => align::masked_mean,
        "sft_microbatch_train_step" => align::sft_microbatch_train_step,
        "compute_group_normalized_rewards" => align::compute_group_normalized_rewards,
        "compute_naive_policy_gradient_loss" => align::compute_naive_policy_gradient_loss,
        "compute_grpo_clip_loss" => align::compute_grpo_clip_loss,
        "compute_policy_gradient_loss" => align::compute_policy_gradient_loss,
        "grpo_microbatch_train_step" => align::grpo_microbatch_train_step,
        "dpo_loss" => align::dpo_loss,
        "qwen2_forward" | "llama_forward" => models::hf_forward,
        "gguf_forward" => models::gguf_forward,
        _ => return None,
    };
    Some(f)
}

/// Runs `$body` with the const `$D` bound to the runtime rank `$rank` (1 to 6): burn tensor
/// ranks are compile-time constants, golden tensors have any rank.
macro_rules! with_rank {
    ($rank:expr, $what:expr, |$D:ident| $body:expr) => {
        match $rank {
            1 => {
                const $D: usize = 1;
                $body
            }
            2 => {
                const $D: usize = 2;
                $body
            }
            3 => {
                const $D: usize = 3;
                $body
            }
            4 => {
                const $D: usize = 4;
                $body
            }
            5 => {
                const $D: usize = 5;
                $body
            }
            6 => {
                const $D: usize = 6;
                $body
            }
            r => anyhow::bail!("{}: rank {} is not supported (1 to 6)", $what, r),
        }
    };
}

/// Like `with_rank!`, also binding `$E = $D + 1` (ids → embeddings, targets → logits).
macro_rules! with_rank_and_next {
    ($rank:expr, $what:expr, |$D:ident, $E:ident| $body:expr) => {
        match $rank {
            1 => {
                const $D: usize = 1;
                const $E: usize = 2;
                $body
            }
            2 => {
                const $D: usize = 2;
                const $E: usize = 3;
                $body
            }
            3 => {
                const $D: usize = 3;
                const $E: usize = 4;
                $body
            }
            4 => {
                const $D: usize = 4;
                const $E: usize = 5;
                $body
            }
            5 => {
                const $D: usize = 5;
                const $E: usize = 6;
                $body
            }
            r => anyhow::bail!("{}: rank {} is not supported (1 to 5)", $what, r),
        }
    };
}

pub(crate) use {with_rank, with_rank_and_next};
