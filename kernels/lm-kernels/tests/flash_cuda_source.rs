//! The tensor-core FlashAttention kernels (register-resident `mma.sync`) translated to CUDA
//! C++ without a GPU.
//!
//! CubeCL compiles a kernel for CUDA only when it launches it on a CUDA device. This test
//! expands the kernels through a wgpu client (lavapipe, no GPU needed; only the kernel
//! definition is taken from it) and runs CubeCL's CUDA compiler on the definition, so the
//! generated source can be checked here and compiled with NVRTC off the GPU machine:
//!
//! ```sh
//! LM_CUDA_SOURCE_DIR=runs/flash-src cargo test -p lm-kernels --features wgpu,cuda \
//!     --test flash_cuda_source
//! python3 bench/nvrtc_check.py --arch sm_90a runs/flash-src/*.cu     # needs pip's nvidia-cuda-nvrtc
//! ```
#![cfg(all(feature = "wgpu", feature = "cuda"))]

mod cuda_source;

use burn::tensor::DType;
use cubecl::prelude::*;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use lm_kernels::flash::mma::flash_backward_dkv_mma::FlashBackwardDkvMma;
use lm_kernels::flash::mma::flash_backward_dq_mma::FlashBackwardDqMma;
use lm_kernels::flash::mma::flash_forward_mma::FlashForwardMma;
use lm_kernels::flash::mma::{VECTOR, WARPS, dkv_tile};

use cuda_source::{cuda_source, keep_source};

#[test]
fn register_kernels_translate_to_mma_sync_code() {
    let client = WgpuRuntime::client(&WgpuDevice::default());
    let settings = || {
        KernelSettings::default()
            .cube_dim(CubeDim::new_2d(32, WARPS as u32))
            .address_type(AddressType::U32)
    };
    let tensor = || TensorCompilationArg { inplace: None };
    for dtype in [DType::BF16, DType::F16] {
        for head_dim in (1..=8).map(|i| 16 * i) {
            for causal in [false, true] {
                let elem: StorageType = dtype.into();
                let forward = cuda_source(FlashForwardMma::<WgpuRuntime>::new(
                    settings(),
                    client.clone(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    (),
                    (),
                    VECTOR,
                    causal,
                    head_dim,
                    elem,
                ));
                let dq = cuda_source(FlashBackwardDqMma::<WgpuRuntime>::new(
                    settings(),
                    client.clone(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    (),
                    (),
                    VECTOR,
                    causal,
                    head_dim,
                    elem,
                ));
                let dkv = cuda_source(FlashBackwardDkvMma::<WgpuRuntime>::new(
                    settings(),
                    client.clone(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    tensor(),
                    (),
                    (),
                    VECTOR,
                    causal,
                    head_dim,
                    dkv_tile(head_dim),
                    elem,
                ));
                // Matrix instructions per staged tile, fully unrolled (each m16n8k16 is one
                // call of the generated helper): the forward's S = Q·Kᵀ and O += P·V over a
                // 64-row tile, head_dim / 2 each; the dQ kernel's S, dP and dQ products; the
                // dK/dV kernel's Sᵀ, dPᵀ, dV and dK over a q_rows tile.
                let q_rows = dkv_tile(head_dim);
                let expected = [
                    ("forward", &forward, head_dim),
                    ("dq", &dq, 3 * head_dim / 2),
                    ("dkv", &dkv, 4 * head_dim * q_rows / 128),
                ];
                for (name, source, mmas) in expected {
                    keep_source(
                        &format!("mma_{name}_{dtype:?}_d{head_dim}_causal{causal}"),
                        source,
                    );
                    let calls = source.matches("__mma_m16n8k16_").count();
                    let helpers = source.matches("uint32 const &reg_a_0").count();
                    assert_eq!(
                        calls - helpers,
                        mmas,
                        "{name} {dtype:?} d{head_dim}: matrix instructions"
                    );
                    assert!(
                        source.contains("ldmatrix"),
                        "{name} {dtype:?} d{head_dim}: operands not loaded by ldmatrix"
                    );
                }
            }
        }
    }
}
