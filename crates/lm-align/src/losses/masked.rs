//! Sums and means over the positions a boolean mask selects.

use burn::tensor::{Bool, Tensor, backend::Backend};
use lm_core::{LmError, Result};

use super::check_shape;

/// `sum(tensor · mask)` over `dim` (every element when `None`), reduced dims kept as size 1.
fn masked_sum<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    mask: Tensor<B, D, Bool>,
    dim: Option<usize>,
) -> Result<Tensor<B, D>> {
    check_shape("mask", &mask.dims(), &tensor.dims())?;
    let masked = tensor * mask.float();
    Ok(match dim {
        Some(d) if d >= D => {
            return Err(LmError::config(
                "dim",
                format!("{d} is out of range for a rank-{D} tensor"),
            ));
        }
        Some(d) => masked.sum_dim(d),
        None => masked.sum_dims(&(0..D).collect::<Vec<_>>()),
    })
}

/// `sum(tensor · mask, dim) / normalize_constant`.
///
/// `dim = None` sums every element. The reduced dims stay in the result with size 1 (burn's
/// `sum_dim` convention); squeeze them where a lower rank is wanted.
pub fn masked_normalize<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    mask: Tensor<B, D, Bool>,
    dim: Option<usize>,
    normalize_constant: f64,
) -> Result<Tensor<B, D>> {
    Ok(masked_sum(tensor, mask, dim)? / normalize_constant)
}

/// `sum(tensor · mask, dim) / sum(mask, dim)`: the mean of the selected elements.
///
/// A slice with no selected element is 0/0 = NaN, as in the course (no guard on purpose).
/// Reduced dims are kept with size 1, as in [`masked_normalize`].
pub fn masked_mean<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    mask: Tensor<B, D, Bool>,
    dim: Option<usize>,
) -> Result<Tensor<B, D>> {
    let count = masked_sum(mask.clone().float(), mask.clone(), dim)?;
    Ok(masked_sum(tensor, mask, dim)? / count)
}
