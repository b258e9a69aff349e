//! Writes a decoder back out as a Hugging Face directory (`config.json` + one f32
//! `model.safetensors`, the tensor names [`Decoder::load`] reads), so a fine-tuned model
//! loads again with [`Decoder::from_hf_dir`] (and with `transformers`).

use std::path::Path;

use burn::tensor::{Tensor, backend::Backend};
use serde_json::{Value, json};

use super::config::{Architecture, DecoderConfig};
use super::decoder::Decoder;
use crate::error::{LmError, Result};
use crate::fsutil::write_atomic;
use crate::layers::Linear;
use crate::params::write_safetensors_f32;

/// `config.json` of `config`, in the keys [`DecoderConfig::from_hf_json`] reads.
pub fn hf_config_json(config: &DecoderConfig) -> Value {
    let (arch, model_type) = match config.arch {
        Architecture::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        Architecture::Llama => ("LlamaForCausalLM", "llama"),
    };
    let rope_scaling = config.rope_scaling.map_or(Value::Null, |s| {
        json!({
            "rope_type": "llama3",
            "factor": s.factor,
            "low_freq_factor": s.low_freq_factor,
            "high_freq_factor": s.high_freq_factor,
            "original_max_position_embeddings": s.original_max_position_embeddings,
        })
    });
    let mut json = json!({
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": config.tie_word_embeddings,
        "max_position_embeddings": config.max_position_embeddings,
        "torch_dtype": "float32",
    });
    // Qwen2 always has q/k/v biases; Llama says whether it has them.
    if config.arch == Architecture::Llama {
        json["attention_bias"] = Value::Bool(config.attention_bias);
    }
    json
}

impl<B: Backend> Decoder<B> {
    /// Writes `dir/config.json` and `dir/model.safetensors` (f32), each atomically;
    /// creates `dir`.
    pub fn save_hf_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
        let mut tensors = Entries::default();
        tensors.push("model.embed_tokens.weight", self.embed_tokens.weight.val());
        for (i, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let attn = &layer.self_attn;
            // The fused projections are written as Hugging Face's separate tensors.
            for part in attn.qkv_parts() {
                let name = format!("{p}.self_attn.{}", part.name);
                tensors.push(&format!("{name}.weight"), part.weight);
                if let Some(bias) = part.bias {
                    tensors.push(&format!("{name}.bias"), bias);
                }
            }
            tensors.linear(&format!("{p}.self_attn.o_proj"), &attn.o_proj);
            tensors.linear(&format!("{p}.mlp.gate_proj"), &layer.mlp.w1);
            tensors.linear(&format!("{p}.mlp.up_proj"), &layer.mlp.w3);
            tensors.linear(&format!("{p}.mlp.down_proj"), &layer.mlp.w2);
            tensors.push(
                &format!("{p}.input_layernorm.weight"),
                layer.input_layernorm.weight.val(),
            );
            tensors.push(
                &format!("{p}.post_attention_layernorm.weight"),
                layer.post_attention_layernorm.weight.val(),
            );
        }
        tensors.push("model.norm.weight", self.norm.weight.val());
        if let Some(head) = &self.lm_head {
            tensors.linear("lm_head", head);
        }
        write_safetensors_f32(&tensors.0, None, &dir.join("model.safetensors"))?;
        let config = serde_json::to_vec_pretty(&hf_config_json(&self.config))
            .map_err(|e| LmError::io(dir.join("config.json"), e.into()))?;
        write_atomic(&dir.join("config.json"), &config)
    }
}

/// `(name, shape, little-endian f32 bytes)`, as [`write_safetensors_f32`] takes them.
#[derive(Default)]
struct Entries(Vec<(String, Vec<usize>, Vec<u8>)>);

impl Entries {
    fn push<const D: usize, B: Backend>(&mut self, name: &str, t: Tensor<B, D>) {
        let shape = t.dims().to_vec();
        let data = t.into_data().convert::<f32>();
        self.0
            .push((name.to_string(), shape, data.as_bytes().to_vec()));
    }

    /// A linear layer's `[d_out, d_in]` weight, the layout Hugging Face stores too.
    fn linear<B: Backend>(&mut self, prefix: &str, linear: &Linear<B>) {
        self.push(&format!("{prefix}.weight"), linear.weight.val());
    }
}
