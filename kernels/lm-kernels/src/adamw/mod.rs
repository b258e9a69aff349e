//! The AdamW step in one kernel launch per flat buffer (the tensor-op version is about ten
//! element-wise launches where burn's fusion does not merge them), with the global-norm clip
//! factor read on the device; the squared norm itself comes from one reading pass per
//! buffer ([`try_sum_squares`]).

pub mod backend;
pub mod kernels;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

pub use backend::{AdamWBackend, AdamWScalars};

use crate::dispatch::same_type;

/// `(param', m', v')`: one AdamW step of flat f32 `[n]` buffers with `grad` scaled by
/// `scale` (`[1]`, e.g. the clip factor).
pub fn adamw_step<B: AdamWBackend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    scale: Tensor<B, 1>,
    scalars: AdamWScalars,
) -> (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>) {
    let prim = |t: Tensor<B, 1>| t.into_primitive().tensor();
    let (p, m, v) = B::adamw_step(
        prim(param),
        prim(grad),
        prim(m),
        prim(v),
        prim(scale),
        scalars,
    );
    let wrap = |t| Tensor::from_primitive(TensorPrimitive::Float(t));
    (wrap(p), wrap(m), wrap(v))
}

type Output<B> = (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>);
type Runner<B> = fn(
    Tensor<B, 1>,
    Tensor<B, 1>,
    Tensor<B, 1>,
    Tensor<B, 1>,
    Tensor<B, 1>,
    AdamWScalars,
) -> Output<B>;

fn run_as<B: Backend, K: AdamWBackend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    scale: Tensor<B, 1>,
    scalars: AdamWScalars,
) -> Output<B> {
    let (p, m, v) = adamw_step::<K>(
        same_type(param),
        same_type(grad),
        same_type(m),
        same_type(v),
        same_type(scale),
        scalars,
    );
    (same_type(p), same_type(m), same_type(v))
}

/// The kernel for backend `B`: one of this build's (non-autodiff) kernel backends, unless
/// `LM_FUSED_ADAMW=0`.
fn kernel_for<B: Backend>() -> Option<Runner<B>> {
    if opted_out() {
        return None;
    }
    crate::for_inner_kernel_backend!(B, |K| run_as::<B, K> as Runner<B>)
}

/// [`adamw_step`] when [`supports`] `B`, else `None`.
pub fn try_adamw_step<B: Backend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    scale: Tensor<B, 1>,
    scalars: AdamWScalars,
) -> Option<Output<B>> {
    kernel_for::<B>().map(|run| run(param, grad, m, v, scale, scalars))
}

/// `[1]`: `Σ x²` of the flat f32 buffer `x` in one reading pass when `B` has the AdamW
/// kernels ([`supports`]), else `x` back, for tensor ops.
pub fn try_sum_squares<B: Backend>(x: Tensor<B, 1>) -> Result<Tensor<B, 1>, Tensor<B, 1>> {
    fn run_as<B: Backend, K: AdamWBackend>(x: Tensor<B, 1>) -> Tensor<B, 1> {
        let x: Tensor<K, 1> = same_type(x);
        let sum = K::sum_squares(x.into_primitive().tensor());
        same_type(Tensor::<K, 1>::from_primitive(TensorPrimitive::Float(sum)))
    }
    let usable = !opted_out() && x.dtype() == burn::tensor::DType::F32 && x.dims()[0] > 0;
    let run: Option<fn(Tensor<B, 1>) -> Tensor<B, 1>> = if usable {
        crate::for_inner_kernel_backend!(B, |K| run_as::<B, K> as fn(Tensor<B, 1>) -> Tensor<B, 1>)
    } else {
        None
    };
    match run {
        Some(run) => Ok(run(x)),
        None => Err(x),
    }
}

/// Whether [`try_adamw_step`] runs the kernel for backend `B`.
pub fn supports<B: Backend>() -> bool {
    kernel_for::<B>().is_some()
}

fn opted_out() -> bool {
    static OUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OUT.get_or_init(|| std::env::var("LM_FUSED_ADAMW").is_ok_and(|v| v == "0"))
}
