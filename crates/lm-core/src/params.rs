//! Parameters by name: listing, gradient collection, and safetensors load/save with the
//! course's state-dict names (so PyTorch users can exchange weights with us).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorData, TensorMetadata, TensorPrimitive};
use safetensors::{Dtype, SafeTensors};

use crate::error::{LmError, Result};

/// Tracks the dotted path of the module being visited (`layers.0.attn.q_proj.weight`).
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self) -> String {
        self.0.join(".")
    }
}

/// A tensor flattened to 1-D with its real shape, so maps can hold tensors of any rank.
#[derive(Debug, Clone)]
pub struct FlatTensor<B: Backend> {
    pub values: Tensor<B, 1>,
    pub shape: Vec<usize>,
}

impl<B: Backend> FlatTensor<B> {
    pub fn from_tensor<const D: usize>(t: Tensor<B, D>) -> Self {
        let shape = t.dims().to_vec();
        Self {
            values: t.reshape([shape.iter().product::<usize>()]),
            shape,
        }
    }

    pub fn to_tensor<const D: usize>(&self) -> Tensor<B, D> {
        let dims: [usize; D] = self
            .shape
            .clone()
            .try_into()
            .expect("rank checked by caller");
        self.values.clone().reshape(dims)
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Name → tensor map of a module's parameters or of their gradients.
pub type NamedTensors<B> = BTreeMap<String, FlatTensor<B>>;

/// What [`collect_named`] takes from each float parameter (`None`: nothing).
trait TakeParam<B: Backend> {
    type Out;
    fn take<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) -> Option<Self::Out>;
}

/// `take`'s value of every float parameter of `module` that gives one, by course name, in a
/// stable (sorted) order.
fn collect_named<B: Backend, M: Module<B>, T: TakeParam<B>>(
    module: &M,
    take: T,
) -> BTreeMap<String, T::Out> {
    struct Collect<B: Backend, T: TakeParam<B>> {
        path: PathStack,
        take: T,
        out: BTreeMap<String, T::Out>,
        backend: PhantomData<B>,
    }
    impl<B: Backend, T: TakeParam<B>> ModuleVisitor<B> for Collect<B, T> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(value) = self.take.take(param) {
                self.out.insert(self.path.name(), value);
            }
        }
    }
    let mut v = Collect {
        path: PathStack::default(),
        take,
        out: BTreeMap::new(),
        backend: PhantomData,
    };
    module.visit(&mut v);
    v.out
}

/// How [`map_named`] rewrites each float parameter: the new values of the parameter named
/// `name` from its current ones (given up, so an in-place op can reuse their buffer).
trait ReplaceParam<B: Backend> {
    fn replace<const D: usize>(&mut self, name: &str, tensor: Tensor<B, D>) -> Tensor<B, D>;
}

/// Rewrites every float parameter of `module` through `replace`, keeping ids and grad flags.
fn map_named<B: Backend, M: Module<B>, R: ReplaceParam<B>>(module: M, replace: R) -> M {
    struct Map<B: Backend, R: ReplaceParam<B>> {
        path: PathStack,
        replace: R,
        backend: PhantomData<B>,
    }
    impl<B: Backend, R: ReplaceParam<B>> ModuleMapper<B> for Map<B, R> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper): (ParamId, _, _) = param.consume();
            let require_grad = tensor.is_require_grad();
            let mut tensor = self.replace.replace(&self.path.name(), tensor);
            if require_grad {
                tensor = tensor.require_grad();
            }
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    module.map(&mut Map {
        path: PathStack::default(),
        replace,
        backend: PhantomData,
    })
}

/// Every float parameter of `module` by course name, in a stable (sorted) order.
pub fn named_params<B: Backend, M: Module<B>>(module: &M) -> NamedTensors<B> {
    struct Values;
    impl<B: Backend> TakeParam<B> for Values {
        type Out = FlatTensor<B>;
        fn take<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) -> Option<Self::Out> {
            Some(FlatTensor::from_tensor(param.val()))
        }
    }
    collect_named(module, Values)
}

/// Gradients of every float parameter of `module` after `loss.backward()`, by course name.
/// Parameters the loss does not depend on are absent.
pub fn named_grads<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &B::Gradients,
) -> NamedTensors<B::InnerBackend> {
    struct Grads<'a, B: AutodiffBackend>(&'a B::Gradients);
    impl<B: AutodiffBackend> TakeParam<B> for Grads<'_, B> {
        type Out = FlatTensor<B::InnerBackend>;
        fn take<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) -> Option<Self::Out> {
            param.val().grad(self.0).map(FlatTensor::from_tensor)
        }
    }
    collect_named(module, Grads::<B>(grads))
}

/// Rewrites every float parameter through `f(name, tensor)`, keeping ids and grad flags.
pub fn map_named_params<B: Backend, M: Module<B>>(
    module: M,
    f: &mut dyn FnMut(&str, FlatTensor<B>) -> FlatTensor<B>,
) -> M {
    struct Flat<'a, B: Backend>(&'a mut dyn FnMut(&str, FlatTensor<B>) -> FlatTensor<B>);
    impl<B: Backend> ReplaceParam<B> for Flat<'_, B> {
        fn replace<const D: usize>(&mut self, name: &str, tensor: Tensor<B, D>) -> Tensor<B, D> {
            (self.0)(name, FlatTensor::from_tensor(tensor)).to_tensor::<D>()
        }
    }
    map_named(module, Flat(f))
}

/// Every float parameter of an autodiff `module` as its inner backend's primitive, by course
/// name, in its own shape (no reshape: on a fusion backend even a reshape is an operation).
pub fn inner_params<AB: AutodiffBackend, M: Module<AB>>(
    module: &M,
) -> BTreeMap<String, FloatTensor<AB::InnerBackend>> {
    struct InnerValues;
    impl<B: AutodiffBackend> TakeParam<B> for InnerValues {
        type Out = FloatTensor<B::InnerBackend>;
        fn take<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) -> Option<Self::Out> {
            Some(param.val().inner().into_primitive().tensor())
        }
    }
    collect_named(module, InnerValues)
}

/// Replaces each float parameter for which `f(name)` gives new values (an inner-backend
/// primitive of the parameter's shape), keeping ids and grad flags; the others stay.
pub fn map_inner_params<AB: AutodiffBackend, M: Module<AB>>(
    module: M,
    f: &mut dyn FnMut(&str) -> Option<FloatTensor<AB::InnerBackend>>,
) -> M {
    struct Inner<'a, B: AutodiffBackend>(
        &'a mut dyn FnMut(&str) -> Option<FloatTensor<B::InnerBackend>>,
    );
    impl<B: AutodiffBackend> ReplaceParam<B> for Inner<'_, B> {
        fn replace<const D: usize>(&mut self, name: &str, tensor: Tensor<B, D>) -> Tensor<B, D> {
            let Some(values) = (self.0)(name) else {
                return tensor;
            };
            assert_eq!(
                values.shape().dims::<D>(),
                tensor.dims(),
                "new values of parameter {name} have another shape"
            );
            Tensor::from_inner(Tensor::from_primitive(TensorPrimitive::Float(values)))
        }
    }
    map_named(module, Inner::<AB>(f))
}

/// A flat tensor's values on the host as f32, whatever its dtype.
pub fn to_f32_vec<B: Backend>(t: &Tensor<B, 1>) -> Vec<f32> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 after convert")
}

/// `values` as a flat tensor on `like`'s device, in `like`'s dtype.
pub fn f32_to_tensor_like<B: Backend>(values: Vec<f32>, like: &Tensor<B, 1>) -> Tensor<B, 1> {
    let n = values.len();
    Tensor::<B, 1>::from_data(TensorData::new(values, [n]), &like.device()).cast(like.dtype())
}

/// Every parameter's values as f32, concatenated in name order (the layout
/// [`assign_flat_params`] reads; used to move whole models through collectives).
pub fn flatten_params<B: Backend, M: Module<B>>(module: &M) -> Vec<f32> {
    named_params(module)
        .values()
        .flat_map(|t| to_f32_vec(&t.values))
        .collect()
}

/// Writes `flat` (the layout of [`flatten_params`]) into `module`, keeping each
/// parameter's dtype and device. Panics if the length does not match the module.
pub fn assign_flat_params<B: Backend, M: Module<B>>(module: M, flat: &[f32]) -> M {
    // The module is visited in its own field order; the flat layout is by name.
    let mut ranges = BTreeMap::new();
    let mut offset = 0;
    for (name, t) in named_params(&module) {
        ranges.insert(name, offset..offset + t.numel());
        offset += t.numel();
    }
    assert_eq!(offset, flat.len(), "assign_flat_params: length mismatch");
    map_named_params(module, &mut |name, current| FlatTensor {
        values: f32_to_tensor_like(flat[ranges[name].clone()].to_vec(), &current.values),
        shape: current.shape,
    })
}

/// `(prefix + name, shape, f32 bytes)` for every tensor of a map, ready for
/// [`write_safetensors_f32`].
pub fn f32_entries<B: Backend>(
    tensors: NamedTensors<B>,
    prefix: &str,
) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    tensors
        .into_iter()
        .map(|(name, t)| {
            let values = t.values.into_data().convert::<f32>();
            (
                format!("{prefix}{name}"),
                t.shape,
                values.as_bytes().to_vec(),
            )
        })
        .collect()
}

/// Writes every parameter as f32 under its course name, atomically (temp file + rename).
pub fn save_safetensors<B: Backend, M: Module<B>>(module: &M, path: &Path) -> Result<()> {
    let tensors = f32_entries(named_params(module), "");
    write_safetensors_f32(&tensors, None, path)
}

/// Writes `(name, shape, little-endian f32 bytes)` triples, and optional string metadata, as
/// one safetensors file, atomically.
pub fn write_safetensors_f32(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    metadata: Option<std::collections::HashMap<String, String>>,
    path: &Path,
) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| LmError::BadFile {
                    file: path.to_path_buf(),
                    reason: format!("tensor `{name}`: {e}"),
                })?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, metadata).map_err(|e| LmError::BadFile {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// Supplies a parameter's values given its name and expected shape.
pub type ParamSource<'a> = dyn FnMut(&str, &[usize]) -> Result<Vec<f32>> + 'a;

/// Replaces every float parameter of `module` with values from `source(name, shape)`.
///
/// All values are fetched and checked before the module is touched, so an error (a missing
/// or mis-shaped tensor) leaves no half-loaded model behind. Values are cast to each
/// parameter's current dtype.
pub fn assign_params<B: Backend, M: Module<B>>(
    module: M,
    source: &mut ParamSource<'_>,
) -> Result<M> {
    let mut loaded = BTreeMap::new();
    for (name, param) in named_params(&module) {
        let values = source(&name, &param.shape)?;
        if values.len() != param.numel() {
            return Err(LmError::shape(
                name,
                format!("{:?} ({} values)", param.shape, param.numel()),
                &[values.len()],
            ));
        }
        loaded.insert(name, values);
    }
    Ok(map_named_params(module, &mut |name, current| {
        let values = loaded.remove(name).expect("every parameter was read above");
        FlatTensor {
            values: f32_to_tensor_like(values, &current.values),
            shape: current.shape,
        }
    }))
}

/// Loads every parameter of `module` from a safetensors file by course name.
///
/// Each tensor must be present with the parameter's exact shape, as F32, F16, BF16 or F64;
/// extra tensors in the file are an error too (they usually mean a config mismatch).
pub fn load_safetensors<B: Backend, M: Module<B>>(module: M, path: &Path) -> Result<M> {
    let bad = |reason: String| LmError::BadFile {
        file: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| LmError::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let expected = named_params(&module);
    if let Some(extra) = file
        .names()
        .into_iter()
        .find(|n| !expected.contains_key(*n))
    {
        return Err(bad(format!(
            "unexpected tensor `{extra}` (not a parameter of this model)"
        )));
    }
    assign_params(module, &mut |name, shape| {
        let view = file.tensor(name).map_err(|_| LmError::MissingTensor {
            file: path.to_path_buf(),
            tensor: name.to_string(),
        })?;
        if view.shape() != shape {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}, the model expects {shape:?}",
                view.shape()
            )));
        }
        view_to_f32(name, &view).map_err(|e| bad(e.to_string()))
    })
}

/// Decodes a float tensor view (F32/F16/BF16/F64) to f32 values.
pub fn view_to_f32(name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    let data = view.data();
    let values = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(LmError::Dtype {
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
                reason: "expected a float tensor (F32, F16, BF16 or F64)".into(),
            });
        }
    };
    Ok(values)
}
