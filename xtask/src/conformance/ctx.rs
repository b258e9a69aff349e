//! What an op implementation sees of its case: typed tensor and attr access, and a sink for
//! what it produces.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor};
use lm_core::params::{FlatTensor, NamedTensors};
use serde_json::Value;

use super::manifest::CaseSpec;
use super::tensors::HostTensor;

/// One case being run on backend `B`: its spec, its stored tensors (keys without the case
/// prefix, e.g. `inputs.x`) and what the op produced so far (`outputs.y`, `grads.x`).
pub struct CaseCtx<'a, B: AutodiffBackend> {
    pub spec: &'a CaseSpec,
    /// The golden directory (model ops read `attrs.model_dir` relative to it).
    pub golden: &'a Path,
    tensors: &'a BTreeMap<String, HostTensor>,
    pub device: B::Device,
    pub produced: BTreeMap<String, HostTensor>,
}

impl<'a, B: AutodiffBackend> CaseCtx<'a, B> {
    pub fn new(
        spec: &'a CaseSpec,
        golden: &'a Path,
        tensors: &'a BTreeMap<String, HostTensor>,
        device: B::Device,
    ) -> Self {
        Self {
            spec,
            golden,
            tensors,
            device,
            produced: BTreeMap::new(),
        }
    }

    pub fn tensor(&self, key: &str) -> anyhow::Result<&HostTensor> {
        self.tensors
            .get(key)
            .ok_or_else(|| anyhow!("the case has no tensor `{key}`"))
    }

    /// Rank of a stored tensor (a scalar counts as rank 1).
    pub fn rank(&self, key: &str) -> anyhow::Result<usize> {
        Ok(self.tensor(key)?.shape.len().max(1))
    }

    pub fn float<const D: usize>(&self, key: &str) -> anyhow::Result<Tensor<B, D>> {
        self.tensor(key)?.to_float(key, &self.device)
    }

    /// A float input that gradients are taken with respect to.
    pub fn tracked<const D: usize>(&self, key: &str) -> anyhow::Result<Tensor<B, D>> {
        Ok(self.float::<D>(key)?.require_grad())
    }

    pub fn int<const D: usize>(&self, key: &str) -> anyhow::Result<Tensor<B, D, Int>> {
        self.tensor(key)?.to_int(key, &self.device)
    }

    pub fn bool<const D: usize>(&self, key: &str) -> anyhow::Result<Tensor<B, D, Bool>> {
        self.tensor(key)?.to_bool(key, &self.device)
    }

    /// Every `params.*` tensor as `(name, values)` for `lm_core::params::assign_params`.
    pub fn param_source(&self) -> impl FnMut(&str, &[usize]) -> lm_core::Result<Vec<f32>> + '_ {
        move |name, shape| {
            let key = format!("params.{name}");
            let t = self
                .tensors
                .get(&key)
                .ok_or_else(|| lm_core::LmError::MissingTensor {
                    file: self.spec.file.clone().into(),
                    tensor: format!("{}{key}", self.spec.prefix),
                })?;
            if t.shape != shape {
                return Err(lm_core::LmError::shape(
                    &key,
                    format!("{shape:?}"),
                    &t.shape,
                ));
            }
            match &t.values {
                super::tensors::Values::Float(v) => Ok(v.iter().map(|&x| x as f32).collect()),
                _ => Err(lm_core::LmError::Dtype {
                    tensor: key,
                    dtype: t.dtype.clone(),
                    reason: "parameters are float".into(),
                }),
            }
        }
    }

    pub fn attr(&self, name: &str) -> anyhow::Result<&Value> {
        self.spec
            .attrs
            .get(name)
            .ok_or_else(|| anyhow!("the case has no attr `{name}`"))
    }

    pub fn attr_str(&self, name: &str) -> anyhow::Result<&str> {
        self.attr(name)?
            .as_str()
            .with_context(|| format!("attr `{name}` is not a string"))
    }

    pub fn attr_f64(&self, name: &str) -> anyhow::Result<f64> {
        self.attr(name)?
            .as_f64()
            .with_context(|| format!("attr `{name}` is not a number"))
    }

    pub fn attr_usize(&self, name: &str) -> anyhow::Result<usize> {
        let v = self.attr(name)?;
        v.as_u64()
            .map(|x| x as usize)
            .with_context(|| format!("attr `{name}` = {v} is not a non-negative integer"))
    }

    pub fn attr_bool(&self, name: &str) -> anyhow::Result<bool> {
        self.attr(name)?
            .as_bool()
            .with_context(|| format!("attr `{name}` is not a bool"))
    }

    /// A Python-style dim (negative counts from the end) resolved against `rank`.
    pub fn attr_dim(&self, name: &str, rank: usize) -> anyhow::Result<usize> {
        let v = self.attr(name)?;
        let d = v
            .as_i64()
            .with_context(|| format!("attr `{name}` = {v} is not an integer"))?;
        let resolved = if d < 0 { rank as i64 + d } else { d };
        if !(0..rank as i64).contains(&resolved) {
            bail!("attr `{name}` = {d} is out of range for rank {rank}");
        }
        Ok(resolved as usize)
    }

    /// Whether the case compares gradients (then `inputs.upstream` exists for tensor ops).
    pub fn wants_grads(&self) -> bool {
        !self.spec.grads.is_empty()
    }

    /// Back-propagates `loss = sum(y ⊙ upstream)`.
    pub fn backward_upstream<const D: usize>(
        &self,
        y: Tensor<B, D>,
    ) -> anyhow::Result<B::Gradients> {
        let upstream = self.float::<D>("inputs.upstream")?;
        Ok((y * upstream).sum().backward())
    }

    pub fn output<const D: usize>(&mut self, name: &str, t: Tensor<B, D>) {
        self.produced
            .insert(format!("outputs.{name}"), HostTensor::from_float(t));
    }

    pub fn output_host(&mut self, name: &str, t: HostTensor) {
        self.produced.insert(format!("outputs.{name}"), t);
    }

    pub fn output_bool<const D: usize>(&mut self, name: &str, t: Tensor<B, D, Bool>) {
        self.produced
            .insert(format!("outputs.{name}"), HostTensor::from_bool(t));
    }

    pub fn output_int<const D: usize>(&mut self, name: &str, t: Tensor<B, D, Int>) {
        self.produced
            .insert(format!("outputs.{name}"), HostTensor::from_int(t));
    }

    /// Records `d loss / d name` from a tracked tensor; an absent gradient is an error.
    pub fn grad<const D: usize>(
        &mut self,
        name: &str,
        t: &Tensor<B, D>,
        grads: &B::Gradients,
    ) -> anyhow::Result<()> {
        let g = t
            .grad(grads)
            .with_context(|| format!("no gradient reached `{name}`"))?;
        self.produced
            .insert(format!("grads.{name}"), HostTensor::from_float(g));
        Ok(())
    }

    /// Records every gradient of a named map (e.g. all model parameters).
    pub fn grads_named(&mut self, grads: NamedTensors<B::InnerBackend>) {
        for (name, g) in grads {
            self.produced
                .insert(format!("grads.{name}"), flat_to_host(g));
        }
    }
}

/// A flat tensor with its real shape as a host tensor.
pub fn flat_to_host<B: Backend>(t: FlatTensor<B>) -> HostTensor {
    let mut h = HostTensor::from_float(t.values);
    h.shape = t.shape;
    h
}
