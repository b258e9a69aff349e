//! Decode-step kernels over a preallocated KV cache `[rows, kv_heads, max_len, head_dim]`
//! (contiguous): the new token's q/k/v (bias, RoPE, k and v written at each row's own slot),
//! and one query token per row attending over the first `len` slots. All arithmetic in f32.

use cubecl::prelude::*;

use crate::reduce::cube_reduce;

/// The decode step's q/k/v from the stacked projection `qkv [rows, (heads + 2·kv_heads) ·
/// head_dim]` (before its bias), one unit per element: the bias added (`has_bias`), q and k
/// rotated by RoPE (`x·cos + x[partner]·sin_signed`, the per-row tables `[rows, head_dim]`),
/// q written to `q_out [rows, heads, head_dim]`, k and v written into the caches at slot
/// `slots[row]` (rows whose slot is outside `0..max_len` write nothing).
#[cube(launch)]
pub fn decode_qkv<F: Float, I: Numeric>(
    qkv: &Tensor<F>,
    bias: &Tensor<F>,
    cos: &Tensor<F>,
    sin_signed: &Tensor<F>,
    partner: &Tensor<I>,
    slots: &Tensor<I>,
    q_out: &mut Tensor<F>,
    k_cache: &mut Tensor<F>,
    v_cache: &mut Tensor<F>,
    heads: u32,
    kv_heads: u32,
    max_len: u32,
    head_dim: u32,
    #[comptime] has_bias: bool,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let idx = ABSOLUTE_POS;
    if idx < qkv.len() {
        let (h, kv, hd) = (heads as usize, kv_heads as usize, head_dim as usize);
        let width = (h + 2 * kv) * hd;
        let row = idx / width;
        let within = idx % width;
        let head = within / hd;
        let d = within % hd;
        let mut x = f32::cast_from(qkv[idx]);
        if has_bias {
            x += f32::cast_from(bias[within]);
        }
        if head < h + kv {
            let partner_within = head * hd + u32::cast_from(partner[d]) as usize;
            let mut x_partner = f32::cast_from(qkv[row * width + partner_within]);
            if has_bias {
                x_partner += f32::cast_from(bias[partner_within]);
            }
            let table = row * hd + d;
            x = x * f32::cast_from(cos[table]) + x_partner * f32::cast_from(sin_signed[table]);
        }
        if head < h {
            q_out[(row * h + head) * hd + d] = F::cast_from(x);
        } else {
            // Compared as i64 so a negative slot (never written) cannot wrap into range.
            let slot = i64::cast_from(slots[row]);
            if slot >= 0 && slot < i64::cast_from(max_len) {
                let kv_head = (head - h) % kv;
                let at = ((row * kv + kv_head) * max_len as usize + slot as usize) * hd + d;
                if head < h + kv {
                    k_cache[at] = F::cast_from(x);
                } else {
                    v_cache[at] = F::cast_from(x);
                }
            }
        }
    }
}

/// One cube per (row, query head), `units` units; query head `h` reads kv head
/// `h / group`. `out[row, h] = softmax(q · kᵀ · scale + bias[row]) · v` over slots
/// `0..len`, with `bias [rows, len]` additive (−∞ = masked; each row has at least one
/// visible slot). Slots are taken `units` at a time: each unit scores one slot, the cube
/// finds the chunk's max and sum, then unit `d < head_dim` rescales and accumulates
/// output column `d` (online softmax, as in FlashAttention).
#[cube(launch)]
pub fn decode_attention<F: Float>(
    q: &Tensor<F>,
    k_cache: &Tensor<F>,
    v_cache: &Tensor<F>,
    bias: &Tensor<f32>,
    out: &mut Tensor<F>,
    heads: u32,
    group: u32,
    max_len: u32,
    len: u32,
    head_dim: u32,
    scale: f32,
    #[comptime] units: usize,
    #[define(F)] _dtype: StorageType,
) {
    let row_head = CUBE_POS;
    let row = row_head / heads as usize;
    let head = row_head % heads as usize;
    let kv_heads = heads as usize / group as usize;
    let hd = head_dim as usize;
    let unit = UNIT_POS_X as usize;
    let slots = len as usize;

    let mut q_scaled = SharedMemory::<f32>::new(units);
    let mut probs = SharedMemory::<f32>::new(units);
    let mut reduce = SharedMemory::<f32>::new(units);
    if unit < hd {
        q_scaled[unit] = f32::cast_from(q[row_head * hd + unit]) * scale;
    }
    sync_cube();

    let cache_base = (row * kv_heads + head / group as usize) * max_len as usize * hd;
    let bias_base = row * slots;
    // Masked scores are clamped to this, and masked slots get probability 0 explicitly:
    // no infinity enters the arithmetic, so no NaN can come out of it.
    let masked = f32::new(-1.0e30);
    let mut running_max = masked;
    let mut running_sum = 0.0f32;
    let mut acc = 0.0f32;
    let mut start = 0usize;
    while start < slots {
        // The chunk's scores, one slot per unit.
        let slot = start + unit;
        let mut score = masked;
        if slot < slots {
            let key = cache_base + slot * hd;
            let mut dot = 0.0f32;
            for d in 0..hd {
                dot += q_scaled[d] * f32::cast_from(k_cache[key + d]);
            }
            score = max(dot + bias[bias_base + slot], masked);
        }
        reduce[unit] = score;
        cube_reduce(&mut reduce, unit, true);
        let new_max = max(running_max, reduce[0]);
        sync_cube();
        let p = select(score > masked, f32::exp(score - new_max), 0.0f32);
        probs[unit] = p;
        reduce[unit] = p;
        cube_reduce(&mut reduce, unit, false);
        let rescale = f32::exp(running_max - new_max);
        running_sum = running_sum * rescale + reduce[0];
        running_max = new_max;
        if unit < hd {
            let chunk = min(units, slots - start);
            let mut sum = 0.0f32;
            for j in 0..chunk {
                sum += probs[j] * f32::cast_from(v_cache[cache_base + (start + j) * hd + unit]);
            }
            acc = acc * rescale + sum;
        }
        sync_cube();
        start += units;
    }
    if unit < hd {
        out[row_head * hd + unit] = F::cast_from(acc / running_sum);
    }
}

/// [`decode_attention`] with one cube per (row, kv head), serving the kv head's whole
/// group of `group` query heads: each chunk of `chunk` slots of k, then of v, is read from
/// the cache once (coalesced, into shared memory with rows padded to `head_dim + 1` so that
/// units reading one column of different slots hit different banks) instead of once per
/// query head. Per chunk: the `group × chunk` scores, each query head's online-softmax
/// update (one unit per head), and the `group × head_dim` outputs' accumulation, units
/// striding over the work. `group_cap` = group · head_dim, `tile_cap` = chunk ·
/// (head_dim + 1), `score_cap` = group · chunk: the shared-memory sizes.
#[cube(launch)]
pub fn decode_attention_grouped<F: Float>(
    q: &Tensor<F>,
    k_cache: &Tensor<F>,
    v_cache: &Tensor<F>,
    bias: &Tensor<f32>,
    out: &mut Tensor<F>,
    heads: u32,
    group: u32,
    max_len: u32,
    len: u32,
    head_dim: u32,
    scale: f32,
    #[comptime] units: usize,
    #[comptime] chunk: usize,
    #[comptime] group_cap: usize,
    #[comptime] tile_cap: usize,
    #[comptime] score_cap: usize,
    #[define(F)] _dtype: StorageType,
) {
    let kv_heads = heads as usize / group as usize;
    let row = CUBE_POS / kv_heads;
    let kv_head = CUBE_POS % kv_heads;
    let g_n = group as usize;
    let hd = head_dim as usize;
    let stride = hd + 1;
    let unit = UNIT_POS_X as usize;
    let slots = len as usize;
    let q_base = (row * heads as usize + kv_head * g_n) * hd;
    let cache_base = (row * kv_heads + kv_head) * max_len as usize * hd;
    let bias_base = row * slots;
    let gh = g_n * hd;
    let masked = f32::new(-1.0e30);

    let mut q_scaled = SharedMemory::<f32>::new(group_cap);
    let mut acc = SharedMemory::<f32>::new(group_cap);
    let mut tile = SharedMemory::<f32>::new(tile_cap);
    let mut probs = SharedMemory::<f32>::new(score_cap);
    // Per query head (the first `group` entries): running max, running sum, this chunk's
    // rescale factor.
    let mut run_max = SharedMemory::<f32>::new(score_cap);
    let mut run_sum = SharedMemory::<f32>::new(score_cap);
    let mut rescale = SharedMemory::<f32>::new(score_cap);
    let mut i = unit;
    while i < gh {
        q_scaled[i] = f32::cast_from(q[q_base + i]) * scale;
        acc[i] = 0.0f32;
        i += units;
    }
    if unit < g_n {
        run_max[unit] = masked;
        run_sum[unit] = 0.0f32;
    }
    sync_cube();

    let mut start = 0usize;
    while start < slots {
        let n = min(chunk, slots - start);
        let chunk_base = cache_base + start * hd;
        // k's chunk: slots are contiguous in the cache, so this is one coalesced run.
        let mut i = unit;
        while i < n * hd {
            tile[(i / hd) * stride + i % hd] = f32::cast_from(k_cache[chunk_base + i]);
            i += units;
        }
        sync_cube();
        // Scores, clamped at `masked` (masked slots get probability 0 below: no infinity
        // enters the arithmetic, so no NaN can come out of it).
        let mut p = unit;
        while p < g_n * n {
            let g = p / n;
            let s = p % n;
            let mut dot = 0.0f32;
            for d in 0..hd {
                dot += q_scaled[g * hd + d] * tile[s * stride + d];
            }
            probs[g * chunk + s] = max(dot + bias[bias_base + start + s], masked);
            p += units;
        }
        sync_cube();
        if unit < g_n {
            let row_at = unit * chunk;
            let mut chunk_max = masked;
            for s in 0..n {
                chunk_max = max(chunk_max, probs[row_at + s]);
            }
            let new_max = max(run_max[unit], chunk_max);
            let mut sum = 0.0f32;
            for s in 0..n {
                let score = probs[row_at + s];
                let e = select(score > masked, f32::exp(score - new_max), 0.0f32);
                probs[row_at + s] = e;
                sum += e;
            }
            let r = f32::exp(run_max[unit] - new_max);
            rescale[unit] = r;
            run_sum[unit] = run_sum[unit] * r + sum;
            run_max[unit] = new_max;
        }
        // v's chunk replaces k's (every score is computed).
        let mut i = unit;
        while i < n * hd {
            tile[(i / hd) * stride + i % hd] = f32::cast_from(v_cache[chunk_base + i]);
            i += units;
        }
        sync_cube();
        let mut i = unit;
        while i < gh {
            let g = i / hd;
            let d = i % hd;
            let mut sum = 0.0f32;
            for s in 0..n {
                sum += probs[g * chunk + s] * tile[s * stride + d];
            }
            acc[i] = acc[i] * rescale[g] + sum;
            i += units;
        }
        sync_cube();
        start += chunk;
    }
    let mut i = unit;
    while i < gh {
        out[q_base + i] = F::cast_from(acc[i] / run_sum[i / hd]);
        i += units;
    }
}

/// `out = silu(gate) · up = gate / (1 + e^−gate) · up`, element-wise (SwiGLU's gate).
#[cube(launch)]
pub fn silu_mul<F: Float>(
    gate: &Tensor<F>,
    up: &Tensor<F>,
    out: &mut Tensor<F>,
    #[define(F)] _dtype: StorageType,
) {
    let idx = ABSOLUTE_POS;
    if idx < out.len() {
        let g = f32::cast_from(gate[idx]);
        out[idx] = F::cast_from(g / (1.0f32 + f32::exp(-g)) * f32::cast_from(up[idx]));
    }
}
