//! The tensor-core FlashAttention-2 kernels (CUDA; f16/bf16 inputs, head dims 16..=128 in
//! steps of 16), built on CubeCL's cooperative matrix ops (`cmma`, WMMA 16×16×16 with f32
//! accumulation).
//!
//! A cube is four warps. It owns a block of [`BLOCK`] rows (query rows in the forward and dQ
//! kernels, key rows in the dK/dV kernel), 16 per warp, and walks the other operand in blocks
//! of [`BLOCK`] rows staged in shared memory (16-byte loads, issued one block ahead into
//! registers so they are in flight during the current block's work). Every matrix product is
//! a warp's own
//! `16 × BLOCK` or `16 × head_dim` strip: products go through WMMA fragments, and the
//! element-wise work between them (masking, online softmax, `dS = P ∘ (dP − δ)`) is done by
//! lane pairs on the strip in shared memory, two lanes per row, half the columns each.
//! Accumulators (O, dQ, dK, dV) live in shared memory as f32 and are loaded into fragments
//! for each product; the forward rescales its rows there when the running maximum moves.
//!
//! The backward is two kernels as in the portable path: dQ (which also writes
//! `delta = rowsum(dO ∘ O)`) over key blocks, then dK/dV over query blocks, so no atomics are
//! needed and results are deterministic.

use cubecl::prelude::*;

/// Rows per cube (4 warps × 16) and rows per staged block of the other operand.
pub const BLOCK: usize = 64;
/// Units per cube: four warps of 32.
pub const UNITS: usize = 128;
/// Rows of a warp's strip (the WMMA tile edge).
const STRIP: usize = 16;
/// Padding (elements) of each row of the f16/bf16 tiles that feed the matrix ops: rows of
/// 64 or 128 elements would start in the same shared-memory bank, and the fragment loads
/// would conflict 8 ways.
const PAD: usize = 8;
/// Accumulator fragments a warp keeps live in one product (each A fragment serves them all;
/// 8 at d 128 spilled registers).
const LIVE_ACCUMULATORS: usize = 4;
/// Elements per global load when staging tiles (16 bytes of f16/bf16).
pub const VECTOR: usize = 8;

/// Shared memory (bytes) each kernel needs for `head_dim` and an input element of
/// `elem_bytes`, so the launcher can fall back where the device has less.
pub fn shared_bytes(head_dim: usize, elem_bytes: usize) -> [usize; 3] {
    let tile = BLOCK * (head_dim + PAD) * elem_bytes;
    let probs = BLOCK * (BLOCK + PAD) * elem_bytes;
    let (acc, scores) = (BLOCK * head_dim * 4, BLOCK * BLOCK * 4);
    let forward = 3 * tile + probs + scores + acc;
    let d_q = 4 * tile + probs + 2 * scores + acc;
    let d_kv = 4 * tile + 2 * probs + 2 * scores + 2 * acc + 2 * BLOCK * 4;
    [forward, d_q, d_kv]
}

/// Whether these kernels serve inputs of `dtype` with `head_dim` on a device that has
/// 16×16×16 matrix ops of that type into f32 (`matrix_ops`) and `max_shared` bytes of shared
/// memory per cube: f16/bf16, a head dim in 16..=128 that is a multiple of 16, and room for
/// the largest kernel's buffers (on an A100's 163 KiB, d 128 falls back to the portable path).
pub fn eligible(
    dtype: burn::tensor::DType,
    head_dim: usize,
    matrix_ops: bool,
    max_shared: usize,
) -> bool {
    use burn::tensor::DType;
    matches!(dtype, DType::F16 | DType::BF16)
        && (16..=128).contains(&head_dim)
        && head_dim.is_multiple_of(16)
        && matrix_ops
        && shared_bytes(head_dim, dtype.size())
            .iter()
            .all(|&bytes| bytes <= max_shared)
}

/// Loads rows `[first, first + BLOCK)` of one `[seq, head_dim]` head into registers, 16
/// bytes per load and `BLOCK · head_dim / (VECTOR · UNITS)` loads per unit; rows past `seq`
/// read as zeros. Issued one tile ahead, so the loads are in flight while the cube computes.
#[cube]
fn fetch_rows<F: Float, N: Size>(
    src: &Tensor<Vector<F, N>>,
    regs: &mut Array<Vector<F, N>>,
    head_base: usize,
    first: usize,
    seq: usize,
    #[comptime] head_dim: usize,
) {
    let width = comptime!(head_dim / VECTOR);
    let count = comptime!(BLOCK * head_dim / (VECTOR * UNITS));
    let unit = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;
    #[unroll]
    for i in 0..count {
        let idx = unit + i * UNITS;
        let row = idx / width;
        let mut value = Vector::new(F::new(0.0));
        if first + row < seq {
            value = src[(head_base + (first + row) * head_dim) / VECTOR + idx % width];
        }
        regs[i] = value;
    }
}

/// Registers for one [`fetch_rows`].
#[cube]
fn row_registers<F: Float, N: Size>(#[comptime] head_dim: usize) -> Array<Vector<F, N>> {
    Array::new(comptime!(BLOCK * head_dim / (VECTOR * UNITS)))
}

/// Writes what [`fetch_rows`] loaded into `tile` (row-major, row stride `head_dim + PAD`).
#[cube]
fn store_rows<F: Float, N: Size>(
    regs: &Array<Vector<F, N>>,
    tile: &mut SharedMemory<F>,
    #[comptime] head_dim: usize,
) {
    let width = comptime!(head_dim / VECTOR);
    let count = comptime!(BLOCK * head_dim / (VECTOR * UNITS));
    let unit = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;
    #[unroll]
    for i in 0..count {
        let idx = unit + i * UNITS;
        let at = (idx / width) * (head_dim + PAD) + (idx % width) * VECTOR;
        let value = regs[i];
        #[unroll]
        for j in 0..VECTOR {
            tile[at + j] = value[j];
        }
    }
}

/// [`fetch_rows`] then [`store_rows`], for tiles loaded once.
#[cube]
fn stage_rows<F: Float, N: Size>(
    src: &Tensor<Vector<F, N>>,
    tile: &mut SharedMemory<F>,
    head_base: usize,
    first: usize,
    seq: usize,
    #[comptime] head_dim: usize,
) {
    let mut regs = row_registers::<F, N>(head_dim);
    fetch_rows::<F, N>(src, &mut regs, head_base, first, seq, head_dim);
    store_rows::<F, N>(&regs, tile, head_dim);
}

/// Column `c` of the `width` columns a lane visits in its half row, in an order rotated by
/// its row and half, so that the 32 lanes of a warp touch 32 different shared-memory banks
/// (rows of 32 or 64 f32 values would otherwise put every lane on one bank).
#[cube]
fn rotated(c: usize, #[comptime] width: usize) -> usize {
    (c + (UNIT_POS_X / 2) as usize + (UNIT_POS_X % 2) as usize * 16) % width
}

/// Copies `BLOCK` per-row f32 values starting at `first` (zeros past `seq`).
#[cube]
fn stage_row_values(
    src: &Tensor<f32>,
    dst: &mut SharedMemory<f32>,
    row_base: usize,
    first: usize,
    seq: usize,
) {
    let unit = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;
    if unit < BLOCK {
        let mut value = 0.0f32;
        if first + unit < seq {
            value = src[row_base + first + unit];
        }
        dst[unit] = value;
    }
}

/// Sets the `len` values of `acc` to zero, cooperatively.
#[cube]
fn clear(acc: &mut SharedMemory<f32>, #[comptime] len: usize) {
    let mut idx = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;
    while idx < len {
        acc[idx] = 0.0;
        idx += UNITS;
    }
}

/// Warp `warp`'s `16 × width` strip of `out` (rows `16·warp..`, stride `width`) from
/// `A · Bᵀ`: A this warp's 16 rows of `a`, B `width` rows of `b` (both `depth` wide, row
/// stride `depth + PAD`).
#[cube]
fn strip_times_transposed<F: Float>(
    a: &SharedMemory<F>,
    b: &SharedMemory<F>,
    out: &mut SharedMemory<f32>,
    warp: usize,
    #[comptime] depth: usize,
    #[comptime] width: usize,
) {
    strip_product::<F>(a, b, out, warp, depth, width, true, false);
}

/// `acc[strip] += A · B`: A this warp's 16 rows of `a` (`depth` wide, stride `depth + PAD`),
/// B all of `b` (`depth` × `width`, stride `width + PAD`), `acc` `width` wide (stride
/// `width`).
#[cube]
fn strip_accumulate<F: Float>(
    a: &SharedMemory<F>,
    b: &SharedMemory<F>,
    acc: &mut SharedMemory<f32>,
    warp: usize,
    #[comptime] depth: usize,
    #[comptime] width: usize,
) {
    strip_product::<F>(a, b, acc, warp, depth, width, false, true);
}

/// The warp's strip of `out` from `A · B` (`b_transposed`: `A · Bᵀ`, B's rows `depth` wide),
/// added to `out` when `accumulate`. The strip's 16×16 blocks are done in groups of up to
/// [`LIVE_ACCUMULATORS`] live fragments, so each A fragment is loaded once per group rather
/// than once per block (all 8 blocks of d 128 at once spilled registers); a last, smaller
/// group takes the blocks left over (d 80, 96 and 112 have 5, 6 and 7).
#[cube]
#[allow(clippy::too_many_arguments)]
fn strip_product<F: Float>(
    a: &SharedMemory<F>,
    b: &SharedMemory<F>,
    out: &mut SharedMemory<f32>,
    warp: usize,
    #[comptime] depth: usize,
    #[comptime] width: usize,
    #[comptime] b_transposed: bool,
    #[comptime] accumulate: bool,
) {
    let blocks = comptime!(width / STRIP);
    let group = comptime!(min(blocks, LIVE_ACCUMULATORS));
    let full_groups = comptime!(blocks / group);
    let left_over = comptime!(blocks % group);
    #[unroll]
    for first in 0..full_groups {
        strip_group::<F>(
            a,
            b,
            out,
            warp,
            first * group,
            group,
            depth,
            width,
            b_transposed,
            accumulate,
        );
    }
    if comptime!(left_over > 0) {
        let first_left_over = comptime!(full_groups * group);
        strip_group::<F>(
            a,
            b,
            out,
            warp,
            first_left_over,
            left_over,
            depth,
            width,
            b_transposed,
            accumulate,
        );
    }
}

/// [`strip_product`] for the `count` blocks of the strip from block `first_block` on, each
/// in its own live accumulator fragment.
#[cube]
#[allow(clippy::too_many_arguments)]
fn strip_group<F: Float>(
    a: &SharedMemory<F>,
    b: &SharedMemory<F>,
    out: &mut SharedMemory<f32>,
    warp: usize,
    first_block: usize,
    #[comptime] count: usize,
    #[comptime] depth: usize,
    #[comptime] width: usize,
    #[comptime] b_transposed: bool,
    #[comptime] accumulate: bool,
) {
    let a_stride = comptime!(depth + PAD);
    let b_stride = comptime!(if b_transposed {
        depth + PAD
    } else {
        width + PAD
    });
    let mut accs = Sequence::<cmma::Matrix<f32>>::new();
    #[unroll]
    for i in 0..count {
        let at = warp * STRIP * width + (first_block + i) * STRIP;
        let frag = unsafe {
            cmma::Matrix::<f32>::uninitialized(
                cmma::MatrixIdent::Accumulator,
                STRIP,
                STRIP,
                STRIP,
                cmma::MatrixLayout::Undefined,
            )
        };
        if comptime!(accumulate) {
            cmma::load_with_layout(
                &frag,
                &out.slice(at, at + (STRIP - 1) * width + STRIP),
                width as u32,
                cmma::MatrixLayout::RowMajor,
            );
        } else {
            cmma::fill(&frag, 0.0f32);
        }
        accs.push(frag);
    }
    #[unroll]
    for step in 0..depth / STRIP {
        let a_frag = fragment::<F>(
            a,
            warp * STRIP * a_stride + step * STRIP,
            a_stride,
            cmma::MatrixIdent::A,
            false,
        );
        #[unroll]
        for i in 0..count {
            let block = first_block + i;
            let acc = accs.index(i);
            if comptime!(b_transposed) {
                let at = block * STRIP * b_stride + step * STRIP;
                let b_frag = fragment::<F>(b, at, b_stride, cmma::MatrixIdent::B, true);
                cmma::execute::<F, F, f32, f32>(&a_frag, &b_frag, acc, acc);
            } else {
                let at = step * STRIP * b_stride + block * STRIP;
                let b_frag = fragment::<F>(b, at, b_stride, cmma::MatrixIdent::B, false);
                cmma::execute::<F, F, f32, f32>(&a_frag, &b_frag, acc, acc);
            }
        }
    }
    #[unroll]
    for i in 0..count {
        let at = warp * STRIP * width + (first_block + i) * STRIP;
        cmma::store(
            &mut out.slice_mut(at, at + (STRIP - 1) * width + STRIP),
            accs.index(i),
            width as u32,
            cmma::MatrixLayout::RowMajor,
        );
    }
}

/// The 16×16 block of `tile` at `at` (row stride `stride`) as an A or B fragment, read
/// row-major or (`col_major`) as the transpose of a row-major block.
#[cube]
fn fragment<F: Float>(
    tile: &SharedMemory<F>,
    at: usize,
    stride: usize,
    #[comptime] ident: cmma::MatrixIdent,
    #[comptime] col_major: bool,
) -> cmma::Matrix<F> {
    let block = tile.slice(at, at + (STRIP - 1) * stride + STRIP);
    if comptime!(col_major) {
        cmma::Matrix::<F>::from_slice(
            ident,
            STRIP,
            STRIP,
            STRIP,
            cmma::MatrixLayout::ColMajor,
            &block,
            stride as u32,
        )
    } else {
        cmma::Matrix::<F>::from_slice(
            ident,
            STRIP,
            STRIP,
            STRIP,
            cmma::MatrixLayout::RowMajor,
            &block,
            stride as u32,
        )
    }
}

/// Writes this lane's half of row `row` of `acc` (`head_dim` wide), times `factor`, to
/// global row `out_row` of one head, when that row exists.
#[cube]
#[allow(clippy::too_many_arguments)]
fn write_half_row<F: Float>(
    acc: &SharedMemory<f32>,
    out: &mut Tensor<F>,
    row: usize,
    out_row: usize,
    head_base: usize,
    seq: usize,
    factor: f32,
    #[comptime] head_dim: usize,
) {
    if out_row < seq {
        let half = lane_half();
        let width = comptime!(head_dim / 2);
        for c in 0..width {
            let col = half * width + c;
            out[head_base + out_row * head_dim + col] =
                F::cast_from(acc[row * head_dim + col] * factor);
        }
    }
}

/// This lane's row in its cube's block: lanes work in pairs, two to a row of their warp's strip.
#[cube]
fn lane_row() -> usize {
    UNIT_POS_Y as usize * STRIP + (UNIT_POS_X / 2) as usize
}

/// Which half of its row (columns, or head dims) this lane owns.
#[cube]
fn lane_half() -> usize {
    (UNIT_POS_X % 2) as usize
}

/// End of the keys a query block starting at `q_first` sees.
#[cube]
fn key_end(seq: usize, q_first: usize, #[comptime] causal: bool) -> usize {
    let mut end = seq;
    if causal {
        end = min(seq, q_first + BLOCK);
    }
    end
}

/// Whether query `query` attends to key `key`.
#[cube]
fn visible(query: usize, key: usize, seq: usize, #[comptime] causal: bool) -> bool {
    query < seq && key < seq && (!causal || key <= query)
}

/// Forward: `o = softmax(scale · q kᵀ) v` and `lse` (natural log) for a block of 64 queries.
#[cube(launch)]
pub fn flash_forward_tc<F: Float, N: Size>(
    q: &Tensor<Vector<F, N>>,
    k: &Tensor<Vector<F, N>>,
    v: &Tensor<Vector<F, N>>,
    o: &mut Tensor<F>,
    lse: &mut Tensor<f32>,
    scale: f32,
    seq_len: u32,
    #[comptime] causal: bool,
    #[comptime] head_dim: usize,
    #[define(F)] _dtype: StorageType,
) {
    let seq = seq_len as usize;
    let head = CUBE_POS_Y as usize;
    let q_first = CUBE_POS_X as usize * BLOCK;
    let head_base = head * seq * head_dim;
    let warp = UNIT_POS_Y as usize;
    let (row, half) = (lane_row(), lane_half());
    let query = q_first + row;

    let mut o_acc = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * head_dim), 32usize);
    let mut scores = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * BLOCK), 32usize);
    let mut q_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut k_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut v_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut probs = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (BLOCK + PAD)), 32usize);

    stage_rows::<F, N>(q, &mut q_tile, head_base, q_first, seq, head_dim);
    clear(&mut o_acc, comptime!(BLOCK * head_dim));

    let neg_big = f32::new(-1.0e30);
    let mut m = neg_big;
    let mut l = 0.0f32;
    let half_cols = comptime!(BLOCK / 2);
    let half_dim = comptime!(head_dim / 2);

    let end = key_end(seq, q_first, causal);
    let mut kv_first = 0usize;
    let mut k_next = row_registers::<F, N>(head_dim);
    fetch_rows::<F, N>(k, &mut k_next, head_base, 0, seq, head_dim);
    let mut v_next = row_registers::<F, N>(head_dim);
    fetch_rows::<F, N>(v, &mut v_next, head_base, 0, seq, head_dim);
    while kv_first < end {
        sync_cube();
        store_rows::<F, N>(&k_next, &mut k_tile, head_dim);
        store_rows::<F, N>(&v_next, &mut v_tile, head_dim);
        sync_cube();
        if kv_first + BLOCK < end {
            fetch_rows::<F, N>(k, &mut k_next, head_base, kv_first + BLOCK, seq, head_dim);
            fetch_rows::<F, N>(v, &mut v_next, head_base, kv_first + BLOCK, seq, head_dim);
        }

        strip_times_transposed::<F>(&q_tile, &k_tile, &mut scores, warp, head_dim, BLOCK);
        sync_plane();

        // Online softmax over this lane's half of its row: the tile's maximum, then the
        // probabilities (the mask recomputed rather than written back).
        let base = row * BLOCK + half * half_cols;
        let p_base = row * (BLOCK + PAD) + half * half_cols;
        let key_base = kv_first + half * half_cols;
        let mut tile_max = neg_big;
        for c in 0..half_cols {
            let col = rotated(c, half_cols);
            if visible(query, key_base + col, seq, causal) {
                tile_max = max(tile_max, scores[base + col] * scale);
            }
        }
        tile_max = max(tile_max, plane_shuffle_xor(tile_max, 1u32));
        let m_new = max(m, tile_max);
        let mut sum = 0.0f32;
        for c in 0..half_cols {
            let col = rotated(c, half_cols);
            let mut p = 0.0f32;
            if visible(query, key_base + col, seq, causal) {
                p = f32::exp(scores[base + col] * scale - m_new);
            }
            sum += p;
            probs[p_base + col] = F::cast_from(p);
        }
        sum += plane_shuffle_xor(sum, 1u32);
        let correction = f32::exp(m - m_new);
        l = l * correction + sum;
        m = m_new;
        if correction != 1.0f32 {
            for c in 0..half_dim {
                let idx = row * head_dim + half * half_dim + rotated(c, half_dim);
                o_acc[idx] *= correction;
            }
        }
        sync_plane();

        strip_accumulate::<F>(&probs, &v_tile, &mut o_acc, warp, BLOCK, head_dim);
        sync_plane();
        kv_first += BLOCK;
    }

    write_half_row::<F>(&o_acc, o, row, query, head_base, seq, 1.0f32 / l, head_dim);
    if query < seq && half == 0 {
        lse[head * seq + query] = m + f32::ln(l);
    }
}

/// Backward, part 1, for a block of 64 queries: `delta = rowsum(dO ∘ O)` (written for part 2)
/// and `dQ = scale · dS K` with `dS = P ∘ (dP − delta)`, `P` recomputed from `lse`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn flash_backward_dq_tc<F: Float, N: Size>(
    q: &Tensor<Vector<F, N>>,
    k: &Tensor<Vector<F, N>>,
    v: &Tensor<Vector<F, N>>,
    o: &Tensor<Vector<F, N>>,
    d_o: &Tensor<Vector<F, N>>,
    lse: &Tensor<f32>,
    delta: &mut Tensor<f32>,
    d_q: &mut Tensor<F>,
    scale: f32,
    seq_len: u32,
    #[comptime] causal: bool,
    #[comptime] head_dim: usize,
    #[define(F)] _dtype: StorageType,
) {
    let seq = seq_len as usize;
    let head = CUBE_POS_Y as usize;
    let q_first = CUBE_POS_X as usize * BLOCK;
    let head_base = head * seq * head_dim;
    let warp = UNIT_POS_Y as usize;
    let (row, half) = (lane_row(), lane_half());
    let query = q_first + row;
    let half_cols = comptime!(BLOCK / 2);
    let half_dim = comptime!(head_dim / 2);

    let mut dq_acc = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * head_dim), 32usize);
    let mut scores = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * BLOCK), 32usize);
    let mut d_probs = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * BLOCK), 32usize);
    let mut q_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut do_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut k_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut v_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut d_scores = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (BLOCK + PAD)), 32usize);

    stage_rows::<F, N>(q, &mut q_tile, head_base, q_first, seq, head_dim);
    stage_rows::<F, N>(d_o, &mut do_tile, head_base, q_first, seq, head_dim);
    clear(&mut dq_acc, comptime!(BLOCK * head_dim));

    // delta and lse of this lane's row (both lanes of the pair hold them).
    let mut partial = 0.0f32;
    let mut row_lse = 0.0f32;
    if query < seq {
        let at = (head_base + query * head_dim + half * half_dim) / VECTOR;
        for c in 0..comptime!(half_dim / VECTOR) {
            let (grad, out) = (d_o[at + c], o[at + c]);
            #[unroll]
            for j in 0..VECTOR {
                partial += f32::cast_from(grad[j]) * f32::cast_from(out[j]);
            }
        }
        row_lse = lse[head * seq + query];
    }
    let row_delta = partial + plane_shuffle_xor(partial, 1u32);
    if query < seq && half == 0 {
        delta[head * seq + query] = row_delta;
    }

    let end = key_end(seq, q_first, causal);
    let mut kv_first = 0usize;
    let mut k_next = row_registers::<F, N>(head_dim);
    fetch_rows::<F, N>(k, &mut k_next, head_base, 0, seq, head_dim);
    let mut v_next = row_registers::<F, N>(head_dim);
    fetch_rows::<F, N>(v, &mut v_next, head_base, 0, seq, head_dim);
    while kv_first < end {
        sync_cube();
        store_rows::<F, N>(&k_next, &mut k_tile, head_dim);
        store_rows::<F, N>(&v_next, &mut v_tile, head_dim);
        sync_cube();
        if kv_first + BLOCK < end {
            fetch_rows::<F, N>(k, &mut k_next, head_base, kv_first + BLOCK, seq, head_dim);
            fetch_rows::<F, N>(v, &mut v_next, head_base, kv_first + BLOCK, seq, head_dim);
        }

        strip_times_transposed::<F>(&q_tile, &k_tile, &mut scores, warp, head_dim, BLOCK);
        strip_times_transposed::<F>(&do_tile, &v_tile, &mut d_probs, warp, head_dim, BLOCK);
        sync_plane();

        let base = row * BLOCK + half * half_cols;
        let p_base = row * (BLOCK + PAD) + half * half_cols;
        for c in 0..half_cols {
            let col = rotated(c, half_cols);
            let key = kv_first + half * half_cols + col;
            let mut ds = 0.0f32;
            if visible(query, key, seq, causal) {
                let p = f32::exp(scores[base + col] * scale - row_lse);
                ds = p * (d_probs[base + col] - row_delta) * scale;
            }
            d_scores[p_base + col] = F::cast_from(ds);
        }
        sync_plane();

        strip_accumulate::<F>(&d_scores, &k_tile, &mut dq_acc, warp, BLOCK, head_dim);
        sync_plane();
        kv_first += BLOCK;
    }

    write_half_row::<F>(&dq_acc, d_q, row, query, head_base, seq, 1.0f32, head_dim);
}

/// Backward, part 2, for a block of 64 keys: `dV = Pᵀ dO` and `dK = scale · dSᵀ Q`, with
/// `delta` from part 1.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn flash_backward_dkv_tc<F: Float, N: Size>(
    q: &Tensor<Vector<F, N>>,
    k: &Tensor<Vector<F, N>>,
    v: &Tensor<Vector<F, N>>,
    d_o: &Tensor<Vector<F, N>>,
    lse: &Tensor<f32>,
    delta: &Tensor<f32>,
    d_k: &mut Tensor<F>,
    d_v: &mut Tensor<F>,
    scale: f32,
    seq_len: u32,
    #[comptime] causal: bool,
    #[comptime] head_dim: usize,
    #[define(F)] _dtype: StorageType,
) {
    let seq = seq_len as usize;
    let head = CUBE_POS_Y as usize;
    let kv_first = CUBE_POS_X as usize * BLOCK;
    let head_base = head * seq * head_dim;
    let warp = UNIT_POS_Y as usize;
    let (row, half) = (lane_row(), lane_half());
    let key = kv_first + row;
    let half_cols = comptime!(BLOCK / 2);

    let mut dk_acc = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * head_dim), 32usize);
    let mut dv_acc = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * head_dim), 32usize);
    let mut scores_t = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * BLOCK), 32usize);
    let mut d_probs_t = SharedMemory::<f32>::new_aligned(comptime!(BLOCK * BLOCK), 32usize);
    let mut k_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut v_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut q_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut do_tile = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (head_dim + PAD)), 32usize);
    let mut probs_t = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (BLOCK + PAD)), 32usize);
    let mut d_scores_t = SharedMemory::<F>::new_aligned(comptime!(BLOCK * (BLOCK + PAD)), 32usize);
    let mut lse_tile = SharedMemory::<f32>::new_aligned(BLOCK, 32usize);
    let mut delta_tile = SharedMemory::<f32>::new_aligned(BLOCK, 32usize);

    stage_rows::<F, N>(k, &mut k_tile, head_base, kv_first, seq, head_dim);
    stage_rows::<F, N>(v, &mut v_tile, head_base, kv_first, seq, head_dim);
    clear(&mut dk_acc, comptime!(BLOCK * head_dim));
    clear(&mut dv_acc, comptime!(BLOCK * head_dim));

    // Causal: query blocks before this key block see none of its keys.
    let mut q_first = 0usize;
    if causal {
        q_first = kv_first;
    }
    let mut q_next = row_registers::<F, N>(head_dim);
    fetch_rows::<F, N>(q, &mut q_next, head_base, q_first, seq, head_dim);
    let mut do_next = row_registers::<F, N>(head_dim);
    fetch_rows::<F, N>(d_o, &mut do_next, head_base, q_first, seq, head_dim);
    while q_first < seq {
        sync_cube();
        store_rows::<F, N>(&q_next, &mut q_tile, head_dim);
        store_rows::<F, N>(&do_next, &mut do_tile, head_dim);
        stage_row_values(lse, &mut lse_tile, head * seq, q_first, seq);
        stage_row_values(delta, &mut delta_tile, head * seq, q_first, seq);
        sync_cube();
        if q_first + BLOCK < seq {
            fetch_rows::<F, N>(q, &mut q_next, head_base, q_first + BLOCK, seq, head_dim);
            fetch_rows::<F, N>(d_o, &mut do_next, head_base, q_first + BLOCK, seq, head_dim);
        }

        strip_times_transposed::<F>(&k_tile, &q_tile, &mut scores_t, warp, head_dim, BLOCK);
        strip_times_transposed::<F>(&v_tile, &do_tile, &mut d_probs_t, warp, head_dim, BLOCK);
        sync_plane();

        let base = row * BLOCK + half * half_cols;
        let p_base = row * (BLOCK + PAD) + half * half_cols;
        for c in 0..half_cols {
            let offset = rotated(c, half_cols);
            let col = half * half_cols + offset;
            let query = q_first + col;
            let mut p = 0.0f32;
            let mut ds = 0.0f32;
            if visible(query, key, seq, causal) {
                p = f32::exp(scores_t[base + offset] * scale - lse_tile[col]);
                ds = p * (d_probs_t[base + offset] - delta_tile[col]) * scale;
            }
            probs_t[p_base + offset] = F::cast_from(p);
            d_scores_t[p_base + offset] = F::cast_from(ds);
        }
        sync_plane();

        strip_accumulate::<F>(&probs_t, &do_tile, &mut dv_acc, warp, BLOCK, head_dim);
        strip_accumulate::<F>(&d_scores_t, &q_tile, &mut dk_acc, warp, BLOCK, head_dim);
        sync_plane();
        q_first += BLOCK;
    }

    write_half_row::<F>(&dk_acc, d_k, row, key, head_base, seq, 1.0f32, head_dim);
    write_half_row::<F>(&dv_acc, d_v, row, key, head_base, seq, 1.0f32, head_dim);
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::DType;

    #[test]
    fn eligibility_needs_half_types_tile_head_dims_matrix_ops_and_room() {
        let hopper = 227 * 1024;
        for d in [16, 32, 64, 128] {
            assert!(eligible(DType::BF16, d, true, hopper), "bf16 d{d}");
            assert!(eligible(DType::F16, d, true, hopper), "f16 d{d}");
        }
        assert!(!eligible(DType::F32, 64, true, hopper));
        assert!(!eligible(DType::BF16, 72, true, hopper));
        assert!(!eligible(DType::BF16, 144, true, hopper));
        assert!(!eligible(DType::BF16, 8, true, hopper));
        assert!(!eligible(DType::BF16, 64, false, hopper));
        // An A100's 163 KiB: d 64 fits, d 128's dK/dV kernel does not.
        assert!(eligible(DType::BF16, 64, true, 163 * 1024));
        assert!(!eligible(DType::BF16, 128, true, 163 * 1024));
    }

    #[test]
    fn shared_memory_fits_hopper_and_grows_with_head_dim() {
        // Hopper's opt-in limit per block is 227 KiB; every head dim up to 128 must fit.
        for head_dim in (16..=128).step_by(16) {
            for bytes in shared_bytes(head_dim, 2) {
                assert!(bytes <= 227 * 1024, "d{head_dim}: {bytes} bytes");
            }
        }
        let [forward, d_q, d_kv] = shared_bytes(128, 2);
        assert!(forward < d_q && d_q < d_kv);
        // The forward's buffers by hand: q, k, v tiles, P, S, O.
        let tile = BLOCK * (128 + PAD) * 2;
        assert_eq!(
            forward,
            3 * tile + BLOCK * (BLOCK + PAD) * 2 + BLOCK * BLOCK * 4 + BLOCK * 128 * 4
        );
    }
}
