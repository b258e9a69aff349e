//! Translating a kernel to CUDA C++ without a GPU, shared by the `*_cuda_source` tests.
//!
//! CubeCL compiles a kernel for CUDA only when it launches it on a CUDA device. These tests
//! expand the kernels through a wgpu client (lavapipe; only the kernel definition is taken
//! from it) and run CubeCL's CUDA compiler on the definition, so the generated source can be
//! checked here and compiled with NVRTC off the GPU machine (`bench/nvrtc_check.py`).

use cubecl::cuda::CudaCompiler;
use cubecl::prelude::*;
use cubecl::{Compiler, CubeTask};

/// The CUDA C++ source CubeCL generates for `kernel`.
pub fn cuda_source<K: CubeKernel + 'static>(kernel: K) -> String {
    let task = cubecl::prelude::KernelTask::<CudaCompiler, K>::new(kernel);
    let options = <CudaCompiler as Compiler>::CompilationOptions::default();
    task.compile(
        &mut Default::default(),
        &options,
        ExecutionMode::Unchecked,
        task.address_type(),
    )
    .expect("CubeCL's CUDA compiler accepts the kernel")
    .source
}

/// Writes `source` as `name.cu` into `$LM_CUDA_SOURCE_DIR` when that is set; a relative
/// directory is taken from the repository root (cargo runs tests in the crate's folder), so
/// the commands in the docs find the files.
pub fn keep_source(name: &str, source: &str) {
    if let Some(dir) = std::env::var_os("LM_CUDA_SOURCE_DIR") {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.cu")), source).unwrap();
    }
}
