use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::Linear;
use crate::functional::silu;
use crate::init::Initializer;

/// Position-wise feed-forward `W2(silu(W1 x) ⊙ W3 x)`.
#[derive(Module, Debug)]
pub struct SwiGlu<B: Backend> {
    pub w1: Linear<B>,
    pub w2: Linear<B>,
    pub w3: Linear<B>,
}

impl<B: Backend> SwiGlu<B> {
    pub fn new(d_model: usize, d_ff: usize, init: &mut Initializer, device: &B::Device) -> Self {
        Self {
            w1: Linear::new(d_model, d_ff, init, device),
            w2: Linear::new(d_ff, d_model, init, device),
            w3: Linear::new(d_model, d_ff, init, device),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (gate, up) = (self.w1.forward(x.clone()), self.w3.forward(x));
        let hidden = match crate::kernels::silu_mul(gate, up) {
            Ok(hidden) => hidden,
            Err((gate, up)) => silu(gate) * up,
        };
        self.w2.forward(hidden)
    }
}
