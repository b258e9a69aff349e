//! [`CrossEntropyBackend`]: the burn backend extension and its implementations.

use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::{Fusion, FusionBackend};
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

use super::kernels::{cross_entropy_backward, cross_entropy_forward};
use crate::fusion_op::{Body, outputs, register};

/// Units per cube of the forward kernel (one cube per row).
const UNITS: usize = 256;

/// A backend with fused cross-entropy over `[rows, vocab]` logits and `[rows]` targets.
pub trait CrossEntropyBackend: Backend {
    /// `(loss, stats)`: `loss [rows]` f32, `loss = logsumexp(row) − row[target]`, and
    /// `stats [2, rows]` f32, each row's maximum and sum of `exp(x − max)`, for the backward.
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `d logits` for upstream `d_loss` (`[rows]`), from the forward's `stats`.
    fn cross_entropy_rows_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        stats: FloatTensor<Self>,
        d_loss: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> CrossEntropyBackend
    for CubeBackend<R, F, I, BT>
{
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (logits, targets) = (into_contiguous(logits), into_contiguous(targets));
        let [rows, vocab] = logits.shape().dims::<2>();
        let (client, device) = (logits.client.clone(), logits.device.clone());
        let f32_tensor = |shape: Shape| {
            empty_device_contiguous_dtype(client.clone(), device.clone(), shape, DType::F32)
        };
        let (loss, stats) = (
            f32_tensor(Shape::new([rows])),
            f32_tensor(Shape::new([2, rows])),
        );
        let dtypes = [logits.dtype.into(), targets.dtype.into()];
        cross_entropy_forward::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, rows * UNITS, CubeDim::new_1d(UNITS as u32)),
            CubeDim::new_1d(UNITS as u32),
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            loss.clone().into_tensor_arg(),
            stats.clone().into_tensor_arg(),
            rows as u32,
            vocab as u32,
            UNITS,
            dtypes,
        );
        (loss, stats)
    }

    fn cross_entropy_rows_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        stats: FloatTensor<Self>,
        d_loss: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [logits, stats, d_loss] = [logits, stats, d_loss].map(into_contiguous);
        let targets = into_contiguous(targets);
        let [rows, vocab] = logits.shape().dims::<2>();
        let (client, device) = (logits.client.clone(), logits.device.clone());
        let d_logits =
            empty_device_contiguous_dtype(client.clone(), device, logits.shape(), logits.dtype);
        let cube_dim = CubeDim::new_1d(256);
        let dtypes = [logits.dtype.into(), targets.dtype.into()];
        cross_entropy_backward::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, logits.shape().num_elements(), cube_dim),
            cube_dim,
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            stats.into_tensor_arg(),
            d_loss.into_tensor_arg(),
            d_logits.clone().into_tensor_arg(),
            rows as u32,
            vocab as u32,
            dtypes,
        );
        d_logits
    }
}

impl<B: FusionBackend + CrossEntropyBackend> CrossEntropyBackend for Fusion<B> {
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let rows = logits.shape.dims::<2>()[0];
        let body: Body<B> = Arc::new(|desc, handles| {
            let ([logits, targets], [loss_ir, stats_ir]) = desc.as_fixed::<2, 2>();
            let logits = handles.get_float_tensor::<B>(logits);
            let targets = handles.get_int_tensor::<B>(targets);
            let (loss, stats) = B::cross_entropy_rows(logits, targets);
            handles.register_float_tensor::<B>(&loss_ir.id, loss);
            handles.register_float_tensor::<B>(&stats_ir.id, stats);
        });
        let outs = vec![
            (Shape::new([rows]), DType::F32),
            (Shape::new([2, rows]), DType::F32),
        ];
        let [loss, stats] = outputs(register::<B>(
            "cross_entropy_rows",
            vec![logits, targets],
            outs,
            body,
        ));
        (loss, stats)
    }

    fn cross_entropy_rows_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        stats: FloatTensor<Self>,
        d_loss: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let like_logits = (logits.shape.clone(), logits.dtype);
        let body: Body<B> = Arc::new(|desc, handles| {
            let ([logits, targets, stats, d_loss], [out]) = desc.as_fixed::<4, 1>();
            let logits = handles.get_float_tensor::<B>(logits);
            let targets = handles.get_int_tensor::<B>(targets);
            let stats = handles.get_float_tensor::<B>(stats);
            let d_loss = handles.get_float_tensor::<B>(d_loss);
            let d_logits = B::cross_entropy_rows_backward(logits, targets, stats, d_loss);
            handles.register_float_tensor::<B>(&out.id, d_logits);
        });
        let inputs = vec![logits, targets, stats, d_loss];
        let [d_logits] = outputs(register::<B>(
            "cross_entropy_rows_backward",
            inputs,
            vec![like_logits],
            body,
        ));
        d_logits
    }
}

#[derive(Debug)]
struct CrossEntropyRowsBackward;

impl<B: CrossEntropyBackend> Backward<B, 1> for CrossEntropyRowsBackward {
    /// logits, targets, stats
    type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_logits] = ops.parents;
        let d_loss = grads.consume::<B>(&ops.node);
        let (logits, targets, stats) = ops.state;
        if let Some(node) = node_logits {
            grads.register::<B>(
                node.id,
                B::cross_entropy_rows_backward(logits, targets, stats, d_loss),
            );
        }
    }
}

impl<B: CrossEntropyBackend, C: CheckpointStrategy> CrossEntropyBackend for Autodiff<B, C> {
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let node = logits.node.clone();
        let primitive = logits.primitive;
        match CrossEntropyRowsBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (loss, stats) = B::cross_entropy_rows(primitive.clone(), targets.clone());
                let state = (primitive, targets, stats.clone());
                (prep.finish(state, loss), Self::from_inner(stats))
            }
            OpsKind::UnTracked(prep) => {
                let (loss, stats) = B::cross_entropy_rows(primitive, targets);
                (prep.finish(loss), Self::from_inner(stats))
            }
        }
    }

    fn cross_entropy_rows_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        stats: FloatTensor<Self>,
        d_loss: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [logits, stats, d_loss] = [logits, stats, d_loss].map(Self::inner);
        Self::from_inner(B::cross_entropy_rows_backward(
            logits, targets, stats, d_loss,
        ))
    }
}
