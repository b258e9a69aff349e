//! DDP with the gradient all-reduces overlapped with the backward pass ([`OverlappedDdp`]):
//! each parameter's all-reduce starts as soon as the backward has produced its gradient,
//! on a communication thread, while the backward goes on with the layers below.
//!
//! The forward runs through [`forward_in_stages`], which passes every parameter through a
//! gradient hook (see [`super::autodiff`]) anchored at the activation entering its stage, so
//! the hooks of block `i` fire right after block `i`'s backward. The order of the hooks
//! *within* a block is up to the autodiff engine's scheduler and differs between ranks, so
//! the communication thread all-reduces in one fixed order, the reverse of the forward's
//! (the backward's order at block granularity), holding a gradient that came early until
//! those before it have been launched. Each all-reduce also carries the slots it holds,
//! which the ranks check.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Int, Tensor, TensorPrimitive};
use lm_core::TransformerLm;
use lm_core::params::{NamedTensors, f32_to_tensor_like};

use super::autodiff::{CollectiveAutodiff, GradMsg, GradReady, GradSink, hook_grad, node_key};
use super::ddp::{broadcast_module, bucket_limit};
use super::staged::{StageParams, forward_in_stages};
use super::{Communicator, DistError};

/// What one overlapped step sent, and how much of it overlapped the backward.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverlapStats {
    pub collectives: usize,
    pub values: usize,
    /// Gradients the backward handed over.
    pub gradients: usize,
    /// From the end of the forward to `average_gradients`: about the backward's duration.
    pub backward: Duration,
    /// From the end of the forward until the backward produced the first gradient.
    pub first_gradient: Duration,
    /// The part of it after the first all-reduce had started: how long the backward ran
    /// concurrently with communication (zero if nothing overlapped).
    pub overlapped: Duration,
}

/// What the communication thread hands back: the communicator, and the step's results.
type CommResult<C> = (C, Result<Reduced, DistError>);

/// Per slot the averaged gradient, and when the first gradient came and the first
/// all-reduce started.
struct Reduced {
    grads: BTreeMap<usize, Vec<f32>>,
    stats: OverlapStats,
    first_gradient: Option<Instant>,
    first_start: Option<Instant>,
}

/// A step between [`OverlappedDdp::forward`] and [`OverlappedDdp::average_gradients`].
struct InFlight<C> {
    tx: Sender<GradMsg>,
    thread: JoinHandle<CommResult<C>>,
    /// Each slot's parameter names (several for a tied parameter).
    names: Vec<Vec<String>>,
    forward_done: Instant,
}

pub struct OverlappedDdp<C: Communicator + 'static> {
    rank: usize,
    /// `None` while a step's communication thread owns it.
    comm: Option<C>,
    /// Values per all-reduce bucket; `None`: one all-reduce per parameter.
    bucket: Option<usize>,
    in_flight: Option<InFlight<C>>,
}

impl<C: Communicator + 'static> OverlappedDdp<C> {
    /// One all-reduce per parameter, or buckets of at most `bucket_size_mb` MB filled in the
    /// order the backward produces gradients (each launched as soon as it is full).
    pub fn new(comm: C, bucket_size_mb: Option<f64>) -> Self {
        Self {
            rank: comm.rank(),
            comm: Some(comm),
            bucket: bucket_size_mb.map(bucket_limit),
            in_flight: None,
        }
    }

    /// The communicator between steps.
    pub fn comm(&mut self) -> Result<&mut C, DistError> {
        self.comm.as_mut().ok_or_else(|| unfinished(self.rank))
    }

    /// Every rank gets rank 0's parameters (call once, before training).
    pub fn broadcast_module<B: Backend, M: Module<B>>(
        &mut self,
        module: M,
    ) -> Result<M, DistError> {
        broadcast_module(self.comm()?, module)
    }

    /// `model.forward(input_ids)` with every parameter hooked: the backward of the returned
    /// logits starts the all-reduces. Call [`Self::average_gradients`] after the backward.
    pub fn forward<AB: CollectiveAutodiff>(
        &mut self,
        model: &TransformerLm<AB>,
        input_ids: Tensor<AB, 2, Int>,
    ) -> Result<Tensor<AB, 3>, DistError> {
        let comm = self.comm.take().ok_or_else(|| unfinished(self.rank))?;
        let (tx, rx) = channel();
        let bucket = self.bucket;
        let thread = std::thread::spawn(move || communicate(comm, rx, bucket));
        let mut hooks = Hooks::<AB> {
            tx: tx.clone(),
            slots: HashMap::new(),
            names: Vec::new(),
        };
        let logits = forward_in_stages(model, input_ids, &mut hooks);
        tx.send(GradMsg::Hooked(hooks.names.len())).ok();
        self.in_flight = Some(InFlight {
            tx,
            thread,
            names: hooks.names,
            forward_done: Instant::now(),
        });
        if logits.is_err() {
            // No backward will follow: take the communicator back for the next step.
            self.average_gradients(&mut NamedTensors::<AB::InnerBackend>::new())?;
        }
        logits
    }

    /// Waits for the step's all-reduces and replaces each gradient in `grads` (the local
    /// ones, e.g. from `named_grads`) by its mean over the ranks.
    pub fn average_gradients<B: Backend>(
        &mut self,
        grads: &mut NamedTensors<B>,
    ) -> Result<OverlapStats, DistError> {
        let step = self.in_flight.take().ok_or(DistError::Usage {
            rank: self.rank,
            op: "overlapped ddp",
            reason: "average_gradients without a forward through OverlappedDdp::forward".into(),
        })?;
        // Every gradient message was sent during the backward, so before this.
        let backward_done = Instant::now();
        step.tx.send(GradMsg::BackwardDone).ok();
        let (comm, result) = step
            .thread
            .join()
            .expect("the communication thread does not panic");
        let rank = self.rank;
        self.comm = Some(comm);
        let Reduced {
            grads: reduced,
            mut stats,
            first_gradient,
            first_start,
        } = result?;
        stats.backward = backward_done.saturating_duration_since(step.forward_done);
        stats.first_gradient = first_gradient
            .map(|t| t.saturating_duration_since(step.forward_done))
            .unwrap_or_default();
        stats.overlapped = first_start
            .map(|t| backward_done.saturating_duration_since(t))
            .unwrap_or_default();
        let mut averaged = 0;
        for (slot, values) in reduced {
            for name in &step.names[slot] {
                let g = grads.get_mut(name).ok_or_else(|| DistError::Usage {
                    rank,
                    op: "overlapped ddp",
                    reason: format!("parameter `{name}` was all-reduced but has no gradient"),
                })?;
                g.values = f32_to_tensor_like(values.clone(), &g.values);
                averaged += 1;
            }
        }
        if averaged != grads.len() {
            let hooked: Vec<&String> = step.names.iter().flatten().collect();
            let missed: Vec<&String> = grads.keys().filter(|n| !hooked.contains(n)).collect();
            return Err(DistError::Usage {
                rank,
                op: "overlapped ddp",
                reason: format!(
                    "gradients {missed:?} were not all-reduced (not produced through the hooked \
                     forward)"
                ),
            });
        }
        Ok(stats)
    }
}

fn unfinished(rank: usize) -> DistError {
    DistError::Usage {
        rank,
        op: "overlapped ddp",
        reason: "the previous step's average_gradients was not called".into(),
    }
}

/// Hooks every parameter once per step: a tensor shared by two parameters (tied weights)
/// keeps the hook placed before its first use, so it sees the sum of both uses' gradients.
struct Hooks<AB: CollectiveAutodiff> {
    tx: Sender<GradMsg>,
    slots: HashMap<u64, (usize, FloatTensor<AB>)>,
    names: Vec<Vec<String>>,
}

impl<AB: CollectiveAutodiff> StageParams<AB> for Hooks<AB> {
    fn param<const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<AB, D>,
        anchor: Option<&Tensor<AB, 3>>,
    ) -> Result<Tensor<AB, D>, DistError> {
        let key = node_key(&tensor);
        if let Some((slot, hooked)) = self.slots.get(&key) {
            self.names[*slot].push(name.to_string());
            return Ok(Tensor::from_primitive(TensorPrimitive::Float(
                hooked.clone(),
            )));
        }
        if !tensor.is_require_grad() {
            return Ok(tensor);
        }
        let slot = self.names.len();
        let sink = GradSink {
            slot,
            tx: self.tx.clone(),
        };
        let hooked = hook_grad(tensor, anchor, sink);
        self.names.push(vec![name.to_string()]);
        self.slots
            .insert(key, (slot, hooked.clone().into_primitive().tensor()));
        Ok(hooked)
    }
}

/// The communication thread: all-reduces gradients in descending slot order as they become
/// launchable (alone, or in buckets of at most `bucket` values), until the flush.
fn communicate<C: Communicator>(
    mut comm: C,
    rx: Receiver<GradMsg>,
    bucket: Option<usize>,
) -> CommResult<C> {
    let mut reducer = Reducer {
        comm: &mut comm,
        reduced: BTreeMap::new(),
        stats: OverlapStats::default(),
        first_start: None,
    };
    let mut batcher = Batcher {
        limit: bucket.unwrap_or(0),
        pending: Vec::new(),
        filled: 0,
        failure: None,
    };
    // Gradients that came before some higher slot, and the next slot to launch (`None`
    // until the forward has said how many slots there are).
    let mut early: BTreeMap<usize, GradReady> = BTreeMap::new();
    let mut next_slot: Option<usize> = None;
    let mut first_gradient = None;
    for msg in rx {
        match msg {
            GradMsg::Hooked(n) => next_slot = n.checked_sub(1),
            GradMsg::Ready(grad) => {
                reducer.stats.gradients += 1;
                first_gradient.get_or_insert(grad.at);
                early.insert(grad.slot, grad);
            }
            GradMsg::BackwardDone => break,
        }
        while let Some(slot) = next_slot {
            let Some(grad) = early.remove(&slot) else {
                break;
            };
            batcher.push(&mut reducer, grad);
            next_slot = slot.checked_sub(1);
        }
    }
    // Slots without a gradient (parameters the loss does not reach) hold back those below
    // them until here; every rank has the same ones.
    while let Some((_, grad)) = early.pop_last() {
        batcher.push(&mut reducer, grad);
    }
    let failure = batcher.flush(&mut reducer);
    let Reducer {
        reduced,
        stats,
        first_start,
        ..
    } = reducer;
    let result = match failure {
        Some(e) => Err(e),
        None => Ok(Reduced {
            grads: reduced,
            stats,
            first_gradient,
            first_start,
        }),
    };
    (comm, result)
}

/// Groups gradients, in the order they are pushed, into all-reduces of at most `limit`
/// values (one per gradient when `limit` is 0).
struct Batcher {
    limit: usize,
    pending: Vec<GradReady>,
    filled: usize,
    /// The first failed all-reduce; later gradients are dropped and it is reported at the
    /// flush.
    failure: Option<DistError>,
}

impl Batcher {
    /// A bucket is launched as soon as it is full, or before a gradient that would overflow
    /// it.
    fn push<C: Communicator>(&mut self, reducer: &mut Reducer<'_, C>, grad: GradReady) {
        if self.failure.is_some() {
            return;
        }
        if !self.pending.is_empty() && self.filled + grad.values.len() > self.limit {
            self.launch(reducer);
        }
        self.filled += grad.values.len();
        self.pending.push(grad);
        if self.filled >= self.limit {
            self.launch(reducer);
        }
    }

    fn launch<C: Communicator>(&mut self, reducer: &mut Reducer<'_, C>) {
        self.filled = 0;
        let grads = std::mem::take(&mut self.pending);
        if self.failure.is_none() && !grads.is_empty() {
            self.failure = reducer.all_reduce(grads).err();
        }
    }

    /// Launches what is left; the first failure, if any.
    fn flush<C: Communicator>(mut self, reducer: &mut Reducer<'_, C>) -> Option<DistError> {
        self.launch(reducer);
        self.failure
    }
}

struct Reducer<'a, C: Communicator> {
    comm: &'a mut C,
    reduced: BTreeMap<usize, Vec<f32>>,
    stats: OverlapStats,
    first_start: Option<Instant>,
}

impl<C: Communicator> Reducer<'_, C> {
    /// One all-reduce of `grads` concatenated, plus their first and last slot numbers: every
    /// rank must have summed the same slots, so those come back as `world × slot`.
    fn all_reduce(&mut self, grads: Vec<GradReady>) -> Result<(), DistError> {
        let world = self.comm.world_size();
        let (first, last) = (grads[0].slot, grads[grads.len() - 1].slot);
        let mut buf: Vec<f32> = grads
            .iter()
            .flat_map(|g| g.values.iter().copied())
            .collect();
        buf.extend([first as f32, last as f32]);
        self.first_start.get_or_insert_with(Instant::now);
        self.comm.all_reduce_sum(&mut buf)?;
        self.stats.collectives += 1;
        self.stats.values += buf.len() - 2;
        let tags = &buf[buf.len() - 2..];
        if tags != [(first * world) as f32, (last * world) as f32] {
            return Err(DistError::Usage {
                rank: self.comm.rank(),
                op: "overlapped ddp",
                reason: format!(
                    "this rank reduced gradient slots {first}..={last}, the ranks' sum of slots \
                     is {tags:?}: the ranks' backward passes produced gradients in different \
                     orders"
                ),
            });
        }
        let scale = 1.0 / world as f32;
        let mut offset = 0;
        for g in grads {
            let n = g.values.len();
            let mean = buf[offset..offset + n].iter().map(|v| v * scale).collect();
            self.reduced.insert(g.slot, mean);
            offset += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rank 0 of two. Its peer contributes `peer` (its values, then its slot tags) to
    /// every all-reduce, or, without one, the same values as rank 0; each all-reduce's
    /// first and last slot are recorded.
    #[derive(Default)]
    struct TwoRanks {
        peer: Option<Vec<f32>>,
        launched: Vec<(usize, usize)>,
    }

    impl Communicator for TwoRanks {
        fn rank(&self) -> usize {
            0
        }
        fn world_size(&self) -> usize {
            2
        }
        fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
            let n = buf.len();
            self.launched
                .push((buf[n - 2] as usize, buf[n - 1] as usize));
            match &self.peer {
                Some(peer) => buf.iter_mut().zip(peer).for_each(|(b, p)| *b += p),
                None => buf.iter_mut().for_each(|b| *b *= 2.0),
            }
            Ok(())
        }
        fn broadcast(&mut self, _: &mut [f32], _: usize) -> Result<(), DistError> {
            Err(not_here("broadcast"))
        }
        fn reduce_scatter_sum(&mut self, _: &[f32], _: &mut [f32]) -> Result<(), DistError> {
            Err(not_here("reduce_scatter_sum"))
        }
        fn all_gather(&mut self, _: &[f32], _: &mut [f32]) -> Result<(), DistError> {
            Err(not_here("all_gather"))
        }
        fn barrier(&mut self) -> Result<(), DistError> {
            Err(not_here("barrier"))
        }
    }

    fn not_here(op: &'static str) -> DistError {
        DistError::Usage {
            rank: 0,
            op,
            reason: "not used by the overlapped all-reduce".into(),
        }
    }

    /// Rank 0's gradient of slot 0 against a peer that reduces slot `peer_slot`.
    fn reduce_against(peer_slot: f32) -> Result<Reduced, DistError> {
        let (tx, rx) = channel();
        let grad = GradReady {
            slot: 0,
            values: vec![3.0, 4.0],
            at: Instant::now(),
        };
        tx.send(GradMsg::Ready(grad)).unwrap();
        tx.send(GradMsg::BackwardDone).unwrap();
        let comm = TwoRanks {
            peer: Some(vec![1.0, 2.0, peer_slot, peer_slot]),
            ..TwoRanks::default()
        };
        communicate(comm, rx, None).1
    }

    #[test]
    fn the_same_slot_on_both_ranks_is_averaged() {
        let reduced = reduce_against(0.0).unwrap();
        assert_eq!(reduced.grads[&0], vec![2.0, 3.0]);
        assert_eq!((reduced.stats.collectives, reduced.stats.values), (1, 2));
    }

    /// The slots each all-reduce held when gradients of `slots` (of `hooked`) arrive in
    /// that order.
    fn launches(hooked: usize, slots: &[usize], bucket: Option<usize>) -> Vec<(usize, usize)> {
        let (tx, rx) = channel();
        tx.send(GradMsg::Hooked(hooked)).unwrap();
        for &slot in slots {
            let values = vec![slot as f32; 2];
            let at = Instant::now();
            tx.send(GradMsg::Ready(GradReady { slot, values, at }))
                .unwrap();
        }
        tx.send(GradMsg::BackwardDone).unwrap();
        let (comm, result) = communicate(TwoRanks::default(), rx, bucket);
        let reduced = result.unwrap();
        for &slot in slots {
            assert_eq!(reduced.grads[&slot], vec![slot as f32; 2]);
        }
        comm.launched
    }

    /// Ranks whose backward produced a block's gradients in different orders still launch
    /// the same all-reduces.
    #[test]
    fn all_reduces_follow_the_slots_not_the_arrival_order() {
        let one_each = vec![(3, 3), (2, 2), (1, 1), (0, 0)];
        assert_eq!(launches(4, &[3, 1, 2, 0], None), one_each);
        assert_eq!(launches(4, &[2, 3, 0, 1], None), one_each);
        // Buckets of two gradients (4 values).
        assert_eq!(launches(4, &[2, 3, 0, 1], Some(4)), vec![(3, 2), (1, 0)]);
        // Slot 2 never gets a gradient: those below it wait for the flush.
        assert_eq!(launches(4, &[3, 1, 0], None), vec![(3, 3), (1, 1), (0, 0)]);
    }

    #[test]
    fn ranks_reducing_different_slots_get_an_error() {
        let Err(err) = reduce_against(1.0) else {
            panic!("slot 0 reduced with slot 1 went unnoticed");
        };
        assert!(err.to_string().contains("different orders"), "{err}");
    }
}
