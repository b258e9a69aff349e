//! Reaching our kernels from code generic over any burn backend.
//!
//! lm-core's model is generic over `Backend`; only some backends have our kernels, and Rust
//! cannot specialise a generic function on a trait it does not require. The kernels'
//! `dispatch` functions compare `B` with the concrete backends of this build and move the
//! tensors to that type (a no-op: it is the same type), falling back to `None` elsewhere.

use std::any::{Any, TypeId};

/// Moves `value` to type `T`; the caller has checked that `A` and `T` are the same type.
pub fn same_type<A: 'static, T: 'static>(value: A) -> T {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("type ids compared equal"))
}

/// Whether `B` is `T`.
pub fn is<B: 'static, T: 'static>() -> bool {
    TypeId::of::<B>() == TypeId::of::<T>()
}

/// burn's CUDA backend without its fusion layer (what generation runs on: fusion compiles
/// new kernels for every new decode shape).
#[cfg(feature = "cuda")]
pub type CudaUnfused = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;

/// burn's wgpu backend without its fusion layer (the backend a fusion operation's body runs
/// on, e.g. [`crate::inner`]'s programs).
#[cfg(feature = "wgpu")]
pub type WgpuUnfused = burn_cubecl::CubeBackend<cubecl::wgpu::WgpuRuntime, f32, i32, u32>;

/// Whether `B` is one of this build's CUDA backends (with or without fusion and autodiff).
pub fn is_cuda<B: 'static>() -> bool {
    #[cfg(feature = "cuda")]
    {
        type C = burn::backend::Cuda<f32, i32>;
        type Ad<T> = burn::backend::Autodiff<T>;
        is::<B, C>() || is::<B, Ad<C>>() || is::<B, CudaUnfused>() || is::<B, Ad<CudaUnfused>>()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// Expands `$body` with the type alias `$K` bound to the concrete backend that `$B` is, for
/// each kernel backend of this build (wgpu, cuda with and without fusion; with and without
/// autodiff); evaluates to
/// `None` when `$B` is none of them.
#[macro_export]
macro_rules! for_kernel_backend {
    ($B:ty, |$K:ident| $body:expr) => {{
        #[allow(unused_mut)]
        let mut found = $crate::for_inner_kernel_backend!($B, |$K| $body);
        #[cfg(feature = "wgpu")]
        if found.is_none()
            && $crate::dispatch::is::<$B, burn::backend::Autodiff<burn::backend::Wgpu<f32, i32>>>()
        {
            type $K = burn::backend::Autodiff<burn::backend::Wgpu<f32, i32>>;
            found = Some($body);
        }
        #[cfg(feature = "cuda")]
        if found.is_none()
            && $crate::dispatch::is::<$B, burn::backend::Autodiff<burn::backend::Cuda<f32, i32>>>()
        {
            type $K = burn::backend::Autodiff<burn::backend::Cuda<f32, i32>>;
            found = Some($body);
        }
        #[cfg(feature = "cuda")]
        if found.is_none()
            && $crate::dispatch::is::<$B, burn::backend::Autodiff<$crate::dispatch::CudaUnfused>>()
        {
            type $K = burn::backend::Autodiff<$crate::dispatch::CudaUnfused>;
            found = Some($body);
        }
        found
    }};
}

/// [`for_kernel_backend!`] for the inner (non-autodiff) kernel backends only (wgpu and cuda,
/// with and without fusion), for
/// kernels with no autodiff implementation (the optimiser step); `for_kernel_backend!` adds
/// the autodiff ones.
#[macro_export]
macro_rules! for_inner_kernel_backend {
    ($B:ty, |$K:ident| $body:expr) => {{
        #[allow(unused_mut)]
        let mut found = None;
        #[cfg(feature = "wgpu")]
        if found.is_none() && $crate::dispatch::is::<$B, burn::backend::Wgpu<f32, i32>>() {
            type $K = burn::backend::Wgpu<f32, i32>;
            found = Some($body);
        }
        #[cfg(feature = "wgpu")]
        if found.is_none() && $crate::dispatch::is::<$B, $crate::dispatch::WgpuUnfused>() {
            type $K = $crate::dispatch::WgpuUnfused;
            found = Some($body);
        }
        #[cfg(feature = "cuda")]
        if found.is_none() && $crate::dispatch::is::<$B, burn::backend::Cuda<f32, i32>>() {
            type $K = burn::backend::Cuda<f32, i32>;
            found = Some($body);
        }
        #[cfg(feature = "cuda")]
        if found.is_none() && $crate::dispatch::is::<$B, $crate::dispatch::CudaUnfused>() {
            type $K = $crate::dispatch::CudaUnfused;
            found = Some($body);
        }
        found
    }};
}
