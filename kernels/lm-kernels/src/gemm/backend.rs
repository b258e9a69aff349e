//! [`GemmBackend`]: the burn backend extension, for burn's CUDA backend (cuBLASLt), for
//! `Fusion<_>` over it (a custom fusion operation) and for `Autodiff<_>` (the backward is
//! two more products through the same path).

use std::sync::Arc;
use std::time::Instant;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, FloatElement, IntElement};
use burn_fusion::{Fusion, FusionBackend};
use cubecl::cuda::CudaRuntime;

use super::cublaslt::{self, Element, F32Math, Pointers};
use super::host_time;
use super::layout::{self, Problem, Unsupported};
use super::ordering::{Ordering, Ticket, device_flags, device_ptr};
use crate::fusion_op::{Body, outputs, register};

/// A backend whose float matmul can run through cuBLASLt.
pub trait GemmBackend: Backend {
    /// `lhs · rhs` for `[.., m, k]` and `[.., k, n]` operands of one dtype (f32, bf16 or
    /// f16) with equal batch dims; `math` says how f32 products are computed.
    fn gemm(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, math: F32Math) -> FloatTensor<Self>;
}

type Cube<F, I, BT> = CubeBackend<CudaRuntime, F, I, BT>;

fn element(dtype: DType) -> Option<Element> {
    match dtype {
        DType::F32 => Some(Element::F32),
        DType::BF16 => Some(Element::Bf16),
        DType::F16 => Some(Element::F16),
        _ => None,
    }
}

type Tensor = CubeTensor<CudaRuntime>;

/// The cuBLASLt problem of two tensors as laid out, or after making them contiguous (with
/// the tensors it applies to); none when there is none (burn's matmul takes them).
fn planned(lhs: Tensor, rhs: Tensor) -> (Tensor, Tensor, Option<Problem>) {
    let plan = |l: &Tensor, r: &Tensor| {
        layout::plan(
            l.shape().as_slice(),
            l.meta.strides(),
            r.shape().as_slice(),
            r.meta.strides(),
        )
    };
    match plan(&lhs, &rhs) {
        Ok(problem) => (lhs, rhs, Some(problem)),
        Err(Unsupported::Strides) => {
            let (lhs, rhs) = (into_contiguous(lhs), into_contiguous(rhs));
            let problem = plan(&lhs, &rhs).ok();
            (lhs, rhs, problem)
        }
        Err(_) => (lhs, rhs, None),
    }
}

/// Whether a product is enqueued on cubecl's server thread (default) or from the calling
/// thread through cubecl's channel (`LM_CUDA_GEMM_THREAD=caller`).
fn on_server_thread() -> bool {
    static SERVER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SERVER.get_or_init(|| std::env::var("LM_CUDA_GEMM_THREAD").as_deref() != Ok("caller"))
}

/// `lhs · rhs` through cuBLASLt, or through `fallback` (burn's matmul) for dtypes and
/// layouts it does not take.
fn cuda_gemm(
    lhs: Tensor,
    rhs: Tensor,
    math: F32Math,
    fallback: fn(Tensor, Tensor) -> Tensor,
) -> Tensor {
    let start = Instant::now();
    let Some(elem) = element(lhs.dtype).filter(|_| lhs.dtype == rhs.dtype) else {
        return fallback(lhs, rhs);
    };
    let (lhs, rhs, problem) = planned(lhs, rhs);
    let Some(problem) = problem else {
        return fallback(lhs, rhs);
    };
    if problem.k == 0 {
        return fallback(lhs, rhs);
    }
    let out_shape = layout::output_shape(lhs.shape().as_slice(), rhs.shape().as_slice());
    let (client, device) = (lhs.client.clone(), lhs.device.clone());
    let out = empty_device_contiguous_dtype(
        client.clone(),
        device.clone(),
        Shape::from(out_shape),
        lhs.dtype,
    );
    if problem.m == 0 || problem.n == 0 || problem.batch == 0 {
        return out;
    }
    let ordinal = device.index;
    let (a, b, c) = (lhs.handle.clone(), rhs.handle.clone(), out.handle.clone());
    let enqueue = move || -> Result<(Instant, Instant), String> {
        let enqueue_start = Instant::now();
        let buffers = [&a, &b, &c];
        // cubecl keeps its CUDA stream private (see `ordering`): order ours with it through
        // device flags, or wait for its inputs here and for our product in `matmul`.
        let sync_inputs = || cubecl::future::block_on(client.sync()).expect("CUDA stream sync");
        let (ticket, [a, b, out]) = if device_flags() {
            let (ticket, addresses) = Ticket::take(&client, ordinal, buffers);
            (Some(ticket), addresses)
        } else {
            (None, buffers.map(|buffer| device_ptr(&client, buffer)))
        };
        let ordering = match &ticket {
            Some(ticket) => ticket.ordering(),
            None => {
                sync_inputs();
                Ordering::HostSynced
            }
        };
        let ptrs = Pointers { a, b, out };
        cublaslt::matmul(ordinal, &problem, elem, math, ptrs, ordering, &sync_inputs)
            .map_err(|e| format!("{e} (problem {problem:?}, {elem:?})"))?;
        if let Some(ticket) = ticket {
            ticket.finish();
        }
        Ok((enqueue_start, Instant::now()))
    };
    let enqueued = if on_server_thread() {
        // One round trip to cubecl's server thread for the whole product: there, its
        // launches and address reads run inline instead of each crossing its channel.
        lhs.client
            .exclusive(enqueue)
            .map_err(|e| format!("cubecl's server thread: {e:?}"))
            .and_then(|result| result)
    } else {
        enqueue()
    };
    match enqueued {
        Ok((enqueue_start, enqueue_end)) if host_time::enabled() => {
            host_time::record(start, enqueue_start, enqueue_end)
        }
        Ok(_) => {}
        Err(e) => panic!("{e}"),
    }
    out
}

impl<F: FloatElement, I: IntElement, BT: BoolElement> GemmBackend for Cube<F, I, BT> {
    fn gemm(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, math: F32Math) -> FloatTensor<Self> {
        cuda_gemm(lhs, rhs, math, <Self as FloatTensorOps<Self>>::float_matmul)
    }
}

impl<B: FusionBackend + GemmBackend> GemmBackend for Fusion<B> {
    fn gemm(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, math: F32Math) -> FloatTensor<Self> {
        let out_shape = layout::output_shape(lhs.shape.as_slice(), rhs.shape.as_slice());
        let dtype = lhs.dtype;
        let body: Body<B> = Arc::new(move |desc, handles| {
            let ([lhs, rhs], [out]) = desc.as_fixed::<2, 1>();
            let lhs = handles.get_float_tensor::<B>(lhs);
            let rhs = handles.get_float_tensor::<B>(rhs);
            handles.register_float_tensor::<B>(&out.id, B::gemm(lhs, rhs, math));
        });
        let [out] = outputs(register::<B>(
            "cublaslt_gemm",
            vec![lhs, rhs],
            vec![(Shape::from(out_shape), dtype)],
            body,
        ));
        out
    }
}

/// The last two dims swapped (a view).
fn transposed<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let rank = t.shape().num_dims();
    B::float_swap_dims(t, rank - 2, rank - 1)
}

#[derive(Debug)]
struct GemmBackward {
    math: F32Math,
}

impl<B: GemmBackend> Backward<B, 2> for GemmBackward {
    /// lhs, rhs
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_lhs, node_rhs] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (lhs, rhs) = ops.state;
        // C = A·B: dA = dC·Bᵀ, dB = Aᵀ·dC (equal batch dims: no broadcast to sum over).
        if let Some(node) = node_lhs {
            let d_lhs = B::gemm(grad.clone(), transposed::<B>(rhs), self.math);
            grads.register::<B>(node.id, d_lhs);
        }
        if let Some(node) = node_rhs {
            let d_rhs = B::gemm(transposed::<B>(lhs), grad, self.math);
            grads.register::<B>(node.id, d_rhs);
        }
    }
}

impl<B: GemmBackend, C: CheckpointStrategy> GemmBackend for Autodiff<B, C> {
    fn gemm(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, math: F32Math) -> FloatTensor<Self> {
        let nodes = [lhs.node.clone(), rhs.node.clone()];
        let (lhs, rhs) = (lhs.primitive, rhs.primitive);
        let backward = GemmBackward { math };
        match backward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::gemm(lhs.clone(), rhs.clone(), math);
                prep.finish((lhs, rhs), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gemm(lhs, rhs, math)),
        }
    }
}
