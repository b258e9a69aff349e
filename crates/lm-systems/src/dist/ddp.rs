//! Data parallelism over a [`Communicator`]: every rank holds the whole model, runs its
//! shard of the global batch, and the gradients are averaged before the optimizer step
//! ([`DataParallel`], in the naive / flat / bucketed variants of the course); or the
//! optimizer state is sharded too ([`ZeroAdamW`], ZeRO stage 1).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use lm_core::optim::{AdamW, AdamWConfig, clip_to_norm};
use lm_core::parallel::rank_rows;
use lm_core::params::{
    FlatTensor, NamedTensors, assign_flat_params, f32_to_tensor_like, flatten_params, named_params,
    to_f32_vec,
};
use serde::{Deserialize, Serialize};

use super::{Communicator, DistError};

/// How gradients are averaged after the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum DdpStrategy {
    /// One all-reduce per parameter.
    Naive,
    /// One all-reduce of every gradient concatenated.
    Flat,
    /// All-reduces of buckets of at most `bucket_size_mb` MB, filled in reverse parameter
    /// order (the order the backward produces gradients).
    Bucketed { bucket_size_mb: f64 },
}

/// What one synchronisation sent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SyncStats {
    pub collectives: usize,
    pub values: usize,
}

/// The rows `[start, end)` of a global batch of `global_batch` that `rank` trains on.
pub fn local_rows(
    global_batch: usize,
    rank: usize,
    world_size: usize,
) -> Result<std::ops::Range<usize>, DistError> {
    rank_rows(global_batch, rank, world_size).ok_or_else(|| DistError::Usage {
        rank,
        op: "data parallel",
        reason: format!(
            "the global batch ({global_batch}) must divide evenly over {world_size} ranks"
        ),
    })
}

/// Every rank gets rank 0's parameters of `module`.
pub fn broadcast_module<B: Backend, M: Module<B>, C: Communicator + ?Sized>(
    comm: &mut C,
    module: M,
) -> Result<M, DistError> {
    let mut flat = flatten_params(&module);
    comm.broadcast(&mut flat, 0)?;
    Ok(assign_flat_params(module, &flat))
}

/// The f32 values a bucket of `bucket_size_mb` MB holds (at least one).
pub(crate) fn bucket_limit(bucket_size_mb: f64) -> usize {
    ((bucket_size_mb * 1e6) as usize / 4).max(1)
}

pub struct DataParallel<C: Communicator> {
    pub comm: C,
    pub strategy: DdpStrategy,
}

impl<C: Communicator> DataParallel<C> {
    pub fn new(comm: C, strategy: DdpStrategy) -> Self {
        Self { comm, strategy }
    }

    /// Every rank gets rank 0's parameters (call once, before training).
    pub fn broadcast_module<B: Backend, M: Module<B>>(
        &mut self,
        module: M,
    ) -> Result<M, DistError> {
        broadcast_module(&mut self.comm, module)
    }

    /// Replaces each gradient by its mean over ranks.
    pub fn average_gradients<B: Backend>(
        &mut self,
        grads: &mut NamedTensors<B>,
    ) -> Result<SyncStats, DistError> {
        let scale = 1.0 / self.comm.world_size() as f32;
        let mut stats = SyncStats::default();
        let names: Vec<String> = grads.keys().cloned().collect();
        let groups: Vec<Vec<String>> = match self.strategy {
            DdpStrategy::Naive => names.into_iter().map(|n| vec![n]).collect(),
            DdpStrategy::Flat => vec![names],
            DdpStrategy::Bucketed { bucket_size_mb } => {
                let limit = bucket_limit(bucket_size_mb);
                let mut buckets: Vec<Vec<String>> = Vec::new();
                let mut filled = limit; // forces a first bucket
                for name in names.into_iter().rev() {
                    let size = grads[&name].numel();
                    if filled + size > limit && filled > 0 {
                        buckets.push(Vec::new());
                        filled = 0;
                    }
                    filled += size;
                    buckets.last_mut().expect("pushed above").push(name);
                }
                buckets
            }
        };
        for group in groups {
            let mut buf = Vec::new();
            for name in &group {
                buf.extend(to_f32_vec(&grads[name].values));
            }
            self.comm.all_reduce_sum(&mut buf)?;
            stats.collectives += 1;
            stats.values += buf.len();
            let mut offset = 0;
            for name in &group {
                let g = grads.get_mut(name).expect("listed above");
                let n = g.numel();
                let mean: Vec<f32> = buf[offset..offset + n].iter().map(|v| v * scale).collect();
                g.values = f32_to_tensor_like(mean, &g.values);
                offset += n;
            }
        }
        Ok(stats)
    }
}

/// The optimizer-state name of this rank's shard.
const SHARD: &str = "zero1_shard";

/// ZeRO stage 1: AdamW whose moments are sharded over the ranks. Each rank receives the
/// averaged gradient of its shard of the flat parameter vector (one reduce-scatter), clips
/// with the global norm (one scalar all-reduce), steps its shard, and the updated shards are
/// all-gathered into every rank's model. Optimizer memory per rank: 8 bytes × Ψ / N.
pub struct ZeroAdamW<B: Backend> {
    optimizer: AdamW<B>,
    /// Total parameter count Ψ and the padded length (a multiple of the world size).
    total: usize,
    padded: usize,
}

impl<B: Backend> ZeroAdamW<B> {
    pub fn new<C: Communicator>(config: AdamWConfig, total_params: usize, comm: &C) -> Self {
        let n = comm.world_size();
        Self {
            optimizer: AdamW::new(config),
            total: total_params,
            padded: total_params.div_ceil(n) * n,
        }
    }

    /// [`Self::new`] continuing `optimizer` (this rank's shard state, e.g. from its
    /// checkpoint), which must hold nothing but a shard of this world size.
    pub fn with_optimizer<C: Communicator>(
        optimizer: AdamW<B>,
        total_params: usize,
        comm: &C,
    ) -> Result<Self, DistError> {
        let mut zero = Self::new(optimizer.config.clone(), total_params, comm);
        let shard_len = zero.padded / comm.world_size();
        for (name, m) in optimizer.moments_by_name() {
            if name != SHARD || m.m.dims()[0] != shard_len {
                return Err(DistError::Usage {
                    rank: comm.rank(),
                    op: "zero1",
                    reason: format!(
                        "the optimizer state holds `{name}` of {} values, not this rank's \
                         `{SHARD}` of {shard_len} ({total_params} parameters over {} ranks)",
                        m.m.dims()[0],
                        comm.world_size()
                    ),
                });
            }
        }
        zero.optimizer = optimizer;
        Ok(zero)
    }

    /// This rank's optimizer state (one moment pair, of its shard).
    pub fn optimizer(&self) -> &AdamW<B> {
        &self.optimizer
    }

    /// Averages `grads` over ranks, clips them to `max_norm` (global norm, as single-process
    /// training does) and applies one AdamW step; returns the updated module and the
    /// pre-clip gradient norm.
    pub fn step<AB, M, C>(
        &mut self,
        comm: &mut C,
        module: M,
        grads: &NamedTensors<B>,
        lr: f64,
        max_norm: Option<f64>,
    ) -> Result<(M, f64), DistError>
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: Module<AB>,
        C: Communicator,
    {
        let n = comm.world_size();
        let shard_len = self.padded / n;
        let shard = comm.rank() * shard_len..(comm.rank() + 1) * shard_len;

        let mut flat_params = flatten_params(&module);
        let mut flat_grads = Vec::with_capacity(self.padded);
        for (name, p) in &named_params(&module) {
            match grads.get(name) {
                Some(g) => flat_grads.extend(to_f32_vec(&g.values)),
                None => flat_grads.extend(std::iter::repeat_n(0.0, p.numel())),
            }
        }
        if flat_params.len() != self.total {
            return Err(DistError::Usage {
                rank: comm.rank(),
                op: "zero1 step",
                reason: format!(
                    "the model has {} parameters, the optimizer was built for {}",
                    flat_params.len(),
                    self.total
                ),
            });
        }
        flat_grads.resize(self.padded, 0.0);
        flat_params.resize(self.padded, 0.0);

        let mut grad_shard = vec![0f32; shard_len];
        comm.reduce_scatter_sum(&flat_grads, &mut grad_shard)?;
        let inv_n = 1.0 / n as f32;
        grad_shard.iter_mut().for_each(|g| *g *= inv_n);

        // The global gradient norm: each rank's shard contributes its squares.
        let mut sq = [grad_shard.iter().map(|g| (*g as f64).powi(2)).sum::<f64>() as f32];
        comm.all_reduce_sum(&mut sq)?;
        let norm = (sq[0] as f64).sqrt();

        // The inner backend's device, taken from a gradient (the model's is the autodiff one).
        let Some(device) = grads.values().next().map(|g| g.values.device()) else {
            return Ok((module, norm));
        };
        let like = Tensor::<B, 1>::zeros([1], &device);
        let mut shard_grads = NamedTensors::<B>::new();
        shard_grads.insert(
            SHARD.into(),
            FlatTensor::from_tensor(f32_to_tensor_like(grad_shard, &like)),
        );
        if let Some(max) = max_norm {
            // The handout's rule with the global norm, as single-process clipping applies it.
            clip_to_norm(&mut shard_grads, norm, max, 1e-6);
        }
        let grad = shard_grads.remove(SHARD).expect("inserted above").values;
        let param_shard = f32_to_tensor_like(flat_params[shard].to_vec(), &like);
        self.optimizer.begin_step();
        let updated = self.optimizer.update(SHARD, param_shard, grad, lr);

        let mut gathered = vec![0f32; self.padded];
        comm.all_gather(&to_f32_vec(&updated), &mut gathered)?;
        gathered.truncate(self.total);
        Ok((assign_flat_params(module, &gathered), norm))
    }
}
