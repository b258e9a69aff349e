//! The portable FlashAttention-2 kernels: forward, and the two backward kernels.
//!
//! Layout: `q`, `k`, `v`, `o`, `d_o` and the gradients are contiguous `[heads, seq, head_dim]`
//! buffers (any leading dimensions flattened into heads, `seq` passed in); `lse` and `delta`
//! are `[heads, seq]` f32. Inputs may be f32, f16 or bf16; every accumulation is f32.
//!
//! One unit owns one row (a query row in the forward and dQ kernels, a key row in the dK/dV
//! kernel) and keeps it, its accumulators and the scores of one tile in registers; the cube's
//! units load the tiles of the other operand into shared memory together. Scores of masked
//! or out-of-range keys are never exponentiated, so no infinity is needed (WGSL has none).
//! Causal attention skips the key tiles past a query tile (forward, dQ) and the query tiles
//! before a key tile (dK/dV).

use cubecl::prelude::*;

/// Loads rows `[first, first + rows)` of `src` (one `[seq, head_dim]` head at `head_base`)
/// into `tile` as f32; rows past `seq` become zeros.
#[cube]
fn load_tile<F: Float>(
    src: &Tensor<F>,
    tile: &mut SharedMemory<f32>,
    head_base: usize,
    first: usize,
    seq: usize,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
    #[comptime] units: usize,
) {
    let mut idx = UNIT_POS_X as usize;
    while idx < rows * head_dim {
        let row = first + idx / head_dim;
        let mut value = 0.0f32;
        if row < seq {
            value = f32::cast_from(src[head_base + row * head_dim + idx % head_dim]);
        }
        tile[idx] = value;
        idx += units;
    }
}

/// Reads one row of a head into a register array, zeros past `seq`.
#[cube]
fn load_row<F: Float>(
    src: &Tensor<F>,
    row_base: usize,
    in_range: bool,
    #[comptime] head_dim: usize,
) -> Array<f32> {
    let mut row = Array::<f32>::new(head_dim);
    for d in 0..head_dim {
        let mut value = 0.0f32;
        if in_range {
            value = f32::cast_from(src[row_base + d]);
        }
        row[d] = value;
    }
    row
}

/// `Σ_d a[d] · tile[t · head_dim + d]`.
#[cube]
fn dot_tile_row(
    a: &Array<f32>,
    tile: &SharedMemory<f32>,
    t: usize,
    #[comptime] head_dim: usize,
) -> f32 {
    let mut sum = 0.0f32;
    for d in 0..head_dim {
        sum += a[d] * tile[t * head_dim + d];
    }
    sum
}

/// A register array of `n` zeros.
#[cube]
fn zeros(#[comptime] n: usize) -> Array<f32> {
    let mut a = Array::<f32>::new(n);
    for i in 0..n {
        a[i] = 0.0;
    }
    a
}

/// End of the keys a query tile starting at `q_first` sees: all of them, or (causal) those
/// up to its last row. Shared with the tensor-core kernels ([`super::mma`]).
#[cube]
pub(super) fn kv_end(
    seq: usize,
    q_first: usize,
    #[comptime] block_q: usize,
    #[comptime] causal: bool,
) -> usize {
    let mut end = seq;
    if causal {
        end = min(seq, q_first + block_q);
    }
    end
}

/// Loads key/value rows `[first, first + rows)` into the two tiles, with the barriers that
/// keep the previous tile alive until every unit is done with it.
#[cube]
#[allow(clippy::too_many_arguments)]
fn load_pair<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    a_tile: &mut SharedMemory<f32>,
    b_tile: &mut SharedMemory<f32>,
    head_base: usize,
    first: usize,
    seq: usize,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
    #[comptime] units: usize,
) {
    sync_cube();
    load_tile::<F>(a, a_tile, head_base, first, seq, rows, head_dim, units);
    load_tile::<F>(b, b_tile, head_base, first, seq, rows, head_dim, units);
}

/// Forward: `o = softmax(scale · q kᵀ) v` and `lse` (natural log), one query row per unit.
#[cube(launch)]
pub fn flash_forward<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    o: &mut Tensor<F>,
    lse: &mut Tensor<f32>,
    scale: f32,
    seq_len: u32,
    #[comptime] causal: bool,
    #[comptime] head_dim: usize,
    #[comptime] block_q: usize,
    #[comptime] block_kv: usize,
    #[define(F)] _dtype: StorageType,
) {
    let seq = seq_len as usize;
    let head = CUBE_POS_Y as usize;
    let q_first = CUBE_POS_X as usize * block_q;
    let row = q_first + UNIT_POS_X as usize;
    let head_base = head * seq * head_dim;
    let in_range = row < seq;

    let q_row = load_row::<F>(q, head_base + row * head_dim, in_range, head_dim);
    let mut acc = zeros(head_dim);
    let mut scores = Array::<f32>::new(block_kv);
    let mut k_tile = SharedMemory::<f32>::new(comptime!(block_kv * head_dim));
    let mut v_tile = SharedMemory::<f32>::new(comptime!(block_kv * head_dim));
    let neg_big = f32::new(-1.0e30);
    let mut m = neg_big;
    let mut l = 0.0f32;

    let kv_end = kv_end(seq, q_first, block_q, causal);
    let mut kv_first = 0usize;
    while kv_first < kv_end {
        load_pair::<F>(
            k,
            v,
            &mut k_tile,
            &mut v_tile,
            head_base,
            kv_first,
            seq,
            block_kv,
            head_dim,
            block_q,
        );
        sync_cube();

        let mut tile_max = neg_big;
        for t in 0..block_kv {
            let key = kv_first + t;
            let valid = key < seq && (!causal || key <= row);
            let mut s = neg_big;
            if valid {
                s = scale * dot_tile_row(&q_row, &k_tile, t, head_dim);
            }
            scores[t] = s;
            tile_max = max(tile_max, s);
        }
        let m_new = max(m, tile_max);
        let correction = f32::exp(m - m_new);
        l *= correction;
        for d in 0..head_dim {
            acc[d] *= correction;
        }
        for t in 0..block_kv {
            let key = kv_first + t;
            if key < seq && (!causal || key <= row) {
                let p = f32::exp(scores[t] - m_new);
                l += p;
                for d in 0..head_dim {
                    acc[d] += p * v_tile[t * head_dim + d];
                }
            }
        }
        m = m_new;
        kv_first += block_kv;
    }

    if in_range {
        for d in 0..head_dim {
            o[head_base + row * head_dim + d] = F::cast_from(acc[d] / l);
        }
        lse[head * seq + row] = m + f32::ln(l);
    }
}

/// Backward, part 1: `delta_i = Σ_d dO_i · O_i` (written for part 2) and
/// `dQ_i = scale · Σ_j P_ij (dP_ij − delta_i) k_j`, with `P` recomputed from `lse`.
#[cube(launch)]
pub fn flash_backward_dq<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    o: &Tensor<F>,
    d_o: &Tensor<F>,
    lse: &Tensor<f32>,
    delta: &mut Tensor<f32>,
    d_q: &mut Tensor<F>,
    scale: f32,
    seq_len: u32,
    #[comptime] causal: bool,
    #[comptime] head_dim: usize,
    #[comptime] block_q: usize,
    #[comptime] block_kv: usize,
    #[define(F)] _dtype: StorageType,
) {
    let seq = seq_len as usize;
    let head = CUBE_POS_Y as usize;
    let q_first = CUBE_POS_X as usize * block_q;
    let row = q_first + UNIT_POS_X as usize;
    let head_base = head * seq * head_dim;
    let in_range = row < seq;
    let row_base = head_base + row * head_dim;

    let q_row = load_row::<F>(q, row_base, in_range, head_dim);
    let do_row = load_row::<F>(d_o, row_base, in_range, head_dim);
    let mut delta_i = 0.0f32;
    let mut lse_i = 0.0f32;
    if in_range {
        for d in 0..head_dim {
            delta_i += do_row[d] * f32::cast_from(o[row_base + d]);
        }
        lse_i = lse[head * seq + row];
    }
    let mut acc = zeros(head_dim);
    let mut k_tile = SharedMemory::<f32>::new(comptime!(block_kv * head_dim));
    let mut v_tile = SharedMemory::<f32>::new(comptime!(block_kv * head_dim));

    let kv_end = kv_end(seq, q_first, block_q, causal);
    let mut kv_first = 0usize;
    while kv_first < kv_end {
        load_pair::<F>(
            k,
            v,
            &mut k_tile,
            &mut v_tile,
            head_base,
            kv_first,
            seq,
            block_kv,
            head_dim,
            block_q,
        );
        sync_cube();
        for t in 0..block_kv {
            let key = kv_first + t;
            if key < seq && (!causal || key <= row) {
                let s = scale * dot_tile_row(&q_row, &k_tile, t, head_dim);
                let p = f32::exp(s - lse_i);
                let dp = dot_tile_row(&do_row, &v_tile, t, head_dim);
                let ds = p * (dp - delta_i);
                for d in 0..head_dim {
                    acc[d] += ds * k_tile[t * head_dim + d];
                }
            }
        }
        kv_first += block_kv;
    }

    if in_range {
        delta[head * seq + row] = delta_i;
        for d in 0..head_dim {
            d_q[row_base + d] = F::cast_from(scale * acc[d]);
        }
    }
}

/// Backward, part 2 (after part 1, which wrote `delta`), one key row per unit:
/// `dV_j = Σ_i P_ij dO_i` and `dK_j = scale · Σ_i P_ij (dP_ij − delta_i) q_i`.
#[cube(launch)]
pub fn flash_backward_dkv<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    d_o: &Tensor<F>,
    lse: &Tensor<f32>,
    delta: &Tensor<f32>,
    d_k: &mut Tensor<F>,
    d_v: &mut Tensor<F>,
    scale: f32,
    seq_len: u32,
    #[comptime] causal: bool,
    #[comptime] head_dim: usize,
    #[comptime] block_kv: usize,
    #[comptime] block_q: usize,
    #[define(F)] _dtype: StorageType,
) {
    let seq = seq_len as usize;
    let head = CUBE_POS_Y as usize;
    let kv_first = CUBE_POS_X as usize * block_kv;
    let key = kv_first + UNIT_POS_X as usize;
    let head_base = head * seq * head_dim;
    let in_range = key < seq;
    let row_base = head_base + key * head_dim;

    let k_row = load_row::<F>(k, row_base, in_range, head_dim);
    let v_row = load_row::<F>(v, row_base, in_range, head_dim);
    let mut dk = zeros(head_dim);
    let mut dv = zeros(head_dim);
    let mut q_tile = SharedMemory::<f32>::new(comptime!(block_q * head_dim));
    let mut do_tile = SharedMemory::<f32>::new(comptime!(block_q * head_dim));
    let mut lse_tile = SharedMemory::<f32>::new(block_q);
    let mut delta_tile = SharedMemory::<f32>::new(block_q);

    // Causal: queries before this key tile never see its keys.
    let mut q_first = 0usize;
    if causal {
        q_first = kv_first / block_q * block_q;
    }
    while q_first < seq {
        load_pair::<F>(
            q,
            d_o,
            &mut q_tile,
            &mut do_tile,
            head_base,
            q_first,
            seq,
            block_q,
            head_dim,
            block_kv,
        );
        let mut i = UNIT_POS_X as usize;
        while i < block_q {
            let mut lse_value = 0.0f32;
            let mut delta_value = 0.0f32;
            if q_first + i < seq {
                lse_value = lse[head * seq + q_first + i];
                delta_value = delta[head * seq + q_first + i];
            }
            lse_tile[i] = lse_value;
            delta_tile[i] = delta_value;
            i += block_kv;
        }
        sync_cube();
        for t in 0..block_q {
            let query = q_first + t;
            if in_range && query < seq && (!causal || key <= query) {
                let s = scale * dot_tile_row(&k_row, &q_tile, t, head_dim);
                let p = f32::exp(s - lse_tile[t]);
                let dp = dot_tile_row(&v_row, &do_tile, t, head_dim);
                let ds = p * (dp - delta_tile[t]);
                for d in 0..head_dim {
                    dv[d] += p * do_tile[t * head_dim + d];
                    dk[d] += ds * q_tile[t * head_dim + d];
                }
            }
        }
        q_first += block_q;
    }

    if in_range {
        for d in 0..head_dim {
            d_k[row_base + d] = F::cast_from(scale * dk[d]);
            d_v[row_base + d] = F::cast_from(dv[d]);
        }
    }
}
