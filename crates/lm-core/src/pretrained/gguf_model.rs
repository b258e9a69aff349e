//! A Qwen2 / Llama decoder from a GGUF file: hyper-parameters from the metadata, tensors
//! dequantised to f32 and renamed to their Hugging Face names.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::config::{Architecture, DecoderConfig};
use super::decoder::Decoder;
use super::gguf::GgufFile;
use super::weights::{StoredBlocks, WeightSource};
use crate::error::{LmError, Result};
use crate::packed::PACKED_TYPES;

/// Opens `path` and builds its decoder on `device`.
pub fn load<B: Backend>(path: &Path, device: &B::Device) -> Result<Decoder<B>> {
    load_with(path, device, false)
}

/// [`load`], and with `pack` the projections also keep their quantised blocks for CPU
/// decoding (see [`Decoder::load_with`]; for inference only: training does not update
/// them).
pub fn load_with<B: Backend>(path: &Path, device: &B::Device, pack: bool) -> Result<Decoder<B>> {
    let file = GgufFile::open(path)?;
    let config = config_from_gguf(&file)?;
    let weights = GgufWeights {
        file: &file,
        config: &config,
    };
    Decoder::load_with(config.clone(), &weights, device, pack)
}

/// The decoder's hyper-parameters from `{arch}.*` metadata keys.
pub fn config_from_gguf(file: &GgufFile) -> Result<DecoderConfig> {
    let arch_name = file.architecture()?;
    let arch = Architecture::parse(arch_name).ok_or_else(|| LmError::BadFile {
        file: file.path().to_path_buf(),
        reason: format!("general.architecture is {arch_name:?}; supported: llama, qwen2"),
    })?;
    if file.tensor_info("rope_freqs.weight").is_some() {
        return Err(LmError::BadFile {
            file: file.path().to_path_buf(),
            reason: "tensor `rope_freqs.weight` (Llama 3.1 RoPE scaling) is not supported yet"
                .into(),
        });
    }
    let key = |k: &str| format!("{arch_name}.{k}");
    let hidden_size = file.usize(&key("embedding_length"))?;
    let num_heads = file.usize(&key("attention.head_count"))?;
    let head_dim = match file.get(&key("attention.key_length")) {
        Some(_) => file.usize(&key("attention.key_length"))?,
        None => hidden_size / num_heads.max(1),
    };
    let embeddings =
        file.tensor_info("token_embd.weight")
            .ok_or_else(|| LmError::MissingTensor {
                file: file.path().to_path_buf(),
                tensor: "token_embd.weight".into(),
            })?;
    let config = DecoderConfig {
        arch,
        vocab_size: embeddings.dims[0],
        hidden_size,
        intermediate_size: file.usize(&key("feed_forward_length"))?,
        num_layers: file.usize(&key("block_count"))?,
        num_heads,
        num_kv_heads: match file.get(&key("attention.head_count_kv")) {
            Some(_) => file.usize(&key("attention.head_count_kv"))?,
            None => num_heads,
        },
        head_dim,
        // Stored as f32 and used as stored (9.999999747378752e-06 for SmolLM2).
        rms_norm_eps: file.f32(&key("attention.layer_norm_rms_epsilon"))? as f64,
        rope_theta: match file.get(&key("rope.freq_base")) {
            Some(_) => file.f32(&key("rope.freq_base"))? as f64,
            None => 10_000.0,
        },
        rope_scaling: None,
        tie_word_embeddings: file.tensor_info("output.weight").is_none(),
        attention_bias: file.tensor_info("blk.0.attn_q.bias").is_some(),
        max_position_embeddings: match file.get(&key("context_length")) {
            Some(_) => file.usize(&key("context_length"))?,
            None => 4096,
        },
    };
    config.validate().map_err(|e| LmError::BadFile {
        file: file.path().to_path_buf(),
        reason: format!("metadata gives an unusable config: {e}"),
    })?;
    Ok(config)
}

/// GGUF tensors under Hugging Face names.
struct GgufWeights<'a> {
    file: &'a GgufFile,
    config: &'a DecoderConfig,
}

/// The GGUF name of a Hugging Face tensor name, or `None` when it has no counterpart.
fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (module, kind) = tail.rsplit_once('.')?;
    let short = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// Undoes llama.cpp's per-head row permutation of Llama's q/k (stored for interleaved
/// RoPE): within each head of `hd` rows, stored row `2j + t` is Hugging Face row
/// `t·hd/2 + j`. Works for weights (`cols` > 1), biases (`cols` = 1) and rows of
/// quantised blocks (`cols` bytes).
fn unpermute_rows<T: Copy + Default>(values: &[T], rows: usize, cols: usize, hd: usize) -> Vec<T> {
    let mut out = vec![T::default(); values.len()];
    for head in 0..rows / hd {
        for j in 0..hd / 2 {
            for t in 0..2 {
                let src = (head * hd + 2 * j + t) * cols;
                let dst = (head * hd + t * hd / 2 + j) * cols;
                out[dst..dst + cols].copy_from_slice(&values[src..src + cols]);
            }
        }
    }
    out
}

impl GgufWeights<'_> {
    fn gguf_name(&self, name: &str) -> Result<String> {
        gguf_name(name).ok_or_else(|| LmError::MissingTensor {
            file: self.file.path().to_path_buf(),
            tensor: name.to_string(),
        })
    }

    /// `values` (`dims[0]` rows of `row_len` items) in Hugging Face row order: Llama's q/k
    /// rows are stored permuted.
    fn hf_rows<T: Copy + Default>(
        &self,
        name: &str,
        gguf: &str,
        values: Vec<T>,
        dims: &[usize],
        row_len: usize,
    ) -> Result<Vec<T>> {
        let permuted = self.config.arch == Architecture::Llama
            && (name.contains("self_attn.q_proj") || name.contains("self_attn.k_proj"));
        if !permuted {
            return Ok(values);
        }
        let rows = dims[0];
        let hd = self.config.head_dim;
        if !rows.is_multiple_of(hd) {
            return Err(LmError::BadFile {
                file: self.file.path().to_path_buf(),
                reason: format!("tensor `{gguf}` has {rows} rows, not a multiple of head_dim {hd}"),
            });
        }
        Ok(unpermute_rows(&values, rows, row_len, hd))
    }
}

impl WeightSource for GgufWeights<'_> {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn load(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let gguf = self.gguf_name(name)?;
        let (values, dims) = self.file.tensor_f32(&gguf)?;
        let cols = dims.get(1).copied().unwrap_or(1);
        let values = self.hf_rows(name, &gguf, values, &dims, cols)?;
        Ok((values, dims))
    }

    fn load_blocks(&self, name: &str) -> Result<Option<StoredBlocks>> {
        let gguf = self.gguf_name(name)?;
        let Some(info) = self.file.tensor_info(&gguf) else {
            return Ok(None);
        };
        if info.dims.len() != 2 || !PACKED_TYPES.contains(&info.ggml_type) {
            return Ok(None);
        }
        let bytes = self.file.tensor_bytes(&gguf)?.to_vec();
        let row_bytes = bytes.len() / info.dims[0].max(1);
        let (ty, shape) = (info.ggml_type, info.dims.clone());
        let bytes = self.hf_rows(name, &gguf, bytes, &shape, row_bytes)?;
        Ok(Some(StoredBlocks { ty, bytes, shape }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_gguf() {
        assert_eq!(
            gguf_name("model.layers.3.self_attn.q_proj.bias").unwrap(),
            "blk.3.attn_q.bias"
        );
        assert_eq!(
            gguf_name("model.layers.0.mlp.down_proj.weight").unwrap(),
            "blk.0.ffn_down.weight"
        );
        assert_eq!(gguf_name("lm_head.weight").unwrap(), "output.weight");
        assert!(gguf_name("model.layers.0.rotary_emb.inv_freq").is_none());
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // Two heads of hd = 4, one column: HF rows 0..8. llama.cpp stores, per head,
        // rows (0, 2, 1, 3): pairs (j, j + hd/2) made adjacent.
        let hf: Vec<f32> = (0..8).map(|x| x as f32).collect();
        let stored = [0., 2., 1., 3., 4., 6., 5., 7.];
        assert_eq!(unpermute_rows(&stored, 8, 1, 4), hf);
    }
}
