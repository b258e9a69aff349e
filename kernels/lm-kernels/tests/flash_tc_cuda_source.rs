//! The tensor-core FlashAttention kernels translated to CUDA C++ without a GPU.
//!
//! CubeCL compiles a kernel for CUDA only when it launches it on a CUDA device. This test
//! expands the kernels through a wgpu client (lavapipe, no GPU needed; only the kernel
//! definition is taken from it) and runs CubeCL's CUDA compiler on the definition, so the
//! generated source can be checked here and compiled with NVRTC off the GPU machine:
//!
//! ```sh
//! LM_CUDA_SOURCE_DIR=runs/flash-src cargo test -p lm-kernels --features wgpu,cuda \
//!     --test flash_tc_cuda_source
//! python3 bench/nvrtc_check.py runs/flash-src/*.cu     # needs pip's nvidia-cuda-nvrtc
//! ```
#![cfg(all(feature = "wgpu", feature = "cuda"))]

mod cuda_source;

use burn::tensor::DType;
use cubecl::prelude::*;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use lm_kernels::flash::tensor_core::flash_backward_dkv_tc::FlashBackwardDkvTc;
use lm_kernels::flash::tensor_core::flash_backward_dq_tc::FlashBackwardDqTc;
use lm_kernels::flash::tensor_core::flash_forward_tc::FlashForwardTc;
use lm_kernels::flash::tensor_core::{UNITS, VECTOR};

use cuda_source::{cuda_source, keep_source};

#[test]
fn tensor_core_kernels_translate_to_wmma_code() {
    let client = WgpuRuntime::client(&WgpuDevice::default());
    let settings = || {
        KernelSettings::default()
            .cube_dim(CubeDim::new_2d(32, (UNITS / 32) as u32))
            .address_type(AddressType::U32)
    };
    let tensor = || TensorCompilationArg { inplace: None };
    for dtype in [DType::BF16, DType::F16] {
        for head_dim in (1..=8).map(|i| 16 * i) {
            for causal in [false, true] {
                let elem: StorageType = dtype.into();
                let sources = [
                    (
                        "forward",
                        cuda_source(FlashForwardTc::<WgpuRuntime>::new(
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
                        )),
                    ),
                    (
                        "dq",
                        cuda_source(FlashBackwardDqTc::<WgpuRuntime>::new(
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
                        )),
                    ),
                    (
                        "dkv",
                        cuda_source(FlashBackwardDkvTc::<WgpuRuntime>::new(
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
                        )),
                    ),
                ];
                // The forward's two products, S = Q·Kᵀ (4 column blocks of the 64-key tile,
                // head_dim / 16 steps) and O += P·V (head_dim / 16 blocks, 4 steps), unrolled:
                // head_dim / 2 matrix instructions. Fewer meant blocks left out (d 80, 96 and
                // 112 lost their last blocks before the left-over group).
                let forward_mmas = sources[0].1.matches("mma_sync").count();
                assert_eq!(
                    forward_mmas,
                    head_dim / 2,
                    "forward {dtype:?} d{head_dim}: matrix instructions"
                );
                for (name, source) in sources {
                    assert!(
                        source.contains("mma_sync"),
                        "{name} {dtype:?} d{head_dim}: no matrix instruction in the source"
                    );
                    keep_source(
                        &format!("{name}_{dtype:?}_d{head_dim}_causal{causal}"),
                        &source,
                    );
                }
            }
        }
    }
}
