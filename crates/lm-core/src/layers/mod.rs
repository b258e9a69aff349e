//! The model's layers, each built from tensor ops and `Param`s (no burn `nn` modules).

mod attention;
mod block;
mod embedding;
mod linear;
mod rmsnorm;
mod rope;
mod swiglu;

pub use attention::{
    MultiHeadSelfAttention, attention_with_lse, causal_attention, causal_mask,
    scaled_dot_product_attention,
};
pub use block::TransformerBlock;
pub use embedding::Embedding;
pub use linear::{Linear, matmul_transposed, packed_product};
pub use rmsnorm::RmsNorm;
pub use rope::{Rope, RopeRows, RopeStyle, RopeTables, rope_inv_freq};
pub use swiglu::SwiGlu;

/// Panics with a message naming the layer and tensor when `got` is not `expected`.
///
/// Shapes inside a forward pass are programmer errors, so they panic, but with a message of
/// ours rather than one from deep inside burn.
#[track_caller]
pub(crate) fn expect_last_dim(layer: &str, tensor: &str, dims: &[usize], expected: usize) {
    let got = dims.last().copied().unwrap_or(0);
    assert!(
        got == expected,
        "{layer}: `{tensor}` has last dim {got} (shape {dims:?}), expected {expected}"
    );
}
