//! AdamW over all parameters at once: the gradients, parameters and moments of every tensor
//! concatenated into flat buffers, so a step is a handful of large element-wise kernels
//! instead of a dozen small ones per parameter (on a GPU the per-launch cost dominated: a
//! per-parameter step of the TinyStories model took ~10 ms of a ~31 ms training step).
//! Global-norm clipping is folded in: the norm is one reduction per flat gradient. Buffers
//! hold at most [`FUSED_CHUNK_VALUES`](super::adamw::FUSED_CHUNK_VALUES) values, so a large
//! model is updated chunk by chunk instead of through full copies of every parameter.
//! Parameters of at least [`ALONE_MIN_VALUES`](super::adamw::ALONE_MIN_VALUES) values (none
//! by default; `LM_ADAMW_ALONE_VALUES` sets the limit) are updated in their own buffers,
//! without the two extra passes a concatenation costs; `LM_ADAMW_CHUNK_VALUES=1` updates
//! every parameter alone. The kernel writes over the parameter and moment buffers when
//! nothing else holds them, so the step keeps no second copy of the parameters.

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor};

use super::adamw::{AdamW, AdamWConfig, FusedMoments, Moments, adamw_rule, step_size};
use super::clip::clip_scale;
use crate::params::{FlatTensor, NamedTensors, map_named_params, named_params};

impl<B: Backend> AdamW<B> {
    /// One step over every parameter of `module` that has a gradient, with the gradients
    /// first scaled to a global L2 norm of at most `max_norm` (when given; eps 1e-6 as the
    /// handout). Returns the updated module and `Σ g²` before clipping, on the device.
    ///
    /// Computes the same values as [`Self::step_module`] after
    /// [`clip_to_norm_on_device`](super::clip_to_norm_on_device), up to the summation order
    /// of the norm.
    pub fn step_module_fused<AB, M>(
        &mut self,
        module: M,
        grads: &NamedTensors<B>,
        lr: f64,
        max_norm: Option<f64>,
    ) -> (M, Tensor<B, 1>)
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: Module<AB>,
    {
        self.begin_step();
        let layout: Vec<(String, usize)> = grads
            .iter()
            .map(|(name, g)| (name.clone(), g.numel()))
            .collect();
        let chunks = split_layout(&layout, self.fused_chunk, self.alone_min);
        // A chunk of one parameter is used as it is: no copy.
        let flat = |mut tensors: Vec<Tensor<B, 1>>| match tensors.len() {
            1 => tensors.pop().expect("one tensor"),
            _ => Tensor::cat(tensors, 0),
        };
        // Every chunk's gradient first: the clip scale needs the norm over all of them.
        let grad_chunks: Vec<Tensor<B, 1>> = chunks
            .iter()
            .map(|chunk| flat(chunk.iter().map(|(n, _)| grads[n].values.clone()).collect()))
            .collect();
        let sq_norm = grad_chunks
            .iter()
            .map(|g| g.clone().square().sum())
            .reduce(|a, b| a + b)
            .expect("a fused AdamW step needs at least one gradient");
        let scale = max_norm.map(|max_norm| clip_scale(sq_norm.clone(), max_norm, 1e-6));
        let states = self.take_fused_state(&chunks, &grad_chunks[0]);
        let AdamWConfig {
            betas: (b1, b2),
            eps,
            weight_decay,
            ..
        } = self.config;
        let (t, alpha_t) = (self.step, step_size(lr, b1, b2, self.step));

        // By the one-launch kernel on GPU backends (for f32 buffers: master weights,
        // gradients and moments always are), by tensor ops elsewhere.
        let params = named_params(&module);
        let kernel = crate::kernels::has_adamw_kernel::<B>()
            && grad_chunks.iter().all(|g| g.dtype() == DType::F32)
            && layout
                .iter()
                .all(|(name, _)| params[name].values.dtype() == DType::F32);
        // The kernel reads the clip factor on the device: 1 without clipping.
        let kernel_scale = kernel.then(|| {
            scale
                .clone()
                .unwrap_or_else(|| Tensor::ones([1], &grad_chunks[0].device()))
        });
        let update = |param: Tensor<B, 1>, grad: Tensor<B, 1>, state: Moments<B>| {
            if let Some(kernel_scale) = &kernel_scale {
                let (p, m, v) = crate::kernels::adamw_step(
                    param,
                    grad,
                    state.m,
                    state.v,
                    kernel_scale.clone(),
                    (b1, b2, eps),
                    alpha_t,
                    lr * weight_decay,
                )
                .expect("has_adamw_kernel said the backend has the kernel");
                (p, Moments { m, v })
            } else {
                let grad = match &scale {
                    Some(scale) => grad * scale.clone(),
                    None => grad,
                };
                adamw_rule(param, grad, state, t, lr, b1, b2, eps, weight_decay)
            }
        };

        // Concatenated chunks are updated now, each parameter's new values a slice of the
        // chunk's. A parameter alone is updated below, when the module hands it over: then
        // nothing else holds its buffer and the kernel writes over it.
        let mut slices = std::collections::BTreeMap::new();
        let mut alone = std::collections::BTreeMap::new();
        let mut moments: Vec<Option<Moments<B>>> = Vec::with_capacity(chunks.len());
        for (index, ((chunk, grad), state)) in
            chunks.iter().zip(grad_chunks).zip(states).enumerate()
        {
            if let [(name, _)] = chunk.as_slice() {
                alone.insert(name.clone(), (index, grad, state));
                moments.push(None);
                continue;
            }
            let param = flat(
                chunk
                    .iter()
                    .map(|(name, _)| params[name].values.clone().inner())
                    .collect(),
            );
            let (updated, state) = update(param, grad, state);
            let mut offset = 0;
            for (name, n) in chunk {
                slices.insert(name.clone(), updated.clone().slice(offset..offset + n));
                offset += n;
            }
            moments.push(Some(state));
        }
        drop(params);
        let module = map_named_params(module, &mut |name, p| {
            let values = if let Some(values) = slices.remove(name) {
                values
            } else if let Some((index, grad, state)) = alone.remove(name) {
                let (updated, state) = update(p.values.inner(), grad, state);
                moments[index] = Some(state);
                updated
            } else {
                return p;
            };
            FlatTensor {
                values: Tensor::from_inner(values),
                shape: p.shape,
            }
        });
        self.fused = chunks
            .into_iter()
            .zip(moments)
            .map(|(layout, state)| {
                let Moments { m, v } = state.expect("every chunk's parameters are in the module");
                FusedMoments { layout, m, v }
            })
            .collect();
        (module, sq_norm)
    }

    /// The flat moments of each chunk: kept from the last fused step when it had the same
    /// chunks, else gathered from the per-parameter state (zeros for parameters without any).
    fn take_fused_state(
        &mut self,
        chunks: &[Vec<(String, usize)>],
        like: &Tensor<B, 1>,
    ) -> Vec<Moments<B>> {
        let same = self.fused.len() == chunks.len()
            && self.fused.iter().zip(chunks).all(|(f, c)| &f.layout == c);
        if same {
            return std::mem::take(&mut self.fused)
                .into_iter()
                .map(|f| Moments { m: f.m, v: f.v })
                .collect();
        }
        // First step, or a different parameter set or chunking: gather from the per-name form.
        self.unfuse();
        let device = like.device();
        chunks
            .iter()
            .map(|chunk| {
                let (mut ms, mut vs) = (Vec::new(), Vec::new());
                for (name, n) in chunk {
                    match self.moments.remove(name) {
                        Some(state) => {
                            ms.push(state.m);
                            vs.push(state.v);
                        }
                        None => {
                            ms.push(Tensor::zeros([*n], &device));
                            vs.push(Tensor::zeros([*n], &device));
                        }
                    }
                }
                Moments {
                    m: Tensor::cat(ms, 0),
                    v: Tensor::cat(vs, 0),
                }
            })
            .collect()
    }
}

/// `layout` cut into the fused step's chunks: each parameter of at least `alone_min` values
/// alone (updated in its own buffers, nothing copied), the others concatenated in order into
/// runs of at most `max_values` values. On a GPU a concatenation costs two extra passes over
/// the parameter and its gradient, a chunk of its own a few more launches: large parameters
/// are cheaper alone, small ones together.
fn split_layout(
    layout: &[(String, usize)],
    max_values: usize,
    alone_min: usize,
) -> Vec<Vec<(String, usize)>> {
    let mut alone = Vec::new();
    let mut runs: Vec<Vec<(String, usize)>> = Vec::new();
    let mut filled = 0;
    for (name, n) in layout {
        if *n >= alone_min {
            alone.push(vec![(name.clone(), *n)]);
            continue;
        }
        match runs.last_mut() {
            Some(run) if filled + n <= max_values => run.push((name.clone(), *n)),
            _ => {
                runs.push(vec![(name.clone(), *n)]);
                filled = 0;
            }
        }
        filled += n;
    }
    runs.extend(alone);
    runs
}

#[cfg(test)]
mod tests {
    use super::split_layout;

    #[test]
    fn layout_splits_into_runs_within_the_limit() {
        let layout: Vec<(String, usize)> = [("a", 3), ("b", 4), ("c", 10), ("d", 2), ("e", 1)]
            .iter()
            .map(|(n, k)| (n.to_string(), *k))
            .collect();
        let names = |chunks: Vec<Vec<(String, usize)>>| -> Vec<String> {
            chunks
                .iter()
                .map(|c| c.iter().map(|(n, _)| n.as_str()).collect::<String>())
                .collect()
        };
        let all = usize::MAX;
        assert_eq!(names(split_layout(&layout, 8, all)), ["ab", "c", "de"]);
        assert_eq!(names(split_layout(&layout, 100, all)), ["abcde"]);
        assert_eq!(
            names(split_layout(&layout, 1, all)),
            ["a", "b", "c", "d", "e"]
        );
        assert!(split_layout(&[], 8, all).is_empty());
        // Parameters of 4+ values alone (after the runs), the rest still concatenated.
        assert_eq!(names(split_layout(&layout, 100, 4)), ["ade", "b", "c"]);
        assert_eq!(names(split_layout(&layout, 3, 4)), ["a", "de", "b", "c"]);
    }
}
