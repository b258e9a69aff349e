//! Fully sharded data parallelism ([`Fsdp`]): each rank keeps 1/N of every weight matrix
//! (Linear and Embedding weights, flattened and split into N equal shards, the last padded
//! with zeros) and the AdamW moments of that shard only. The RMSNorm gains are small and
//! stay replicated; their gradients are averaged with one all-reduce after the backward.
//!
//! A step: the forward gathers each stage's weights just before the stage runs (an
//! all-gather whose backward reduce-scatters the weight's gradient to the shard, averaged
//! over the ranks; see [`super::autodiff`]), the backward leaves each rank the averaged
//! gradient of its shards, and AdamW steps the shards, clipping with the global norm (the
//! shards' squares summed over ranks, the replicated gains counted once).
//!
//! Each parameter name is sharded on its own, so weights tied by sharing a tensor would be
//! untied (lm-core's optimizer unties them after one step as well).
//!
//! Memory: between steps a rank holds `3 × (Σ shards + replicated)` f32 values (weights,
//! two moments) instead of `3 × Ψ`. During a step the gathered weights stay alive until the
//! backward, because the layers' backward keeps its inputs; gathering again in the backward
//! (as PyTorch's FSDP does) would need layers that re-gather, which lm-core's do not.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use lm_core::TransformerLm;
use lm_core::optim::{AdamW, AdamWConfig, clip_to_norm};
use lm_core::params::{
    FlatTensor, NamedTensors, f32_to_tensor_like, map_named_params, named_grads, named_params,
    to_f32_vec,
};

use super::autodiff::{CollectiveAutodiff, ShardLayout, SharedComm, gather_shard};
use super::ddp::broadcast_module;
use super::staged::{StageParams, forward_in_stages};
use super::{Communicator, DistError};

/// This rank's part of one weight matrix.
#[derive(Debug, Clone)]
struct Shard<B: Backend> {
    /// `ceil(numel / world_size)` values, from `rank × len` of the flattened weight.
    values: Tensor<B, 1>,
    shape: Vec<usize>,
}

impl<B: Backend> Shard<B> {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Whether a parameter is sharded: the weight matrices; vectors (RMSNorm gains) are not.
fn is_sharded(shape: &[usize]) -> bool {
    shape.len() == 2
}

pub struct Fsdp<AB: CollectiveAutodiff> {
    comm: SharedComm,
    rank: usize,
    /// The model with each sharded weight replaced by an empty `[0, 1]` placeholder; the
    /// replicated parameters live here in full.
    skeleton: TransformerLm<AB>,
    shards: BTreeMap<String, Shard<AB::InnerBackend>>,
    optimizer: AdamW<AB::InnerBackend>,
    /// The shard leaves of the step in flight (between `forward` and `step`).
    leaves: Vec<(String, Tensor<AB, 1>)>,
}

impl<AB: CollectiveAutodiff> Fsdp<AB> {
    /// Shards rank 0's `model` (every rank passes its own; rank 0's is broadcast first, the
    /// only time a rank holds the whole model).
    pub fn new(
        model: TransformerLm<AB>,
        comm: impl Communicator + 'static,
        config: AdamWConfig,
    ) -> Result<Self, DistError> {
        Self::with_optimizer(model, comm, AdamW::new(config))
    }

    /// [`Self::new`] continuing `optimizer`: this rank's state of its shards and of the
    /// replicated parameters (e.g. from its checkpoint), checked against this world size.
    pub fn with_optimizer(
        model: TransformerLm<AB>,
        comm: impl Communicator + 'static,
        optimizer: AdamW<AB::InnerBackend>,
    ) -> Result<Self, DistError> {
        let mut comm = comm;
        let (rank, world) = (comm.rank(), comm.world_size());
        let model = broadcast_module(&mut comm, model)?;
        let mut shards = BTreeMap::new();
        for (name, p) in named_params(&model) {
            if !is_sharded(&p.shape) {
                continue;
            }
            let len = p.numel().div_ceil(world);
            let all = to_f32_vec(&p.values);
            let mut mine =
                all[(rank * len).min(all.len())..((rank + 1) * len).min(all.len())].to_vec();
            mine.resize(len, 0.0);
            let values = f32_to_tensor_like(mine, &p.values.inner());
            shards.insert(
                name,
                Shard {
                    values,
                    shape: p.shape,
                },
            );
        }
        let skeleton = map_named_params(model, &mut |name, p| {
            let device = p.values.device();
            if shards.contains_key(name) {
                FlatTensor {
                    values: Tensor::zeros([0], &device),
                    // Not [0, 0]: burn's reshape reads a 0 as "keep this dim".
                    shape: vec![0, 1],
                }
            } else {
                fresh(p)
            }
        });
        let replicated = named_params(&skeleton);
        for (name, m) in optimizer.moments_by_name() {
            let want = match (shards.get(&name), replicated.get(&name)) {
                (Some(shard), _) => shard.values.dims()[0],
                (None, Some(p)) => p.numel(),
                (None, None) => 0,
            };
            if m.m.dims()[0] != want {
                return Err(DistError::Usage {
                    rank,
                    op: "fsdp",
                    reason: format!(
                        "the optimizer state of `{name}` has {} values; this rank's part of it \
                         over {world} ranks has {want}",
                        m.m.dims()[0]
                    ),
                });
            }
        }
        Ok(Self {
            comm: SharedComm::new(comm),
            rank,
            skeleton,
            shards,
            optimizer,
            leaves: Vec::new(),
        })
    }

    /// This rank's optimizer state: the moments of its shards and of the replicated
    /// parameters.
    pub fn optimizer(&self) -> &AdamW<AB::InnerBackend> {
        &self.optimizer
    }

    /// The mean over ranks of one number per rank.
    pub fn mean(&self, value: f64) -> Result<f64, DistError> {
        let mut comm = self.comm.lock();
        let mut buf = [value as f32];
        comm.all_reduce_sum(&mut buf)?;
        Ok(f64::from(buf[0]) / comm.world_size() as f64)
    }

    fn usage(&self, reason: impl Into<String>) -> DistError {
        DistError::Usage {
            rank: self.rank,
            op: "fsdp",
            reason: reason.into(),
        }
    }

    /// The logits of `input_ids`, each stage's weights all-gathered just before it runs.
    /// Call [`Self::step`] with the gradients of a loss on them.
    pub fn forward(&mut self, input_ids: Tensor<AB, 2, Int>) -> Result<Tensor<AB, 3>, DistError> {
        let mut gather = Gather {
            rank: self.rank,
            comm: &self.comm,
            shards: &self.shards,
            leaves: Vec::new(),
        };
        let logits = forward_in_stages(&self.skeleton, input_ids, &mut gather)?;
        if gather.leaves.len() != self.shards.len() {
            let used: Vec<&String> = gather.leaves.iter().map(|(n, _)| n).collect();
            let missed: Vec<&String> = self.shards.keys().filter(|n| !used.contains(n)).collect();
            return Err(self.usage(format!("the forward did not gather {missed:?}")));
        }
        self.leaves = gather.leaves;
        Ok(logits)
    }

    /// Averages the replicated gradients, clips every gradient to `max_norm` (global norm)
    /// and steps AdamW on this rank's shards and the replicated parameters. Returns the
    /// global gradient norm before clipping.
    pub fn step(
        &mut self,
        grads: &AB::Gradients,
        lr: f64,
        max_norm: Option<f64>,
    ) -> Result<f64, DistError> {
        if let Some(e) = self.comm.take_failure() {
            self.leaves.clear();
            return Err(e);
        }
        if self.leaves.is_empty() {
            return Err(self.usage("step without a forward through Fsdp::forward"));
        }
        let mut local = NamedTensors::new();
        for (name, leaf) in std::mem::take(&mut self.leaves) {
            if let Some(g) = leaf.grad(grads) {
                local.insert(name, FlatTensor::from_tensor(g));
            }
        }
        // The placeholders are not in the graph: these are the replicated gradients.
        let mut replicated = named_grads(&self.skeleton, grads);
        let shard_sq;
        {
            let mut comm = self.comm.lock();
            let inv = 1.0 / comm.world_size() as f32;
            let mut flat: Vec<f32> = replicated
                .values()
                .flat_map(|g| to_f32_vec(&g.values))
                .collect();
            comm.all_reduce_sum(&mut flat)?;
            let mut offset = 0;
            for g in replicated.values_mut() {
                let n = g.numel();
                let mean = flat[offset..offset + n].iter().map(|v| v * inv).collect();
                g.values = f32_to_tensor_like(mean, &g.values);
                offset += n;
            }
            let mut sq = [squares(&local) as f32];
            comm.all_reduce_sum(&mut sq)?;
            shard_sq = f64::from(sq[0]);
        }
        // Replicated gradients are equal on every rank: counted once.
        let norm = (shard_sq + squares(&replicated)).sqrt();
        local.append(&mut replicated);
        if let Some(max) = max_norm {
            clip_to_norm(&mut local, norm, max, 1e-6);
        }
        self.optimizer.begin_step();
        let optimizer = &mut self.optimizer;
        for (name, shard) in self.shards.iter_mut() {
            if let Some(g) = local.get(name) {
                shard.values = optimizer.update(name, shard.values.clone(), g.values.clone(), lr);
            }
        }
        let shards = &self.shards;
        self.skeleton = map_named_params(self.skeleton.clone(), &mut |name, p| match local
            .get(name)
            .filter(|_| !shards.contains_key(name))
        {
            Some(g) => FlatTensor {
                values: Tensor::from_inner(optimizer.update(
                    name,
                    p.values.inner(),
                    g.values.clone(),
                    lr,
                )),
                shape: p.shape,
            },
            None => fresh(p),
        });
        Ok(norm)
    }

    /// The whole model, every shard all-gathered (a collective: every rank calls it), e.g.
    /// for evaluation or a checkpoint.
    pub fn full_model(&self) -> Result<TransformerLm<AB>, DistError> {
        let mut full = BTreeMap::new();
        {
            let mut comm = self.comm.lock();
            for (name, shard) in &self.shards {
                let local = to_f32_vec(&shard.values);
                let mut all = vec![0f32; local.len() * comm.world_size()];
                comm.all_gather(&local, &mut all)?;
                all.truncate(shard.numel());
                full.insert(name.clone(), all);
            }
        }
        Ok(map_named_params(
            self.skeleton.clone(),
            &mut |name, p| match full.remove(name) {
                Some(values) => FlatTensor {
                    values: f32_to_tensor_like(values, &p.values),
                    shape: self.shards[name].shape.clone(),
                },
                None => fresh(p),
            },
        ))
    }

    /// The f32 values this rank keeps between steps: its shards, the replicated parameters,
    /// and the AdamW moments of both.
    pub fn resident_values(&self) -> usize {
        let shards: usize = self.shards.values().map(|s| s.values.dims()[0]).sum();
        let replicated: usize = named_params(&self.skeleton)
            .values()
            .map(|p| p.numel())
            .sum();
        let moments: usize = self
            .optimizer
            .moments_by_name()
            .values()
            .map(|m| m.m.dims()[0] + m.v.dims()[0])
            .sum();
        shards + replicated + moments
    }
}

/// `p` as a new leaf (`map_named_params` marks it as requiring gradients again, which a
/// tensor derived from the old leaf cannot be).
fn fresh<AB: CollectiveAutodiff>(p: FlatTensor<AB>) -> FlatTensor<AB> {
    FlatTensor {
        values: Tensor::from_inner(p.values.inner()),
        shape: p.shape,
    }
}

/// `Σ g²` over every gradient, on the host in f64.
fn squares<B: Backend>(grads: &NamedTensors<B>) -> f64 {
    grads
        .values()
        .flat_map(|g| to_f32_vec(&g.values))
        .map(|v| f64::from(v) * f64::from(v))
        .sum()
}

/// Replaces each sharded weight of a stage by its all-gathered value.
struct Gather<'a, AB: CollectiveAutodiff> {
    rank: usize,
    comm: &'a SharedComm,
    shards: &'a BTreeMap<String, Shard<AB::InnerBackend>>,
    leaves: Vec<(String, Tensor<AB, 1>)>,
}

impl<AB: CollectiveAutodiff> StageParams<AB> for Gather<'_, AB> {
    fn param<const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<AB, D>,
        anchor: Option<&Tensor<AB, 3>>,
    ) -> Result<Tensor<AB, D>, DistError> {
        let Some(shard) = self.shards.get(name) else {
            return Ok(tensor);
        };
        let leaf = Tensor::<AB, 1>::from_inner(shard.values.clone()).require_grad();
        let layout = ShardLayout {
            numel: shard.numel(),
            shard_len: shard.values.dims()[0],
            comm: self.comm.clone(),
        };
        let full = gather_shard(leaf.clone(), anchor, layout)?;
        self.leaves.push((name.to_string(), leaf));
        let dims: [usize; D] = shard
            .shape
            .clone()
            .try_into()
            .map_err(|_| DistError::Usage {
                rank: self.rank,
                op: "fsdp",
                reason: format!(
                    "`{name}` has shape {:?}, the layer expects rank {D}",
                    shard.shape
                ),
            })?;
        Ok(full.reshape(dims))
    }
}
