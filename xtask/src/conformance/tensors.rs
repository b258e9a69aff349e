//! Host-side tensors of a golden file and their conversion to and from burn tensors.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};
use safetensors::{Dtype, SafeTensors};

/// Values of a stored tensor, floats upcast to f64 (exact for F32/BF16/F16).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The dtype as stored (`F32`, `BF16`, …); produced tensors carry the kind they came in.
    pub dtype: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

impl HostTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Shape for a burn tensor of rank `D`; a scalar `[]` becomes `[1]`.
    fn dims<const D: usize>(&self, key: &str) -> anyhow::Result<[usize; D]> {
        let shape = if self.shape.is_empty() {
            vec![1]
        } else {
            self.shape.clone()
        };
        shape.try_into().map_err(|s: Vec<usize>| {
            anyhow::anyhow!("`{key}` has rank {} ({s:?}), expected rank {D}", s.len())
        })
    }

    pub fn to_float<B: Backend, const D: usize>(
        &self,
        key: &str,
        device: &B::Device,
    ) -> anyhow::Result<Tensor<B, D>> {
        let Values::Float(v) = &self.values else {
            bail!("`{key}` is {} but a float tensor is expected", self.dtype)
        };
        let data = TensorData::new(
            v.iter().map(|&x| x as f32).collect::<Vec<f32>>(),
            self.dims::<D>(key)?,
        );
        Ok(Tensor::from_data(data, device))
    }

    pub fn to_int<B: Backend, const D: usize>(
        &self,
        key: &str,
        device: &B::Device,
    ) -> anyhow::Result<Tensor<B, D, Int>> {
        let Values::Int(v) = &self.values else {
            bail!(
                "`{key}` is {} but an integer tensor is expected",
                self.dtype
            )
        };
        Ok(Tensor::from_data(
            TensorData::new(v.clone(), self.dims::<D>(key)?),
            device,
        ))
    }

    pub fn to_bool<B: Backend, const D: usize>(
        &self,
        key: &str,
        device: &B::Device,
    ) -> anyhow::Result<Tensor<B, D, Bool>> {
        let Values::Bool(v) = &self.values else {
            bail!("`{key}` is {} but a bool tensor is expected", self.dtype)
        };
        Ok(Tensor::from_data(
            TensorData::new(v.clone(), self.dims::<D>(key)?),
            device,
        ))
    }

    pub fn from_float<B: Backend, const D: usize>(t: Tensor<B, D>) -> Self {
        let shape = t.dims().to_vec();
        let values = t
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .expect("converted to f64");
        Self::float(shape, values)
    }

    pub fn from_int<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Self {
        let shape = t.dims().to_vec();
        let values = t
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .expect("converted to i64");
        Self {
            dtype: "I64".into(),
            shape,
            values: Values::Int(values),
        }
    }

    pub fn from_bool<B: Backend, const D: usize>(t: Tensor<B, D, Bool>) -> Self {
        let shape = t.dims().to_vec();
        let values = t.into_data().to_vec::<bool>().expect("bool data");
        Self {
            dtype: "BOOL".into(),
            shape,
            values: Values::Bool(values),
        }
    }

    pub fn float(shape: Vec<usize>, values: Vec<f64>) -> Self {
        Self {
            dtype: "F64".into(),
            shape,
            values: Values::Float(values),
        }
    }
}

/// Reads every tensor of a safetensors file, keyed by full name.
pub fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, HostTensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let t =
                decode(&view).with_context(|| format!("{}: tensor `{name}`", path.display()))?;
            Ok((name, t))
        })
        .collect()
}

fn decode(view: &safetensors::tensor::TensorView<'_>) -> anyhow::Result<HostTensor> {
    let d = view.data();
    let values = match view.dtype() {
        Dtype::F64 => Values::Float(
            d.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        Dtype::F32 => Values::Float(
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
        ),
        Dtype::BF16 => Values::Float(
            d.chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
        ),
        Dtype::F16 => Values::Float(
            d.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
        ),
        Dtype::I64 => Values::Int(
            d.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        Dtype::I32 => Values::Int(
            d.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        ),
        Dtype::BOOL => Values::Bool(d.iter().map(|&b| b != 0).collect()),
        other => bail!("dtype {other:?} is not used by the golden format"),
    };
    Ok(HostTensor {
        dtype: format!("{:?}", view.dtype()),
        shape: view.shape().to_vec(),
        values,
    })
}
