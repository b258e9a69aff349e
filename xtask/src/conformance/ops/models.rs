//! Pretrained-model engine ops (golden README, "Pretrained-model engine"): Hugging Face
//! directories (`qwen2_forward`, `llama_forward`) and real GGUF models (`gguf_forward`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use lm_core::generate::CausalLm;
use lm_core::pretrained::attention::SlotMask;
use lm_core::pretrained::kv_cache::CacheWrite;
use lm_core::pretrained::{Decoder, gguf_model};

use crate::conformance::ctx::CaseCtx;
use crate::conformance::tensors::Values;

/// Row-major `[rows, cols]` integers of a stored 2-D tensor.
fn ints<B: AutodiffBackend>(ctx: &CaseCtx<B>, key: &str) -> Result<(Vec<i64>, [usize; 2])> {
    let t = ctx.tensor(key)?;
    let Values::Int(v) = &t.values else {
        bail!("`{key}` is not an integer tensor");
    };
    match t.shape[..] {
        [rows, cols] => Ok((v.clone(), [rows, cols])),
        [n] => Ok((v.clone(), [1, n])),
        _ => bail!("`{key}` has shape {:?}, expected [B, T] or [T]", t.shape),
    }
}

/// Columns `cols` of a row-major `[rows, width]` matrix.
fn columns(v: &[i64], width: usize, cols: std::ops::Range<usize>) -> Vec<i64> {
    v.chunks(width)
        .flat_map(|row| row[cols.clone()].to_vec())
        .collect()
}

fn int_tensor<B: AutodiffBackend>(
    v: Vec<i64>,
    shape: [usize; 2],
    ctx: &CaseCtx<B>,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(v, shape), &ctx.device)
}

/// `qwen2_forward` / `llama_forward`: logits of a (left-padded) batch, in one pass or as a
/// prefill followed by single-token steps through the KV cache; pad rows zeroed.
pub fn hf_forward<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let dir = ctx.golden.join(ctx.attr_str("model_dir")?);
    let model = Decoder::<B>::from_hf_dir(&dir, &ctx.device)?;
    let (ids, [rows, t]) = ints(ctx, "inputs.input_ids")?;
    let (mask, _) = ints(ctx, "inputs.attention_mask")?;
    let (positions, _) = ints(ctx, "inputs.position_ids")?;
    let key_ok: Vec<bool> = mask.iter().map(|&m| m != 0).collect();
    let prefill = ctx.attr("prefill_len")?.as_u64().map(|p| p as usize);

    let logits = match prefill {
        None => model.forward(
            int_tensor(ids, [rows, t], ctx),
            int_tensor(positions, [rows, t], ctx),
            Some(&key_ok),
        )?,
        Some(p) => {
            ensure!(p >= 1 && p <= t, "prefill_len {p} outside 1..={t}");
            let mut cache = model.empty_cache(rows, t, &ctx.device);
            let mut parts = Vec::new();
            // Step s feeds slots s.0 .. s.1; every row writes at the same slot (left padding).
            let steps = std::iter::once((0, p)).chain((p..t).map(|s| (s, s + 1)));
            for (from, to) in steps {
                let slots = from..to;
                let width = to - from;
                let mask = SlotMask {
                    offsets: vec![from; rows],
                    key_ok: key_ok
                        .chunks(t)
                        .flat_map(|row| row[..to].to_vec())
                        .collect(),
                    len: to,
                };
                let h = model.hidden(
                    int_tensor(columns(&ids, t, slots.clone()), [rows, width], ctx),
                    int_tensor(columns(&positions, t, slots), [rows, width], ctx),
                    &mask,
                    Some((&mut cache, &CacheWrite::At(from))),
                );
                parts.push(model.logits(h));
            }
            Tensor::cat(parts, 1)
        }
    };
    let vocab = logits.dims()[2];
    let pad = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, [rows, t]), &ctx.device)
        .equal_elem(0)
        .unsqueeze_dim::<3>(2)
        .expand([rows, t, vocab]);
    ctx.output("logits", logits.mask_fill(pad, 0.0));
    Ok(())
}

/// `gguf_forward`: last-position logits of a prompt and 16 greedy tokens through the
/// engine's prefill/decode path (on the inner backend: no autodiff graph across steps).
pub fn gguf_forward<B: AutodiffBackend>(ctx: &mut CaseCtx<B>) -> Result<()> {
    let path = model_path(ctx)?;
    let model = gguf_model::load::<B::InnerBackend>(&path, &ctx.device)
        .with_context(|| format!("loading {}", path.display()))?;
    let (prompt, _) = ints(ctx, "inputs.input_ids")?;
    let steps = ctx.attr_usize("max_new_tokens")?;
    let prompt: Vec<u32> = prompt.iter().map(|&t| t as u32).collect();
    let mut cache = model.new_cache(1, prompt.len() + steps);
    let mut logits = model.prefill(&mut cache, &[0], &[&prompt]);
    ctx.output(
        "last_logits",
        Tensor::<B, 1>::from_inner(logits.clone().reshape([model.vocab_size()])),
    );
    let mut tokens = Vec::with_capacity(steps);
    for step in 0..steps {
        let next = logits
            .clone()
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .as_slice::<i64>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?[0];
        tokens.push(next);
        if step + 1 < steps {
            logits = model.decode(&mut cache, &[0], &[next as u32]);
        }
    }
    let n = tokens.len();
    ctx.output_int(
        "greedy_tokens",
        Tensor::<B, 1, Int>::from_data(TensorData::new(tokens, [n]), &ctx.device),
    );
    Ok(())
}

/// `$LM_ASSETS/<attrs.model_path>`, with the fetch hint when absent.
fn model_path<B: AutodiffBackend>(ctx: &CaseCtx<B>) -> Result<PathBuf> {
    let assets = lm_core::assets::assets_dir();
    let path = assets.join(ctx.attr_str("model_path")?);
    if !path.exists() {
        bail!(
            "model file {} is absent: run `{}` (LM_ASSETS={})",
            path.display(),
            ctx.attr_str("fetch")
                .unwrap_or("../shared/fetch-assets --models"),
            assets.display()
        );
    }
    let want = ctx.attr_usize("model_bytes")?;
    let got = std::fs::metadata(&path)?.len() as usize;
    ensure!(
        got == want,
        "{} has {got} bytes, the case expects {want} (attrs.model_sha256 {}): fetch it again",
        path.display(),
        ctx.attr_str("model_sha256").unwrap_or("?")
    );
    Ok(path)
}
