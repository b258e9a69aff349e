//! [`TransformerLm`]'s forward pass one stage at a time (embedding, each block, the final
//! norm and head), with each stage's parameters rewritten just before it runs. The
//! overlapped DDP hooks them there, FSDP gathers them there; both need the activation that
//! enters the stage as the anchor that places their backward op (see [`super::autodiff`]).
//!
//! The stages are those of `TransformerLm::try_forward_staged`; this adapts its per-stage
//! rewrite to a per-parameter one.

use std::borrow::Cow;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use lm_core::TransformerLm;
use lm_core::model::StageRewrite;

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

/// Rewrites each stage's parameters through a [`StageParams`].
struct ByParam<'a, S>(&'a mut S);

impl<B: Backend, S: StageParams<B>> StageRewrite<B> for ByParam<'_, S> {
    type Error = DistError;
    fn rewrite<'m, M: Module<B>>(
        &mut self,
        name: &str,
        module: &'m M,
        input: Option<&Tensor<B, 3>>,
    ) -> Result<Cow<'m, M>, DistError> {
        let mut mapper = StageMapper {
            params: &mut *self.0,
            path: name.split('.').map(str::to_string).collect(),
            anchor: input,
            error: None,
        };
        let mapped = module.clone().map(&mut mapper);
        match mapper.error {
            Some(e) => Err(e),
            None => Ok(Cow::Owned(mapped)),
        }
    }
}

/// `model.forward(input_ids)` with each stage's parameters passed through `params` first.
pub fn forward_in_stages<B: Backend, S: StageParams<B>>(
    model: &TransformerLm<B>,
    input_ids: Tensor<B, 2, Int>,
    params: &mut S,
) -> Result<Tensor<B, 3>, DistError> {
    model.try_forward_staged(input_ids, &mut ByParam(params))
}
