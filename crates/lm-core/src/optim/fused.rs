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
//! every parameter alone. The kernel writes over the moment buffers (nothing else holds
//! them). On a backend with burn's fusion layer the whole step is one operation of the
//! fusion stream, run on the inner backend ([`lm_kernels::inner`]): its few ops per
//! parameter (flatten, concatenate, slice, reshape back) would otherwise each be planned
//! by the fusion server.

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape, Tensor, TensorMetadata, TensorPrimitive};
use lm_kernels::inner::{InnerProgram, run_on_inner};

use super::adamw::{AdamW, AdamWConfig, FusedMoments, Moments, adamw_rule, step_size};
use super::clip::clip_scale;
use crate::params::{NamedTensors, inner_params, map_inner_params};

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
        assert!(
            !layout.is_empty(),
            "a fused AdamW step needs at least one gradient"
        );
        let chunks = split_layout(&layout, self.fused_chunk, self.alone_min);
        let like = &grads[&layout[0].0].values;
        let states = self.take_fused_state(&chunks, like);
        let AdamWConfig {
            betas: (b1, b2),
            eps,
            weight_decay,
            ..
        } = self.config;
        let step = FusedStep {
            chunks: chunks.clone(),
            t: self.step,
            lr,
            betas: (b1, b2),
            eps,
            weight_decay,
            max_norm,
        };

        // Inputs: every chunk's parameters (their own shapes), then their gradients (flat),
        // then each chunk's two moments. Outputs: the parameters, the moments, `Σ g²`.
        let mut params = inner_params(&module);
        let names = || chunks.iter().flatten().map(|(name, _)| name);
        let prim = |t: Tensor<B, 1>| t.into_primitive().tensor();
        let mut inputs: Vec<FloatTensor<B>> = names()
            .map(|name| {
                params
                    .remove(name)
                    .expect("every gradient has its parameter")
            })
            .collect();
        let mut outputs: Vec<(Shape, DType)> =
            inputs.iter().map(|p| (p.shape(), p.dtype())).collect();
        inputs.extend(names().map(|name| prim(grads[name].values.clone())));
        drop(params);
        for state in states {
            outputs.push((state.m.shape(), state.m.dtype()));
            outputs.push((state.v.shape(), state.v.dtype()));
            inputs.extend([prim(state.m), prim(state.v)]);
        }
        outputs.push((Shape::new([1]), like.dtype()));

        let mut results = run_on_inner::<B, _>(inputs, outputs, step).into_iter();
        let mut updated: std::collections::BTreeMap<String, FloatTensor<B>> =
            names().cloned().zip(results.by_ref()).collect();
        let wrap = |t| Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(t));
        let mut fused = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let (m, v) = (results.next(), results.next());
            let (Some(m), Some(v)) = (m, v) else {
                unreachable!("the step returns both moments of every chunk")
            };
            fused.push(FusedMoments {
                layout: chunk.clone(),
                m: wrap(m),
                v: wrap(v),
            });
        }
        let sq_norm = wrap(results.next().expect("the step returns the squared norm"));
        let module = map_inner_params(module, &mut |name| updated.remove(name));
        self.fused = fused;
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

/// One fused step's computation, run on whichever backend [`run_on_inner`] picks: the
/// inputs and outputs as [`AdamW::step_module_fused`] lays them out.
struct FusedStep {
    chunks: Vec<Vec<(String, usize)>>,
    t: u64,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    max_norm: Option<f64>,
}

impl InnerProgram for FusedStep {
    fn run<K: Backend>(&self, inputs: Vec<FloatTensor<K>>) -> Vec<FloatTensor<K>> {
        let count: usize = self.chunks.iter().map(Vec::len).sum();
        let mut inputs = inputs.into_iter();
        let flat = |t: FloatTensor<K>| {
            let n = t.shape().num_elements();
            Tensor::<K, 1>::from_primitive(TensorPrimitive::Float(K::float_reshape(
                t,
                Shape::new([n]),
            )))
        };
        let params: Vec<FloatTensor<K>> = inputs.by_ref().take(count).collect();
        let shapes: Vec<Shape> = params.iter().map(|p| p.shape()).collect();
        let params: Vec<Tensor<K, 1>> = params.into_iter().map(flat).collect();
        let grads: Vec<Tensor<K, 1>> = inputs.by_ref().take(count).map(flat).collect();
        let states: Vec<Moments<K>> = self
            .chunks
            .iter()
            .map(|_| {
                let (m, v) = (inputs.next(), inputs.next());
                let (Some(m), Some(v)) = (m, v) else {
                    unreachable!("step_module_fused passes both moments of every chunk")
                };
                Moments {
                    m: flat(m),
                    v: flat(v),
                }
            })
            .collect();

        let (params, states, sq_norm) = self.update(params, grads, states);
        let prim = |t: Tensor<K, 1>| t.into_primitive().tensor();
        let mut out: Vec<FloatTensor<K>> = params
            .into_iter()
            .zip(shapes)
            .map(|(p, shape)| K::float_reshape(prim(p), shape))
            .collect();
        for Moments { m, v } in states {
            out.extend([prim(m), prim(v)]);
        }
        out.push(prim(sq_norm));
        out
    }
}

impl FusedStep {
    /// The parameters (flat, in chunk order), the chunks' moments and `Σ g²` after the step.
    fn update<K: Backend>(
        &self,
        params: Vec<Tensor<K, 1>>,
        grads: Vec<Tensor<K, 1>>,
        states: Vec<Moments<K>>,
    ) -> (Vec<Tensor<K, 1>>, Vec<Moments<K>>, Tensor<K, 1>) {
        // A chunk of one parameter is used as it is: no copy.
        let flat = |mut tensors: Vec<Tensor<K, 1>>| match tensors.len() {
            1 => tensors.pop().expect("one tensor"),
            _ => Tensor::cat(tensors, 0),
        };
        let (mut params, mut grads) = (params.into_iter(), grads.into_iter());
        let mut param_chunks = Vec::with_capacity(self.chunks.len());
        let mut grad_chunks = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            param_chunks.push(flat(params.by_ref().take(chunk.len()).collect()));
            grad_chunks.push(flat(grads.by_ref().take(chunk.len()).collect()));
        }
        // Every chunk's gradient first: the clip scale needs the norm over all of them.
        let sq_norm = grad_chunks
            .iter()
            .map(|g| crate::kernels::sum_squares(g.clone()))
            .reduce(|a, b| a + b)
            .expect("at least one chunk");
        let scale = self
            .max_norm
            .map(|max_norm| clip_scale(sq_norm.clone(), max_norm, 1e-6));
        let (b1, b2) = self.betas;
        let alpha_t = step_size(self.lr, b1, b2, self.t);

        // By the one-launch kernel on GPU backends (for f32 buffers: master weights,
        // gradients and moments always are), by tensor ops elsewhere.
        let kernel = crate::kernels::has_adamw_kernel::<K>()
            && grad_chunks.iter().all(|g| g.dtype() == DType::F32)
            && param_chunks.iter().all(|p| p.dtype() == DType::F32);
        // The kernel reads the clip factor on the device: 1 without clipping.
        let kernel_scale = kernel.then(|| {
            scale
                .clone()
                .unwrap_or_else(|| Tensor::ones([1], &grad_chunks[0].device()))
        });
        let mut updated = Vec::new();
        let mut moments = Vec::with_capacity(self.chunks.len());
        for (((chunk, param), grad), state) in self
            .chunks
            .iter()
            .zip(param_chunks)
            .zip(grad_chunks)
            .zip(states)
        {
            let (param, state) = match &kernel_scale {
                Some(kernel_scale) => {
                    let (p, m, v) = crate::kernels::adamw_step(
                        param,
                        grad,
                        state.m,
                        state.v,
                        kernel_scale.clone(),
                        (b1, b2, self.eps),
                        alpha_t,
                        self.lr * self.weight_decay,
                    )
                    .expect("has_adamw_kernel said the backend has the kernel");
                    (p, Moments { m, v })
                }
                None => {
                    let grad = match &scale {
                        Some(scale) => grad * scale.clone(),
                        None => grad,
                    };
                    let (b1, b2, eps, wd) = (b1, b2, self.eps, self.weight_decay);
                    adamw_rule(param, grad, state, self.t, self.lr, b1, b2, eps, wd)
                }
            };
            // Each parameter's new values: a slice of its chunk's.
            let mut offset = 0;
            for (_, n) in chunk {
                updated.push(param.clone().slice(offset..offset + n));
                offset += n;
            }
            moments.push(state);
        }
        (updated, moments, sq_norm)
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
