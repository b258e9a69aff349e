//! The two autodiff ops that overlapped and sharded data parallelism need, as a backend
//! extension ([`CollectiveAutodiff`]) implemented for burn's `Autodiff<B, C>`:
//!
//! - a gradient hook: the identity, whose backward hands the gradient arriving at it to a
//!   [`GradSink`] (the overlapped DDP's communication thread) and passes it on unchanged;
//! - a shard all-gather: a rank's flat shard → the whole flat weight, whose backward
//!   reduce-scatters the weight's gradient back to the shard, averaged over the ranks (FSDP).
//!
//! Placement in the backward. burn 0.21 runs the backward level by level, deepest node
//! first, where a node's level is one more than its deepest parent's. An op whose only
//! parent is a parameter (level 0) therefore runs at level 1, after the whole rest of the
//! backward: useless for overlap. Both ops take an optional `anchor`, an activation of the
//! forward at the point where the parameter is about to be used; the anchor becomes a second
//! parent (it receives no gradient from the op), which lifts the op to the anchor's level + 1.
//! Every use of the op's output lies above that level, so the op still sees the parameter's
//! whole gradient, and it runs as soon as the backward has come down past those uses.

use std::fmt;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive};
use lm_core::params::{f32_to_tensor_like, to_f32_vec};

use super::{Communicator, DistError};

/// A gradient the backward produced for hooked parameter `slot`.
#[derive(Debug)]
pub struct GradReady {
    pub slot: usize,
    pub values: Vec<f32>,
    /// When the backward produced it.
    pub at: Instant,
}

/// A gradient hook channel's messages: how many slots the forward hooked (sent once the
/// forward is done), the gradients as the backward produces them, then the end of the
/// backward (sent by the channel's owner once `backward()` has returned).
#[derive(Debug)]
pub enum GradMsg {
    Hooked(usize),
    Ready(GradReady),
    BackwardDone,
}

/// Where a hooked parameter's gradient is sent (the receiver runs the collectives).
#[derive(Debug, Clone)]
pub struct GradSink {
    pub slot: usize,
    pub tx: Sender<GradMsg>,
}

/// A communicator shared with the backward ops of a step. A collective that fails inside the
/// backward (which cannot return errors) is recorded here and reported by the next call that
/// can return one.
#[derive(Clone)]
pub struct SharedComm(Arc<SharedState>);

struct SharedState {
    comm: Mutex<Box<dyn Communicator>>,
    failed: Mutex<Option<DistError>>,
}

impl fmt::Debug for SharedComm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedComm")
    }
}

impl SharedComm {
    pub fn new(comm: impl Communicator + 'static) -> Self {
        Self(Arc::new(SharedState {
            comm: Mutex::new(Box::new(comm)),
            failed: Mutex::new(None),
        }))
    }

    /// The communicator (the ranks' collectives are sequential, so one user at a time).
    pub fn lock(&self) -> MutexGuard<'_, Box<dyn Communicator>> {
        self.0.comm.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, error: DistError) {
        let mut failed = self.0.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert(error);
    }

    /// The first collective failure of a backward pass, if any (and clears it).
    pub fn take_failure(&self) -> Option<DistError> {
        self.0
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// How a shard maps to its whole weight: `numel` values, padded to `world_size` shards of
/// `shard_len`.
#[derive(Debug, Clone)]
pub struct ShardLayout {
    pub numel: usize,
    pub shard_len: usize,
    pub comm: SharedComm,
}

/// A backend whose autodiff graph can hold the two collective ops (see the module docs).
pub trait CollectiveAutodiff: AutodiffBackend {
    /// Identifies `tensor`'s autodiff node: parameters tied by sharing one tensor share it.
    fn node_key(tensor: &FloatTensor<Self>) -> u64;

    /// The identity on `tensor`; the backward sends its gradient to `sink`.
    fn grad_hook(
        tensor: FloatTensor<Self>,
        anchor: Option<FloatTensor<Self>>,
        sink: GradSink,
    ) -> FloatTensor<Self>;

    /// The flat `[layout.numel]` weight all-gathered from every rank's `shard`; the backward
    /// reduce-scatters the gradient and divides it by the world size.
    fn all_gather_shard(
        shard: FloatTensor<Self>,
        anchor: Option<FloatTensor<Self>>,
        layout: ShardLayout,
    ) -> Result<FloatTensor<Self>, DistError>;
}

/// [`CollectiveAutodiff::node_key`] of a tensor.
pub fn node_key<AB: CollectiveAutodiff, const D: usize>(tensor: &Tensor<AB, D>) -> u64 {
    AB::node_key(&tensor.clone().into_primitive().tensor())
}

/// [`CollectiveAutodiff::grad_hook`] on a tensor.
pub fn hook_grad<AB: CollectiveAutodiff, const D: usize>(
    tensor: Tensor<AB, D>,
    anchor: Option<&Tensor<AB, 3>>,
    sink: GradSink,
) -> Tensor<AB, D> {
    let anchor = anchor.map(|a| a.clone().into_primitive().tensor());
    let out = AB::grad_hook(tensor.into_primitive().tensor(), anchor, sink);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// [`CollectiveAutodiff::all_gather_shard`] on a tensor.
pub fn gather_shard<AB: CollectiveAutodiff>(
    shard: Tensor<AB, 1>,
    anchor: Option<&Tensor<AB, 3>>,
    layout: ShardLayout,
) -> Result<Tensor<AB, 1>, DistError> {
    let anchor = anchor.map(|a| a.clone().into_primitive().tensor());
    let out = AB::all_gather_shard(shard.into_primitive().tensor(), anchor, layout)?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
}

/// A primitive of any rank as a flat tensor.
fn flat<B: Backend>(t: FloatTensor<B>) -> Tensor<B, 1> {
    let n = t.shape().num_elements();
    Tensor::from_primitive(TensorPrimitive::Float(B::float_reshape(t, Shape::new([n]))))
}

#[derive(Debug)]
struct HookBackward;

impl<B: Backend, const N: usize> Backward<B, N> for HookBackward {
    type State = GradSink;

    fn backward(self, ops: Ops<GradSink, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let sink = ops.state;
        let ready = GradReady {
            slot: sink.slot,
            values: to_f32_vec(&flat::<B>(grad.clone())),
            at: Instant::now(),
        };
        // A closed receiver means the step was abandoned; its finish reports that.
        sink.tx.send(GradMsg::Ready(ready)).ok();
        // Parent 0 is the parameter; the anchor only places the op and gets nothing.
        if let Some(param) = &ops.parents[0] {
            grads.register::<B>(param.id, grad);
        }
    }
}

#[derive(Debug)]
struct GatherBackward;

impl<B: Backend, const N: usize> Backward<B, N> for GatherBackward {
    type State = ShardLayout;

    fn backward(self, ops: Ops<ShardLayout, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = flat::<B>(grads.consume::<B>(&ops.node));
        let layout = ops.state;
        let Some(shard) = &ops.parents[0] else {
            return;
        };
        let world = layout.comm.lock().world_size();
        let mut full = to_f32_vec(&grad);
        full.resize(layout.shard_len * world, 0.0);
        let mut mine = vec![0f32; layout.shard_len];
        let reduced = layout.comm.lock().reduce_scatter_sum(&full, &mut mine);
        if let Err(e) = reduced {
            // The step reports it; a zero gradient keeps the graph consistent until then.
            layout.comm.record(e);
            mine.fill(0.0);
        }
        let inv = 1.0 / world as f32;
        mine.iter_mut().for_each(|g| *g *= inv);
        let out = f32_to_tensor_like(mine, &grad);
        grads.register::<B>(shard.id, out.into_primitive().tensor());
    }
}

/// Records `$op` over the parent nodes `$parents` with forward value `$output`. A macro
/// because burn does not export the node type. Collectives must never be recomputed by
/// checkpointing, hence compute bound.
macro_rules! record_op {
    ($op:expr, $parents:expr, $state:expr, $output:expr) => {
        match $op.prepare::<C>($parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish($state, $output),
            OpsKind::UnTracked(prep) => prep.finish($output),
        }
    };
}

impl<B: Backend, C: CheckpointStrategy> CollectiveAutodiff for Autodiff<B, C> {
    fn node_key(tensor: &FloatTensor<Self>) -> u64 {
        tensor.node.id.value
    }

    fn grad_hook(
        tensor: FloatTensor<Self>,
        anchor: Option<FloatTensor<Self>>,
        sink: GradSink,
    ) -> FloatTensor<Self> {
        let output = tensor.primitive.clone();
        match anchor {
            Some(a) => record_op!(HookBackward, [tensor.node, a.node], sink, output),
            None => record_op!(HookBackward, [tensor.node], sink, output),
        }
    }

    fn all_gather_shard(
        shard: FloatTensor<Self>,
        anchor: Option<FloatTensor<Self>>,
        layout: ShardLayout,
    ) -> Result<FloatTensor<Self>, DistError> {
        let local = flat::<B>(shard.primitive.clone());
        let values = to_f32_vec(&local);
        if values.len() != layout.shard_len {
            return Err(DistError::Usage {
                rank: layout.comm.lock().rank(),
                op: "fsdp all-gather",
                reason: format!(
                    "the shard has {} values, its layout {}",
                    values.len(),
                    layout.shard_len
                ),
            });
        }
        let mut full = {
            let mut comm = layout.comm.lock();
            let mut full = vec![0f32; layout.shard_len * comm.world_size()];
            comm.all_gather(&values, &mut full)?;
            full
        };
        full.truncate(layout.numel);
        let output = f32_to_tensor_like(full, &local).into_primitive().tensor();
        Ok(match anchor {
            Some(a) => record_op!(GatherBackward, [shard.node, a.node], layout, output),
            None => record_op!(GatherBackward, [shard.node], layout, output),
        })
    }
}
