//! FlashAttention-2 on tensor cores with the accumulators in registers (CUDA sm_80+; f16/bf16
//! inputs, f32 accumulation, head dims 16..=128 in steps of 16), built on CubeCL's manual
//! MMA: `mma.sync.m16n8k16` with per-lane registers whose matrix positions are known, and
//! `ldmatrix` to load operands from shared memory.
//!
//! This is the layout FlashAttention-2 itself uses. A cube is four warps; each warp owns 16
//! rows of the cube's block. A lane holds, of every 16×8 accumulator tile, the two values at
//! row `g = lane / 4`, columns `2t, 2t + 1` (`t = lane % 4`) and the two at row `g + 8`. So
//! a warp's score strip, its output (or dQ, dK, dV) rows and the online softmax's running
//! max and sum never leave registers: the row maximum is a max over the lane's own values
//! and two shuffles among the four lanes of a row, and the probabilities, converted to
//! f16/bf16, are already the A operand of the next product (the accumulator layout of two
//! adjacent 16×8 tiles is the A layout of one 16×16 block). Shared memory holds only the
//! staged input tiles, padded by 8 elements a row so `ldmatrix`'s eight row addresses fall
//! in different banks.
//!
//! (The first tensor-core version used WMMA fragments, whose layout is opaque, so every
//! score strip and accumulator went through shared memory between products: 1.4–3.5×
//! slower, docs/PERF.md attention run 7.)
//!
//! The backward is two kernels as on the other paths: dQ (which also writes
//! `delta = rowsum(dO ∘ O)`) over key tiles, then dK/dV over query tiles, deterministic and
//! without atomics.

use cubecl::prelude::*;

use super::kernels::kv_end;

/// Two values of one fragment register: two f16/bf16 (32 bits) or, in accumulators, two f32.
type Pair<E> = Vector<E, Const<2>>;

/// Warps per cube.
pub const WARPS: usize = 4;
/// Units per cube.
pub const UNITS: usize = WARPS * 32;
/// Rows a warp owns (the MMA's M).
const STRIP: usize = 16;
/// Rows a cube owns: query rows in the forward and dQ kernels, key rows in dK/dV.
pub const BLOCK: usize = WARPS * STRIP;
/// Rows of the other operand staged per step (the dK/dV kernel stages fewer query rows at
/// large head dims, see [`dkv_tile`]).
pub const TILE: usize = 64;
/// Padding (elements) of each staged row: keeps `ldmatrix`'s row addresses on distinct banks.
const PAD: usize = 8;
/// Elements per global load and per shared-memory vector (16 bytes of f16/bf16).
pub const VECTOR: usize = 8;
/// A score no real one reaches: masked positions get it, so `exp` maps them to 0.
const MASKED: f32 = -1.0e30;

/// Query rows the dK/dV kernel stages per step: its dK and dV accumulators take
/// `head_dim / 2` registers each per lane, so at large head dims a smaller score strip keeps
/// the kernel inside the register file.
pub fn dkv_tile(head_dim: usize) -> usize {
    if head_dim > 64 { 32 } else { 64 }
}

/// Shared memory (bytes) of the forward, dQ and dK/dV kernels.
pub fn shared_bytes(head_dim: usize, elem_bytes: usize) -> [usize; 3] {
    let rows = |n: usize| n * (head_dim + PAD) * elem_bytes;
    let forward = rows(BLOCK) + 2 * rows(TILE);
    let d_q = 2 * rows(BLOCK) + 2 * rows(TILE) + 2 * BLOCK * 4;
    let q_rows = dkv_tile(head_dim);
    let d_kv = 2 * rows(BLOCK) + 2 * rows(q_rows) + 2 * q_rows * 4;
    [forward, d_q, d_kv]
}

/// Whether these kernels serve inputs of `dtype` with `head_dim` on a device that has the
/// m16n8k16 matrix instruction of that type into f32 (`has_instruction`) and `max_shared`
/// bytes of shared memory per cube.
pub fn eligible(
    dtype: burn::tensor::DType,
    head_dim: usize,
    has_instruction: bool,
    max_shared: usize,
) -> bool {
    use burn::tensor::DType;
    matches!(dtype, DType::F16 | DType::BF16)
        && (16..=128).contains(&head_dim)
        && head_dim.is_multiple_of(16)
        && has_instruction
        && shared_bytes(head_dim, dtype.size())
            .iter()
            .all(|&bytes| bytes <= max_shared)
}

// ---- staging tiles ----------------------------------------------------------------------

/// Registers for one [`load_rows`] of `rows` rows.
#[cube]
fn rows_registers<F: Float, N: Size>(
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
) -> Array<Vector<F, N>> {
    Array::new(comptime!((rows * head_dim / VECTOR).div_ceil(UNITS)))
}

/// Loads rows `[first, first + rows)` of one `[seq, head_dim]` head into registers, 16 bytes
/// per load; rows past `seq` read as zeros. Issued before other work, so the loads are in
/// flight while the cube computes.
#[cube]
fn load_rows<F: Float, N: Size>(
    src: &Tensor<Vector<F, N>>,
    regs: &mut Array<Vector<F, N>>,
    head_base: usize,
    first: usize,
    seq: usize,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
) {
    let width = comptime!(head_dim / VECTOR);
    let count = comptime!((rows * width).div_ceil(UNITS));
    let unit = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;
    #[unroll]
    for i in 0..count {
        let idx = unit + i * UNITS;
        let row = idx / width;
        let mut value = Vector::new(F::new(0.0));
        if row < rows && first + row < seq {
            value = src[(head_base + (first + row) * head_dim) / VECTOR + idx % width];
        }
        regs[i] = value;
    }
}

/// Writes what [`load_rows`] loaded into `tile` (row stride `head_dim + PAD` elements).
#[cube]
fn store_rows<F: Float, N: Size>(
    regs: &Array<Vector<F, N>>,
    tile: &mut SharedMemory<Vector<F, N>>,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
) {
    let width = comptime!(head_dim / VECTOR);
    let stride = comptime!((head_dim + PAD) / VECTOR);
    let count = comptime!((rows * width).div_ceil(UNITS));
    let unit = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;
    #[unroll]
    for i in 0..count {
        let idx = unit + i * UNITS;
        let row = idx / width;
        if row < rows {
            tile[row * stride + idx % width] = regs[i];
        }
    }
}

/// [`load_rows`] then [`store_rows`], for tiles staged without overlap.
#[cube]
#[allow(clippy::too_many_arguments)]
fn stage_rows<F: Float, N: Size>(
    src: &Tensor<Vector<F, N>>,
    tile: &mut SharedMemory<Vector<F, N>>,
    head_base: usize,
    first: usize,
    seq: usize,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
) {
    let mut regs = rows_registers::<F, N>(rows, head_dim);
    load_rows::<F, N>(src, &mut regs, head_base, first, seq, rows, head_dim);
    store_rows::<F, N>(&regs, tile, rows, head_dim);
}

/// A staged `[rows, head_dim]` tile of f16/bf16 vectors.
#[cube]
fn tile_memory<F: Float, N: Size>(
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
) -> SharedMemory<Vector<F, N>> {
    SharedMemory::<Vector<F, N>>::new_aligned(comptime!(rows * (head_dim + PAD) / VECTOR), 16usize)
}

// ---- fragments and products -------------------------------------------------------------

/// The m16n8k16 instruction with f16/bf16 operands and f32 accumulators.
#[cube]
fn definition<F: Float>() -> cmma::MmaDefinition<F, F, f32> {
    cmma::MmaDefinition::<F, F, f32>::new(16usize, 8usize, 16usize)
}

/// `count` pairs of zeros: accumulator tiles (two pairs a tile: row `g`, row `g + 8`).
#[cube]
fn zeros(#[comptime] count: usize) -> Array<Pair<f32>> {
    let mut acc = Array::<Pair<f32>>::new(count);
    #[unroll]
    for i in 0..count {
        acc[i] = Pair::<f32>::new(0.0);
    }
    acc
}

/// The A fragment (16×16) at rows `row0..row0 + 16`, columns `col0..col0 + 16` of `tile`
/// (`head_dim` wide), through one `ldmatrix.x4`: lanes 0–15 give the rows of the left
/// 16×8 half, lanes 16–31 those of the right half.
#[cube]
fn a_fragment<F: Float, N: Size>(
    tile: &SharedMemory<Vector<F, N>>,
    row0: usize,
    col0: usize,
    #[comptime] head_dim: usize,
) -> Array<Pair<F>> {
    let stride = comptime!((head_dim + PAD) / VECTOR);
    let lane = UNIT_POS_X as usize;
    let at = (row0 + lane % 16) * stride + col0 / VECTOR + lane / 16;
    load_x4::<F, N>(tile, at, cmma::MatrixIdent::A, false)
}

/// One `ldmatrix.x4` (`.trans` with `transpose`): this lane gives the address of one 16-byte
/// row, vector `at` of `tile` (lanes `8m..8m + 8` the rows of 8×8 matrix `m`), and gets one
/// 32-bit register of each of the four matrices.
#[cube]
fn load_x4<F: Float, N: Size>(
    tile: &SharedMemory<Vector<F, N>>,
    at: usize,
    #[comptime] ident: cmma::MatrixIdent,
    #[comptime] transpose: bool,
) -> Array<Pair<F>> {
    definition::<F>().load_matrix::<Vector<F, N>, Const<2>>(
        &tile.slice(at, at + 1),
        ident,
        4usize,
        transpose,
    )
}

/// The B fragments of two adjacent 16×8 tiles (columns `n0..n0 + 16`, depth `k0..k0 + 16`)
/// through one `ldmatrix.x4`: `[b0, b1]` of columns `n0..n0 + 8`, then of `n0 + 8..`.
/// `rows_are_depth`: `tile`'s rows are the depth (B = tile, loaded transposed); else its
/// rows are B's columns (B = tileᵀ).
#[cube]
fn b_fragments<F: Float, N: Size>(
    tile: &SharedMemory<Vector<F, N>>,
    k0: usize,
    n0: usize,
    #[comptime] head_dim: usize,
    #[comptime] rows_are_depth: bool,
) -> Array<Pair<F>> {
    let stride = comptime!((head_dim + PAD) / VECTOR);
    let lane = UNIT_POS_X as usize;
    let matrix = lane / 8;
    let mut at = (n0 + 8 * (matrix / 2) + lane % 8) * stride + k0 / VECTOR + matrix % 2;
    if comptime!(rows_are_depth) {
        at = (k0 + 8 * (matrix % 2) + lane % 8) * stride + n0 / VECTOR + matrix / 2;
    }
    load_x4::<F, N>(tile, at, cmma::MatrixIdent::B, rows_are_depth)
}

/// `acc[at], acc[at + 1] += a · b[b_at], b[b_at + 1]`: one m16n8k16 on one accumulator tile.
#[cube]
fn mma<F: Float>(
    a: &Array<Pair<F>>,
    b: &Array<Pair<F>>,
    b_at: usize,
    acc: &mut Array<Pair<f32>>,
    at: usize,
) {
    let mut b_regs = Array::<Pair<F>>::new(2usize);
    b_regs[0] = b[b_at];
    b_regs[1] = b[b_at + 1];
    let mut c = Array::<Pair<f32>>::new(2usize);
    c[0] = acc[at];
    c[1] = acc[at + 1];
    definition::<F>().execute_inplace(a, &b_regs, &mut c);
    acc[at] = c[0];
    acc[at + 1] = c[1];
}

/// The warp's `16 × width` strip of `A · Bᵀ` as `width / 8` accumulator tiles: A = rows
/// `row0..row0 + 16` of `a`, B = rows `0..width` of `b` (both `head_dim` deep).
#[cube]
fn strip_times_transposed<F: Float, N: Size>(
    a: &SharedMemory<Vector<F, N>>,
    row0: usize,
    b: &SharedMemory<Vector<F, N>>,
    #[comptime] head_dim: usize,
    #[comptime] width: usize,
) -> Array<Pair<f32>> {
    let mut out = zeros(comptime!(width / 4));
    #[unroll]
    for step in 0..head_dim / 16 {
        let a_frag = a_fragment::<F, N>(a, row0, step * 16, head_dim);
        #[unroll]
        for pair in 0..width / 16 {
            let b_frag = b_fragments::<F, N>(b, step * 16, pair * 16, head_dim, false);
            mma::<F>(&a_frag, &b_frag, 0, &mut out, pair * 4);
            mma::<F>(&a_frag, &b_frag, 2, &mut out, pair * 4 + 2);
        }
    }
    out
}

/// The A fragment of depth `16j..16j + 16` from accumulator-layout values (tiles `2j` and
/// `2j + 1` of `values`), converted to `F`.
#[cube]
fn a_from_accumulators<F: Float>(values: &Array<Pair<f32>>, j: usize) -> Array<Pair<F>> {
    let mut a = Array::<Pair<F>>::new(4usize);
    #[unroll]
    for i in 0..4usize {
        let v = values[4 * j + i];
        let mut r = Pair::<F>::empty();
        r[0] = F::cast_from(v[0]);
        r[1] = F::cast_from(v[1]);
        a[i] = r;
    }
    a
}

/// `acc += P · B` for the warp: P = the `16 × depth` strip held as accumulator tiles in
/// `p`, B = rows `0..depth` of `b` (`head_dim` wide); `acc` holds `head_dim / 8` tiles.
#[cube]
fn accumulate_product<F: Float, N: Size>(
    acc: &mut Array<Pair<f32>>,
    p: &Array<Pair<f32>>,
    b: &SharedMemory<Vector<F, N>>,
    #[comptime] depth: usize,
    #[comptime] head_dim: usize,
) {
    #[unroll]
    for j in 0..depth / 16 {
        let a_frag = a_from_accumulators::<F>(p, j);
        #[unroll]
        for pair in 0..head_dim / 16 {
            let b_frag = b_fragments::<F, N>(b, j * 16, pair * 16, head_dim, true);
            mma::<F>(&a_frag, &b_frag, 0, acc, pair * 4);
            mma::<F>(&a_frag, &b_frag, 2, acc, pair * 4 + 2);
        }
    }
}

// ---- per-row helpers ----------------------------------------------------------------------

/// Sum over the four lanes that share a row.
#[cube]
fn row_sum(value: f32) -> f32 {
    let v = value + plane_shuffle_xor(value, 1u32);
    v + plane_shuffle_xor(v, 2u32)
}

/// Max over the four lanes that share a row.
#[cube]
fn row_max(value: f32) -> f32 {
    let v = max(value, plane_shuffle_xor(value, 1u32));
    max(v, plane_shuffle_xor(v, 2u32))
}

/// Writes rows `first_row + g` and `+ 8` of the warp's `head_dim`-wide accumulator tiles,
/// times `factor_top` / `factor_bottom`, to one head of `out` (rows past `seq` skipped).
#[cube]
#[allow(clippy::too_many_arguments)]
fn write_rows<F: Float>(
    acc: &Array<Pair<f32>>,
    out: &mut Tensor<F>,
    head_base: usize,
    first_row: usize,
    seq: usize,
    factor_top: f32,
    factor_bottom: f32,
    #[comptime] head_dim: usize,
) {
    let lane = UNIT_POS_X as usize;
    let (g, t) = (lane / 4, lane % 4);
    #[unroll]
    for half in 0..2usize {
        let row = first_row + g + 8 * half;
        let mut factor = factor_top;
        if half == 1 {
            factor = factor_bottom;
        }
        if row < seq {
            #[unroll]
            for n in 0..head_dim / 8 {
                let v = acc[2 * n + half];
                let at = head_base + row * head_dim + n * 8 + 2 * t;
                out[at] = F::cast_from(v[0] * factor);
                out[at + 1] = F::cast_from(v[1] * factor);
            }
        }
    }
}

/// This cube's query block. Causally, block `i` walks `i + 1` key tiles, so the blocks are
/// taken last first: the longest start first and the short ones fill in at the end, instead
/// of the longest starting last and running alone.
#[cube]
#[allow(arithmetic_overflow)] // CubeCL's host-side stand-ins for the builtins are constants
fn heavy_first(#[comptime] causal: bool) -> usize {
    let mut block = CUBE_POS_X as usize;
    if causal {
        block = CUBE_COUNT_X as usize - (CUBE_POS_X as usize + 1);
    }
    block
}

// ---- kernels -------------------------------------------------------------------------------

/// Forward: `o = softmax(scale · q kᵀ) v` and `lse` (natural log) for a block of 64 queries.
#[cube(launch)]
pub fn flash_forward_mma<F: Float, N: Size>(
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
    let q_first = heavy_first(causal) * BLOCK;
    let head_base = head * seq * head_dim;
    let lane = UNIT_POS_X as usize;
    let row0 = UNIT_POS_Y as usize * STRIP;
    let (g, t) = (lane / 4, lane % 4);
    let query_top = q_first + row0 + g;
    let mut q_tile = tile_memory::<F, N>(BLOCK, head_dim);
    let mut k_tile = tile_memory::<F, N>(TILE, head_dim);
    let mut v_tile = tile_memory::<F, N>(TILE, head_dim);
    stage_rows::<F, N>(q, &mut q_tile, head_base, q_first, seq, BLOCK, head_dim);

    let mut acc = zeros(comptime!(head_dim / 4));
    // Running max (scaled scores) and this lane's part of the running sum, rows g and g + 8.
    let mut m_top = f32::new(MASKED);
    let mut m_bottom = f32::new(MASKED);
    let mut l_top = 0.0f32;
    let mut l_bottom = 0.0f32;

    let end = kv_end(seq, q_first, BLOCK, causal);
    let mut regs = rows_registers::<F, N>(TILE, head_dim);
    load_rows::<F, N>(k, &mut regs, head_base, 0, seq, TILE, head_dim);
    let mut kv_first = 0usize;
    while kv_first < end {
        // K of this step is in `regs`; the previous step's readers of both tiles are done.
        sync_cube();
        store_rows::<F, N>(&regs, &mut k_tile, TILE, head_dim);
        load_rows::<F, N>(v, &mut regs, head_base, kv_first, seq, TILE, head_dim);
        sync_cube();
        let mut s = strip_times_transposed::<F, N>(&q_tile, row0, &k_tile, head_dim, TILE);
        store_rows::<F, N>(&regs, &mut v_tile, TILE, head_dim);
        if kv_first + TILE < end {
            load_rows::<F, N>(
                k,
                &mut regs,
                head_base,
                kv_first + TILE,
                seq,
                TILE,
                head_dim,
            );
        }

        // Scale; mask keys past the end and, causally, after the query
        // (only tiles that reach the sequence's end or the block's diagonal need it).
        let needs_mask = kv_first + TILE > seq || (causal && kv_first + TILE > q_first + 1);
        let mut tile_top = f32::new(MASKED);
        let mut tile_bottom = f32::new(MASKED);
        #[unroll]
        for n in 0..TILE / 8 {
            #[unroll]
            for half in 0..2usize {
                let idx = 2 * n + half;
                let query = query_top + 8 * half;
                let mut x = s[idx];
                #[unroll]
                for e in 0..2usize {
                    let key = kv_first + n * 8 + 2 * t + e;
                    let mut value = x[e] * scale;
                    if needs_mask && (key >= seq || (causal && key > query)) {
                        value = f32::new(MASKED);
                    }
                    x[e] = value;
                }
                s[idx] = x;
                if half == 0 {
                    tile_top = max(tile_top, max(x[0], x[1]));
                } else {
                    tile_bottom = max(tile_bottom, max(x[0], x[1]));
                }
            }
        }
        let new_top = max(m_top, row_max(tile_top));
        let new_bottom = max(m_bottom, row_max(tile_bottom));
        let alpha_top = f32::exp(m_top - new_top);
        let alpha_bottom = f32::exp(m_bottom - new_bottom);
        m_top = new_top;
        m_bottom = new_bottom;
        // A masked score is MASKED while the row's maximum is a real score (every row that
        // is written sees key 0 in its first tile), so exp gives exactly 0 there.
        let mut sum_top = 0.0f32;
        let mut sum_bottom = 0.0f32;
        #[unroll]
        for n in 0..TILE / 8 {
            #[unroll]
            for half in 0..2usize {
                let idx = 2 * n + half;
                let mut x = s[idx];
                let mut m = new_top;
                if half == 1 {
                    m = new_bottom;
                }
                x[0] = f32::exp(x[0] - m);
                x[1] = f32::exp(x[1] - m);
                s[idx] = x;
                if half == 0 {
                    sum_top += x[0] + x[1];
                } else {
                    sum_bottom += x[0] + x[1];
                }
            }
        }
        l_top = l_top * alpha_top + sum_top;
        l_bottom = l_bottom * alpha_bottom + sum_bottom;
        #[unroll]
        for n in 0..head_dim / 8 {
            let mut top = acc[2 * n];
            top[0] *= alpha_top;
            top[1] *= alpha_top;
            acc[2 * n] = top;
            let mut bottom = acc[2 * n + 1];
            bottom[0] *= alpha_bottom;
            bottom[1] *= alpha_bottom;
            acc[2 * n + 1] = bottom;
        }

        sync_cube();
        accumulate_product::<F, N>(&mut acc, &s, &v_tile, TILE, head_dim);
        kv_first += TILE;
    }

    let l_top = row_sum(l_top);
    let l_bottom = row_sum(l_bottom);
    write_rows::<F>(
        &acc,
        o,
        head_base,
        q_first + row0,
        seq,
        1.0f32 / l_top,
        1.0f32 / l_bottom,
        head_dim,
    );
    if t == 0 {
        if query_top < seq {
            lse[head * seq + query_top] = m_top + f32::ln(l_top);
        }
        if query_top + 8 < seq {
            lse[head * seq + query_top + 8] = m_bottom + f32::ln(l_bottom);
        }
    }
}

/// `dS = P ∘ (dP − delta) · scale` with `P = exp(S · scale − lse)`,
/// element by element on accumulator tiles: `s` (scores) becomes P, `dp` becomes dS.
/// `lse` and `delta` are staged per query: with `rows_are_queries` (the dQ kernel) an
/// element reads those of its row, at `lse_row0 + g` or `+ g + 8`; otherwise (the dK/dV
/// kernel, whose columns are queries) those of its column.
#[cube]
#[allow(clippy::too_many_arguments)]
fn probabilities_and_score_grads(
    s: &mut Array<Pair<f32>>,
    dp: &mut Array<Pair<f32>>,
    lse: &SharedMemory<f32>,
    delta: &SharedMemory<f32>,
    lse_row0: usize,
    scale: f32,
    needs_mask: bool,
    row_first: usize,
    col_first: usize,
    seq: usize,
    #[comptime] rows_are_queries: bool,
    #[comptime] causal: bool,
    #[comptime] width: usize,
) {
    let lane = UNIT_POS_X as usize;
    let (g, t) = (lane / 4, lane % 4);
    #[unroll]
    for n in 0..width / 8 {
        #[unroll]
        for half in 0..2usize {
            let idx = 2 * n + half;
            let mut x = s[idx];
            let mut d = dp[idx];
            #[unroll]
            for e in 0..2usize {
                let row = row_first + g + 8 * half;
                let col = col_first + n * 8 + 2 * t + e;
                // This element's query's lse and delta, staged per query.
                let mut at = lse_row0 + g + 8 * half;
                if comptime!(!rows_are_queries) {
                    at = n * 8 + 2 * t + e;
                }
                let mut p = f32::exp(x[e] * scale - lse[at]);
                let mut query = row;
                let mut key = col;
                if comptime!(!rows_are_queries) {
                    query = col;
                    key = row;
                }
                if needs_mask && (key >= seq || query >= seq || (causal && key > query)) {
                    p = 0.0f32;
                }
                x[e] = p;
                d[e] = p * (d[e] - delta[at]) * scale;
            }
            s[idx] = x;
            dp[idx] = d;
        }
    }
}

/// Backward, part 1, for a block of 64 queries: `delta = rowsum(dO ∘ O)` (written for part
/// 2) and `dQ = scale · dS K`, `P` recomputed from `lse`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn flash_backward_dq_mma<F: Float, N: Size>(
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
    let q_first = heavy_first(causal) * BLOCK;
    let head_base = head * seq * head_dim;
    let row0 = UNIT_POS_Y as usize * STRIP;

    let mut q_tile = tile_memory::<F, N>(BLOCK, head_dim);
    let mut do_tile = tile_memory::<F, N>(BLOCK, head_dim);
    let mut k_tile = tile_memory::<F, N>(TILE, head_dim);
    let mut v_tile = tile_memory::<F, N>(TILE, head_dim);
    let mut lse_rows = SharedMemory::<f32>::new(BLOCK);
    let mut delta_rows = SharedMemory::<f32>::new(BLOCK);
    stage_rows::<F, N>(q, &mut q_tile, head_base, q_first, seq, BLOCK, head_dim);
    stage_rows::<F, N>(d_o, &mut do_tile, head_base, q_first, seq, BLOCK, head_dim);

    // delta and lse of the block's rows: two units a row, half the head dims each.
    let unit = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;
    let (row, half) = (unit / 2, unit % 2);
    let query = q_first + row;
    let half_dim = comptime!(head_dim / 2);
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
    if half == 0 {
        if query < seq {
            delta[head * seq + query] = row_delta;
        }
        lse_rows[row] = row_lse;
        delta_rows[row] = row_delta;
    }

    let mut acc = zeros(comptime!(head_dim / 4));
    let end = kv_end(seq, q_first, BLOCK, causal);
    let mut kv_first = 0usize;
    while kv_first < end {
        sync_cube();
        stage_rows::<F, N>(k, &mut k_tile, head_base, kv_first, seq, TILE, head_dim);
        stage_rows::<F, N>(v, &mut v_tile, head_base, kv_first, seq, TILE, head_dim);
        sync_cube();
        let mut s = strip_times_transposed::<F, N>(&q_tile, row0, &k_tile, head_dim, TILE);
        let mut dp = strip_times_transposed::<F, N>(&do_tile, row0, &v_tile, head_dim, TILE);
        let needs_mask = kv_first + TILE > seq || (causal && kv_first + TILE > q_first + 1);
        probabilities_and_score_grads(
            &mut s,
            &mut dp,
            &lse_rows,
            &delta_rows,
            row0,
            scale,
            needs_mask,
            q_first + row0,
            kv_first,
            seq,
            true,
            causal,
            TILE,
        );
        accumulate_product::<F, N>(&mut acc, &dp, &k_tile, TILE, head_dim);
        kv_first += TILE;
    }

    write_rows::<F>(
        &acc,
        d_q,
        head_base,
        q_first + row0,
        seq,
        1.0f32,
        1.0f32,
        head_dim,
    );
}

/// Backward, part 2, for a block of 64 keys: `dV = Pᵀ dO` and `dK = scale · dSᵀ Q`, with
/// `delta` from part 1; query rows are staged `q_rows` at a time ([`dkv_tile`]).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn flash_backward_dkv_mma<F: Float, N: Size>(
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
    #[comptime] q_rows: usize,
    #[define(F)] _dtype: StorageType,
) {
    let seq = seq_len as usize;
    let head = CUBE_POS_Y as usize;
    let kv_first = CUBE_POS_X as usize * BLOCK;
    let head_base = head * seq * head_dim;
    let row0 = UNIT_POS_Y as usize * STRIP;
    let unit = (UNIT_POS_Y * 32 + UNIT_POS_X) as usize;

    let mut k_tile = tile_memory::<F, N>(BLOCK, head_dim);
    let mut v_tile = tile_memory::<F, N>(BLOCK, head_dim);
    let mut q_tile = tile_memory::<F, N>(q_rows, head_dim);
    let mut do_tile = tile_memory::<F, N>(q_rows, head_dim);
    let mut lse_cols = SharedMemory::<f32>::new(q_rows);
    let mut delta_cols = SharedMemory::<f32>::new(q_rows);
    stage_rows::<F, N>(k, &mut k_tile, head_base, kv_first, seq, BLOCK, head_dim);
    stage_rows::<F, N>(v, &mut v_tile, head_base, kv_first, seq, BLOCK, head_dim);

    let mut d_k_acc = zeros(comptime!(head_dim / 4));
    let mut d_v_acc = zeros(comptime!(head_dim / 4));
    // Causal: query tiles before this key block see none of its keys (BLOCK is a multiple
    // of q_rows, so kv_first starts a query tile).
    let mut q_first = 0usize;
    if causal {
        q_first = kv_first;
    }
    while q_first < seq {
        sync_cube();
        stage_rows::<F, N>(q, &mut q_tile, head_base, q_first, seq, q_rows, head_dim);
        stage_rows::<F, N>(d_o, &mut do_tile, head_base, q_first, seq, q_rows, head_dim);
        if unit < q_rows {
            let query = q_first + unit;
            let mut row_lse = 0.0f32;
            let mut row_delta = 0.0f32;
            if query < seq {
                row_lse = lse[head * seq + query];
                row_delta = delta[head * seq + query];
            }
            lse_cols[unit] = row_lse;
            delta_cols[unit] = row_delta;
        }
        sync_cube();
        let mut st = strip_times_transposed::<F, N>(&k_tile, row0, &q_tile, head_dim, q_rows);
        let mut dpt = strip_times_transposed::<F, N>(&v_tile, row0, &do_tile, head_dim, q_rows);
        let needs_mask = q_first + q_rows > seq || (causal && q_first < kv_first + BLOCK);
        probabilities_and_score_grads(
            &mut st,
            &mut dpt,
            &lse_cols,
            &delta_cols,
            0,
            scale,
            needs_mask,
            kv_first + row0,
            q_first,
            seq,
            false,
            causal,
            q_rows,
        );
        accumulate_product::<F, N>(&mut d_v_acc, &st, &do_tile, q_rows, head_dim);
        accumulate_product::<F, N>(&mut d_k_acc, &dpt, &q_tile, q_rows, head_dim);
        q_first += q_rows;
    }

    write_rows::<F>(
        &d_k_acc,
        d_k,
        head_base,
        kv_first + row0,
        seq,
        1.0f32,
        1.0f32,
        head_dim,
    );
    write_rows::<F>(
        &d_v_acc,
        d_v,
        head_base,
        kv_first + row0,
        seq,
        1.0f32,
        1.0f32,
        head_dim,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::DType;

    #[test]
    fn eligibility_needs_half_types_tile_head_dims_the_instruction_and_room() {
        let hopper = 227 * 1024;
        for d in (16..=128).step_by(16) {
            assert!(eligible(DType::BF16, d, true, hopper), "bf16 d{d}");
            assert!(eligible(DType::F16, d, true, hopper), "f16 d{d}");
        }
        assert!(!eligible(DType::F32, 64, true, hopper));
        assert!(!eligible(DType::BF16, 72, true, hopper));
        assert!(!eligible(DType::BF16, 144, true, hopper));
        assert!(!eligible(DType::BF16, 64, false, hopper));
        // Registers, not shared memory, hold the accumulators: even 48 KiB serves d 64.
        assert!(eligible(DType::BF16, 64, true, 48 * 1024));
    }

    #[test]
    fn shared_memory_is_the_staged_tiles() {
        let row = (128 + PAD) * 2;
        let [forward, d_q, d_kv] = shared_bytes(128, 2);
        assert_eq!(forward, (BLOCK + 2 * TILE) * row);
        assert_eq!(d_q, (2 * BLOCK + 2 * TILE) * row + 2 * BLOCK * 4);
        assert_eq!(d_kv, (2 * BLOCK + 2 * 32) * row + 2 * 32 * 4);
        assert!(forward < 64 * 1024 && d_q < 80 * 1024);
    }
}
