//! Reductions across a cube's units in shared memory, shared by the kernels.

use cubecl::prelude::*;

/// Reduces `values[0..CUBE_DIM_X]` into `values[0]` with max (`is_max`) or sum; every unit
/// reads the result afterwards, so the caller syncs again before reusing `values`.
#[cube]
pub fn cube_reduce(values: &mut SharedMemory<f32>, unit: usize, #[comptime] is_max: bool) {
    sync_cube();
    // A runtime value (the cube width): a comptime one cannot be halved in a loop.
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if unit < stride {
            if is_max {
                values[unit] = max(values[unit], values[unit + stride]);
            } else {
                values[unit] += values[unit + stride];
            }
        }
        sync_cube();
        stride /= 2;
    }
}
