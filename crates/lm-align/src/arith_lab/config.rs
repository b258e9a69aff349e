//! The lab-5 demonstration's settings, read from TOML (`fixtures/configs/lab5*.toml`).

use std::path::Path;

use lm_core::pretrained::{Architecture, DecoderConfig};
use lm_core::{LmError, Result};
use serde::{Deserialize, Serialize};

use crate::policy::TextCodec;
use crate::toy::{ArithmeticSpec, CharCodec};
use crate::train::{GrpoConfig, SftConfig};

/// The tiny decoder trained from scratch (a Llama-style block: RMSNorm, RoPE, SwiGLU, GQA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TinyModel {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub intermediate_size: usize,
    /// The longest prompt + response, in characters.
    pub max_len: usize,
}

impl Default for TinyModel {
    fn default() -> Self {
        Self {
            hidden_size: 128,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 2,
            intermediate_size: 384,
            max_len: 192,
        }
    }
}

impl TinyModel {
    pub fn decoder_config(&self, vocab_size: usize) -> Result<DecoderConfig> {
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(LmError::config(
                "model.num_heads",
                format!(
                    "{} must divide hidden_size {}",
                    self.num_heads, self.hidden_size
                ),
            ));
        }
        let config = DecoderConfig {
            arch: Architecture::Llama,
            vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_layers,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.hidden_size / self.num_heads,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            tie_word_embeddings: true,
            attention_bias: false,
            max_position_embeddings: self.max_len,
        };
        config.validate()?;
        Ok(config)
    }
}

/// How the held-out set is decoded at each evaluation (the course samples at temperature 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSettings {
    pub held_out: usize,
    pub temperature: f32,
    pub max_tokens: usize,
    pub max_batch_rows: usize,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            held_out: 500,
            temperature: 1.0,
            max_tokens: 64,
            max_batch_rows: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabConfig {
    pub seed: u64,
    pub task: ArithmeticSpec,
    /// Problems whose plain worked solutions form the pretraining corpus.
    pub pretrain_problems: usize,
    /// Documents of arithmetic tables added to the pretraining corpus (see `facts.rs`).
    pub fact_documents: usize,
    /// Problems written as r1_zero examples for SFT (by the same noisy teacher).
    pub sft_problems: usize,
    /// Questions GRPO samples from (answers only: GRPO never sees a solution).
    pub rl_problems: usize,
    pub model: TinyModel,
    pub pretrain: SftConfig,
    pub sft: SftConfig,
    pub grpo: GrpoConfig,
    pub eval: EvalSettings,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            task: ArithmeticSpec::default(),
            pretrain_problems: 20_000,
            fact_documents: 10_000,
            sft_problems: 2_000,
            rl_problems: 5_000,
            model: TinyModel::default(),
            pretrain: SftConfig::default(),
            sft: SftConfig::default(),
            grpo: GrpoConfig::default(),
            eval: EvalSettings::default(),
        }
    }
}

impl LabConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        toml::from_str(&text).map_err(|e| LmError::BadFile {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config is plain data")
    }

    /// The tiny model's config for the lab's character vocabulary.
    pub fn decoder_config(&self) -> Result<DecoderConfig> {
        self.model.decoder_config(CharCodec::new().vocab_size())
    }
}
