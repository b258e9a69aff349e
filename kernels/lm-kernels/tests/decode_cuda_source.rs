//! The generation and optimizer helper kernels (the token draw, the residual add + RMSNorm,
//! the sum of squares) translated to CUDA C++ without a GPU, as `flash_tc_cuda_source.rs`
//! does for the attention kernels: CubeCL's CUDA compiler must accept them, and with
//! `LM_CUDA_SOURCE_DIR` set the sources are written there for `bench/nvrtc_check.py`.
#![cfg(all(feature = "wgpu", feature = "cuda"))]

use burn::tensor::DType;
use cubecl::cuda::CudaCompiler;
use cubecl::prelude::*;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use cubecl::{Compiler, CubeTask};
use lm_kernels::adamw::kernels::sum_squares_partial::SumSquaresPartial;
use lm_kernels::decode::draw::draw_rows::DrawRows;
use lm_kernels::rms_norm::kernels::add_rms_norm_forward::AddRmsNormForward;

fn cuda_source<K: CubeKernel + 'static>(kernel: K) -> String {
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
    let out_dir = std::env::var_os("LM_CUDA_SOURCE_DIR").map(std::path::PathBuf::from);
    for (name, source) in sources {
        assert!(
            source.contains("__global__"),
            "{name}: no kernel in the source"
        );
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.cu")), source).unwrap();
        }
    }
}
