//! [`GemmBackend`]: the burn backend extension, for burn's CUDA backend (cuBLASLt), for
//! `Fusion<_>` over it (a custom fusion operation) and for `Autodiff<_>` (the backward is
//! two more products through the same path).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

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
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::cublaslt::{self, Element, F32Math, Ordering, Pointers};
use super::layout::{self, Problem, Unsupported};
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

/// How our stream is ordered with cubecl's: by default through flags in device memory (no
/// host round trip); `LM_CUDA_GEMM_SYNC=host` synchronises through the host around each
/// product instead (simpler, slower; a fallback should the flags misbehave on some driver).
fn device_flags() -> bool {
    static FLAGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FLAGS.get_or_init(|| std::env::var("LM_CUDA_GEMM_SYNC").as_deref() != Ok("host"))
}

/// Flag slots: product `i` uses slot `i % SLOTS` of the `ready` and `done` halves.
const SLOTS: u32 = 1024;

/// `flags[index] = value`, run on cubecl's stream once everything before it has run.
#[cube(launch)]
fn raise_flag(flags: &mut Array<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        flags[index as usize].store(value);
    }
}

/// Spins until `flags[index] ≥ value`, holding back everything after it on cubecl's stream.
#[cube(launch)]
fn await_flag(flags: &mut Array<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        loop {
            // An atomic add of 0 reads memory on every pass (a plain load may be hoisted).
            if flags[index as usize].fetch_add(0u32) >= value {
                break;
            }
        }
    }
}

/// A device's flag buffer (`2 · SLOTS` u32: `ready`, then `done`) and its device address,
/// made on first use and kept for the process.
fn flag_buffer(client: &ComputeClient<CudaRuntime>, ordinal: usize) -> (Handle, u64) {
    static BUFFERS: std::sync::Mutex<Vec<Option<(Handle, u64)>>> =
        std::sync::Mutex::new(Vec::new());
    let mut buffers = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    if buffers.len() <= ordinal {
        buffers.resize(ordinal + 1, None);
    }
    buffers[ordinal]
        .get_or_insert_with(|| {
            let zeros = vec![0u8; 4 * 2 * SLOTS as usize];
            let handle = client.create_from_slice(&zeros);
            let ptr = device_ptr(client, &handle);
            (handle, ptr)
        })
        .clone()
}

/// Launches one of the flag kernels on `client`'s stream.
fn launch_flag_kernel(
    client: &ComputeClient<CudaRuntime>,
    flags: Handle,
    raise: bool,
    index: u32,
    value: u32,
) {
    // SAFETY: the buffer holds 2 · SLOTS u32 and `index` < 2 · SLOTS.
    let arg = unsafe { ArrayArg::from_raw_parts(flags, 2 * SLOTS as usize) };
    let (count, dim) = (CubeCount::new_single(), CubeDim::new_1d(1));
    if raise {
        raise_flag::launch::<CudaRuntime>(client, count, dim, arg, index, value);
    } else {
        await_flag::launch::<CudaRuntime>(client, count, dim, arg, index, value);
    }
}

fn device_ptr(client: &ComputeClient<CudaRuntime>, handle: &Handle) -> u64 {
    client
        .get_resource(handle.clone())
        .expect("a live cubecl buffer has a device pointer")
        .resource()
        .ptr
}

/// The value each product raises its two flags to (a slot sees increasing values).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// `lhs · rhs` through cuBLASLt, or through `fallback` (burn's matmul) for dtypes and
/// layouts it does not take.
fn cuda_gemm(
    lhs: Tensor,
    rhs: Tensor,
    math: F32Math,
    fallback: fn(Tensor, Tensor) -> Tensor,
) -> Tensor {
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
    let ptrs = Pointers {
        a: device_ptr(&client, &lhs.handle),
        b: device_ptr(&client, &rhs.handle),
        out: device_ptr(&client, &out.handle),
    };
    let flags = device_flags().then(|| {
        let value = SEQUENCE
            .fetch_add(1, AtomicOrdering::Relaxed)
            .wrapping_add(1);
        let slot = value % SLOTS;
        let (handle, base) = flag_buffer(&client, ordinal);
        // Raised once the inputs are computed; our stream waits for it.
        launch_flag_kernel(&client, handle.clone(), true, slot, value);
        let ordering = Ordering::Flags {
            ready: base + 4 * slot as u64,
            done: base + 4 * (SLOTS + slot) as u64,
            value,
        };
        (ordering, handle, slot, value)
    });
    let ordering = match &flags {
        Some((ordering, ..)) => *ordering,
        None => {
            cubecl::future::block_on(client.sync()).expect("CUDA stream synchronisation");
            Ordering::HostSynced
        }
    };
    if let Err(e) = cublaslt::matmul(ordinal, &problem, elem, math, ptrs, ordering) {
        panic!("{e} (problem {problem:?}, {elem:?})");
    }
    if let Some((_, handle, slot, value)) = flags {
        // Everything after this on cubecl's stream waits for the product.
        launch_flag_kernel(&client, handle, false, SLOTS + slot, value);
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
