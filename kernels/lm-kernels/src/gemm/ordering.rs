//! Ordering our cuBLASLt stream with cubecl's on the device, without waiting for either
//! stream to drain.
//!
//! cubecl-cuda 0.10 keeps its CUDA stream private, so a product cannot be enqueued on it and
//! no event can be recorded there. Each product therefore takes a ticket and a slot in a
//! small flag buffer (cubecl memory, so both sides can reach it):
//!
//! 1. cubecl's stream runs [`raise_flag`] (`ready[slot] = ticket`) after the inputs;
//! 2. our stream runs `lm_await_flag` (PTX below: spin until `ready[slot] ≥ ticket`), the
//!    product, then `lm_raise_flag` (`done[slot] = ticket`);
//! 3. cubecl's stream runs [`await_flag`] (spin until `done[slot] ≥ ticket`), so nothing
//!    after it (readers of the output, reuse of the inputs' memory) starts early.
//!
//! Each spinner is one thread of one cube and only ever waits for work already handed to the
//! driver, so CUDA's lazy module loading, which may wait for running kernels, cannot deadlock
//! with it. cubecl launches through a server thread that runs tasks in order; the ticket
//! reads the operands' device addresses (blocking calls to that thread) after queueing its
//! `ready` launch, so by the time our stream waits, the launch has reached the driver. No
//! flush is needed: a flush would also wait for cubecl's previous flush fence and keep the
//! host at most one product ahead of the GPU (docs/PERF.md, run 6). Comparisons wrap, so
//! tickets may overflow.
//! Stream memory operations (`cuStreamWaitValue32`) would avoid our spinner, but the driver
//! refuses them on cubecl's stream-ordered pool memory (`CUDA_ERROR_INVALID_VALUE`, seen on
//! an H100), hence the two PTX kernels. `LM_CUDA_GEMM_SYNC=host` orders through the host
//! instead (wait for cubecl's stream, run, wait for ours): slower, kept as a fallback.

use std::ffi::{CString, c_void};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Mutex, OnceLock};

use cubecl::cuda::CudaRuntime;
use cubecl::prelude::*;
use cubecl::server::Handle;
use cudarc::driver::{result as drv, sys as drv_sys};

use super::cublaslt::{GemmError, fail};

/// Whether products are ordered through device flags (default) or the host
/// (`LM_CUDA_GEMM_SYNC=host`).
pub fn device_flags() -> bool {
    static FLAGS: OnceLock<bool> = OnceLock::new();
    *FLAGS.get_or_init(|| std::env::var("LM_CUDA_GEMM_SYNC").as_deref() != Ok("host"))
}

/// Flag slots: the product with ticket `t` uses slot `t % SLOTS` of the `ready` and `done`
/// halves, so products enqueued from several threads never share a flag.
const SLOTS: u32 = 1024;

/// `flags[index] = value`, run on cubecl's stream once everything before it has run.
#[cube(launch)]
fn raise_flag(flags: &mut Array<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        flags[index as usize].store(value);
    }
}

/// Spins until `flags[index] ≥ value` (wrapping), holding back everything after it on
/// cubecl's stream.
#[cube(launch)]
fn await_flag(flags: &mut Array<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        loop {
            // An atomic add of 0 reads memory on every pass (a plain load may be hoisted).
            let behind = value - flags[index as usize].fetch_add(0u32);
            // `value - flag` wraps: 0 or ≥ 2³¹ means the flag has reached `value`.
            if behind == 0u32 || behind >= 0x8000_0000u32 {
                break;
            }
        }
    }
}

/// Our stream's two kernels, one thread each: wait for a flag to reach a value (wrapping
/// compare, sleeping briefly between reads), and set one after everything before it.
const STREAM_FLAGS_PTX: &str = r#"
.version 7.0
.target sm_70
.address_size 64

.visible .entry lm_await_flag(.param .u64 flag, .param .u32 value)
{
    .reg .pred %p;
    .reg .b32 %r<3>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd0, [flag];
    cvta.to.global.u64 %rd1, %rd0;
    ld.param.u32 %r0, [value];
WAIT:
    ld.relaxed.gpu.global.u32 %r1, [%rd1];
    sub.s32 %r2, %r1, %r0;
    setp.ge.s32 %p, %r2, 0;
    @%p bra DONE;
    nanosleep.u32 32;
    bra WAIT;
DONE:
    fence.acq_rel.gpu;
    ret;
}

.visible .entry lm_raise_flag(.param .u64 flag, .param .u32 value)
{
    .reg .b32 %r0;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd0, [flag];
    cvta.to.global.u64 %rd1, %rd0;
    ld.param.u32 %r0, [value];
    fence.acq_rel.gpu;
    st.relaxed.gpu.global.u32 [%rd1], %r0;
    ret;
}
"#;

/// The PTX module's two functions, loaded once per device context.
pub struct StreamFlagKernels {
    await_flag: drv_sys::CUfunction,
    raise_flag: drv_sys::CUfunction,
}

impl StreamFlagKernels {
    /// Loads the module into the current context and runs both kernels once on `stream`
    /// with `scratch` (a device address of at least 4 writable bytes), so neither is loaded
    /// lazily later, while a spinner may be running.
    pub fn load(stream: drv_sys::CUstream, scratch: u64) -> Result<Self, GemmError> {
        let ptx = CString::new(STREAM_FLAGS_PTX).expect("the PTX has no NUL");
        // SAFETY: a NUL-terminated PTX image; the module lives as long as the process.
        unsafe {
            let module = drv::module::load_data(ptx.as_ptr().cast())
                .map_err(fail("cuModuleLoadData (stream flags)"))?;
            let get = |name: &str| {
                drv::module::get_function(module, CString::new(name).expect("no NUL"))
                    .map_err(fail("cuModuleGetFunction (stream flags)"))
            };
            let kernels = Self {
                await_flag: get("lm_await_flag")?,
                raise_flag: get("lm_raise_flag")?,
            };
            kernels.raise(stream, scratch, 0)?;
            kernels.wait(stream, scratch, 0)?;
            drv::stream::synchronize(stream).map_err(fail("cuStreamSynchronize"))?;
            Ok(kernels)
        }
    }

    fn launch(
        function: drv_sys::CUfunction,
        stream: drv_sys::CUstream,
        mut flag: u64,
        mut value: u32,
    ) -> Result<(), GemmError> {
        let mut params = [
            (&mut flag as *mut u64).cast::<c_void>(),
            (&mut value as *mut u32).cast::<c_void>(),
        ];
        // SAFETY: a function of the loaded module taking (u64, u32); `flag` is the device
        // address of a live u32 in the flag buffer.
        unsafe { drv::launch_kernel(function, (1, 1, 1), (1, 1, 1), 0, stream, &mut params) }
            .map_err(fail("cuLaunchKernel (stream flags)"))
    }

    /// Holds back `stream` until the flag at `flag` reaches `value`.
    pub fn wait(&self, stream: drv_sys::CUstream, flag: u64, value: u32) -> Result<(), GemmError> {
        Self::launch(self.await_flag, stream, flag, value)
    }

    /// Sets the flag at `flag` to `value` once everything before it on `stream` has run.
    pub fn raise(&self, stream: drv_sys::CUstream, flag: u64, value: u32) -> Result<(), GemmError> {
        Self::launch(self.raise_flag, stream, flag, value)
    }
}

/// How our stream is ordered with the stream that produced the inputs and will consume the
/// output (cubecl's).
#[derive(Debug, Clone, Copy)]
pub enum Ordering {
    /// The caller has synchronised cubecl's stream; the product waits for ours.
    HostSynced,
    /// Wait on `ready ≥ value` before the product and raise `done = value` after it (device
    /// addresses of two u32 flags).
    Flags { ready: u64, done: u64, value: u32 },
}

/// One product's flags: `ready` raised on cubecl's stream when taken; [`Ticket::finish`]
/// makes cubecl's stream wait for `done` after the product has been enqueued on ours.
pub struct Ticket {
    client: ComputeClient<CudaRuntime>,
    handle: Handle,
    /// Device address of the flag buffer.
    base: u64,
    value: u32,
}

/// The ticket each product raises its two flags to (a slot sees increasing values).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl Ticket {
    /// Takes a ticket, raises its `ready` flag on `client`'s stream and returns the device
    /// addresses of `buffers` (the product's operands).
    ///
    /// The addresses are read through blocking calls that cubecl's server thread runs after
    /// the `ready` launch, so on return that launch has reached the driver and our spinner
    /// waits only for work the GPU already has. A launch still queued in the server could
    /// block behind a lazily loaded kernel, and CUDA's lazy loading may wait for every
    /// running kernel, our spinner included: a deadlock, seen on an H100.
    pub fn take<const N: usize>(
        client: &ComputeClient<CudaRuntime>,
        ordinal: usize,
        buffers: [&Handle; N],
    ) -> (Self, [u64; N]) {
        const {
            assert!(
                N > 0,
                "the addresses' blocking reads order the ready launch"
            )
        };
        let value = SEQUENCE
            .fetch_add(1, AtomicOrdering::Relaxed)
            .wrapping_add(1);
        let (handle, base) = flag_buffer(client, ordinal);
        let ticket = Self {
            client: client.clone(),
            handle,
            base,
            value,
        };
        launch_flag_kernel(client, ticket.handle.clone(), true, ticket.slot(), value);
        let addresses = buffers.map(|buffer| device_ptr(client, buffer));
        (ticket, addresses)
    }

    fn slot(&self) -> u32 {
        self.value % SLOTS
    }

    /// Where our stream waits and what it raises.
    pub fn ordering(&self) -> Ordering {
        let flag = |index: u32| self.base + 4 * index as u64;
        Ordering::Flags {
            ready: flag(self.slot()),
            done: flag(SLOTS + self.slot()),
            value: self.value,
        }
    }

    /// Everything enqueued on cubecl's stream after this waits for the product.
    pub fn finish(self) {
        let done = SLOTS + self.slot();
        launch_flag_kernel(&self.client, self.handle, false, done, self.value);
    }
}

/// A device's flag buffer (`2 · SLOTS` u32: `ready`, then `done`) and its device address,
/// made on first use and kept for the process.
fn flag_buffer(client: &ComputeClient<CudaRuntime>, ordinal: usize) -> (Handle, u64) {
    static BUFFERS: Mutex<Vec<Option<(Handle, u64)>>> = Mutex::new(Vec::new());
    let mut buffers = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    if buffers.len() <= ordinal {
        buffers.resize(ordinal + 1, None);
    }
    buffers[ordinal]
        .get_or_insert_with(|| {
            let zeros = vec![0u8; 4 * 2 * SLOTS as usize];
            let handle = client.create_from_slice(&zeros);
            // Both flag kernels run once now (slot 0 is 0, so the wait returns at once):
            // none is then loaded lazily while a spinner runs. And our spinner reads the
            // flags from another stream: the zeros must be there.
            launch_flag_kernel(client, handle.clone(), true, 0, 0);
            launch_flag_kernel(client, handle.clone(), false, 0, 0);
            cubecl::future::block_on(client.sync()).expect("CUDA stream synchronisation");
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

/// The device address of a cubecl buffer.
pub fn device_ptr(client: &ComputeClient<CudaRuntime>, handle: &Handle) -> u64 {
    client
        .get_resource(handle.clone())
        .expect("a live cubecl buffer has a device pointer")
        .resource()
        .ptr
}
