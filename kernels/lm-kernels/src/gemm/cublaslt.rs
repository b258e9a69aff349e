//! cuBLASLt on one device: a handle, a stream of our own, a workspace, and one cached plan
//! (descriptors + an algorithm) per problem shape, dtype and alignment. The algorithm is
//! the fastest of the heuristic's first few candidates, timed on the problem's first call
//! (`LM_CUBLASLT_TUNE=0`: the heuristic's first; `LM_CUBLASLT_LOG=1` prints the timings).
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
use super::ordering::{Ordering, StreamFlagKernels};

/// cuBLASLt's workspace per device (NVIDIA recommends 32 MiB on Hopper).
const WORKSPACE_BYTES: usize = 32 << 20;

/// How many of the heuristic's algorithms are timed on a problem's first call.
const CANDIDATES: usize = 8;

/// Timed calls per candidate (after one untimed call).
const TUNING_CALLS: usize = 3;

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

pub(super) fn fail<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> GemmError {
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
    /// The plan with the heuristic's first algorithm, and all its candidates.
    fn new(
        handle: sys::cublasLtHandle_t,
        key: &PlanKey,
    ) -> Result<(Self, Vec<sys::cublasLtMatmulAlgo_t>), GemmError> {
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
            heuristic(handle, desc, plan.layouts, pref)
        })();
        // SAFETY: created above, destroyed once.
        unsafe {
            let _ = lt::destroy_matmul_pref(pref);
        }
        let candidates = result?;
        plan.algo = candidates[0];
        Ok((plan, candidates))
    }
}

/// The heuristic's algorithms for a problem, best guess first (at least one).
fn heuristic(
    handle: sys::cublasLtHandle_t,
    desc: sys::cublasLtMatmulDesc_t,
    [la, lb, lc]: [sys::cublasLtMatrixLayout_t; 3],
    pref: sys::cublasLtMatmulPreference_t,
) -> Result<Vec<sys::cublasLtMatmulAlgo_t>, GemmError> {
    // SAFETY: a plain C struct of integers, filled by the call below.
    let mut results: Vec<sys::cublasLtMatmulHeuristicResult_t> =
        vec![unsafe { std::mem::zeroed() }; CANDIDATES];
    let mut count = 0i32;
    // SAFETY: every descriptor is alive; `results` holds CANDIDATES entries.
    unsafe {
        sys::cublasLtMatmulAlgoGetHeuristic(
            handle,
            desc,
            la,
            lb,
            lc,
            lc,
            pref,
            CANDIDATES as i32,
            results.as_mut_ptr(),
            &mut count,
        )
    }
    .result()
    .map_err(fail("cublasLtMatmulAlgoGetHeuristic"))?;
    let algos: Vec<_> = results[..count.max(0) as usize]
        .iter()
        .filter(|r| r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS)
        .map(|r| r.algo)
        .collect();
    if algos.is_empty() {
        return Err(GemmError {
            what: "cublasLtMatmulAlgoGetHeuristic",
            status: "no algorithm for this problem".into(),
        });
    }
    Ok(algos)
}

fn env_flag(name: &str, default: bool) -> bool {
    match std::env::var(name).as_deref() {
        Ok("0") | Ok("false") | Ok("off") => false,
        Ok(_) => true,
        Err(_) => default,
    }
}

/// Whether a new problem's algorithm is chosen by timing the heuristic's candidates.
fn tuning() -> bool {
    static TUNE: OnceLock<bool> = OnceLock::new();
    *TUNE.get_or_init(|| env_flag("LM_CUBLASLT_TUNE", true))
}

fn logging() -> bool {
    static LOG: OnceLock<bool> = OnceLock::new();
    *LOG.get_or_init(|| env_flag("LM_CUBLASLT_LOG", false))
}

/// Everything cuBLASLt needs on one device.
struct DeviceGemm {
    context: drv_sys::CUcontext,
    handle: sys::cublasLtHandle_t,
    stream: drv_sys::CUstream,
    workspace: drv_sys::CUdeviceptr,
    flags: StreamFlagKernels,
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
            flags: StreamFlagKernels::load(stream, workspace)?,
            plans: HashMap::new(),
        })
    }

    /// Enqueues `plan` with `algo` on our stream.
    fn launch(
        &self,
        plan: &Plan,
        algo: &sys::cublasLtMatmulAlgo_t,
        ptrs: Pointers,
    ) -> Result<(), GemmError> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        let [la, lb, lc] = plan.layouts;
        // SAFETY: pointers come from live cubecl allocations of the sizes the problem
        // describes (checked by the caller); the plan's descriptors are alive.
        unsafe {
            lt::matmul(
                self.handle,
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
                algo,
                self.workspace as *mut c_void,
                WORKSPACE_BYTES,
                self.stream as sys::cudaStream_t,
            )
        }
        .map_err(fail("cublasLtMatmul"))
    }

    /// Mean milliseconds per call of each candidate on these operands (infinite for one
    /// that fails), measured with events on our stream; the inputs must be ready.
    fn time_candidates(
        &self,
        plan: &Plan,
        candidates: &[sys::cublasLtMatmulAlgo_t],
        ptrs: Pointers,
    ) -> Result<Vec<f32>, GemmError> {
        use drv_sys::CUevent_flags::CU_EVENT_DEFAULT;
        let start = drv::event::create(CU_EVENT_DEFAULT).map_err(fail("cuEventCreate"))?;
        let end = drv::event::create(CU_EVENT_DEFAULT).map_err(fail("cuEventCreate"))?;
        let mut times = Vec::with_capacity(candidates.len());
        for algo in candidates {
            let timed = || -> Result<f32, GemmError> {
                self.launch(plan, algo, ptrs)?;
                // SAFETY: live events and stream.
                unsafe { drv::event::record(start, self.stream) }.map_err(fail("cuEventRecord"))?;
                for _ in 0..TUNING_CALLS {
                    self.launch(plan, algo, ptrs)?;
                }
                unsafe {
                    drv::event::record(end, self.stream).map_err(fail("cuEventRecord"))?;
                    drv::event::synchronize(end).map_err(fail("cuEventSynchronize"))?;
                    drv::event::elapsed(start, end).map_err(fail("cuEventElapsedTime"))
                }
            };
            times.push(timed().map_or(f32::INFINITY, |ms| ms / TUNING_CALLS as f32));
        }
        // SAFETY: created above, destroyed once, no longer recorded anywhere.
        unsafe {
            let _ = drv::event::destroy(start);
            let _ = drv::event::destroy(end);
        }
        Ok(times)
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

/// `out = A · B` as planned in `problem` on device `ordinal`, on our stream, ordered with
/// cubecl's stream as `ordering` says. A problem's first call times the heuristic's
/// candidates; it calls `inputs_ready` first, which must return once the inputs are
/// computed (the caller synchronises cubecl's stream).
pub fn matmul(
    ordinal: usize,
    problem: &Problem,
    element: Element,
    math: F32Math,
    ptrs: Pointers,
    ordering: Ordering,
    inputs_ready: &dyn Fn(),
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
    if let Ordering::Flags { ready, value, .. } = ordering {
        dev.flags.wait(dev.stream, ready, value)?;
    }
    if !dev.plans.contains_key(&key) {
        let (mut plan, candidates) = Plan::new(dev.handle, &key)?;
        if tuning() && candidates.len() > 1 {
            inputs_ready();
            let times = dev.time_candidates(&plan, &candidates, ptrs)?;
            let best = (0..times.len())
                .min_by(|&i, &j| times[i].total_cmp(&times[j]))
                .unwrap_or(0);
            if logging() {
                let p = problem;
                eprintln!(
                    "cuBLASLt {}x{}x{} batch {} {element:?} {math:?}: candidates (ms) {times:.4?}, took #{best}",
                    p.m, p.n, p.k, p.batch
                );
            }
            plan.algo = candidates[best];
        }
        dev.plans.insert(key, plan);
    }
    let plan = &dev.plans[&key];
    dev.launch(plan, &plan.algo, ptrs)?;
    match ordering {
        // SAFETY: our live stream.
        Ordering::HostSynced => {
            unsafe { drv::stream::synchronize(dev.stream) }.map_err(fail("cuStreamSynchronize"))
        }
        Ordering::Flags { done, value, .. } => dev.flags.raise(dev.stream, done, value),
    }
}
