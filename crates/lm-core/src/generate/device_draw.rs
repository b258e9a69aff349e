//! Drawing the next token of every row on the model's device, so a step reads back three
//! numbers per row instead of the whole `[rows, vocab]` logits (155 MB a step for 256 rows
//! of a 152k vocabulary).
//!
//! It covers greedy rows and rows sampled from the whole vocabulary at any temperature
//! (no top-k / top-p: what RL rollouts and most evaluations use); the engine keeps the host
//! sampler for the rest. The draw is the host sampler's: an inverse CDF in token order with
//! the row's own uniform `u` (taken from the row's RNG on the host), so a seed gives the
//! same tokens either way up to f32 rounding at the boundaries between tokens. The CDF is
//! found in two levels — block sums, then the one block holding `u` — because a scan over
//! the whole vocabulary is quadratic in burn's CubeCL `cumsum`. On the GPU backends without
//! autodiff the whole draw is one kernel (`lm_kernels::decode::draw`, the same definition:
//! chunk sums, then the one chunk holding `u`); elsewhere it is tensor ops.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::params::SamplingParams;
use crate::error::{LmError, Result};

/// Tokens per block of the two-level CDF (about √vocab for 150k-token vocabularies).
const BLOCK: usize = 512;

/// Whether a request's sampling can run on the device.
pub fn on_device(params: &SamplingParams, vocab: usize) -> bool {
    params.is_greedy() || (params.top_k.is_none_or(|k| k >= vocab) && params.top_p >= 1.0)
}

/// What one row's draw needs from the host.
#[derive(Debug, Clone, Copy)]
pub struct DrawInput {
    pub greedy: bool,
    pub temperature: f32,
    /// Uniform in `[0, 1)`; ignored for greedy rows.
    pub uniform: f64,
}

/// One row's result: the token and `log_softmax(logits)[token]` at temperature 1, or
/// `None` when the row's logits have no finite log-normaliser (NaN, all `-inf`, or `+inf`);
/// the host sampler then decides.
pub type DeviceDraw = Option<(u32, f32)>;

/// Draws one token per row of `logits [n, vocab]` (`inputs[i]` for row `i`).
pub fn draw_on_device<B: Backend>(
    logits: Tensor<B, 2>,
    inputs: &[DrawInput],
) -> Result<Vec<DeviceDraw>> {
    let [n, vocab] = logits.dims();
    if n != inputs.len() {
        return Err(LmError::shape(
            "device draw logits",
            format!("[{}, vocab]", inputs.len()),
            &[n, vocab],
        ));
    }
    let device = logits.device();
    // (1 / temperature, u) per row, u < 0 for greedy: the kernel's parameters.
    let params: Vec<f32> = inputs
        .iter()
        .flat_map(|d| match d.greedy {
            true => [1.0, -1.0],
            false => [1.0 / d.temperature, d.uniform as f32],
        })
        .collect();
    let params = Tensor::<B, 2>::from_data(TensorData::new(params, [n, 2]), &device);
    let packed = match crate::kernels::draw_rows(logits, params) {
        Ok(packed) => packed,
        Err((logits, params)) => {
            let greedy_rows = inputs.iter().filter(|d| d.greedy).count();
            draw_with_tensor_ops(logits, params, greedy_rows)
        }
    };
    let values = packed
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| LmError::Kernel(format!("reading the device draws: {e:?}")))?;
    Ok(values
        .chunks_exact(3)
        .map(|r| (r[2] > 0.5).then_some((r[0] as u32, r[1])))
        .collect())
}

/// [`draw_on_device`]'s `[n, 3]` result (token, log-prob, finite flag) in tensor ops, for
/// backends without the draw kernel; `params` as for the kernel, `greedy_rows` of them.
fn draw_with_tensor_ops<B: Backend>(
    logits: Tensor<B, 2>,
    params: Tensor<B, 2>,
    greedy_rows: usize,
) -> Tensor<B, 2> {
    let [n, vocab] = logits.dims();
    let logits = logits.clone().mask_fill(logits.is_nan(), f32::NEG_INFINITY);
    let max = logits.clone().max_dim(1);
    let shifted = logits.clone() - max.clone();
    let log_z = max + shifted.clone().exp().sum_dim(1).log(); // [n, 1], temperature 1
    // An all-greedy batch (evaluation) skips the sampling pass over the vocabulary, and an
    // all-sampled one (rollouts) the argmax.
    let token = if greedy_rows == n {
        logits.clone().argmax(1)
    } else {
        let inv_t = params.clone().narrow(1, 0, 1);
        let uniform = params.narrow(1, 1, 1);
        let weights = (shifted * inv_t).exp();
        let target = weights.clone().sum_dim(1) * uniform.clone();
        let sampled = inverse_cdf(weights, target).clamp_max(vocab as i64 - 1);
        if greedy_rows == 0 {
            sampled
        } else {
            sampled.mask_where(uniform.lower_elem(0.0), logits.clone().argmax(1))
        }
    };
    let logprob = logits.gather(1, token.clone()) - log_z.clone();
    let finite = log_z
        .clone()
        .is_nan()
        .bool_not()
        .bool_and(log_z.is_inf().bool_not());
    Tensor::cat(vec![token.float(), logprob, finite.float()], 1)
}

/// Per row, the first index whose running sum of `weights [n, V]` exceeds `target [n, 1]`
/// (`[n, 1]`, at most the last index of the padded blocks).
fn inverse_cdf<B: Backend>(weights: Tensor<B, 2>, target: Tensor<B, 2>) -> Tensor<B, 2, Int> {
    let [n, vocab] = weights.dims();
    let blocks = vocab.div_ceil(BLOCK);
    let device = weights.device();
    let weights = if blocks * BLOCK > vocab {
        Tensor::cat(
            vec![weights, Tensor::zeros([n, blocks * BLOCK - vocab], &device)],
            1,
        )
    } else {
        weights
    };
    let weights: Tensor<B, 3> = weights.reshape([n, blocks, BLOCK]);
    let sums: Tensor<B, 2> = weights.clone().sum_dim(2).reshape([n, blocks]);
    let running = sums.clone().cumsum(1);
    let count_at_most = |running: Tensor<B, 2>, width: usize| {
        running
            .lower_equal(target.clone().expand([n, width]))
            .int()
            .sum_dim(1)
            .clamp_max(width as i64 - 1)
    };
    let block = count_at_most(running.clone(), blocks);
    let before = (running - sums).gather(1, block.clone());
    let in_block: Tensor<B, 2> = weights
        .gather(1, block.clone().reshape([n, 1, 1]).expand([n, 1, BLOCK]))
        .reshape([n, BLOCK]);
    let within = count_at_most(in_block.cumsum(1) + before.expand([n, BLOCK]), BLOCK);
    block * BLOCK as i64 + within
}
