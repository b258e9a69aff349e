//! Training checkpoints: one safetensors file holding the model (`model.<name>`), the AdamW
//! moments (`optim.m.<name>`, `optim.v.<name>`) and, as metadata, the step, the batch RNG, the
//! full config and the git commit. Written through a temp file and a rename.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use lm_core::TransformerLm;
use lm_core::optim::{AdamW, AdamWConfig, Moments};
use lm_core::params::{
    FlatTensor, assign_params, f32_entries, named_params, view_to_f32, write_safetensors_f32,
};
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;

use super::config::TrainConfig;
use crate::error::{BasicsError, Result};

pub const FORMAT: &str = "lm-checkpoint-1";

/// What a checkpoint restores besides the tensors.
pub struct TrainingState {
    pub step: u64,
    pub rng: ChaCha8Rng,
    pub config: TrainConfig,
    /// Ranks of the run that wrote it (1 for a single process): a rank's optimizer state
    /// under `train.ddp = zero1 | fsdp` is its shard for this many ranks.
    pub world_size: usize,
}

fn bad(path: &Path, reason: impl Into<String>) -> BasicsError {
    BasicsError::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

pub fn adamw_config(cfg: &TrainConfig) -> AdamWConfig {
    let o = &cfg.optimizer;
    AdamWConfig {
        lr: o.lr,
        betas: o.betas,
        eps: o.eps,
        weight_decay: o.weight_decay,
    }
}

pub use lm_core::provenance::git_commit;

pub fn save<AB: AutodiffBackend>(
    path: &Path,
    model: &TransformerLm<AB>,
    optimizer: &AdamW<AB::InnerBackend>,
    state: &TrainingState,
) -> Result<()> {
    let mut tensors = f32_entries(named_params(model), "model.");
    let mut m = BTreeMap::new();
    let mut v = BTreeMap::new();
    for (name, moments) in &optimizer.moments_by_name() {
        let shape = vec![moments.m.dims()[0]];
        m.insert(
            name.clone(),
            FlatTensor {
                values: moments.m.clone(),
                shape: shape.clone(),
            },
        );
        v.insert(
            name.clone(),
            FlatTensor {
                values: moments.v.clone(),
                shape,
            },
        );
    }
    tensors.extend(f32_entries(m, "optim.m."));
    tensors.extend(f32_entries(v, "optim.v."));
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("step".to_string(), state.step.to_string()),
        ("adamw_step".to_string(), optimizer.step.to_string()),
        (
            "rng".to_string(),
            serde_json::to_string(&state.rng).expect("rng serialises"),
        ),
        ("config".to_string(), state.config.to_toml()),
        ("world_size".to_string(), state.world_size.to_string()),
        ("git_commit".to_string(), git_commit()),
    ]);
    write_safetensors_f32(&tensors, Some(metadata), path).map_err(|e| bad(path, e.to_string()))
}

fn metadata_field<'m>(meta: &'m HashMap<String, String>, path: &Path, k: &str) -> Result<&'m str> {
    meta.get(k).map(String::as_str).ok_or_else(|| {
        bad(
            path,
            format!("missing metadata `{k}` (not an lm checkpoint?)"),
        )
    })
}

/// A checkpoint file read into memory, its metadata checked and its config parsed.
struct CheckpointFile<'p> {
    path: &'p Path,
    bytes: Vec<u8>,
    meta: HashMap<String, String>,
    config: TrainConfig,
}

impl<'p> CheckpointFile<'p> {
    fn open(path: &'p Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| BasicsError::io(path, e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let format = metadata_field(&meta, path, "format")?;
        if format != FORMAT {
            return Err(bad(path, format!("format `{format}`, expected `{FORMAT}`")));
        }
        let config = TrainConfig::from_toml(metadata_field(&meta, path, "config")?, &[])
            .map_err(|e| bad(path, format!("config: {e}")))?;
        Ok(Self {
            path,
            bytes,
            meta,
            config,
        })
    }

    fn field(&self, k: &str) -> Result<&str> {
        metadata_field(&self.meta, self.path, k)
    }

    fn number(&self, k: &str) -> Result<u64> {
        self.field(k)?
            .parse()
            .map_err(|_| bad(self.path, format!("metadata `{k}` is not a number")))
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| bad(self.path, e.to_string()))
    }

    fn read(&self, file: &SafeTensors<'_>, name: &str) -> Result<Vec<f32>> {
        let view = file
            .tensor(name)
            .map_err(|_| bad(self.path, format!("missing tensor `{name}`")))?;
        view_to_f32(name, &view).map_err(|e| bad(self.path, e.to_string()))
    }

    /// The model of the config with every parameter from the `model.<name>` tensors.
    fn model<B: Backend>(
        &self,
        file: &SafeTensors<'_>,
        device: &B::Device,
    ) -> Result<TransformerLm<B>> {
        let fresh = TransformerLm::<B>::new(&self.config.model, self.config.train.seed, device)
            .map_err(|e| bad(self.path, e.to_string()))?;
        assign_params(fresh, &mut |name, _shape| {
            self.read(file, &format!("model.{name}"))
                .map_err(|e| lm_core::LmError::BadFile {
                    file: self.path.to_path_buf(),
                    reason: e.to_string(),
                })
        })
        .map_err(|e| bad(self.path, e.to_string()))
    }
}

/// Reads a checkpoint's config, step and RNG, and rebuilds model and optimizer on `device`.
pub fn load<AB: AutodiffBackend>(
    path: &Path,
    device: &AB::Device,
) -> Result<(TransformerLm<AB>, AdamW<AB::InnerBackend>, TrainingState)> {
    let ckpt = CheckpointFile::open(path)?;
    let step = ckpt.number("step")?;
    let rng: ChaCha8Rng = serde_json::from_str(ckpt.field("rng")?)
        .map_err(|e| bad(path, format!("metadata `rng`: {e}")))?;
    let file = ckpt.tensors()?;
    let model = ckpt.model::<AB>(&file, device)?;
    let mut optimizer = AdamW::new(adamw_config(&ckpt.config));
    optimizer.step = ckpt.number("adamw_step")?;
    let tensor = |values: Vec<f32>| {
        let n = values.len();
        Tensor::<AB::InnerBackend, 1>::from_data(TensorData::new(values, [n]), device)
    };
    for name in file.names() {
        if let Some(param) = name.strip_prefix("optim.m.") {
            let m = tensor(ckpt.read(&file, name)?);
            let v = tensor(ckpt.read(&file, &format!("optim.v.{param}"))?);
            optimizer
                .moments
                .insert(param.to_string(), Moments { m, v });
        }
    }
    let config = ckpt.config.clone();
    // Checkpoints from before data parallelism have no world size: one process wrote them.
    let world_size = match ckpt.meta.contains_key("world_size") {
        true => ckpt.number("world_size")? as usize,
        false => 1,
    };
    let state = TrainingState {
        step,
        rng,
        config,
        world_size,
    };
    Ok((model, optimizer, state))
}

/// Just the model and its config, for generation and evaluation (no autodiff).
pub fn load_model<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(TransformerLm<B>, TrainConfig)> {
    let ckpt = CheckpointFile::open(path)?;
    let model = ckpt.model::<B>(&ckpt.tensors()?, device)?;
    Ok((model, ckpt.config))
}
