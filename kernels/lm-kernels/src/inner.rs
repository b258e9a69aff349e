//! A computation of many small tensor ops run as one operation of burn's fusion stream, on
//! the fusion backend's inner backend.
//!
//! The fused optimizer step does a few cheap ops per parameter (flatten, concatenate,
//! slice, reshape back): on the inner backend each is metadata or one launch, but through
//! the fusion layer each is also an operation the fusion server registers and plans (run 8
//! in docs/PERF.md measured ~130 µs of host work per parameter updated alone). Here the
//! fusion layer sees the whole computation as one custom operation; elsewhere it simply
//! runs.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape};

/// A computation on float tensors, generic over the backend that runs it.
pub trait InnerProgram: Send + Sync + 'static {
    /// The outputs, in the order and with the shapes and dtypes the caller declared.
    fn run<K: Backend>(&self, inputs: Vec<FloatTensor<K>>) -> Vec<FloatTensor<K>>;
}

/// `program` over `inputs` (at least one): on a fusion backend of this build as one
/// operation run on its inner backend, elsewhere directly. `outputs` declares each output's
/// shape and dtype, which `program` must produce.
pub fn run_on_inner<B: Backend, P: InnerProgram>(
    inputs: Vec<FloatTensor<B>>,
    outputs: Vec<(Shape, DType)>,
    program: P,
) -> Vec<FloatTensor<B>> {
    assert!(!inputs.is_empty(), "run_on_inner needs at least one input");
    #[cfg(feature = "cubecl")]
    {
        let run: Option<fused::Runner<B, P>> =
            crate::for_inner_kernel_backend!(B, |K| fused::run_as::<B, K, P>
                as fused::Runner<B, P>);
        if let Some(run) = run {
            return run(inputs, outputs, program);
        }
    }
    let _ = outputs;
    program.run::<B>(inputs)
}

#[cfg(feature = "cubecl")]
mod fused {
    use std::sync::Arc;

    use burn::tensor::ops::FloatTensor;
    use burn::tensor::{DType, Shape, backend::Backend};
    use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
    use burn_fusion::{Fusion, FusionBackend};

    use super::InnerProgram;
    use crate::dispatch::same_type;
    use crate::fusion_op::{Body, register};

    pub type Runner<B, P> = fn(Vec<FloatTensor<B>>, Vec<(Shape, DType)>, P) -> Vec<FloatTensor<B>>;

    /// How a kernel backend runs a program: directly, or as one fusion operation.
    pub trait RunsPrograms: Backend {
        fn run_program<P: InnerProgram>(
            inputs: Vec<FloatTensor<Self>>,
            outputs: Vec<(Shape, DType)>,
            program: P,
        ) -> Vec<FloatTensor<Self>>;
    }

    impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> RunsPrograms
        for CubeBackend<R, F, I, BT>
    {
        fn run_program<P: InnerProgram>(
            inputs: Vec<FloatTensor<Self>>,
            _outputs: Vec<(Shape, DType)>,
            program: P,
        ) -> Vec<FloatTensor<Self>> {
            program.run::<Self>(inputs)
        }
    }

    impl<B: FusionBackend> RunsPrograms for Fusion<B> {
        fn run_program<P: InnerProgram>(
            inputs: Vec<FloatTensor<Self>>,
            outputs: Vec<(Shape, DType)>,
            program: P,
        ) -> Vec<FloatTensor<Self>> {
            let body: Body<B> = Arc::new(move |desc, handles| {
                let inputs = desc
                    .inputs
                    .iter()
                    .map(|t| handles.get_float_tensor::<B>(t))
                    .collect();
                let results = program.run::<B>(inputs);
                assert_eq!(
                    results.len(),
                    desc.outputs.len(),
                    "the program returned another number of outputs than it declared"
                );
                for (ir, tensor) in desc.outputs.iter().zip(results) {
                    handles.register_float_tensor::<B>(&ir.id, tensor);
                }
            });
            register::<B>("inner_program", inputs, outputs, body)
        }
    }

    pub fn run_as<B: Backend, K: RunsPrograms, P: InnerProgram>(
        inputs: Vec<FloatTensor<B>>,
        outputs: Vec<(Shape, DType)>,
        program: P,
    ) -> Vec<FloatTensor<B>> {
        same_type(K::run_program(same_type(inputs), outputs, program))
    }
}
