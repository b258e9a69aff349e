//! [`flash_attention`] on `Tensor`s: checks the inputs, then runs the backend's kernel.

use burn::tensor::{Tensor, TensorPrimitive};

use super::{FlashAttentionBackend, MAX_HEAD_DIM};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlashAttentionError {
    #[error(
        "flash attention: {tensor} has shape {got:?}, q has {expected:?} (q, k and v must match)"
    )]
    ShapeMismatch {
        tensor: &'static str,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("flash attention: head_dim {0} is outside 1..={MAX_HEAD_DIM}")]
    HeadDim(usize),
    #[error("flash attention: empty input of shape {0:?}")]
    Empty(Vec<usize>),
}

/// FlashAttention-2 over `[batch, heads, seq, head_dim]` tensors: returns the output and
/// the natural-log logsumexp of each (scaled, masked) score row, `[batch, heads, seq]`.
/// `scale` defaults to `1/sqrt(head_dim)`; `causal` lets query `i` see keys `j ≤ i`.
/// Differentiable on `Autodiff<_>` backends (the logsumexp is not part of the graph).
pub fn flash_attention<B: FlashAttentionBackend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    scale: Option<f32>,
) -> Result<(Tensor<B, 4>, Tensor<B, 3>), FlashAttentionError> {
    let dims = q.dims();
    for (tensor, t) in [("k", &k), ("v", &v)] {
        if t.dims() != dims {
            return Err(FlashAttentionError::ShapeMismatch {
                tensor,
                got: t.dims().to_vec(),
                expected: dims.to_vec(),
            });
        }
    }
    if dims.contains(&0) {
        return Err(FlashAttentionError::Empty(dims.to_vec()));
    }
    let head_dim = dims[3];
    if head_dim > MAX_HEAD_DIM {
        return Err(FlashAttentionError::HeadDim(head_dim));
    }
    let scale = scale.unwrap_or(1.0 / (head_dim as f32).sqrt());
    let (o, lse) = B::flash_attention_forward(
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
        causal,
        scale,
    );
    Ok((
        Tensor::from_primitive(TensorPrimitive::Float(o)),
        Tensor::from_primitive(TensorPrimitive::Float(lse)),
    ))
}
