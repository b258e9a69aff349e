//! The training config: one TOML file, every key overridable with `--set section.key=value`.

use std::path::{Path, PathBuf};

use lm_core::TransformerConfig;
use lm_core::parallel::ParallelMode;
use serde::{Deserialize, Serialize};

use crate::error::{BasicsError, Result};
use crate::tokenizer::encode_file::TokenDtype;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: TransformerConfig,
    pub data: DataConfig,
    pub optimizer: OptimizerConfig,
    pub train: LoopConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Token files written by `lm tokenizer encode`.
    pub train: PathBuf,
    pub valid: PathBuf,
    /// `uint16`, `uint32`, or `auto` (uint16 when model.vocab_size ≤ 65536).
    #[serde(default = "auto")]
    pub dtype: String,
}

fn auto() -> String {
    "auto".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Peak learning rate (after warmup).
    pub lr: f64,
    pub min_lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub warmup_iters: u64,
    /// End of the cosine; 0 means `train.steps`.
    #[serde(default)]
    pub cosine_cycle_iters: u64,
    /// Global L2 gradient-norm limit; 0 disables clipping.
    pub grad_clip: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    pub steps: u64,
    pub batch_size: usize,
    /// Evaluate every this many steps (and at the end); 0 = only at the end.
    pub eval_interval: u64,
    /// Batches of the validation file per evaluation; 0 = the whole file.
    pub eval_batches: usize,
    /// Checkpoint every this many steps (and at the end); 0 = only at the end.
    pub checkpoint_interval: u64,
    pub seed: u64,
    /// `ndarray`, `wgpu` or `cuda` (the latter two need the matching cargo feature).
    pub backend: String,
    /// Superseded by `model.precision` (the one place the precision policy is set); older
    /// configs may still carry it, and then it must agree.
    #[serde(default, skip_serializing)]
    pub precision: Option<String>,
    /// Peak FLOP/s of the device in TFLOP/s, for MFU; unset = no MFU.
    #[serde(default)]
    pub peak_tflops: Option<f64>,
    /// Stop (with a checkpoint) after this much wall time in this invocation; `--resume`
    /// continues. Unset = run all steps.
    #[serde(default)]
    pub max_seconds: Option<f64>,
    /// Read the loss and gradient norm back to the host every this many steps (and before
    /// each evaluation and checkpoint). Each read-back stalls a GPU's queue; 1 = every step.
    #[serde(default = "default_log_interval")]
    pub log_interval: u64,
    /// After `PROFILE_WARMUP_STEPS` steps, time this many steps phase by phase (data, forward,
    /// backward, optimizer with clipping), syncing the device after each phase; 0 = off.
    #[serde(default)]
    pub profile_steps: u64,
    /// Data-parallel runs (`lm train --nproc-per-node N`, or RANK/WORLD_SIZE set by a
    /// launcher): a whole model per rank with gradients averaged after the backward by
    /// `naive` (one all-reduce per parameter), `flat` (one of everything) or `bucketed`
    /// (buckets of `bucket_size_mb`, default 25); `overlapped` (all-reduces launched from the
    /// backward, per parameter or in buckets of `bucket_size_mb` when set); `zero1` (AdamW
    /// state sharded); `fsdp` (weight matrices and their AdamW state sharded). Ignored by a
    /// single process.
    #[serde(default = "default_ddp")]
    pub ddp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_size_mb: Option<f64>,
}

fn default_log_interval() -> u64 {
    10
}

fn default_ddp() -> String {
    "bucketed".into()
}

impl LoopConfig {
    /// What `ddp` (with `bucket_size_mb`) selects.
    pub fn parallel_mode(&self) -> Result<ParallelMode> {
        ParallelMode::parse(&self.ddp, self.bucket_size_mb).ok_or_else(|| {
            BasicsError::invalid(
                "train.ddp",
                format!(
                    "`{}`: use one of {}",
                    self.ddp,
                    ParallelMode::NAMES.join(", ")
                ),
            )
        })
    }
}

impl TrainConfig {
    /// Reads a TOML file and applies `key.path=value` overrides (values parsed as TOML, else
    /// taken as strings). Unknown keys are an error naming the key.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BasicsError::io(path, e))?;
        Self::from_toml(&text, overrides).map_err(|e| match e {
            BasicsError::Invalid { name, reason } => BasicsError::BadFile {
                path: path.to_path_buf(),
                reason: format!("{name}: {reason}"),
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| BasicsError::invalid("config", e.to_string()))?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let cfg: TrainConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| BasicsError::invalid("config", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn validate(&self) -> Result<()> {
        self.model
            .validate()
            .map_err(|e| BasicsError::invalid("model", e.to_string()))?;
        let t = &self.train;
        if t.steps == 0 || t.batch_size == 0 || t.log_interval == 0 {
            return Err(BasicsError::invalid(
                "train",
                "steps, batch_size and log_interval must be at least 1",
            ));
        }
        if self.optimizer.warmup_iters > self.cosine_end() {
            return Err(BasicsError::invalid(
                "optimizer.warmup_iters",
                "must not exceed cosine_cycle_iters",
            ));
        }
        if !["ndarray", "wgpu", "cuda"].contains(&t.backend.as_str()) {
            return Err(BasicsError::invalid(
                "train.backend",
                format!("`{}`: use ndarray, wgpu or cuda", t.backend),
            ));
        }
        t.parallel_mode()?;
        if let Some(mb) = t.bucket_size_mb
            && (mb.is_nan() || mb <= 0.0)
        {
            return Err(BasicsError::invalid(
                "train.bucket_size_mb",
                format!("{mb} must be positive"),
            ));
        }
        if let Some(legacy) = &t.precision {
            let model = serde_json::to_value(self.model.precision).expect("serialisable");
            if model.as_str() != Some(legacy.as_str()) {
                return Err(BasicsError::invalid(
                    "train.precision",
                    format!(
                        "`{legacy}`: the precision is now set by model.precision (which is {model}); \
                         remove train.precision"
                    ),
                ));
            }
        }
        self.token_dtype()?;
        Ok(())
    }

    /// Iteration where the cosine reaches `min_lr`.
    pub fn cosine_end(&self) -> u64 {
        match self.optimizer.cosine_cycle_iters {
            0 => self.train.steps,
            n => n,
        }
    }

    pub fn token_dtype(&self) -> Result<TokenDtype> {
        match self.data.dtype.as_str() {
            "auto" => Ok(TokenDtype::for_vocab(self.model.vocab_size)),
            "uint16" => Ok(TokenDtype::U16),
            "uint32" => Ok(TokenDtype::U32),
            other => Err(BasicsError::invalid(
                "data.dtype",
                format!("`{other}`: use uint16, uint32 or auto"),
            )),
        }
    }

    /// Learning rate at `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        let o = &self.optimizer;
        lm_core::optim::lr_cosine_schedule(step, o.lr, o.min_lr, o.warmup_iters, self.cosine_end())
    }
}

/// `a.b.c=value` into nested tables.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| BasicsError::invalid("--set", format!("`{assignment}` is not key=value")))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let (last, sections) = parts.split_last().expect("split gives one part");
    let mut node = table;
    for s in sections {
        node = node
            .entry(s.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or_else(|| {
                BasicsError::invalid("--set", format!("`{s}` in `{key}` is not a section"))
            })?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = r#"
[model]
vocab_size = 512
context_length = 32
d_model = 32
num_layers = 2
num_heads = 2
d_ff = 64
[data]
train = "t.bin"
valid = "v.bin"
[optimizer]
lr = 1e-3
min_lr = 1e-4
betas = [0.9, 0.95]
eps = 1e-8
weight_decay = 0.1
warmup_iters = 10
grad_clip = 1.0
[train]
steps = 100
batch_size = 8
eval_interval = 50
eval_batches = 4
checkpoint_interval = 50
seed = 0
backend = "ndarray"
"#;

    #[test]
    fn overrides_apply_and_unknown_keys_are_named() {
        let cfg = TrainConfig::from_toml(
            EXAMPLE,
            &["optimizer.lr=3e-4".into(), "train.backend=ndarray".into()],
        )
        .unwrap();
        assert_eq!(cfg.optimizer.lr, 3e-4);
        assert_eq!(cfg.cosine_end(), 100);
        let err = TrainConfig::from_toml(EXAMPLE, &["optimizer.lrr=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lrr"), "{err}");
        let err = TrainConfig::from_toml(EXAMPLE, &["train.precision=bf16".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.precision"), "{err}");
        let err = TrainConfig::from_toml(EXAMPLE, &["model.num_heads=3".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("d_model"), "{err}");
        let err = TrainConfig::from_toml(EXAMPLE, &["train.ddp=zero3".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.ddp") && err.contains("fsdp"), "{err}");
        let err = TrainConfig::from_toml(EXAMPLE, &["train.bucket_size_mb=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.bucket_size_mb"), "{err}");
        let err = TrainConfig::from_toml(EXAMPLE, &["nonsense".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("key=value"), "{err}");
    }

    #[test]
    fn round_trips_through_toml() {
        let cfg = TrainConfig::from_toml(EXAMPLE, &[]).unwrap();
        assert_eq!(TrainConfig::from_toml(&cfg.to_toml(), &[]).unwrap(), cfg);
    }

    #[test]
    fn ddp_selects_the_parallel_mode() {
        let mode = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            TrainConfig::from_toml(EXAMPLE, &sets)
                .unwrap()
                .train
                .parallel_mode()
                .unwrap()
        };
        let bucketed = ParallelMode::Bucketed {
            bucket_size_mb: ParallelMode::DEFAULT_BUCKET_MB,
        };
        assert_eq!(mode(&[]), bucketed);
        assert_eq!(
            mode(&["train.ddp=overlapped"]),
            ParallelMode::Overlapped {
                bucket_size_mb: None
            }
        );
        assert_eq!(
            mode(&["train.ddp=overlapped", "train.bucket_size_mb=1.5"]),
            ParallelMode::Overlapped {
                bucket_size_mb: Some(1.5)
            }
        );
        assert_eq!(mode(&["train.ddp=zero1"]), ParallelMode::Zero1);
        assert_eq!(mode(&["train.ddp=fsdp"]), ParallelMode::Fsdp);
    }
}
