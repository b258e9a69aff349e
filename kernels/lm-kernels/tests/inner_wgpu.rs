//! `inner::run_on_inner` on burn-wgpu (lavapipe in CI): on the fusion backend the program runs
//! on the inner `CubeBackend` (as one fusion operation), on the unfused backend directly, and
//! its outputs come back in the declared order with the program's values.
#![cfg(feature = "wgpu")]

use std::sync::{Arc, Mutex};

use burn::backend::Wgpu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape, Tensor, TensorPrimitive};
use lm_kernels::dispatch::WgpuUnfused;
use lm_kernels::inner::{InnerProgram, run_on_inner};

/// `[a + b, a · 2]` (`b` a matrix reshaped to `a`'s shape), noting the backend it ran on.
struct SumAndDouble {
    ran_on: Arc<Mutex<Vec<&'static str>>>,
}

impl InnerProgram for SumAndDouble {
    fn run<K: Backend>(&self, inputs: Vec<FloatTensor<K>>) -> Vec<FloatTensor<K>> {
        self.ran_on.lock().unwrap().push(std::any::type_name::<K>());
        let [a, b]: [FloatTensor<K>; 2] =
            inputs.try_into().unwrap_or_else(|_| panic!("two inputs"));
        let a = Tensor::<K, 1>::from_primitive(TensorPrimitive::Float(a));
        let b = Tensor::<K, 2>::from_primitive(TensorPrimitive::Float(b)).reshape([6]);
        let sum = (a.clone() + b).into_primitive().tensor();
        let double = a.mul_scalar(2.0).into_primitive().tensor();
        vec![sum, double]
    }
}

fn run<B: Backend>() -> (Vec<f32>, Vec<f32>, Vec<&'static str>) {
    let device = Default::default();
    let a = Tensor::<B, 1>::from_floats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &device);
    let b = Tensor::<B, 2>::from_floats([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]], &device);
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    let program = SumAndDouble {
        ran_on: ran_on.clone(),
    };
    let outputs = vec![(Shape::new([6]), DType::F32), (Shape::new([6]), DType::F32)];
    let inputs = vec![a.into_primitive().tensor(), b.into_primitive().tensor()];
    let [sum, double]: [FloatTensor<B>; 2] = run_on_inner::<B, _>(inputs, outputs, program)
        .try_into()
        .unwrap_or_else(|_| panic!("two outputs"));
    let host = |t| {
        Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(t))
            .to_data()
            .to_vec::<f32>()
            .unwrap()
    };
    let (sum, double) = (host(sum), host(double));
    let ran_on = ran_on.lock().unwrap().clone();
    (sum, double, ran_on)
}

#[test]
fn fusion_backend_runs_the_program_on_its_inner_backend() {
    let (sum, double, ran_on) = run::<Wgpu<f32, i32>>();
    assert_eq!(sum, [11.0, 22.0, 33.0, 44.0, 55.0, 66.0]);
    assert_eq!(double, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    assert_eq!(ran_on, [std::any::type_name::<WgpuUnfused>()]);
}

#[test]
fn unfused_backend_runs_the_program_directly() {
    let (sum, double, ran_on) = run::<WgpuUnfused>();
    assert_eq!(sum, [11.0, 22.0, 33.0, 44.0, 55.0, 66.0]);
    assert_eq!(double, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    assert_eq!(ran_on, [std::any::type_name::<WgpuUnfused>()]);
}
