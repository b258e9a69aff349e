//! Running a kernel of ours inside burn's fusion backend: the fusion layer sees it as one
//! custom operation (ending the current fused block) whose body runs the inner backend's
//! implementation on the materialised inputs.

use std::sync::Arc;

use burn::tensor::{DType, Shape};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{FusionBackend, FusionRuntime, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

/// The handles of the inner backend `B` as the fusion layer stores them.
pub type Handles<B> =
    HandleContainer<<<B as FusionBackend>::FusionRuntime as FusionRuntime>::FusionHandle>;

/// What the operation does when the fusion stream executes it: read `desc.inputs` from the
/// handles, run the kernel, register `desc.outputs`.
pub type Body<B> = Arc<dyn Fn(&CustomOpIr, &mut Handles<B>) + Send + Sync>;

struct CustomOp<B: FusionBackend> {
    desc: CustomOpIr,
    body: Body<B>,
}

impl<B: FusionBackend> Clone for CustomOp<B> {
    fn clone(&self) -> Self {
        Self {
            desc: self.desc.clone(),
            body: self.body.clone(),
        }
    }
}

impl<B: FusionBackend> std::fmt::Debug for CustomOp<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomOp")
            .field("desc", &self.desc)
            .finish()
    }
}

impl<B: FusionBackend> Operation<B::FusionRuntime> for CustomOp<B> {
    fn execute(&self, handles: &mut Handles<B>) {
        (self.body)(&self.desc, handles)
    }
}

/// Registers `body` as custom operation `name` on `inputs`, producing tensors of the given
/// shapes and dtypes (in order).
pub fn register<B: FusionBackend>(
    name: &'static str,
    inputs: Vec<FusionTensor<B::FusionRuntime>>,
    outputs: Vec<(Shape, DType)>,
    body: Body<B>,
) -> Vec<FusionTensor<B::FusionRuntime>> {
    let client = inputs[0].client.clone();
    let streams = OperationStreams::with_inputs(&inputs);
    let outputs: Vec<TensorIr> = outputs
        .into_iter()
        .map(|(shape, dtype)| TensorIr::uninit(client.create_empty_handle(), shape, dtype))
        .collect();
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &inputs, &outputs);
    let op = CustomOp::<B> {
        desc: desc.clone(),
        body,
    };
    client.register(streams, OperationIr::Custom(desc), op)
}

/// [`register`] for an operation whose inputs and outputs are all float tensors: `run`
/// maps the inner backend's inputs to its outputs (declared by shape and dtype, in order).
pub fn register_float<B: FusionBackend, const I: usize, const O: usize>(
    name: &'static str,
    inputs: [FusionTensor<B::FusionRuntime>; I],
    outs: [(Shape, DType); O],
    run: impl Fn([B::FloatTensorPrimitive; I]) -> [B::FloatTensorPrimitive; O] + Send + Sync + 'static,
) -> [FusionTensor<B::FusionRuntime>; O] {
    let body: Body<B> = Arc::new(move |desc, handles| {
        let (ins, out_irs) = desc.as_fixed::<I, O>();
        let ins = ins.each_ref().map(|t| handles.get_float_tensor::<B>(t));
        for (ir, t) in out_irs.iter().zip(run(ins)) {
            handles.register_float_tensor::<B>(&ir.id, t);
        }
    });
    outputs(register::<B>(name, inputs.into(), outs.into(), body))
}

/// `N` outputs of a registration as an array.
pub fn outputs<T, const N: usize>(tensors: Vec<T>) -> [T; N] {
    tensors
        .try_into()
        .unwrap_or_else(|_| unreachable!("the op declares {N} outputs"))
}
