//! Hyper-parameters of a pretrained Qwen2 / Llama decoder, read from a Hugging Face
//! `config.json` (or filled from GGUF metadata by [`super::gguf_model`]).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{LmError, Result};
use crate::layers::rope_inv_freq;

/// The decoder families we run (their blocks are the same; Qwen2 adds q/k/v biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Qwen2,
    Llama,
}

impl Architecture {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "qwen2" => Some(Self::Qwen2),
            "llama" => Some(Self::Llama),
            _ => None,
        }
    }
}

/// Llama 3's `rope_scaling` (`rope_type = "llama3"`): long wavelengths slowed by `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    pub arch: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry biases (Qwen2).
    pub attention_bias: bool,
    pub max_position_embeddings: usize,
}

/// The most positions a RoPE table is built for, whatever the config allows (a 128k
/// table at head dim 128 would be 128 MB of f32 for nothing).
pub const MAX_ROPE_TABLE: usize = 32_768;

impl DecoderConfig {
    /// Reads a Hugging Face `config.json` (the classic keys `rope_theta` / `rope_scaling`).
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| LmError::BadFile {
            file: path.to_path_buf(),
            reason: format!("not JSON: {e}"),
        })?;
        let cfg = Self::from_hf_json(&json).map_err(|e| match e {
            LmError::Config { field, reason } => LmError::BadFile {
                file: path.to_path_buf(),
                reason: format!("`{field}` {reason}"),
            },
            other => other,
        })?;
        Ok(cfg)
    }

    pub fn from_hf_json(json: &Value) -> Result<Self> {
        let model_type = str_key(json, "model_type")?;
        let arch = Architecture::parse(model_type).ok_or_else(|| {
            LmError::config(
                "model_type",
                format!("is {model_type:?}; supported: \"qwen2\", \"llama\""),
            )
        })?;
        let hidden_size = usize_key(json, "hidden_size")?;
        let num_heads = usize_key(json, "num_attention_heads")?;
        let head_dim = match json.get("head_dim") {
            Some(v) if !v.is_null() => as_usize(v, "head_dim")?,
            _ => hidden_size / num_heads.max(1),
        };
        let rope_scaling = match json.get("rope_scaling") {
            None | Some(Value::Null) => None,
            Some(v) => Some(llama3_scaling(v)?),
        };
        let cfg = Self {
            arch,
            vocab_size: usize_key(json, "vocab_size")?,
            hidden_size,
            intermediate_size: usize_key(json, "intermediate_size")?,
            num_layers: usize_key(json, "num_hidden_layers")?,
            num_heads,
            num_kv_heads: match json.get("num_key_value_heads") {
                Some(v) if !v.is_null() => as_usize(v, "num_key_value_heads")?,
                _ => num_heads,
            },
            head_dim,
            rms_norm_eps: f64_key(json, "rms_norm_eps")?,
            rope_theta: json
                .get("rope_theta")
                .map(|v| as_f64(v, "rope_theta"))
                .transpose()?
                .unwrap_or(10_000.0),
            rope_scaling,
            tie_word_embeddings: json
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            attention_bias: match arch {
                Architecture::Qwen2 => true,
                Architecture::Llama => json
                    .get("attention_bias")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            max_position_embeddings: json
                .get("max_position_embeddings")
                .map(|v| as_usize(v, "max_position_embeddings"))
                .transpose()?
                .unwrap_or(4096),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects configs the decoder cannot be built from, naming the field.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return Err(LmError::config(field, "must be at least 1"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(LmError::config(
                "num_key_value_heads",
                format!(
                    "({}) must divide num_attention_heads ({})",
                    self.num_kv_heads, self.num_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(LmError::config("head_dim", "must be even for RoPE"));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(LmError::config("rope_theta", "must be a positive number"));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(LmError::config("rms_norm_eps", "must be a positive number"));
        }
        Ok(())
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Positions the RoPE table covers.
    pub fn rope_positions(&self) -> usize {
        self.max_position_embeddings.min(MAX_ROPE_TABLE)
    }

    /// RoPE frequencies, with Llama 3's rescaling when the config has it.
    pub fn inv_freq(&self) -> Vec<f64> {
        let base = rope_inv_freq(self.rope_theta, self.head_dim);
        let Some(s) = self.rope_scaling else {
            return base;
        };
        let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
        let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
        base.into_iter()
            .map(|f| {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor
                } else {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }

    /// Parameters of the decoder (embeddings and head counted once when tied).
    pub fn num_params(&self) -> usize {
        let (d, kv) = (self.hidden_size, self.num_kv_heads * self.head_dim);
        let q = self.num_heads * self.head_dim;
        let bias = if self.attention_bias { q + 2 * kv } else { 0 };
        let attn = d * q + 2 * d * kv + q * d + bias;
        let mlp = 3 * d * self.intermediate_size;
        let layer = attn + mlp + 2 * d;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_layers * layer + d + head
    }
}

fn llama3_scaling(v: &Value) -> Result<Llama3RopeScaling> {
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "llama3" {
        return Err(LmError::config(
            "rope_scaling",
            format!("has rope_type {kind:?}; only \"llama3\" (or null) is supported"),
        ));
    }
    let key = |k: &str| {
        v.get(k)
            .ok_or_else(|| LmError::config(format!("rope_scaling.{k}"), "is missing"))
            .and_then(|x| as_f64(x, &format!("rope_scaling.{k}")))
    };
    Ok(Llama3RopeScaling {
        factor: key("factor")?,
        low_freq_factor: key("low_freq_factor")?,
        high_freq_factor: key("high_freq_factor")?,
        original_max_position_embeddings: key("original_max_position_embeddings")?,
    })
}

fn field<'a>(json: &'a Value, key: &str) -> Result<&'a Value> {
    json.get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| LmError::config(key, "is missing"))
}

fn str_key<'a>(json: &'a Value, key: &str) -> Result<&'a str> {
    field(json, key)?
        .as_str()
        .ok_or_else(|| LmError::config(key, "must be a string"))
}

fn usize_key(json: &Value, key: &str) -> Result<usize> {
    as_usize(field(json, key)?, key)
}

fn f64_key(json: &Value, key: &str) -> Result<f64> {
    as_f64(field(json, key)?, key)
}

fn as_usize(v: &Value, key: &str) -> Result<usize> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| LmError::config(key, format!("must be a non-negative integer, got {v}")))
}

fn as_f64(v: &Value, key: &str) -> Result<f64> {
    v.as_f64()
        .ok_or_else(|| LmError::config(key, format!("must be a number, got {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qwen_json() -> Value {
        json!({"model_type": "qwen2", "vocab_size": 320, "hidden_size": 64,
               "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
               "rope_scaling": null, "tie_word_embeddings": true})
    }

    #[test]
    fn reads_qwen2_defaults() {
        let cfg = DecoderConfig::from_hf_json(&qwen_json()).unwrap();
        assert_eq!(cfg.arch, Architecture::Qwen2);
        assert_eq!((cfg.head_dim, cfg.group_size()), (16, 2));
        assert!(cfg.attention_bias && cfg.tie_word_embeddings);
    }

    #[test]
    fn missing_and_unsupported_keys_are_named() {
        let mut j = qwen_json();
        j.as_object_mut().unwrap().remove("hidden_size");
        let err = DecoderConfig::from_hf_json(&j).unwrap_err().to_string();
        assert!(
            err.contains("hidden_size") && err.contains("missing"),
            "{err}"
        );
        let mut j = qwen_json();
        j["model_type"] = json!("gpt_neox");
        let err = DecoderConfig::from_hf_json(&j).unwrap_err().to_string();
        assert!(err.contains("gpt_neox"), "{err}");
        let mut j = qwen_json();
        j["num_key_value_heads"] = json!(3);
        let err = DecoderConfig::from_hf_json(&j).unwrap_err().to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
    }

    #[test]
    fn llama3_scaling_has_three_regimes() {
        let mut j = qwen_json();
        j["model_type"] = json!("llama");
        j["rope_theta"] = json!(5e5);
        j["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 256});
        let cfg = DecoderConfig::from_hf_json(&j).unwrap();
        let base = rope_inv_freq(cfg.rope_theta, cfg.head_dim);
        let scaled = cfg.inv_freq();
        let kept = base.iter().zip(&scaled).filter(|(b, s)| b == s).count();
        let divided = base
            .iter()
            .zip(&scaled)
            .filter(|(b, s)| (*b / 8.0 - **s).abs() < 1e-15)
            .count();
        // The golden README's split at hd = 16: 2 kept, 1 smoothed, 5 divided by 8.
        assert_eq!((kept, divided), (2, 5));
        assert!(!cfg.attention_bias);
    }
}
