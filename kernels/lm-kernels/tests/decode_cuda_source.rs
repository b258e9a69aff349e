//! The generation and optimizer helper kernels (the token draw, the residual add + RMSNorm,
//! the sum of squares) translated to CUDA C++ without a GPU (see `cuda_source/mod.rs`):
//! CubeCL's CUDA compiler must accept them, and with `LM_CUDA_SOURCE_DIR` set the sources
//! are written there for `bench/nvrtc_check.py`.
#![cfg(all(feature = "wgpu", feature = "cuda"))]

mod cuda_source;

use burn::tensor::DType;
use cubecl::prelude::*;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use lm_kernels::adamw::kernels::sum_squares_partial::SumSquaresPartial;
use lm_kernels::decode::draw::draw_rows::DrawRows;
use lm_kernels::rms_norm::kernels::add_rms_norm_forward::AddRmsNormForward;

use cuda_source::{cuda_source, keep_source};

#[test]
fn helper_kernels_translate_to_cuda() {
    let client = WgpuRuntime::client(&WgpuDevice::default());
    let settings = || {
        KernelSettings::default()
            .cube_dim(CubeDim::new_1d(256))
            .address_type(AddressType::U32)
    };
    let tensor = || TensorCompilationArg { inplace: None };
    let mut sources = Vec::new();
    for dtype in [DType::F32, DType::BF16] {
        let elem: StorageType = dtype.into();
        let f32_elem: StorageType = DType::F32.into();
        sources.push((
            format!("draw_rows_{dtype:?}"),
            cuda_source(DrawRows::<WgpuRuntime>::new(
                settings(),
                client.clone(),
                tensor(),
                tensor(),
                tensor(),
                (),
                256,
                elem,
            )),
        ));
        sources.push((
            format!("add_rms_norm_{dtype:?}"),
            cuda_source(AddRmsNormForward::<WgpuRuntime>::new(
                settings(),
                client.clone(),
                tensor(),
                tensor(),
                tensor(),
                tensor(),
                tensor(),
                (),
                (),
                (),
                256,
                [elem, f32_elem],
            )),
        ));
    }
    sources.push((
        "sum_squares".into(),
        cuda_source(SumSquaresPartial::<WgpuRuntime>::new(
            settings(),
            client.clone(),
            tensor(),
            tensor(),
            (),
            256,
        )),
    ));
    for (name, source) in sources {
        assert!(
            source.contains("__global__"),
            "{name}: no kernel in the source"
        );
        keep_source(&name, &source);
    }
}
