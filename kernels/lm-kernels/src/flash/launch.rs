//! Launching the kernels on burn's CubeCL tensors.

use burn::tensor::{DType, TensorMetadata};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::kernels::{flash_backward_dkv, flash_backward_dq, flash_forward};
use super::mma::{self, flash_backward_dkv_mma, flash_backward_dq_mma, flash_forward_mma};
use super::{AttentionShape, TileSizes, row_shape};

fn shape_of<R: CubeRuntime>(t: &CubeTensor<R>) -> AttentionShape {
    AttentionShape::of(t.shape().as_slice())
}

/// An uninitialised dense row-major tensor. The kernels index every buffer densely; burn's
/// default allocation may pad rows for alignment (CUDA does, e.g. `lse` of a 300-long
/// sequence), which broke every multi-head case with such lengths on the H200.
fn empty_dense<R: CubeRuntime>(
    client: cubecl::prelude::ComputeClient<R>,
    device: R::Device,
    shape: burn::tensor::Shape,
    dtype: DType,
) -> CubeTensor<R> {
    empty_device_contiguous_dtype(client, device, shape, dtype)
}

fn cube_count(rows: usize, block: usize, heads: usize) -> CubeCount {
    CubeCount::Static(rows.div_ceil(block) as u32, heads as u32, 1)
}

/// Whether a call with inputs of `dtype` and `head_dim` runs the tensor-core kernels
/// ([`mma`], where [`mma::eligible`] on this device) rather than the portable ones
/// ([`super::kernels`]). `LM_FLASH_KERNELS=portable` (or the older
/// `LM_FLASH_TENSOR_CORES=0`) keeps the portable ones everywhere.
pub fn uses_tensor_cores<R: CubeRuntime>(
    client: &ComputeClient<R>,
    dtype: DType,
    head_dim: usize,
) -> bool {
    // Read once: this runs for every attention call.
    static PORTABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let portable = *PORTABLE.get_or_init(|| {
        std::env::var("LM_FLASH_TENSOR_CORES").is_ok_and(|v| v == "0")
            || std::env::var("LM_FLASH_KERNELS").is_ok_and(|v| v == "portable")
    });
    let props = client.properties();
    let instruction = matches!(dtype, DType::F16 | DType::BF16) && {
        let elem: StorageType = dtype.into();
        props
            .features
            .matmul
            .mma
            .contains(&cubecl::ir::features::MmaConfig {
                a_type: elem,
                b_type: elem,
                cd_type: DType::F32.into(),
                m: 16,
                n: 8,
                k: 16,
            })
    };
    let max_shared = props.hardware.max_shared_memory_size;
    !portable && mma::eligible(dtype, head_dim, instruction, max_shared)
}

fn tensor_core_dim() -> CubeDim {
    CubeDim::new_2d(32, mma::WARPS as u32)
}

/// `(o, lse)` for contiguous-or-not `q`, `k`, `v` of one shape `[.., seq, head_dim]`.
pub fn forward<R: CubeRuntime>(
    q: CubeTensor<R>,
    k: CubeTensor<R>,
    v: CubeTensor<R>,
    causal: bool,
    scale: f32,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
    let dims = shape_of(&q);
    let tiles = TileSizes::for_head_dim(dims.head_dim);
    let (client, device, dtype) = (q.client.clone(), q.device.clone(), q.dtype);
    let o = empty_dense(client.clone(), device.clone(), q.shape(), dtype);
    let lse = empty_dense(client.clone(), device, row_shape(&q.shape()), DType::F32);
    if uses_tensor_cores(&client, dtype, dims.head_dim) {
        flash_forward_mma::launch::<R>(
            &client,
            cube_count(dims.seq, mma::BLOCK, dims.heads),
            tensor_core_dim(),
            mma::VECTOR,
            q.into_tensor_arg(),
            k.into_tensor_arg(),
            v.into_tensor_arg(),
            o.clone().into_tensor_arg(),
            lse.clone().into_tensor_arg(),
            scale,
            dims.seq as u32,
            causal,
            dims.head_dim,
            dtype.into(),
        );
        return (o, lse);
    }
    flash_forward::launch::<R>(
        &client,
        cube_count(dims.seq, tiles.block_q, dims.heads),
        CubeDim::new_1d(tiles.block_q as u32),
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        v.into_tensor_arg(),
        o.clone().into_tensor_arg(),
        lse.clone().into_tensor_arg(),
        scale,
        dims.seq as u32,
        causal,
        dims.head_dim,
        tiles.block_q,
        tiles.block_kv,
        dtype.into(),
    );
    (o, lse)
}

/// `(dq, dk, dv)` from the forward's inputs, its `o` and `lse`, and `d_o`.
#[allow(clippy::too_many_arguments)]
pub fn backward<R: CubeRuntime>(
    q: CubeTensor<R>,
    k: CubeTensor<R>,
    v: CubeTensor<R>,
    o: CubeTensor<R>,
    lse: CubeTensor<R>,
    d_o: CubeTensor<R>,
    causal: bool,
    scale: f32,
) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
    let [q, k, v, o, lse, d_o] = [q, k, v, o, lse, d_o].map(into_contiguous);
    let dims = shape_of(&q);
    let tiles = TileSizes::for_head_dim(dims.head_dim);
    let (client, device, dtype) = (q.client.clone(), q.device.clone(), q.dtype);
    let empty_like_q = || empty_dense(client.clone(), device.clone(), q.shape(), dtype);
    let (d_q, d_k, d_v) = (empty_like_q(), empty_like_q(), empty_like_q());
    let delta = empty_dense(
        client.clone(),
        device.clone(),
        row_shape(&q.shape()),
        DType::F32,
    );
    if uses_tensor_cores(&client, dtype, dims.head_dim) {
        let blocks = cube_count(dims.seq, mma::BLOCK, dims.heads);
        flash_backward_dq_mma::launch::<R>(
            &client,
            blocks.clone(),
            tensor_core_dim(),
            mma::VECTOR,
            q.clone().into_tensor_arg(),
            k.clone().into_tensor_arg(),
            v.clone().into_tensor_arg(),
            o.into_tensor_arg(),
            d_o.clone().into_tensor_arg(),
            lse.clone().into_tensor_arg(),
            delta.clone().into_tensor_arg(),
            d_q.clone().into_tensor_arg(),
            scale,
            dims.seq as u32,
            causal,
            dims.head_dim,
            dtype.into(),
        );
        flash_backward_dkv_mma::launch::<R>(
            &client,
            blocks,
            tensor_core_dim(),
            mma::VECTOR,
            q.into_tensor_arg(),
            k.into_tensor_arg(),
            v.into_tensor_arg(),
            d_o.into_tensor_arg(),
            lse.into_tensor_arg(),
            delta.into_tensor_arg(),
            d_k.clone().into_tensor_arg(),
            d_v.clone().into_tensor_arg(),
            scale,
            dims.seq as u32,
            causal,
            dims.head_dim,
            mma::dkv_tile(dims.head_dim),
            dtype.into(),
        );
        return (d_q, d_k, d_v);
    }
    flash_backward_dq::launch::<R>(
        &client,
        cube_count(dims.seq, tiles.block_q, dims.heads),
        CubeDim::new_1d(tiles.block_q as u32),
        q.clone().into_tensor_arg(),
        k.clone().into_tensor_arg(),
        v.clone().into_tensor_arg(),
        o.into_tensor_arg(),
        d_o.clone().into_tensor_arg(),
        lse.clone().into_tensor_arg(),
        delta.clone().into_tensor_arg(),
        d_q.clone().into_tensor_arg(),
        scale,
        dims.seq as u32,
        causal,
        dims.head_dim,
        tiles.block_q,
        tiles.block_kv,
        dtype.into(),
    );
    flash_backward_dkv::launch::<R>(
        &client,
        cube_count(dims.seq, tiles.block_kv, dims.heads),
        CubeDim::new_1d(tiles.block_kv as u32),
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        v.into_tensor_arg(),
        d_o.into_tensor_arg(),
        lse.into_tensor_arg(),
        delta.into_tensor_arg(),
        d_k.clone().into_tensor_arg(),
        d_v.clone().into_tensor_arg(),
        scale,
        dims.seq as u32,
        causal,
        dims.head_dim,
        tiles.block_kv,
        tiles.block_q,
        dtype.into(),
    );
    (d_q, d_k, d_v)
}
