//! The data-parallel variants as the training loop sees them (`lm_core::parallel`): a
//! [`DistRank`] (a connected communicator and the `train.ddp` mode) starts this rank's
//! [`RankTrainer`] from its initial model and optimizer.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use lm_core::TransformerLm;
use lm_core::optim::AdamW;
use lm_core::parallel::{GradientSync, ParallelMode, ParallelRank, RankTrainer, Replica};
use lm_core::params::{NamedTensors, named_grads, named_params};

use super::autodiff::CollectiveAutodiff;
use super::ddp::{DataParallel, DdpStrategy, ZeroAdamW, broadcast_module};
use super::fsdp::Fsdp;
use super::overlap::OverlappedDdp;
use super::{Communicator, DistError};

/// One rank of a data-parallel run, before training starts.
pub struct DistRank<C> {
    pub comm: C,
    pub mode: ParallelMode,
}

impl<C: Communicator> DistRank<C> {
    pub fn new(comm: C, mode: ParallelMode) -> Self {
        Self { comm, mode }
    }
}

fn text(e: DistError) -> String {
    e.to_string()
}

/// The mean over ranks of one number per rank.
fn mean<C: Communicator + ?Sized>(comm: &mut C, value: f64) -> Result<f64, String> {
    let mut buf = [value as f32];
    comm.all_reduce_sum(&mut buf).map_err(text)?;
    Ok(f64::from(buf[0]) / comm.world_size() as f64)
}

impl<AB, C> ParallelRank<AB> for DistRank<C>
where
    AB: CollectiveAutodiff,
    C: Communicator + 'static,
{
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    fn start(
        self: Box<Self>,
        model: TransformerLm<AB>,
        optimizer: AdamW<AB::InnerBackend>,
    ) -> Result<Box<dyn RankTrainer<AB>>, String> {
        let Self { mut comm, mode } = *self;
        let strategy = match mode {
            ParallelMode::Naive => DdpStrategy::Naive,
            ParallelMode::Flat => DdpStrategy::Flat,
            ParallelMode::Bucketed { bucket_size_mb } => DdpStrategy::Bucketed { bucket_size_mb },
            ParallelMode::Overlapped { bucket_size_mb } => {
                let mut ddp = OverlappedDdp::new(comm, bucket_size_mb);
                let model = ddp.broadcast_module(model).map_err(text)?;
                return Ok(Box::new(Replica::new(model, optimizer, Box::new(ddp))));
            }
            ParallelMode::Zero1 => {
                let model = broadcast_module(&mut comm, model).map_err(text)?;
                let total = named_params(&model).values().map(|p| p.numel()).sum();
                let zero = ZeroAdamW::with_optimizer(optimizer, total, &comm).map_err(text)?;
                return Ok(Box::new(Zero1 {
                    model,
                    zero,
                    comm,
                    pending: None,
                }));
            }
            ParallelMode::Fsdp => {
                let fsdp = Fsdp::with_optimizer(model, comm, optimizer).map_err(text)?;
                return Ok(Box::new(FsdpTrainer {
                    fsdp,
                    pending: None,
                }));
            }
        };
        let mut ddp = DataParallel::new(comm, strategy);
        let model = ddp.broadcast_module(model).map_err(text)?;
        Ok(Box::new(Replica::new(model, optimizer, Box::new(ddp))))
    }
}

impl<AB: AutodiffBackend, C: Communicator> GradientSync<AB> for DataParallel<C> {
    fn average_gradients(
        &mut self,
        grads: &mut NamedTensors<AB::InnerBackend>,
    ) -> Result<(), String> {
        DataParallel::average_gradients(self, grads)
            .map(|_| ())
            .map_err(text)
    }
    fn mean(&mut self, value: f64) -> Result<f64, String> {
        mean(&mut self.comm, value)
    }
}

impl<AB: CollectiveAutodiff, C: Communicator + 'static> GradientSync<AB> for OverlappedDdp<C> {
    fn forward(
        &mut self,
        model: &TransformerLm<AB>,
        input_ids: Tensor<AB, 2, Int>,
    ) -> Result<Tensor<AB, 3>, String> {
        OverlappedDdp::forward(self, model, input_ids).map_err(text)
    }
    fn average_gradients(
        &mut self,
        grads: &mut NamedTensors<AB::InnerBackend>,
    ) -> Result<(), String> {
        OverlappedDdp::average_gradients(self, grads)
            .map(|_| ())
            .map_err(text)
    }
    fn mean(&mut self, value: f64) -> Result<f64, String> {
        mean(self.comm().map_err(text)?, value)
    }
}

/// `Σ g²` of a norm computed on the host, as the loop's device tensor.
fn squared<B: Backend>(norm: f64, device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_floats([(norm * norm) as f32], device)
}

/// ZeRO-1: the whole model, this rank's shard of the AdamW state.
struct Zero1<AB: AutodiffBackend, C> {
    model: TransformerLm<AB>,
    zero: ZeroAdamW<AB::InnerBackend>,
    comm: C,
    /// The last backward's (local) gradients and device.
    pending: Option<(NamedTensors<AB::InnerBackend>, AB::Device)>,
}

impl<AB: AutodiffBackend, C: Communicator> RankTrainer<AB> for Zero1<AB, C> {
    fn forward(&mut self, input_ids: Tensor<AB, 2, Int>) -> Result<Tensor<AB, 3>, String> {
        self.model.try_forward(input_ids).map_err(|e| e.to_string())
    }
    fn backward(&mut self, loss: Tensor<AB, 1>) -> Result<(), String> {
        let device = loss.device();
        self.pending = Some((named_grads(&self.model, &loss.backward()), device));
        Ok(())
    }
    fn step(
        &mut self,
        lr: f64,
        max_norm: Option<f64>,
    ) -> Result<Tensor<AB::InnerBackend, 1>, String> {
        let (grads, device) = self.pending.take().ok_or("step without a backward")?;
        let (model, norm) = self
            .zero
            .step::<AB, _, _>(&mut self.comm, self.model.clone(), &grads, lr, max_norm)
            .map_err(text)?;
        self.model = model;
        Ok(squared(norm, &device))
    }
    fn model(&self) -> Result<TransformerLm<AB>, String> {
        Ok(self.model.clone())
    }
    fn optimizer(&self) -> &AdamW<AB::InnerBackend> {
        self.zero.optimizer()
    }
    fn mean(&mut self, value: f64) -> Result<f64, String> {
        mean(&mut self.comm, value)
    }
}

/// FSDP: the shards own the weights and the optimizer state.
struct FsdpTrainer<AB: CollectiveAutodiff> {
    fsdp: Fsdp<AB>,
    pending: Option<(AB::Gradients, AB::Device)>,
}

impl<AB: CollectiveAutodiff> RankTrainer<AB> for FsdpTrainer<AB> {
    fn forward(&mut self, input_ids: Tensor<AB, 2, Int>) -> Result<Tensor<AB, 3>, String> {
        self.fsdp.forward(input_ids).map_err(text)
    }
    fn backward(&mut self, loss: Tensor<AB, 1>) -> Result<(), String> {
        let device = loss.device();
        self.pending = Some((loss.backward(), device));
        Ok(())
    }
    fn step(
        &mut self,
        lr: f64,
        max_norm: Option<f64>,
    ) -> Result<Tensor<AB::InnerBackend, 1>, String> {
        let (grads, device) = self.pending.take().ok_or("step without a backward")?;
        let norm = self.fsdp.step(&grads, lr, max_norm).map_err(text)?;
        Ok(squared(norm, &device))
    }
    fn model(&self) -> Result<TransformerLm<AB>, String> {
        self.fsdp.full_model().map_err(text)
    }
    fn optimizer(&self) -> &AdamW<AB::InnerBackend> {
        self.fsdp.optimizer()
    }
    fn mean(&mut self, value: f64) -> Result<f64, String> {
        self.fsdp.mean(value).map_err(text)
    }
}
