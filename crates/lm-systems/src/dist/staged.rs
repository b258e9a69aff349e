//! [`TransformerLm`]'s forward pass one stage at a time (embedding, each block, the final
//! norm and head), with each stage's parameters rewritten just before it runs. The
//! overlapped DDP hooks them there, FSDP gathers them there; both need the activation that
//! enters the stage as the anchor that places their backward op (see [`super::autodiff`]).
//!
//! This mirrors `TransformerLm::try_forward` (the test
//! `staged_forward_is_the_model_forward` keeps the two equal); a per-layer hook in lm-core's
//! forward would make the copy unnecessary.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use lm_core::TransformerLm;
use lm_core::precision::to_dtype;

use super::DistError;

/// What a stage's parameter is replaced by before the stage runs.
pub trait StageParams<B: Backend> {
    /// `name` is the parameter's course name (`layers.0.attn.q_proj.weight`); `anchor` the
    /// activation entering the stage (none for the embedding).
    fn param<const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<B, D>,
        anchor: Option<&Tensor<B, 3>>,
    ) -> Result<Tensor<B, D>, DistError>;
}

/// Rewrites every float parameter of one stage through a [`StageParams`], tracking names.
struct StageMapper<'a, B: Backend, S: StageParams<B>> {
    params: &'a mut S,
    path: Vec<String>,
    anchor: Option<&'a Tensor<B, 3>>,
    error: Option<DistError>,
}

impl<B: Backend, S: StageParams<B>> ModuleMapper<B> for StageMapper<'_, B, S> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if self.error.is_some() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let name = self.path.join(".");
        let mapped = match self.params.param(&name, tensor.clone(), self.anchor) {
            Ok(t) => t,
            Err(e) => {
                self.error = Some(e);
                tensor
            }
        };
        Param::from_mapped_value(id, mapped, mapper)
    }
}

fn stage<B: Backend, M: Module<B>, S: StageParams<B>>(
    params: &mut S,
    prefix: &str,
    module: &M,
    anchor: Option<&Tensor<B, 3>>,
) -> Result<M, DistError> {
    let mut mapper = StageMapper {
        params,
        path: prefix.split('.').map(str::to_string).collect(),
        anchor,
        error: None,
    };
    let mapped = module.clone().map(&mut mapper);
    match mapper.error {
        Some(e) => Err(e),
        None => Ok(mapped),
    }
}

/// `model.forward(input_ids)` with each stage's parameters passed through `params` first.
pub fn forward_in_stages<B: Backend, S: StageParams<B>>(
    model: &TransformerLm<B>,
    input_ids: Tensor<B, 2, Int>,
    params: &mut S,
    rank: usize,
) -> Result<Tensor<B, 3>, DistError> {
    let seq = input_ids.dims()[1];
    if seq > model.context_length {
        return Err(DistError::Usage {
            rank,
            op: "forward",
            reason: format!(
                "input_ids has {seq} positions, the context length is {}",
                model.context_length
            ),
        });
    }
    let embeddings = stage(params, "token_embeddings", &model.token_embeddings, None)?;
    let mut h = embeddings.forward::<2, 3>(input_ids);
    for (i, layer) in model.layers.iter().enumerate() {
        let layer = stage(params, &format!("layers.{i}"), layer, Some(&h))?;
        h = layer.forward(h, None);
    }
    let ln_final = stage(params, "ln_final", &model.ln_final, Some(&h))?;
    let lm_head = stage(params, "lm_head", &model.lm_head, Some(&h))?;
    let residual = h.dtype();
    let normed = to_dtype(ln_final.forward(h), model.compute);
    Ok(to_dtype(lm_head.forward(normed), residual))
}
