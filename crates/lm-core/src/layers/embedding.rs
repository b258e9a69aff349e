use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor, backend::Backend};

use crate::init::Initializer;

/// Row lookup into `weight [vocab_size, d_model]`.
#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
}

impl<B: Backend> Embedding<B> {
    /// N(0, 1) truncated at ±3 (the handout's init).
    pub fn new(
        vocab_size: usize,
        d_model: usize,
        init: &mut Initializer,
        device: &B::Device,
    ) -> Self {
        Self {
            weight: init.param([vocab_size, d_model], 1.0, 3.0, device),
        }
    }

    pub fn from_weight(weight: Tensor<B, 2>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
        }
    }

    /// `ids [...]` → `[..., d_model]`; `DO` must be `DI + 1`.
    pub fn forward<const DI: usize, const DO: usize>(
        &self,
        ids: Tensor<B, DI, Int>,
    ) -> Tensor<B, DO> {
        assert!(
            DO == DI + 1,
            "Embedding: output rank {DO} must be input rank {DI} + 1"
        );
        let [_, d_model] = self.weight.dims();
        let id_dims = ids.dims();
        let mut out_dims = [d_model; DO];
        out_dims[..DI].copy_from_slice(&id_dims);
        let flat: Tensor<B, 1, Int> = ids.reshape([id_dims.iter().product::<usize>()]);
        self.weight.val().select(0, flat).reshape(out_dims)
    }
}
