//! The AdamW update as one element-wise kernel, and the gradient's sum of squares (for the
//! global-norm clip) as one reading pass.

use cubecl::prelude::*;

use crate::reduce::cube_reduce;

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

/// `partial[cube] = Σ x²` over the values this cube's units visit: unit `u` of cube `c`
/// starts at `c · units + u` and strides by all units of the grid, so the loads coalesce
/// and the grid can be smaller than the buffer. The gradient's squared norm for the clip is
/// the sum of `partial`: one read of the gradient, no `x²` buffer written.
#[cube(launch)]
pub fn sum_squares_partial(
    x: &Tensor<f32>,
    partial: &mut Tensor<f32>,
    len: u32,
    #[comptime] units: usize,
) {
    let unit = UNIT_POS_X as usize;
    let stride = CUBE_COUNT * units;
    let mut i = CUBE_POS * units + unit;
    let mut acc = 0.0f32;
    while i < len as usize {
        let v = x[i];
        acc += v * v;
        i += stride;
    }
    let mut sums = SharedMemory::<f32>::new(units);
    sums[unit] = acc;
    cube_reduce(&mut sums, unit, false);
    if unit == 0 {
        partial[CUBE_POS] = sums[0];
    }
}
