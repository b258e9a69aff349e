//! The AdamW update as one element-wise kernel.

use cubecl::prelude::*;

/// One AdamW step of the handout's rule on flat f32 buffers, `N` elements per unit (vectors
/// of `N` f32: one wide load per buffer, the update's traffic is all it does):
/// `g = grad · scale[0]`, `m' = β₁m + (1−β₁)g`, `v' = β₂v + (1−β₂)g²`,
/// `p' = s − decay·s` with `s = p − α_t·m'/(√v' + eps)` (`decay = lr · weight_decay`).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<N: Size>(
    param: &Tensor<Vector<f32, N>>,
    grad: &Tensor<Vector<f32, N>>,
    m: &Tensor<Vector<f32, N>>,
    v: &Tensor<Vector<f32, N>>,
    scale: &Tensor<f32>,
    param_out: &mut Tensor<Vector<f32, N>>,
    m_out: &mut Tensor<Vector<f32, N>>,
    v_out: &mut Tensor<Vector<f32, N>>,
    // In vectors of N.
    len: u32,
    b1: f32,
    b2: f32,
    eps: f32,
    alpha_t: f32,
    decay: f32,
) {
    let i = ABSOLUTE_POS;
    if i < len as usize {
        let g = grad[i] * Vector::new(scale[0]);
        let m_new = m[i] * Vector::new(b1) + g * Vector::new(1.0f32 - b1);
        let v_new = v[i] * Vector::new(b2) + g * g * Vector::new(1.0f32 - b2);
        let stepped =
            param[i] - m_new / (Vector::sqrt(v_new) + Vector::new(eps)) * Vector::new(alpha_t);
        param_out[i] = stepped - stepped * Vector::new(decay);
        m_out[i] = m_new;
        v_out[i] = v_new;
    }
}
