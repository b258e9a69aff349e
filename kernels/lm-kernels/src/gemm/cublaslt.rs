//! cuBLASLt on one device: a handle, a stream of our own, a workspace, and one cached plan
//! (descriptors + the heuristic's algorithm) per problem shape, dtype and alignment.
//!
//! The library is loaded at run time by cudarc like the rest of CUDA; [`available`] says
//! whether it was found, so a machine without it keeps burn's matmul.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;
use cudarc::driver::{result as drv, sys as drv_sys};

use super::layout::{Operand, Problem};

/// cuBLASLt's workspace per device (NVIDIA recommends 32 MiB on Hopper).
const WORKSPACE_BYTES: usize = 32 << 20;

/// Element types the GEMM handles; the product accumulates in f32 for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Element {
    F32,
    Bf16,
    F16,
}

/// How f32 products are computed (bf16/f16 always accumulate in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum F32Math {
    /// IEEE f32 products (the conformance mode).
    Strict,
    /// Tensor-core TF32 products (10-bit mantissa inputs), like PyTorch's `allow_tf32`.
    Tf32,
}

/// Device pointers of one call (bytes, offsets applied).
#[derive(Debug, Clone, Copy)]
pub struct Pointers {
    pub a: u64,
    pub b: u64,
    pub out: u64,
}

/// A failure of the CUDA driver or of cuBLASLt, with the call that failed.
#[derive(Debug, thiserror::Error)]
#[error("cuBLASLt GEMM: {what} failed: {status}")]
pub struct GemmError {
    what: &'static str,
    status: String,
}

fn fail<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> GemmError {
    move |e| GemmError {
        what,
        status: format!("{e:?}"),
    }
}

/// Whether cuBLASLt and the CUDA driver can be loaded (checked once).
pub fn available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only probes whether the shared libraries load.
    *PRESENT.get_or_init(|| unsafe { drv_sys::is_culib_present() && sys::is_culib_present() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PlanKey {
    problem: Problem,
    element: Element,
    math: F32Math,
    /// Power-of-two alignment (bytes, ≤ 256) of the A, B and output pointers: the heuristic
    /// must not pick an algorithm that needs more.
    alignments: [u32; 3],
}

/// Descriptors and algorithm for one [`PlanKey`].
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3],
    algo: sys::cublasLtMatmulAlgo_t,
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: created by `Plan::new` and destroyed once, here.
        unsafe {
            let _ = lt::destroy_matmul_desc(self.desc);
            for layout in self.layouts {
                let _ = lt::destroy_matrix_layout(layout);
            }
        }
    }
}

fn data_type(element: Element) -> sys::cudaDataType {
    match element {
        Element::F32 => sys::cudaDataType::CUDA_R_32F,
        Element::Bf16 => sys::cudaDataType::CUDA_R_16BF,
        Element::F16 => sys::cudaDataType::CUDA_R_16F,
    }
}

/// Sets a plain-old-data attribute through one of cuBLASLt's `*SetAttribute` functions.
macro_rules! set_attr {
    ($setter:path, $obj:expr, $attr:expr, $value:expr, $what:literal) => {{
        let value = $value;
        // SAFETY: `value` lives across the call and its size is passed with it.
        unsafe {
            $setter(
                $obj,
                $attr,
                (&value as *const _) as *const c_void,
                std::mem::size_of_val(&value),
            )
        }
        .map_err(fail($what))
    }};
}

fn layout(
    element: Element,
    op: &Operand,
    batch: usize,
) -> Result<sys::cublasLtMatrixLayout_t, GemmError> {
    let layout = lt::create_matrix_layout(data_type(element), op.rows, op.cols, op.ld)
        .map_err(fail("cublasLtMatrixLayoutCreate"))?;
    if batch > 1 {
        use sys::cublasLtMatrixLayoutAttribute_t as A;
        set_attr!(
            lt::set_matrix_layout_attribute,
            layout,
            A::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
            batch as i32,
            "setting the batch count"
        )?;
        set_attr!(
            lt::set_matrix_layout_attribute,
            layout,
            A::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
            op.batch_stride,
            "setting the batch stride"
        )?;
    }
    Ok(layout)
}

impl Plan {
    fn new(handle: sys::cublasLtHandle_t, key: &PlanKey) -> Result<Self, GemmError> {
        use sys::cublasComputeType_t as C;
        use sys::cublasLtMatmulDescAttributes_t as D;
        use sys::cublasLtMatmulPreferenceAttributes_t as P;
        let p = &key.problem;
        let compute = match (key.element, key.math) {
            (Element::F32, F32Math::Tf32) => C::CUBLAS_COMPUTE_32F_FAST_TF32,
            _ => C::CUBLAS_COMPUTE_32F,
        };
        let desc = lt::create_matmul_desc(compute, sys::cudaDataType::CUDA_R_32F)
            .map_err(fail("cublasLtMatmulDescCreate"))?;
        // Own the descriptors from here on, so an error below frees them.
        let mut plan = Plan {
            desc,
            layouts: [std::ptr::null_mut(); 3],
            // SAFETY: a plain C struct of integers, filled by the heuristic below.
            algo: unsafe { std::mem::zeroed() },
        };
        // cublasOperation_t: 0 = N, 1 = T.
        let op = |o: &Operand| o.transpose as i32;
        set_attr!(
            lt::set_matmul_desc_attribute,
            desc,
            D::CUBLASLT_MATMUL_DESC_TRANSA,
            op(&p.first),
            "setting TRANSA"
        )?;
        set_attr!(
            lt::set_matmul_desc_attribute,
            desc,
            D::CUBLASLT_MATMUL_DESC_TRANSB,
            op(&p.second),
            "setting TRANSB"
        )?;
        plan.layouts = [
            layout(key.element, &p.first, p.batch)?,
            layout(key.element, &p.second, p.batch)?,
            layout(key.element, &p.out, p.batch)?,
        ];
        let pref = lt::create_matmul_pref().map_err(fail("cublasLtMatmulPreferenceCreate"))?;
        let result = (|| {
            set_attr!(
                lt::set_matmul_pref_attribute,
                pref,
                P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                WORKSPACE_BYTES as u64,
                "setting the workspace"
            )?;
            let [a, b, d] = key.alignments;
            let alignments = [
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, a),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, b),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, d),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, d),
            ];
            for (attr, bytes) in alignments {
                set_attr!(
                    lt::set_matmul_pref_attribute,
                    pref,
                    attr,
                    bytes,
                    "setting a pointer alignment"
                )?;
            }
            let [la, lb, lc] = plan.layouts;
            // SAFETY: every descriptor was created above and is alive.
            unsafe { lt::get_matmul_algo_heuristic(handle, desc, la, lb, lc, lc, pref) }.map_err(
                fail("cublasLtMatmulAlgoGetHeuristic (no algorithm for this problem)"),
            )
        })();
        // SAFETY: created above, destroyed once.
        unsafe {
            let _ = lt::destroy_matmul_pref(pref);
        }
        plan.algo = result?.algo;
        Ok(plan)
    }
}

/// Everything cuBLASLt needs on one device.
struct DeviceGemm {
    context: drv_sys::CUcontext,
    handle: sys::cublasLtHandle_t,
    stream: drv_sys::CUstream,
    workspace: drv_sys::CUdeviceptr,
    plans: HashMap<PlanKey, Plan>,
}

// SAFETY: the raw CUDA handles are used only under the `DEVICES` lock, with the device's
// context made current on the calling thread first.
unsafe impl Send for DeviceGemm {}

impl DeviceGemm {
    fn new(ordinal: usize) -> Result<Self, GemmError> {
        let device = drv::device::get(ordinal as i32).map_err(fail("cuDeviceGet"))?;
        // SAFETY: `device` comes from cuDeviceGet; the primary context is the one cubecl
        // uses, so pointers from its allocations are valid here.
        let context = unsafe { drv::primary_ctx::retain(device) }
            .map_err(fail("cuDevicePrimaryCtxRetain"))?;
        // SAFETY: a live context.
        unsafe { drv::ctx::set_current(context) }.map_err(fail("cuCtxSetCurrent"))?;
        let handle = lt::create_handle().map_err(fail("cublasLtCreate"))?;
        let stream = drv::stream::create(drv::stream::StreamKind::NonBlocking)
            .map_err(fail("cuStreamCreate"))?;
        // SAFETY: a plain allocation in the current context, freed never (it lives as long
        // as the process, like cubecl's own pools).
        let workspace =
            unsafe { drv::malloc_sync(WORKSPACE_BYTES) }.map_err(fail("cuMemAlloc (workspace)"))?;
        Ok(Self {
            context,
            handle,
            stream,
            workspace,
            plans: HashMap::new(),
        })
    }
}

fn devices() -> &'static Mutex<HashMap<usize, DeviceGemm>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, DeviceGemm>>> = OnceLock::new();
    DEVICES.get_or_init(Default::default)
}

/// The largest power of two (≤ 256) dividing `ptr`.
fn alignment(ptr: u64) -> u32 {
    1 << ptr.trailing_zeros().min(8)
}

/// `out = A · B` as planned in `problem` on device `ordinal`, on our stream, returning once
/// it is done (the caller has synchronised the stream that produced the inputs).
pub fn matmul(
    ordinal: usize,
    problem: &Problem,
    element: Element,
    math: F32Math,
    ptrs: Pointers,
) -> Result<(), GemmError> {
    let mut devices = devices().lock().unwrap_or_else(|e| e.into_inner());
    let dev = match devices.entry(ordinal) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(DeviceGemm::new(ordinal)?),
    };
    // SAFETY: the primary context retained in `DeviceGemm::new`.
    unsafe { drv::ctx::set_current(dev.context) }.map_err(fail("cuCtxSetCurrent"))?;
    let key = PlanKey {
        problem: *problem,
        element,
        math,
        // cuBLASLt's A is our B's buffer and its B our A's.
        alignments: [alignment(ptrs.b), alignment(ptrs.a), alignment(ptrs.out)],
    };
    let plan = match dev.plans.entry(key) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(Plan::new(dev.handle, &key)?),
    };
    let (alpha, beta) = (1.0f32, 0.0f32);
    let stream = dev.stream;
    // SAFETY (all below): pointers come from live cubecl allocations of the sizes the
    // problem describes (checked by the caller); the plan's descriptors are alive.
    let [la, lb, lc] = plan.layouts;
    unsafe {
        lt::matmul(
            dev.handle,
            plan.desc,
            (&alpha as *const f32).cast(),
            (&beta as *const f32).cast(),
            ptrs.b as *const c_void,
            la,
            ptrs.a as *const c_void,
            lb,
            ptrs.out as *const c_void,
            lc,
            ptrs.out as *mut c_void,
            lc,
            &plan.algo,
            dev.workspace as *mut c_void,
            WORKSPACE_BYTES,
            stream as sys::cudaStream_t,
        )
    }
    .map_err(fail("cublasLtMatmul"))?;
    unsafe { drv::stream::synchronize(stream) }.map_err(fail("cuStreamSynchronize"))
}
