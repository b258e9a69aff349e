//! FlashAttention for code generic over any burn backend.
//!
//! lm-core's model is generic over `Backend`; only some backends have the kernel, and Rust
//! cannot specialise a generic function on a trait it does not require. [`try_flash_attention`]
//! recognises the concrete backends of this build by type and forwards to the kernel,
//! returning `None` elsewhere (the caller keeps its plain attention).

use std::any::{Any, TypeId};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{FlashAttentionBackend, FlashAttentionError, flash_attention};

/// Moves `value` to type `T` when it is one (`A` and `T` the same type).
fn same_type<A: 'static, T: 'static>(value: A) -> T {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("type ids compared equal"))
}

type Output<B> = Result<(Tensor<B, 4>, Tensor<B, 3>), FlashAttentionError>;

fn run_as<B: Backend, K: FlashAttentionBackend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    scale: Option<f32>,
) -> Output<B> {
    let out = flash_attention::<K>(same_type(q), same_type(k), same_type(v), causal, scale);
    out.map(|(o, lse)| (same_type(o), same_type(lse)))
}

/// Whether [`try_flash_attention`] has a kernel for backend `B`.
pub fn supports<B: Backend>() -> bool {
    kernel_for::<B>().is_some()
}

type Runner<B> = fn(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>, bool, Option<f32>) -> Output<B>;

fn kernel_for<B: Backend>() -> Option<Runner<B>> {
    let id = TypeId::of::<B>();
    macro_rules! known {
        ($($ty:ty),*) => {
            $(if id == TypeId::of::<$ty>() {
                return Some(run_as::<B, $ty>);
            })*
        };
    }
    #[cfg(feature = "wgpu")]
    known!(
        burn::backend::Wgpu<f32, i32>,
        burn::backend::Autodiff<burn::backend::Wgpu<f32, i32>>
    );
    #[cfg(feature = "cuda")]
    known!(
        burn::backend::Cuda<f32, i32>,
        burn::backend::Autodiff<burn::backend::Cuda<f32, i32>>
    );
    let _ = id;
    None
}

/// [`flash_attention`] when `B` is one of this build's kernel backends, else `None`.
pub fn try_flash_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
    scale: Option<f32>,
) -> Option<Output<B>> {
    kernel_for::<B>().map(|run| run(q, k, v, causal, scale))
}
