//! [`AdamWBackend`]: the burn backend extension for the CubeCL backends and `Fusion<_>` over
//! them (as one custom operation). The optimiser runs on the inner backend, so there is no
//! autodiff implementation.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::{Fusion, FusionBackend};
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

use super::kernels::{adamw_step, sum_squares_partial};
use crate::fusion_op::{Body, outputs, register, register_float};

/// The scalars of one AdamW step (the bias correction folded into `alpha_t`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWScalars {
    pub b1: f32,
    pub b2: f32,
    pub eps: f32,
    /// `lr · √(1−β₂ᵗ)/(1−β₁ᵗ)`.
    pub alpha_t: f32,
    /// `lr · weight_decay`.
    pub decay: f32,
}

/// A backend with the AdamW update of flat f32 buffers in one kernel.
pub trait AdamWBackend: Backend {
    /// `(param', m', v')` from `param`, `grad` (times `scale[0]`, the clip factor), `m`, `v`,
    /// all f32 `[n]` (`scale` `[1]`).
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        scalars: AdamWScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `[1]`: `Σ x²` of the f32 `[n]` buffer `x` (n ≥ 1), reading it once.
    fn sum_squares(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Units per cube and most cubes of the sum of squares: enough units in flight to keep
/// the memory busy, few enough partial sums that adding them up is one small reduction.
const SUM_UNITS: usize = 256;
const SUM_MAX_CUBES: usize = 1024;

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> AdamWBackend
    for CubeBackend<R, F, I, BT>
{
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        scalars: AdamWScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [param, grad, m, v, scale] = [param, grad, m, v, scale].map(into_contiguous);
        let len = param.shape().num_elements();
        let (client, device) = (param.client.clone(), param.device.clone());
        // Each of param', m', v' is written over its input where nothing else holds that
        // buffer (the moments, and a parameter whose module let go of it), else into a new
        // one: no allocation, and no second copy of the state alive during the step.
        let reuse = [param.can_mut(), m.can_mut(), v.can_mut()];
        let output = |input: &CubeTensor<R>, reuse: bool| {
            if reuse {
                input.clone()
            } else {
                empty_device_contiguous_dtype(
                    client.clone(),
                    device.clone(),
                    input.shape(),
                    DType::F32,
                )
            }
        };
        let [param_out, m_out, v_out] =
            [(&param, reuse[0]), (&m, reuse[1]), (&v, reuse[2])].map(|(t, r)| output(t, r));
        // `input_pos`: where the aliased input sits among the kernel's arguments.
        let out_arg = |out: &CubeTensor<R>, reuse: bool, input_pos: usize| {
            if reuse {
                out.as_tensor_alias(input_pos)
            } else {
                out.clone().into_tensor_arg()
            }
        };
        let vector_size = vector_size(&[&param, &grad, &m, &v, &param_out, &m_out, &v_out]);
        let len = len / vector_size;
        let cube_dim = CubeDim::new_1d(256);
        adamw_step::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, len, cube_dim),
            cube_dim,
            vector_size,
            param.into_tensor_arg(),
            grad.into_tensor_arg(),
            m.into_tensor_arg(),
            v.into_tensor_arg(),
            scale.into_tensor_arg(),
            out_arg(&param_out, reuse[0], 0),
            out_arg(&m_out, reuse[1], 2),
            out_arg(&v_out, reuse[2], 3),
            len as u32,
            scalars.b1,
            scalars.b2,
            scalars.eps,
            scalars.alpha_t,
            scalars.decay,
        );
        (param_out, m_out, v_out)
    }

    fn sum_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let x = into_contiguous(x);
        let len = x.shape().num_elements();
        let cubes = len.div_ceil(SUM_UNITS).clamp(1, SUM_MAX_CUBES);
        let (client, device) = (x.client.clone(), x.device.clone());
        let partial =
            empty_device_contiguous_dtype(client.clone(), device, Shape::new([cubes]), DType::F32);
        sum_squares_partial::launch::<R>(
            &client,
            CubeCount::new_1d(cubes as u32),
            CubeDim::new_1d(SUM_UNITS as u32),
            x.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            len as u32,
            SUM_UNITS,
        );
        Self::float_sum(partial)
    }
}

/// The widest vector of f32 the device loads at once that divides every buffer's length
/// and keeps every buffer's start aligned (a parameter may be a view into a larger buffer).
fn vector_size<R: CubeRuntime>(tensors: &[&CubeTensor<R>]) -> usize {
    let client = &tensors[0].client;
    client
        .io_optimized_vector_sizes(std::mem::size_of::<f32>())
        .find(|&size| {
            let bytes = (size * std::mem::size_of::<f32>()) as u64;
            tensors.iter().all(|t| {
                t.meta.num_elements() % size == 0 && t.handle.offset_start.unwrap_or(0) % bytes == 0
            })
        })
        .unwrap_or(1)
}

impl<B: FusionBackend + AdamWBackend> AdamWBackend for Fusion<B> {
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        scalars: AdamWScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let like = (param.shape.clone(), DType::F32);
        let body: Body<B> = Arc::new(move |desc, handles| {
            let ([param, grad, m, v, scale], [p_ir, m_ir, v_ir]) = desc.as_fixed::<5, 3>();
            let [param, grad, m, v, scale] =
                [param, grad, m, v, scale].map(|t| handles.get_float_tensor::<B>(t));
            let (p, m, v) = B::adamw_step(param, grad, m, v, scale, scalars);
            handles.register_float_tensor::<B>(&p_ir.id, p);
            handles.register_float_tensor::<B>(&m_ir.id, m);
            handles.register_float_tensor::<B>(&v_ir.id, v);
        });
        let inputs = vec![param, grad, m, v, scale];
        let outs = vec![like.clone(), like.clone(), like];
        let [p, m, v] = outputs(register::<B>("adamw_step", inputs, outs, body));
        (p, m, v)
    }

    fn sum_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let [sum] = register_float::<B, 1, 1>(
            "sum_squares",
            [x],
            [(Shape::new([1]), DType::F32)],
            |[x]| [B::sum_squares(x)],
        );
        sum
    }
}
