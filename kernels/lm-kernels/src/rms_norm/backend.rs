//! [`RmsNormBackend`]: the burn backend extension and its implementations (CubeCL backends,
//! `Fusion<_>` over them as custom operations, `Autodiff<_>`).

use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::{Fusion, FusionBackend};
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

use super::kernels::{rms_norm_backward_input, rms_norm_backward_weight, rms_norm_forward};
use crate::fusion_op::{Body, outputs, register};

/// Units per cube of the per-row kernels (one cube per row).
pub(crate) const UNITS: usize = 256;
/// Rows summed by one unit of the weight-gradient kernel.
const CHUNK_ROWS: usize = 64;

/// A backend with a fused RMSNorm over `[rows, dim]` activations and a `[dim]` gain.
pub trait RmsNormBackend: Backend {
    /// `(y, inv_rms)`: `y = x / √(mean(x²) + eps) · weight` in x's dtype and the per-row
    /// `inv_rms [rows]` (f32) the backward uses.
    fn rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `(d_x, d_weight)` for upstream `d_y`.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        d_y: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> RmsNormBackend
    for CubeBackend<R, F, I, BT>
{
    fn rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (x, weight) = (into_contiguous(x), into_contiguous(weight));
        let [rows, dim] = x.shape().dims::<2>();
        let (client, device) = (x.client.clone(), x.device.clone());
        let y = empty_device_contiguous_dtype(client.clone(), device.clone(), x.shape(), x.dtype);
        let inv_rms =
            empty_device_contiguous_dtype(client.clone(), device, Shape::new([rows]), DType::F32);
        let dtypes = [x.dtype.into(), weight.dtype.into()];
        rms_norm_forward::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, rows * UNITS, CubeDim::new_1d(UNITS as u32)),
            CubeDim::new_1d(UNITS as u32),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            inv_rms.clone().into_tensor_arg(),
            rows as u32,
            dim as u32,
            eps,
            UNITS,
            dtypes,
        );
        (y, inv_rms)
    }

    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        d_y: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [x, weight, inv_rms, d_y] = [x, weight, inv_rms, d_y].map(into_contiguous);
        let [rows, dim] = x.shape().dims::<2>();
        let (client, device) = (x.client.clone(), x.device.clone());
        let d_x = empty_device_contiguous_dtype(client.clone(), device.clone(), x.shape(), x.dtype);
        let chunks = rows.div_ceil(CHUNK_ROWS);
        let partial = empty_device_contiguous_dtype(
            client.clone(),
            device,
            Shape::new([chunks.max(1), dim]),
            DType::F32,
        );
        let w_dtype = weight.dtype;
        rms_norm_backward_input::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, rows * UNITS, CubeDim::new_1d(UNITS as u32)),
            CubeDim::new_1d(UNITS as u32),
            x.clone().into_tensor_arg(),
            weight.into_tensor_arg(),
            inv_rms.clone().into_tensor_arg(),
            d_y.clone().into_tensor_arg(),
            d_x.clone().into_tensor_arg(),
            rows as u32,
            dim as u32,
            UNITS,
            [x.dtype.into(), w_dtype.into()],
        );
        let cube_dim = CubeDim::new_1d(256);
        let x_dtype = x.dtype.into();
        rms_norm_backward_weight::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, chunks.max(1) * dim, cube_dim),
            cube_dim,
            x.into_tensor_arg(),
            inv_rms.into_tensor_arg(),
            d_y.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            rows as u32,
            dim as u32,
            CHUNK_ROWS as u32,
            x_dtype,
        );
        let d_weight = Self::float_reshape(Self::float_sum_dim(partial, 0), Shape::new([dim]));
        let d_weight = if w_dtype == DType::F32 {
            d_weight
        } else {
            Self::float_cast(d_weight, w_dtype.into())
        };
        (d_x, d_weight)
    }
}

impl<B: FusionBackend + RmsNormBackend> RmsNormBackend for Fusion<B> {
    fn rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let rows = x.shape.dims::<2>()[0];
        let like_x = (x.shape.clone(), x.dtype);
        let body: Body<B> = Arc::new(move |desc, handles| {
            let ([x, weight], [y_ir, inv_ir]) = desc.as_fixed::<2, 2>();
            let x = handles.get_float_tensor::<B>(x);
            let weight = handles.get_float_tensor::<B>(weight);
            let (y, inv_rms) = B::rms_norm(x, weight, eps);
            handles.register_float_tensor::<B>(&y_ir.id, y);
            handles.register_float_tensor::<B>(&inv_ir.id, inv_rms);
        });
        let outs = vec![like_x, (Shape::new([rows]), DType::F32)];
        let [y, inv_rms] = outputs(register::<B>("rms_norm", vec![x, weight], outs, body));
        (y, inv_rms)
    }

    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        d_y: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let outs = vec![
            (x.shape.clone(), x.dtype),
            (weight.shape.clone(), weight.dtype),
        ];
        let body: Body<B> = Arc::new(|desc, handles| {
            let ([x, weight, inv_rms, d_y], [dx_ir, dw_ir]) = desc.as_fixed::<4, 2>();
            let x = handles.get_float_tensor::<B>(x);
            let weight = handles.get_float_tensor::<B>(weight);
            let inv_rms = handles.get_float_tensor::<B>(inv_rms);
            let d_y = handles.get_float_tensor::<B>(d_y);
            let (d_x, d_w) = B::rms_norm_backward(x, weight, inv_rms, d_y);
            handles.register_float_tensor::<B>(&dx_ir.id, d_x);
            handles.register_float_tensor::<B>(&dw_ir.id, d_w);
        });
        let inputs = vec![x, weight, inv_rms, d_y];
        let [d_x, d_w] = outputs(register::<B>("rms_norm_backward", inputs, outs, body));
        (d_x, d_w)
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl<B: RmsNormBackend> Backward<B, 2> for RmsNormBackward {
    /// x, weight, inv_rms
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let d_y = grads.consume::<B>(&ops.node);
        let (x, weight, inv_rms) = ops.state;
        let (d_x, d_w) = B::rms_norm_backward(x, weight, inv_rms, d_y);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, d_x);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, d_w);
        }
    }
}

impl<B: RmsNormBackend, C: CheckpointStrategy> RmsNormBackend for Autodiff<B, C> {
    fn rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [x.node.clone(), weight.node.clone()];
        let (x, weight) = (x.primitive, weight.primitive);
        match RmsNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, inv_rms) = B::rms_norm(x.clone(), weight.clone(), eps);
                let state = (x, weight, inv_rms.clone());
                (prep.finish(state, y), Self::from_inner(inv_rms))
            }
            OpsKind::UnTracked(prep) => {
                let (y, inv_rms) = B::rms_norm(x, weight, eps);
                (prep.finish(y), Self::from_inner(inv_rms))
            }
        }
    }

    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        d_y: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [x, weight, inv_rms, d_y] = [x, weight, inv_rms, d_y].map(Self::inner);
        let (d_x, d_w) = B::rms_norm_backward(x, weight, inv_rms, d_y);
        (Self::from_inner(d_x), Self::from_inner(d_w))
    }
}
