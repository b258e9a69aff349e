//! How a training loop runs data-parallel, as traits the loop sees: a [`RankTrainer`] holds
//! one rank's model and optimizer and runs the step (forward, backward with the gradients
//! synchronised, optimizer); a [`ParallelRank`] turns a rank's initial model and optimizer
//! into one. The implementations with communicators live in `lm_systems::dist`; the
//! replicated one ([`Replica`]) is here because single-process training is its one-rank case.

use std::ops::Range;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor};

use crate::TransformerLm;
use crate::optim::AdamW;
use crate::params::{NamedTensors, named_grads};

/// One rank's model and optimizer, and the training step over them.
pub trait RankTrainer<AB: AutodiffBackend> {
    /// Logits of `input_ids`.
    fn forward(&mut self, input_ids: Tensor<AB, 2, Int>) -> Result<Tensor<AB, 3>, String>;
    /// Runs the backward of `loss` (computed from the last [`Self::forward`]) and
    /// synchronises the gradients over the ranks.
    fn backward(&mut self, loss: Tensor<AB, 1>) -> Result<(), String>;
    /// One AdamW step with the gradients of the last backward, clipped to a global L2 norm
    /// of `max_norm`; returns `Σ g²` before clipping (left on the device where possible).
    fn step(
        &mut self,
        lr: f64,
        max_norm: Option<f64>,
    ) -> Result<Tensor<AB::InnerBackend, 1>, String>;
    /// The whole model (under sharding a collective: every rank calls it).
    fn model(&self) -> Result<TransformerLm<AB>, String>;
    /// The optimizer state this rank checkpoints (under sharding, its shards').
    fn optimizer(&self) -> &AdamW<AB::InnerBackend>;
    /// The mean over ranks of one number per rank (e.g. the loss, for logging).
    fn mean(&mut self, value: f64) -> Result<f64, String>;
}

/// A rank of a data-parallel run before training starts.
pub trait ParallelRank<AB: AutodiffBackend> {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Takes over this rank's initial model and optimizer (its own fresh initialisation, or
    /// its checkpoint): every rank continues from rank 0's model.
    fn start(
        self: Box<Self>,
        model: TransformerLm<AB>,
        optimizer: AdamW<AB::InnerBackend>,
    ) -> Result<Box<dyn RankTrainer<AB>>, String>;
}

/// What `train.ddp` selects for a data-parallel run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParallelMode {
    /// The whole model and AdamW on every rank; after the backward, one all-reduce per
    /// parameter (`naive`), of every gradient at once (`flat`), or of buckets (`bucketed`).
    Naive,
    Flat,
    Bucketed {
        bucket_size_mb: f64,
    },
    /// All-reduces launched from the backward as gradients appear: per parameter, or in
    /// buckets when a size is given.
    Overlapped {
        bucket_size_mb: Option<f64>,
    },
    /// ZeRO stage 1: replicated model, AdamW state sharded over the ranks.
    Zero1,
    /// Weight matrices and their AdamW state sharded, gathered layer by layer.
    Fsdp,
}

impl ParallelMode {
    pub const NAMES: [&str; 6] = ["naive", "flat", "bucketed", "overlapped", "zero1", "fsdp"];
    /// Bucket size of `bucketed` when `train.bucket_size_mb` is unset.
    pub const DEFAULT_BUCKET_MB: f64 = 25.0;

    /// `name` (one of [`Self::NAMES`]) with its bucket size, if it takes one.
    pub fn parse(name: &str, bucket_size_mb: Option<f64>) -> Option<Self> {
        Some(match name {
            "naive" => Self::Naive,
            "flat" => Self::Flat,
            "bucketed" => Self::Bucketed {
                bucket_size_mb: bucket_size_mb.unwrap_or(Self::DEFAULT_BUCKET_MB),
            },
            "overlapped" => Self::Overlapped { bucket_size_mb },
            "zero1" => Self::Zero1,
            "fsdp" => Self::Fsdp,
            _ => return None,
        })
    }

    /// Whether a rank's optimizer state is only its shard, so that its checkpoint resumes
    /// only with the same mode and number of ranks.
    pub fn shards_optimizer(self) -> bool {
        matches!(self, Self::Zero1 | Self::Fsdp)
    }
}

/// How a [`Replica`] synchronises its gradients; the single-process case does nothing.
pub trait GradientSync<AB: AutodiffBackend> {
    /// The forward: the plain one, unless the synchronisation hooks into it.
    fn forward(
        &mut self,
        model: &TransformerLm<AB>,
        input_ids: Tensor<AB, 2, Int>,
    ) -> Result<Tensor<AB, 3>, String> {
        model.try_forward(input_ids).map_err(|e| e.to_string())
    }
    /// Replaces each gradient by its mean over the ranks.
    fn average_gradients(
        &mut self,
        grads: &mut NamedTensors<AB::InnerBackend>,
    ) -> Result<(), String>;
    fn mean(&mut self, value: f64) -> Result<f64, String>;
}

/// One process: nothing to synchronise.
pub struct SingleProcess;

impl<AB: AutodiffBackend> GradientSync<AB> for SingleProcess {
    fn average_gradients(&mut self, _: &mut NamedTensors<AB::InnerBackend>) -> Result<(), String> {
        Ok(())
    }
    fn mean(&mut self, value: f64) -> Result<f64, String> {
        Ok(value)
    }
}

/// The whole model and AdamW on this rank (one process, or a DDP replica).
pub struct Replica<AB: AutodiffBackend> {
    /// `None` only inside [`RankTrainer::step`]: the optimizer takes the model by value, so
    /// the parameters it replaces are not kept alive by a second reference (a GPU backend
    /// then updates them in place).
    model: Option<TransformerLm<AB>>,
    optimizer: AdamW<AB::InnerBackend>,
    sync: Box<dyn GradientSync<AB>>,
    grads: Option<NamedTensors<AB::InnerBackend>>,
}

impl<AB: AutodiffBackend> Replica<AB> {
    pub fn new(
        model: TransformerLm<AB>,
        optimizer: AdamW<AB::InnerBackend>,
        sync: Box<dyn GradientSync<AB>>,
    ) -> Self {
        Self {
            model: Some(model),
            optimizer,
            sync,
            grads: None,
        }
    }

    fn current(&self) -> &TransformerLm<AB> {
        self.model
            .as_ref()
            .expect("the model is back after every step")
    }
}

impl<AB: AutodiffBackend> RankTrainer<AB> for Replica<AB> {
    fn forward(&mut self, input_ids: Tensor<AB, 2, Int>) -> Result<Tensor<AB, 3>, String> {
        let model = self
            .model
            .as_ref()
            .expect("the model is back after every step");
        self.sync.forward(model, input_ids)
    }

    fn backward(&mut self, loss: Tensor<AB, 1>) -> Result<(), String> {
        let mut grads = named_grads(self.current(), &loss.backward());
        self.sync.average_gradients(&mut grads)?;
        self.grads = Some(grads);
        Ok(())
    }

    fn step(
        &mut self,
        lr: f64,
        max_norm: Option<f64>,
    ) -> Result<Tensor<AB::InnerBackend, 1>, String> {
        let grads = self.grads.take().ok_or("step without a backward")?;
        let model = self
            .model
            .take()
            .expect("the model is back after every step");
        let (model, sq_norm) = self
            .optimizer
            .step_module_fused(model, &grads, lr, max_norm);
        self.model = Some(model);
        Ok(sq_norm)
    }

    fn model(&self) -> Result<TransformerLm<AB>, String> {
        Ok(self.current().clone())
    }

    fn optimizer(&self) -> &AdamW<AB::InnerBackend> {
        &self.optimizer
    }

    fn mean(&mut self, value: f64) -> Result<f64, String> {
        self.sync.mean(value)
    }
}

/// The rows of a global batch of `global_batch` that `rank` of `world_size` trains on, or
/// `None` when the batch does not divide evenly over the ranks.
pub fn rank_rows(global_batch: usize, rank: usize, world_size: usize) -> Option<Range<usize>> {
    if world_size == 0 || !global_batch.is_multiple_of(world_size) {
        return None;
    }
    let per = global_batch / world_size;
    Some(rank * per..(rank + 1) * per)
}
