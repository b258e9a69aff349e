//! The AdamW update as one element-wise kernel.

use cubecl::prelude::*;

/// One AdamW step of the handout's rule on flat f32 buffers, element `i` per unit:
/// `g = grad · scale[0]`, `m' = β₁m + (1−β₁)g`, `v' = β₂v + (1−β₂)g²`,
/// `p' = s − decay·s` with `s = p − α_t·m'/(√v' + eps)` (`decay = lr · weight_decay`).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    param: &Tensor<f32>,
    grad: &Tensor<f32>,
    m: &Tensor<f32>,
    v: &Tensor<f32>,
    scale: &Tensor<f32>,
    param_out: &mut Tensor<f32>,
    m_out: &mut Tensor<f32>,
    v_out: &mut Tensor<f32>,
    len: u32,
    b1: f32,
    b2: f32,
    eps: f32,
    alpha_t: f32,
    decay: f32,
) {
    let i = ABSOLUTE_POS;
    if i < len as usize {
        let g = grad[i] * scale[0];
        let m_new = m[i] * b1 + g * (1.0f32 - b1);
        let v_new = v[i] * b2 + g * g * (1.0f32 - b2);
        let stepped = param[i] - m_new / (f32::sqrt(v_new) + eps) * alpha_t;
        param_out[i] = stepped - stepped * decay;
        m_out[i] = m_new;
        v_out[i] = v_new;
    }
}
