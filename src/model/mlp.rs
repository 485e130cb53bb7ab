//! The block's state mixer: Linear(d, 4d) → exact GELU → Linear(4d, d), with biases.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend};

use super::gelu_cpu::gelu;
use super::init::Init;
use super::runs::linear;

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// Reference init (σ = 0.02): fc1 N(0, σ); fc2 N(0, σ/√(2·layers)); biases 0.
    pub fn init(d_model: usize, layers: usize, init: &mut Init<B>) -> Self {
        Mlp {
            fc1: init.linear(d_model, 4 * d_model, true, init.std()),
            fc2: init.linear(
                4 * d_model,
                d_model,
                true,
                init.std() / (2.0 * layers as f64).sqrt(),
            ),
        }
    }

    /// # Shapes
    /// - `x_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        linear(&self.fc2, gelu(linear(&self.fc1, x_bsd)))
    }
}
